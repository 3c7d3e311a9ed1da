package topo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// PingStats is what Ping measured.
type PingStats struct {
	Sent, Received int
	AvgRTT         time.Duration // over the replies received; 0 if none
}

// Lost is the number of echo requests that got no reply in time.
func (s PingStats) Lost() int { return s.Sent - s.Received }

// pingIDs numbers the echo identifiers of the process's pings, so that
// pings that run at the same time in one namespace tell their replies
// apart.
var pingIDs atomic.Uint32

func init() { pingIDs.Store(uint32(os.Getpid())) }

// pingPayload follows the echo header of each request.
var pingPayload = []byte("ovsxdp-ping-0123456789abcdefghijklmnopqrstuvwxyz012345")

// Ping sends count ICMP echo requests to the IPv4 address ip from inside
// the namespace, interval apart, and counts the replies that come within
// wait of their request, as "ping -c COUNT -i INTERVAL -W WAIT" does
// without needing the ping binary. It returns once every reply has come
// or wait has passed after the last request. A request the kernel refuses
// to send (no route, no neighbour) counts as lost. The socket is raw, so
// Ping needs CAP_NET_RAW; it sees every ICMP message of the namespace and
// keeps the echo replies to its own identifier and sequence numbers from
// ip. On an error of ctx, Ping returns what it has counted with ctx's
// error.
func (n *Namespace) Ping(ctx context.Context, ip net.IP, count int, interval, wait time.Duration) (PingStats, error) {
	dst := ip.To4()
	if dst == nil {
		return PingStats{}, fmt.Errorf("ping %s from %s: not an IPv4 address", ip, n.Name)
	}
	if count < 1 || count > 1<<16 {
		return PingStats{}, fmt.Errorf("ping %s from %s: count %d out of range 1-65536", ip, n.Name, count)
	}
	var c *icmp.PacketConn
	err := n.Do(func() (err error) {
		c, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	})
	if err != nil {
		return PingStats{}, fmt.Errorf("ping %s from %s: %w", ip, n.Name, err)
	}
	defer c.Close()
	// Let only echo replies through to the socket, so that other ICMP
	// traffic cannot fill its buffer.
	var filter ipv4.ICMPFilter
	filter.SetAll(true)
	filter.Accept(ipv4.ICMPTypeEchoReply)
	if err := c.IPv4PacketConn().SetICMPFilter(&filter); err != nil {
		return PingStats{}, fmt.Errorf("ping %s from %s: icmp filter: %w", ip, n.Name, err)
	}

	p := pinger{c: c, dst: &net.IPAddr{IP: dst}, id: uint16(pingIDs.Add(1)), sent: make([]time.Time, count), got: make([]bool, count)}
	var st PingStats
	var rttSum time.Duration
	buf := make([]byte, 1500)
	next := time.Now()
	var end time.Time // wait after the last request
	for st.Received < count {
		if err := ctx.Err(); err != nil {
			return st.average(rttSum), err
		}
		now := time.Now()
		if st.Sent < count && !now.Before(next) {
			p.send(st.Sent, now)
			st.Sent++
			next = now.Add(interval)
			end = now.Add(wait)
			continue
		}
		if st.Sent == count && !now.Before(end) {
			break
		}
		deadline := next
		if st.Sent == count {
			deadline = end
		}
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		if err := c.SetReadDeadline(deadline); err != nil {
			return st.average(rttSum), fmt.Errorf("ping %s from %s: %w", ip, n.Name, err)
		}
		nr, from, err := c.ReadFrom(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		if err != nil {
			return st.average(rttSum), fmt.Errorf("ping %s from %s: %w", ip, n.Name, err)
		}
		if rtt, ok := p.reply(buf[:nr], from, st.Sent, time.Now(), wait); ok {
			st.Received++
			rttSum += rtt
		}
	}
	return st.average(rttSum), nil
}

// average returns s with AvgRTT set from the sum of its replies' RTTs.
func (s PingStats) average(sum time.Duration) PingStats {
	if s.Received > 0 {
		s.AvgRTT = sum / time.Duration(s.Received)
	}
	return s
}

// pinger is one Ping's requests in flight.
type pinger struct {
	c    net.PacketConn
	dst  *net.IPAddr
	id   uint16
	sent []time.Time // by sequence number
	got  []bool      // by sequence number: a reply came
}

// send sends the echo request with sequence number seq. A failure to send
// is a lost request, as ping counts it.
func (p *pinger) send(seq int, now time.Time) {
	m := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: int(p.id), Seq: seq, Data: pingPayload}}
	b, err := m.Marshal(nil)
	if err != nil {
		return
	}
	p.sent[seq] = now
	_, _ = p.c.WriteTo(b, p.dst)
}

// reply checks that b, received from `from` at now, is the first echo
// reply to one of the first sent requests, within wait of it, and returns
// its round-trip time.
func (p *pinger) reply(b []byte, from net.Addr, sent int, now time.Time, wait time.Duration) (time.Duration, bool) {
	if a, ok := from.(*net.IPAddr); !ok || !a.IP.Equal(p.dst.IP) {
		return 0, false
	}
	m, err := icmp.ParseMessage(1, b) // 1: ICMP for IPv4
	if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
		return 0, false
	}
	e, ok := m.Body.(*icmp.Echo)
	if !ok || e.ID != int(p.id) || e.Seq < 0 || e.Seq >= sent || p.got[e.Seq] {
		return 0, false
	}
	rtt := now.Sub(p.sent[e.Seq])
	if rtt > wait {
		return 0, false
	}
	p.got[e.Seq] = true
	return rtt, true
}
