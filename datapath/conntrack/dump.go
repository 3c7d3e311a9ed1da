package conntrack

import (
	"cmp"
	"fmt"
	"iter"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/ovsxdp/ovsxdp/flow"
)

// AllZones selects the connections of every zone in Dump, Flush and Stats.
const AllZones = -1

// Tuple is one direction of a connection as the operator sees it.
type Tuple struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16 // TCP, UDP and others (0 for protocols without ports)
	ICMPID           uint16 // ICMP and ICMPv6 queries
	ICMPType         uint8
	ICMPCode         uint8
}

// Entry is one connection, as dpctl/dump-conntrack shows it.
type Entry struct {
	Proto       uint8
	Orig, Reply Tuple
	Zone        uint16
	Mark        uint32
	Labels      [16]byte // big-endian, like flow.Key.CtLabel
	// TCPOrig and TCPReply are the states of the two sides of a TCP
	// connection.
	TCPOrig, TCPReply TCPState
	// TCPWscaleOrig and TCPWscaleReply are the window scale of each side
	// with whether it sent the option or was picked up mid-connection.
	TCPWscaleOrig, TCPWscaleReply uint8
	Expires                       int64 // when it times out without traffic (monotonic nanoseconds)
}

// TCPState is the one state Open vSwitch prints for a TCP connection: the
// later of the two sides' states, in the Linux kernel's terms.
func (e *Entry) TCPState() TCPState {
	return max(e.TCPOrig, e.TCPReply).coalesce()
}

// ProtoName is the name dpctl/dump-conntrack gives an IP protocol.
func ProtoName(proto uint8) string {
	switch proto {
	case flow.IPProtoICMP:
		return "icmp"
	case flow.IPProtoICMPv6:
		return "icmpv6"
	case flow.IPProtoTCP:
		return "tcp"
	case flow.IPProtoUDP:
		return "udp"
	case flow.IPProtoSCTP:
		return "sctp"
	case 136:
		return "udplite"
	case 33:
		return "dccp"
	case 2:
		return "igmp"
	}
	return strconv.Itoa(int(proto))
}

func (t *Tuple) format(b *strings.Builder, proto uint8) {
	b.WriteString("src=")
	b.WriteString(t.Src.String())
	b.WriteString(",dst=")
	b.WriteString(t.Dst.String())
	if proto == flow.IPProtoICMP || proto == flow.IPProtoICMPv6 {
		fmt.Fprintf(b, ",id=%d,type=%d,code=%d", t.ICMPID, t.ICMPType, t.ICMPCode)
	} else {
		fmt.Fprintf(b, ",sport=%d,dport=%d", t.SrcPort, t.DstPort)
	}
}

// String formats the entry as dpctl/dump-conntrack prints it, e.g.
// tcp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=41000,dport=80),reply=(src=10.0.0.2,dst=10.0.0.1,sport=80,dport=41000),zone=5,mark=1,protoinfo=(state=ESTABLISHED)
func (e Entry) String() string {
	return e.Format(false, false, 0)
}

