// Package conntrack is the datapath's connection tracker: what a ct()
// action runs. It follows Open vSwitch's userspace tracker (lib/conntrack.c
// and its protocol files): connections keyed by zone and 5-tuple with both
// directions indexed, TCP window tracking, UDP and other protocols, ICMP and
// ICMPv6 queries paired by identifier, ICMP errors related to the connection
// they quote, per-protocol and per-state timeouts, a maximum connection
// count and per-zone limits, and source and destination NAT.
//
// A Tracker is shared by every poll thread of a datapath. The hit path takes
// one shard mutex (two, one after the other, for the reply direction of a
// NAT connection) and does not allocate.
//
// What a datapath calls: New, then Track for every ct action (the Tracker
// is a flow.Conntrack) and Run (or Sweep) to expire connections; Defrag
// before Track when fragments are to be reassembled as Open vSwitch does.
// The operator's verbs are library calls: Dump and Entry.String
// (dpctl/dump-conntrack), Flush and FlushTuple (dpctl/flush-conntrack),
// Stats (dpctl/ct-stats-show), SetMaxConns and MaxConns
// (dpctl/ct-set-maxconns, ct-get-maxconns), SetZoneLimit,
// SetDefaultZoneLimit, DeleteZoneLimit, ZoneLimits and FormatZoneLimits
// (dpctl/ct-set-limits, ct-get-limits, ct-del-limits), StateCounts (gauges
// of connections by state) and Counters.
package conntrack

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/ovsxdp/ovsxdp/flow"
)

// DefaultMaxConns is the default maximum number of connections, Open
// vSwitch's userspace default (DEFAULT_N_CONN_LIMIT).
const DefaultMaxConns = 3000000

// DefaultShards is the default number of table shards.
const DefaultShards = 64

// maxZombies is how many dead NAT connections a shard keeps before a
// commit reaps them.
const maxZombies = 64

// ErrNotFound reports a connection that is not in the table.
var ErrNotFound = errors.New("connection not found")

// ErrBadConfig reports a configuration value out of range.
var ErrBadConfig = errors.New("bad conntrack configuration")

// Config configures a Tracker. The zero value gives Open vSwitch's
// defaults.
type Config struct {
	MaxConns uint32    // 0: DefaultMaxConns
	Shards   int       // a power of two up to 128; 0: DefaultShards
	Timeouts *Timeouts // nil: DefaultTimeouts
	Logger   *slog.Logger
}

// conn is one connection, stored in a shard's slab.
//
// A lookup reads a direction's tuple, alive and expires: they come first,
// side by side, so that a lookup touches as few cache lines as it can.
type conn struct {
	key     [2]tuple // original and reply direction, as the packets carry them
	alive   atomic.Bool
	expires int64 // monotonic nanoseconds
	mark    uint32
	label   [16]byte
	tcp     [2]tcpPeer // original sender, replier
	next    uint32     // free list link (slot + 1) while the slot is free
	state   uint8      // otherFirst.. or icmpFirst..: the state of a connection that is not TCP
	tm      uint8      // the timeout class it expires by
	nat     uint8      // natNone, natSrc, natDst: what the original direction translates
}

// The update results of a packet of a known connection (OVS ct_update_res).
const (
	updValid    = iota // part of the connection
	updInvalid         // not acceptable to the connection
	updNew             // starts a new connection in place of a closed one
	updValidNew        // acceptable, but the connection is not yet established
)

// States of a connection that is neither TCP nor an ICMP query.
const (
	otherFirst    = iota // one packet seen
	otherMultiple        // several, all from the originator
	otherBidir           // packets seen both ways
)

// States of an ICMP query connection.
const (
	icmpFirst = iota
	icmpReply
)

