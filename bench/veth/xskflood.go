package main

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/ovsxdp/ovsxdp/vport"
)

// pacedNap is how long the paced AF_XDP sender naps when no frame is due.
const pacedNap = 20 * time.Microsecond

// xskFloodRole is the first argument that makes the binary the AF_XDP
// sender.
const xskFloodRole = "-vethbench-xskflood"

// xskFrames builds 60-byte UDP frames (18-byte payloads) from
// srcMAC/srcIP to dstMAC/dstIP, one per destination port of the many-flow
// range.
func xskFrames(srcMAC, dstMAC net.HardwareAddr, srcIP, dstIP string) ([][]byte, error) {
	src, dst := net.ParseIP(srcIP).To4(), net.ParseIP(dstIP).To4()
	if src == nil || dst == nil {
		return nil, fmt.Errorf("frames from %q to %q: want IPv4 addresses", srcIP, dstIP)
	}
	frames := make([][]byte, flowPorts)
	payload := make([]byte, 18)
	for i := range frames {
		eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: src, DstIP: dst}
		udp := &layers.UDP{SrcPort: 9, DstPort: layers.UDPPort(flowPortBase + i)}
		if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
			return nil, err
		}
		buf := gopacket.NewSerializeBuffer()
		opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
		if err := gopacket.SerializeLayers(buf, opts, eth, ip, udp, gopacket.Payload(payload)); err != nil {
			return nil, err
		}
		frames[i] = append([]byte(nil), buf.Bytes()...)
	}
	return frames, nil
}

// xskFlood transmits the many-flow frames on dev through an AF_XDP port
// (copy mode on a veth: the kernel takes each frame through the veth's
// transmit path) in batches for d, and prints how many it sent and in how
// long. With rate 0 it sends as fast as the tx ring drains; otherwise it
// keeps to rate frames per second, sending what is due (at most a batch)
// and napping when nothing is; frames that fell due while it was off the
// CPU are given up, never sent in a burst. It runs inside namespace a.
//
// The nap is a nanosleep on a thread with ovsxdp's poll-thread timer
// slack, not time.Sleep: in a process with sockets, the Go runtime waits
// out a sleep shorter than a millisecond in epoll with a 1 ms timeout, and
// at 220,000 packets/s a 1 ms nap lets 220 frames fall due, more than the
// two batches the sender catches up on, so that it gave up two thirds of
// its target rate.
func xskFlood(dev, srcMAC, dstMAC, srcIP, dstIP string, d time.Duration, rate float64) error {
	src, err := net.ParseMAC(srcMAC)
	if err != nil {
		return err
	}
	dst, err := net.ParseMAC(dstMAC)
	if err != nil {
		return err
	}
	frames, err := xskFrames(src, dst, srcIP, dstIP)
	if err != nil {
		return err
	}
	p, err := vport.OpenXSK(vport.XSKConfig{Device: dev, Queues: 1})
	if err != nil {
		return err
	}
	defer p.Close()
	batch := make([][]byte, vport.MaxBatch)
	nap := unix.NsecToTimespec(int64(pacedNap))
	if rate > 0 {
		// The thread's timer slack is its own: the nap must run on it.
		defer runtime.UnlockOSThread()
		if err := lockNapThread(); err != nil {
			return err
		}
	}
	start := time.Now()
	end := start.Add(d)
	sent, next, behind := 0, 0, 0
	for i := 0; ; i++ {
		if (rate > 0 || i%64 == 0) && time.Now().After(end) {
			break
		}
		out := batch
		if rate > 0 {
			due := int(rate*time.Since(start).Seconds()) - sent - behind
			if due <= 0 {
				unix.Nanosleep(&nap, nil) //nolint:errcheck // EINTR: a shorter nap
				continue
			}
			if due > 2*len(batch) {
				// Descheduled for a while: what fell due meanwhile is
				// given up rather than sent in a burst above the rate.
				behind += due - len(batch)
				due = len(batch)
			}
			out = batch[:min(due, len(batch))]
		}
		for j := range out {
			out[j] = frames[next]
			next = (next + 1) % len(frames)
		}
		n, err := p.Transmit(0, out)
		if err != nil {
			return err
		}
		sent += n
		next = (next - (len(out) - n) + len(frames)) % len(frames)
	}
	took := time.Since(start)
	fmt.Printf("sent %d in %g\n", sent, took.Seconds())
	return nil
}

// measureXSK runs the AF_XDP sender in a for d, as fast as it can or at
// rate frames per second (rate > 0), and returns the rate b received.
func measureXSK(ctx context.Context, t *topo, d time.Duration, rate float64) (float64, error) {
	received, _, err := measureXSKSent(ctx, t, d, rate)
	return received, err
}

// measureXSKSent is measureXSK that also returns the rate the sender
// sent, which at a rate may be below it.
func measureXSKSent(ctx context.Context, t *topo, d time.Duration, rate float64) (received, sent float64, err error) {
	macA, err := t.mac(t.a, t.peerA)
	if err != nil {
		return 0, 0, err
	}
	macB, err := t.mac(t.b, t.peerB)
	if err != nil {
		return 0, 0, err
	}
	return runSender(ctx, t, "AF_XDP sender", xskFloodRole, t.peerA, macA, macB, t.ipA, t.ipB, d.String(), strconv.FormatFloat(rate, 'f', 0, 64))
}