// Format formats the entry as dpctl/dump-conntrack prints it with -m
// (verbose: the connection's id and status, which Open vSwitch's
// userspace tracker leaves 0, and each TCP side's state, window scale and
// flags) and -s (stats: the seconds left until it times out at now,
// monotonic nanoseconds).
func (e Entry) Format(verbose, stats bool, now int64) string {
	var b strings.Builder
	b.WriteString(ProtoName(e.Proto))
	b.WriteString(",orig=(")
	e.Orig.format(&b, e.Proto)
	b.WriteString("),reply=(")
	e.Reply.format(&b, e.Proto)
	b.WriteString(")")
	if verbose {
		b.WriteString(",id=0")
	}
	if e.Zone != 0 {
		fmt.Fprintf(&b, ",zone=%d", e.Zone)
	}
	if verbose {
		b.WriteString(",status=0")
	}
	if stats {
		fmt.Fprintf(&b, ",timeout=%d", max(e.Expires-now, 0)/1e9)
	}
	if e.Mark != 0 {
		fmt.Fprintf(&b, ",mark=%d", e.Mark)
	}
	if e.Labels != ([16]byte{}) {
		b.WriteString(",labels=")
		b.WriteString(FormatLabel(e.Labels))
	}
	if e.Proto == flow.IPProtoTCP {
		if verbose {
			fmt.Fprintf(&b, ",protoinfo=(state_orig=%s,state_reply=%s", e.TCPOrig, e.TCPReply)
			wo, wr := e.TCPWscaleOrig&wscaleMask, e.TCPWscaleReply&wscaleMask
			if wo != 0 || wr != 0 {
				fmt.Fprintf(&b, ",wscale_orig=%d,wscale_reply=%d", wo, wr)
			}
			fmt.Fprintf(&b, ",flags_orig=%s,flags_reply=%s)", tcpPeerFlags(e.TCPWscaleOrig), tcpPeerFlags(e.TCPWscaleReply))
		} else {
			b.WriteString(",protoinfo=(state=")
			b.WriteString(e.TCPState().String())
			b.WriteString(")")
		}
	}
	return b.String()
}

// tcpPeerFlags names the flags Open vSwitch prints for a TCP side:
// WINDOW_SCALE when it sent the option, BE_LIBERAL when the connection
// was picked up after its handshake, 0 for none.
func tcpPeerFlags(wscale uint8) string {
	var f []string
	if wscale&wscaleKnown != 0 {
		f = append(f, "WINDOW_SCALE")
	}
	if wscale&wscaleUnknown != 0 {
		f = append(f, "BE_LIBERAL")
	}
	if len(f) == 0 {
		return "0"
	}
	return strings.Join(f, "|")
}

// FormatLabel formats a 128-bit label as Open vSwitch does: 0x and the
// hexadecimal digits without leading zeros.
func FormatLabel(l [16]byte) string {
	var b strings.Builder
	printed := false
	for _, v := range l {
		switch {
		case printed:
			fmt.Fprintf(&b, "%02x", v)
		case v != 0:
			fmt.Fprintf(&b, "0x%x", v)
			printed = true
		}
	}
	if !printed {
		return "0"
	}
	return b.String()
}

func (t *tuple) export() Tuple {
	var out Tuple
	if t.v6 {
		out.Src, out.Dst = netip.AddrFrom16(t.src), netip.AddrFrom16(t.dst)
	} else {
		out.Src, out.Dst = netip.AddrFrom4([4]byte(t.src[:4])), netip.AddrFrom4([4]byte(t.dst[:4]))
	}
	if t.isICMP() {
		out.ICMPID, out.ICMPType = t.sport, t.stype
	} else {
		out.SrcPort, out.DstPort = t.sport, t.dport
	}
	return out
}

// entryLocked describes a connection; its home shard is locked.
func (c *conn) entryLocked() Entry {
	e := Entry{
		Proto:   c.key[0].proto,
		Orig:    c.key[0].export(),
		Reply:   c.key[1].export(),
		Zone:    c.key[0].zone,
		Mark:    c.mark,
		Labels:  c.label,
		Expires: c.expires,
	}
	if e.Proto == flow.IPProtoTCP {
		e.TCPOrig, e.TCPReply = c.tcpStates()
		e.TCPWscaleOrig, e.TCPWscaleReply = c.tcp[0].wscale, c.tcp[1].wscale
	}
	return e
}

// eachLocked calls fn for every live connection of the shard in zone (or
// every zone) that has not expired by now, a chunk at a time, locking the
// shard for each chunk. fn may delete the connection.
func (tr *Tracker) each(s *shard, now int64, zone int, fn func(slot int, c *conn)) {
	s.mu.Lock()
	n := s.nchunks
	s.mu.Unlock()
	for ch := range n {
		s.mu.Lock()
		for i := ch << chunkBits; i < (ch+1)<<chunkBits; i++ {
			c := s.connAt(i)
			if !c.alive.Load() || now >= c.expires || (zone >= 0 && int(c.key[0].zone) != zone) {
				continue
			}
			fn(i, c)
		}
		s.mu.Unlock()
	}
}