// Counters are the tracker's event counts.
type Counters struct {
	Full         uint64 // commits refused: the table was at its maximum
	ZoneFull     uint64 // commits refused: the zone was at its limit
	NATExhausted uint64 // commits whose NAT found no free tuple (the packet goes on untranslated)
	Invalid      uint64 // packets found invalid (+inv)
	Expired      uint64 // connections removed because they timed out
}

// Tracker is a connection tracker.
type Tracker struct {
	seed     uint64
	shards   []shard
	mask     uint64
	timeouts [numTimeouts]atomic.Int64 // nanoseconds
	log      *slog.Logger

	n            atomic.Int64                   // connections alive
	maxConns     atomic.Uint32                  // 0: none may be committed
	zones        [256]atomic.Pointer[zoneBlock] // allocated on first use
	defaultLimit atomic.Uint32                  // 0: no default limit

	// createMu serialises the creation of connections (OVS's ct_lock):
	// the limit checks, the choice of a NAT tuple and the insertion are
	// atomic with respect to each other. The hit path never takes it.
	createMu sync.Mutex

	full, zoneFull, natExhausted, invalid, expired atomic.Uint64

	noSeqCheck atomic.Bool // TCP sequence checks off (dpctl/ct-disable-tcp-seq-chk)
}

// SetTCPSeqCheck turns the TCP sequence and window checks on (the default)
// or off, as dpctl/ct-enable-tcp-seq-chk and ct-disable-tcp-seq-chk do:
// off, a segment of a known connection is never out of window (invalid
// flag combinations still are). TCPSeqCheck reports the setting.
func (tr *Tracker) SetTCPSeqCheck(on bool) { tr.noSeqCheck.Store(!on) }

func (tr *Tracker) TCPSeqCheck() bool { return !tr.noSeqCheck.Load() }

var _ flow.Conntrack = (*Tracker)(nil)