// Dump yields the connections of a zone (AllZones: every zone) that have
// not expired by now, one shard at a time. It does not hold a shard's
// mutex while it yields.
func (tr *Tracker) Dump(now int64, zone int) iter.Seq[Entry] {
	return func(yield func(Entry) bool) {
		var buf []Entry
		for sh := range tr.shards {
			buf = buf[:0]
			tr.each(&tr.shards[sh], now, zone, func(_ int, c *conn) {
				buf = append(buf, c.entryLocked())
			})
			for _, e := range buf {
				if !yield(e) {
					return
				}
			}
		}
	}
}

// Flush removes every connection of a zone (AllZones: every zone) and
// returns how many it removed.
func (tr *Tracker) Flush(zone int) int {
	n := 0
	for sh := range tr.shards {
		s := &tr.shards[sh]
		tr.each(s, math.MinInt64, zone, func(slot int, c *conn) {
			tr.deleteLocked(s, slot, c)
			n++
		})
	}
	tr.reapZombies()
	return n
}

// FlushTuple removes the connection that has the tuple in either
// direction in a zone, as dpctl/flush-conntrack with a ct-orig tuple does.
// For ICMP and ICMPv6 the tuple's ICMPID and ICMPType (a query or reply
// type) name the connection.
func (tr *Tracker) FlushTuple(zone uint16, proto uint8, t Tuple) error {
	if !t.Src.IsValid() || !t.Dst.IsValid() || t.Src.Is4() != t.Dst.Is4() {
		return fmt.Errorf("flush tuple %v %v: %w", t.Src, t.Dst, ErrBadConfig)
	}
	k := tuple{zone: zone, proto: proto, v6: !t.Src.Is4()}
	if k.v6 {
		k.src, k.dst = t.Src.As16(), t.Dst.As16()
	} else {
		a, b := t.Src.As4(), t.Dst.As4()
		copy(k.src[:4], a[:])
		copy(k.dst[:4], b[:])
	}
	if k.isICMP() {
		var ok bool
		k.sport, k.dport, k.stype = t.ICMPID, t.ICMPID, t.ICMPType
		if k.v6 {
			k.dtype, ok = icmp6Reverse(k.stype)
		} else {
			k.dtype, ok = icmpReverse(k.stype)
		}
		if !ok {
			return fmt.Errorf("flush tuple: icmp type %d: %w", t.ICMPType, ErrNotFound)
		}
	} else {
		k.sport, k.dport = t.SrcPort, t.DstPort
	}
	s, c, slot, _ := tr.find(&k, k.hash(tr.seed), math.MinInt64)
	if c == nil {
		return fmt.Errorf("flush tuple: %w", ErrNotFound)
	}
	tr.deleteLocked(s, slot, c)
	s.mu.Unlock()
	tr.reapZombies()
	return nil
}

// Sweep removes the connections that have expired by now and returns how
// many it removed. Lookups remove expired connections they meet too; the
// sweep finds the rest. The datapath calls it periodically.
func (tr *Tracker) Sweep(now int64) int {
	n := 0
	for sh := range tr.shards {
		s := &tr.shards[sh]
		s.mu.Lock()
		nch := s.nchunks
		s.mu.Unlock()
		for ch := range nch {
			s.mu.Lock()
			for i := ch << chunkBits; i < (ch+1)<<chunkBits; i++ {
				c := s.connAt(i)
				if c.alive.Load() && now >= c.expires {
					tr.deleteLocked(s, i, c)
					n++
				}
			}
			s.mu.Unlock()
		}
	}
	tr.expired.Add(uint64(n))
	tr.reapZombies()
	return n
}