// New returns an empty tracker.
func New(cfg Config) (*Tracker, error) {
	n := cfg.Shards
	if n == 0 {
		n = DefaultShards
	}
	if n < 1 || n > 1<<shardBits || n&(n-1) != 0 {
		return nil, ErrBadConfig
	}
	to := DefaultTimeouts()
	if cfg.Timeouts != nil {
		to = *cfg.Timeouts
	}
	tr := &Tracker{shards: make([]shard, n), mask: uint64(n - 1), log: cfg.Logger}
	for i := range tr.shards {
		tr.shards[i].id = i
	}
	if tr.log == nil {
		tr.log = slog.New(slog.DiscardHandler)
	}
	if err := tr.SetTimeouts(to); err != nil {
		return nil, err
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	tr.seed = binary.LittleEndian.Uint64(b[:])
	m := cfg.MaxConns
	if m == 0 {
		m = DefaultMaxConns
	}
	tr.maxConns.Store(m)
	return tr, nil
}

func (tr *Tracker) shardOf(h uint64) int { return int(h & tr.mask) }

// find looks a tuple up. When it finds a live connection it returns with
// the connection's home shard locked; otherwise it returns a nil conn
// with no mutex held. A connection found expired is removed on the way.
func (tr *Tracker) find(t *tuple, h uint64, now int64) (*shard, *conn, int, bool) {
	is := &tr.shards[tr.shardOf(h)]
	tag := uint32(h >> 32)
	is.mu.Lock()
restart:
	if len(is.index) == 0 {
		is.mu.Unlock()
		return nil, nil, 0, false
	}
	mask := len(is.index) - 1
	for i := int(tag) & mask; is.index[i].ref != 0; i = (i + 1) & mask {
		e := is.index[i]
		if e.tag != tag {
			continue
		}
		sh, slot, reply := refParts(e.ref)
		hs := &tr.shards[sh]
		c := hs.connAt(slot)
		if c.key[dirIndex(reply)] != *t {
			continue
		}
		if hs == is {
			if !c.alive.Load() {
				continue
			}
			if now >= c.expires {
				tr.expired.Add(1)
				tr.deleteLocked(is, slot, c)
				goto restart
			}
			return is, c, slot, reply
		}
		if !c.alive.Load() {
			continue
		}
		is.mu.Unlock()
		hs.mu.Lock()
		if !c.alive.Load() || c.key[dirIndex(reply)] != *t {
			hs.mu.Unlock()
			return nil, nil, 0, false
		}
		if now >= c.expires {
			tr.expired.Add(1)
			tr.deleteLocked(hs, slot, c)
			hs.mu.Unlock()
			return nil, nil, 0, false
		}
		return hs, c, slot, reply
	}
	is.mu.Unlock()
	return nil, nil, 0, false
}

// exists reports whether a tuple is taken by a live connection, in either
// direction. The caller holds no shard mutex.
func (tr *Tracker) exists(t *tuple, now int64) bool {
	s, c, _, _ := tr.find(t, t.hash(tr.seed), now)
	if c != nil {
		s.mu.Unlock()
		return true
	}
	return false
}

func dirIndex(reply bool) int {
	if reply {
		return 1
	}
	return 0
}

// deleteLocked ends the connection in slot of shard s, whose mutex the
// caller holds: its entries in s go at once; an entry in another shard is
// left for reapZombies, and the slot with it.
func (tr *Tracker) deleteLocked(s *shard, slot int, c *conn) {
	sh := s.id
	c.alive.Store(false)
	tr.n.Add(-1)
	tr.zone(c.key[0].zone).count.Add(-1)
	h0 := c.key[0].hash(tr.seed)
	s.removeLocked(uint32(h0>>32), makeRef(sh, slot, false))
	h1 := c.key[1].hash(tr.seed)
	if tr.shardOf(h1) == sh {
		s.removeLocked(uint32(h1>>32), makeRef(sh, slot, true))
		s.freeLocked(slot)
		return
	}
	s.zombies = append(s.zombies, uint32(slot))
}

// reapZombies removes the remote index entries of dead NAT connections and
// frees their slots.
func (tr *Tracker) reapZombies() {
	for sh := range tr.shards {
		s := &tr.shards[sh]
		s.mu.Lock()
		z := s.zombies
		s.zombies = nil
		s.mu.Unlock()
		for _, slot := range z {
			// The tuples of a zombie do not change until its slot
			// is freed, which only this loop does.
			c := s.connAt(int(slot))
			h1 := c.key[1].hash(tr.seed)
			rs := &tr.shards[tr.shardOf(h1)]
			rs.mu.Lock()
			rs.removeLocked(uint32(h1>>32), makeRef(sh, int(slot), true))
			rs.mu.Unlock()
			s.mu.Lock()
			s.freeLocked(int(slot))
			s.mu.Unlock()
		}
	}
}

// Track runs the ct action ct on the packet; see flow.Conntrack.
//
// ct.Alg (alg=ftp, alg=tftp) is ignored: the tracker has no application
// layer gateways, so FTP and TFTP data connections are not related to
// their control connections and must be allowed by their own flows.
func (tr *Tracker) Track(frame []byte, k *flow.Key, off *flow.Offsets, ct *flow.CT, now int64) flow.Verdict {
	zone := ct.Zone
	state := k.CtState
	if state != 0 && k.CtZone != zone {
		state = 0 // a new zone: the previous pass's state does not apply
	}
	var p packet
	if !extract(frame, k, off, zone, &p) {
		tr.invalid.Add(1)
		writeMD(k, zone, flow.CtStateInv, nil, nil)
		return flow.VerdictOK
	}
	natted := state&(flow.CtStateSNAT|flow.CtStateDNAT) != 0
	key := p.t
	if natted {
		// A packet that an earlier ct(nat) in this zone translated
		// carries the other direction's tuple.
		key = key.reverse()
	}
	s, c, slot, reply := tr.find(&key, key.hash(tr.seed), now)
	if natted && c != nil {
		reply = !reply
	}
	if c != nil && ct.Force && reply {
		// force: a connection committed the other way round ends, and
		// this packet starts a new one.
		tr.deleteLocked(s, slot, c)
		s.mu.Unlock()
		c = nil
	}
	if c == nil && natted && ct.NAT == nil && !p.related {
		s, c, slot = tr.findOrig(k, &p, now)
		reply = false
	}
	if c != nil {
		create := false
		if p.related {
			state |= flow.CtStateRel
			if reply {
				state |= flow.CtStateRpl
			}
		} else {
			switch tr.update(c, &p, reply, now) {
			case updValid:
				state = state&^flow.CtStateNew | flow.CtStateEst
				if reply {
					state |= flow.CtStateRpl
				}
			case updInvalid:
				state = flow.CtStateInv
				tr.invalid.Add(1)
			case updNew:
				tr.deleteLocked(s, slot, c)
				create = true
			case updValidNew:
				state |= flow.CtStateNew
			}
		}
		if !create {
			// An invalid packet is not translated, as in the kernel,
			// where it has no connection to take a translation from:
			// its state stays inv (and trk) alone.
			if ct.NAT != nil && c.nat != natNone && state&(flow.CtStateSNAT|flow.CtStateDNAT|flow.CtStateInv) == 0 {
				state |= natPacket(frame, k, &p, c, reply)
			}
			tr.finishLocked(k, zone, state, c, ct)
			s.mu.Unlock()
			return flow.VerdictOK
		}
		s.mu.Unlock()
	} else if p.related {
		// An ICMP error about no connection we know.
		tr.invalid.Add(1)
		writeMD(k, zone, flow.CtStateInv, nil, &p.t)
		return flow.VerdictOK
	}
	return tr.create(frame, k, &p, ct, now)
}

// findOrig finds the connection of a translated packet by the original
// tuple an earlier ct in the zone wrote into k (OVS check_orig_tuple).
func (tr *Tracker) findOrig(k *flow.Key, p *packet, now int64) (*shard, *conn, int) {
	if k.CtNwProto == 0 {
		return nil, nil, 0
	}
	t := tuple{zone: p.t.zone, proto: k.CtNwProto, v6: p.t.v6}
	if t.v6 {
		t.src, t.dst = k.CtIPv6Src, k.CtIPv6Dst
	} else {
		binary.BigEndian.PutUint32(t.src[:4], k.CtNwSrc)
		binary.BigEndian.PutUint32(t.dst[:4], k.CtNwDst)
	}
	if t.isICMP() {
		t.sport, t.dport = p.t.sport, p.t.dport
		t.stype = uint8(k.CtTpSrc)
		var ok bool
		if t.v6 {
			t.dtype, ok = icmp6Reverse(t.stype)
		} else {
			t.dtype, ok = icmpReverse(t.stype)
		}
		if !ok {
			return nil, nil, 0
		}
	} else {
		t.sport, t.dport = k.CtTpSrc, k.CtTpDst
	}
	s, c, slot, _ := tr.find(&t, t.hash(tr.seed), now)
	return s, c, slot
}

// update runs a packet of a known connection through its protocol's state
// machine. The connection's home shard is locked.
func (tr *Tracker) update(c *conn, p *packet, reply bool, now int64) int {
	switch {
	case c.key[0].proto == flow.IPProtoTCP:
		return tr.tcpUpdate(c, p, reply, now)
	case c.key[0].isICMP():
		res := updValid
		if reply && c.state == icmpFirst {
			c.state = icmpReply
		} else if c.state == icmpFirst {
			res = updValidNew
		}
		tm := uint8(tmICMPFirst)
		if c.state == icmpReply {
			tm = tmICMPReply
		}
		tr.setExpiry(c, tm, now)
		return res
	default:
		if reply && c.state != otherBidir {
			c.state = otherBidir
		} else if c.state == otherFirst {
			c.state = otherMultiple
		}
		tr.setExpiry(c, otherTimeout[c.state], now)
		if c.state == otherBidir {
			return updValid
		}
		return updValidNew
	}
}

var otherTimeout = [3]uint8{tmOtherFirst, tmOtherMultiple, tmOtherBidir}

func (tr *Tracker) setExpiry(c *conn, tm uint8, now int64) {
	c.tm = tm
	c.expires = now + tr.timeouts[tm].Load()
}

// validNew reports whether a packet may start a connection.
func validNew(p *packet) bool {
	switch {
	case p.t.proto == flow.IPProtoTCP:
		f := p.tcpFlags
		return !tcpInvalidFlags(f) && f&(tcpSYN|tcpACK) != tcpSYN|tcpACK
	case p.t.isICMP():
		if p.t.v6 {
			return p.t.stype == icmp6EchoRequest
		}
		return p.t.stype == icmpEcho || p.t.stype == icmpInfoRequest || p.t.stype == icmpTimestamp
	}
	return true
}

// create handles a packet of no known connection: it is +new if it may
// start one (else +inv), and ct(commit) commits it within the limits.
func (tr *Tracker) create(frame []byte, k *flow.Key, p *packet, ct *flow.CT, now int64) flow.Verdict {
	zone := p.t.zone
	if !validNew(p) {
		tr.invalid.Add(1)
		writeMD(k, zone, flow.CtStateInv, nil, &p.t)
		return flow.VerdictOK
	}
	state := uint8(flow.CtStateNew)
	if !ct.Commit {
		writeMD(k, zone, state, nil, &p.t)
		return flow.VerdictOK
	}
	tr.createMu.Lock()
	defer tr.createMu.Unlock()
	h := p.t.hash(tr.seed)
	if s, c, _, _ := tr.find(&p.t, h, now); c != nil {
		// Another thread committed it meanwhile.
		s.mu.Unlock()
		writeMD(k, zone, state, nil, &p.t)
		return flow.VerdictOK
	}
	if lim := tr.zoneLimitOf(zone); lim != 0 && tr.zone(zone).count.Load() >= int32(min(lim, 1<<31-1)) {
		tr.zoneFull.Add(1)
		writeMD(k, zone, state, nil, &p.t)
		return flow.VerdictCTFull
	}
	if tr.n.Load() >= int64(tr.maxConns.Load()) {
		tr.full.Add(1)
		writeMD(k, zone, state, nil, &p.t)
		return flow.VerdictCTFull
	}
	rev := p.t.reverse()
	nat := uint8(natNone)
	if n := ct.NAT; n != nil && n.Kind != flow.NATRestore {
		var ok bool
		rev, ok = tr.natTuple(&p.t, n, now)
		if !ok {
			// Logged at the 1st, 2nd, 4th, 8th... time, so that a
			// flood cannot flood the log.
			if n := tr.natExhausted.Add(1); n&(n-1) == 0 {
				tr.log.Warn("conntrack: no free tuple to NAT a new connection to", "zone", zone, "times", n)
			}
			writeMD(k, zone, state, nil, &p.t)
			return flow.VerdictOK
		}
		nat = natSrc
		if n.Kind == flow.NATDst {
			nat = natDst
		}
	}
	sh := tr.shardOf(h)
	s := &tr.shards[sh]
	s.mu.Lock()
	if len(s.zombies) >= maxZombies {
		// Dead NAT connections' slots wait for their remote index
		// entries to go; without a sweep they would pile up.
		s.mu.Unlock()
		tr.reapZombies()
		s.mu.Lock()
	}
	slot := s.allocLocked()
	if slot < 0 {
		s.mu.Unlock()
		tr.full.Add(1)
		writeMD(k, zone, state, nil, &p.t)
		return flow.VerdictCTFull
	}
	c := s.connAt(slot)
	c.key[0], c.key[1] = p.t, rev
	c.nat = nat
	tr.initProto(c, p, now)
	h1 := rev.hash(tr.seed)
	rsh := tr.shardOf(h1)
	if rsh != sh {
		// Index the reply direction first, while the connection is not
		// yet alive, so a flush cannot see it half inserted.
		s.mu.Unlock()
		rs := &tr.shards[rsh]
		rs.mu.Lock()
		rs.insertLocked(h1, makeRef(sh, slot, true))
		rs.mu.Unlock()
		s.mu.Lock()
	} else {
		s.insertLocked(h1, makeRef(sh, slot, true))
	}
	s.insertLocked(h, makeRef(sh, slot, false))
	c.alive.Store(true)
	tr.n.Add(1)
	tr.zone(zone).count.Add(1)
	if nat != natNone {
		state |= natPacket(frame, k, p, c, false)
	}
	tr.finishLocked(k, zone, state, c, ct)
	s.mu.Unlock()
	return flow.VerdictOK
}

// initProto sets up the protocol state of a new connection from its first
// packet.
func (tr *Tracker) initProto(c *conn, p *packet, now int64) {
	switch {
	case p.t.proto == flow.IPProtoTCP:
		tcpNewConn(c, p)
		tr.setExpiry(c, tmTCPFirstPacket, now)
	case p.t.isICMP():
		c.state = icmpFirst
		tr.setExpiry(c, tmICMPFirst, now)
	default:
		c.state = otherFirst
		tr.setExpiry(c, tmOtherFirst, now)
	}
}

// finishLocked applies ct's mark and label to the connection and writes
// the connection's metadata into k.
func (tr *Tracker) finishLocked(k *flow.Key, zone uint16, state uint8, c *conn, ct *flow.CT) {
	if ct.SetMark {
		c.mark = ct.Mark&ct.MarkMask | c.mark&^ct.MarkMask
	}
	if ct.SetLabel {
		for i := range c.label {
			c.label[i] = ct.Label[i]&ct.LabelMask[i] | c.label[i]&^ct.LabelMask[i]
		}
	}
	writeMD(k, zone, state, c, &c.key[0])
}

// writeMD writes the connection tracking fields of k: the state (with
// trk), the zone, the mark and label of c (zero without one), and the
// original-direction tuple orig (zero when nil).
func writeMD(k *flow.Key, zone uint16, state uint8, c *conn, orig *tuple) {
	k.CtState = state | flow.CtStateTracked
	k.CtZone = zone
	if c != nil {
		k.CtMark, k.CtLabel = c.mark, c.label
	} else {
		k.CtMark, k.CtLabel = 0, [16]byte{}
	}
	k.CtNwSrc, k.CtNwDst = 0, 0
	k.CtIPv6Src, k.CtIPv6Dst = [16]byte{}, [16]byte{}
	k.CtNwProto, k.CtTpSrc, k.CtTpDst = 0, 0, 0
	if orig == nil {
		return
	}
	if orig.v6 {
		k.CtIPv6Src, k.CtIPv6Dst = orig.src, orig.dst
	} else {
		k.CtNwSrc = binary.BigEndian.Uint32(orig.src[:4])
		k.CtNwDst = binary.BigEndian.Uint32(orig.dst[:4])
	}
	k.CtNwProto = orig.proto
	if orig.isICMP() {
		k.CtTpSrc, k.CtTpDst = uint16(orig.stype), 0 // type and code
	} else {
		k.CtTpSrc, k.CtTpDst = orig.sport, orig.dport
	}
}

// Counters returns the tracker's event counts.
func (tr *Tracker) Counters() Counters {
	return Counters{
		Full:         tr.full.Load(),
		ZoneFull:     tr.zoneFull.Load(),
		NATExhausted: tr.natExhausted.Load(),
		Invalid:      tr.invalid.Load(),
		Expired:      tr.expired.Load(),
	}
}

// Len returns the number of connections in the table.
func (tr *Tracker) Len() int { return int(tr.n.Load()) }