// Stats counts connections as dpctl/ct-stats-show does.
type Stats struct {
	Total                                                    int
	TCP, UDP, UDPLite, SCTP, ICMP, ICMPv6, DCCP, IGMP, Other int
	TCPStates                                                [numTCPStates]int // by coalesced state
}

// Stats counts the connections of a zone (AllZones: every zone) that
// have not expired by now.
func (tr *Tracker) Stats(now int64, zone int) Stats {
	var st Stats
	for sh := range tr.shards {
		tr.each(&tr.shards[sh], now, zone, func(_ int, c *conn) {
			st.Total++
			switch c.key[0].proto {
			case flow.IPProtoICMP:
				st.ICMP++
			case flow.IPProtoICMPv6:
				st.ICMPv6++
			case flow.IPProtoTCP:
				st.TCP++
				o, r := c.tcpStates()
				st.TCPStates[max(o, r).coalesce()]++
			case flow.IPProtoUDP:
				st.UDP++
			case flow.IPProtoSCTP:
				st.SCTP++
			case 136:
				st.UDPLite++
			case 33:
				st.DCCP++
			case 2:
				st.IGMP++
			default:
				st.Other++
			}
		})
	}
	return st
}

// Format prints the counts as dpctl/ct-stats-show does (verbose adds the
// TCP connections per state). Like Open vSwitch it counts ICMPv6
// connections in the total without a line of their own.
func (st Stats) Format(verbose bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Connections Stats:\n    Total: %d\n", st.Total)
	if st.TCP != 0 {
		fmt.Fprintf(&b, "  TCP: %d\n", st.TCP)
		if verbose {
			b.WriteString("    Conn per TCP states:\n")
			for s, n := range st.TCPStates {
				if n != 0 {
					fmt.Fprintf(&b, "\t  [%s]=%d\n", TCPState(s), n)
				}
			}
		}
	}
	for _, l := range []struct {
		name string
		n    int
	}{{"UDP", st.UDP}, {"UDPLITE", st.UDPLite}, {"SCTP", st.SCTP}, {"ICMP", st.ICMP}, {"DCCP", st.DCCP}, {"IGMP", st.IGMP}, {"Other", st.Other}} {
		if l.n != 0 {
			fmt.Fprintf(&b, "  %s: %d\n", l.name, l.n)
		}
	}
	return b.String()
}

// StateCount is the number of connections of one protocol in one state,
// for a gauge labelled by protocol and state.
type StateCount struct {
	Proto string // as ProtoName
	State string // a TCP state (coalesced, as dump-conntrack prints it); FIRST, MULTIPLE or BIDIR for UDP and others; FIRST or REPLY for ICMP queries
	Count int
}

// StateCounts counts the connections that have not expired by now by
// protocol and state, sorted by protocol and state.
func (tr *Tracker) StateCounts(now int64) []StateCount {
	type key struct {
		proto uint8
		state string
	}
	m := map[key]int{}
	for sh := range tr.shards {
		tr.each(&tr.shards[sh], now, AllZones, func(_ int, c *conn) {
			k := key{proto: c.key[0].proto}
			switch {
			case k.proto == flow.IPProtoTCP:
				o, r := c.tcpStates()
				k.state = max(o, r).coalesce().String()
			case c.key[0].isICMP():
				k.state = [...]string{"FIRST", "REPLY"}[c.state&1]
			default:
				k.state = [...]string{"FIRST", "MULTIPLE", "BIDIR", "BIDIR"}[c.state&3]
			}
			m[k]++
		})
	}
	out := make([]StateCount, 0, len(m))
	for k, n := range m {
		out = append(out, StateCount{Proto: ProtoName(k.proto), State: k.state, Count: n})
	}
	slices.SortFunc(out, func(a, b StateCount) int {
		return cmp.Or(cmp.Compare(a.Proto, b.Proto), cmp.Compare(a.State, b.State))
	})
	return out
}
