package flow

import (
	"math/rand/v2"
	"slices"
)

// flowGen draws random rules, flow-mod criteria and packet keys for the
// classification tests. Values come from small pools, so that packets hit
// rules often and rules overlap, with some fully random values mixed in.
type flowGen struct {
	r *rand.Rand
}

// raceRounds returns n, or a fifth of it under the race detector. The
// property tests that take it run on one goroutine, where the detector
// has nothing to find and makes each round about ten times slower; the
// run without it does all n rounds.
func raceRounds(n int) int {
	if raceEnabled {
		return max(n/5, 1)
	}
	return n
}

func newFlowGen(seed uint64) *flowGen {
	return &flowGen{r: rand.New(rand.NewPCG(seed, seed^0x5bd1e995))}
}

var (
	poolPorts  = []uint32{1, 2, 3}
	poolTypes  = []uint16{EthTypeIPv4, EthTypeIPv6, EthTypeARP}
	poolIPs    = []uint32{0x0a000001, 0x0a000002, 0x0a010001, 0x0a0100fe, 0xc0a80101, 0xc0a80201}
	poolProtos = []uint8{IPProtoTCP, IPProtoUDP, IPProtoICMP}
	poolTp     = []uint16{22, 53, 80, 443, 8080}
	poolTCI    = []uint16{0, VLANPresent | 10, VLANPresent | 20, VLANPresent | 0x2000 | 10}
	poolMACs   = [][6]byte{{0, 1, 2, 3, 4, 5}, {0, 1, 2, 3, 4, 6}, {2, 0, 0, 0, 0, 1}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	poolIPv6   = [][16]byte{
		{0x20, 0x01, 0x0d, 0xb8, 15: 1},
		{0x20, 0x01, 0x0d, 0xb8, 15: 2},
		{0x20, 0x01, 0x0d, 0xb8, 0, 1, 15: 1},
		{0xfe, 0x80, 15: 1},
	}
	poolPriorities = []uint16{0, 1, 100, 100, DefaultPriority, DefaultPriority, 65535}
)

func pick[T any](r *rand.Rand, pool []T) T { return pool[r.IntN(len(pool))] }

func (g *flowGen) coin(num, den int) bool { return g.r.IntN(den) < num }

func prefix32(n int) uint32 {
	if n == 0 {
		return 0
	}
	return ^uint32(0) << (32 - n)
}

func prefixBytes(dst []byte, n int) {
	for i := range dst {
		switch {
		case n >= 8:
			dst[i] = 0xff
		case n > 0:
			dst[i] = byte(0xff << (8 - n))
		default:
			dst[i] = 0
		}
		n -= 8
	}
}

// match draws a random match: each field is absent, exact, a prefix or an
// arbitrary bitmask, depending on the field.
func (g *flowGen) match() Match {
	var m Match
	k, mk := &m.Key, &m.Mask
	if g.coin(1, 3) {
		k.InPort, mk.InPort = pick(g.r, poolPorts), ^uint32(0)
	}
	if g.coin(1, 2) {
		k.DlType, mk.DlType = pick(g.r, poolTypes), 0xffff
	}
	if g.coin(1, 4) {
		k.NwSrc, mk.NwSrc = g.ip(), prefix32(g.r.IntN(33))
	}
	if g.coin(1, 4) {
		k.NwDst, mk.NwDst = g.ip(), prefix32(g.r.IntN(33))
	}
	if g.coin(1, 4) {
		k.NwProto, mk.NwProto = pick(g.r, poolProtos), 0xff
	}
	if g.coin(1, 4) {
		k.TpDst, mk.TpDst = g.tp(), pick(g.r, []uint16{0xffff, 0xff00, 0xfff0, 0x00ff, uint16(g.r.Uint32())})
	}
	if g.coin(1, 6) {
		k.TpSrc, mk.TpSrc = g.tp(), 0xffff
	}
	if g.coin(1, 6) {
		k.VLANs[0].TCI, mk.VLANs[0].TCI = pick(g.r, poolTCI), pick(g.r, []uint16{0xffff, 0x1fff, VLANPresent, VLANVIDMask, uint16(g.r.Uint32())})
	}
	if g.coin(1, 6) {
		k.DlSrc = g.mac()
		for i := range mk.DlSrc {
			mk.DlSrc[i] = pick(g.r, []byte{0xff, 0xff, 0, 0xf0, byte(g.r.Uint32())})
		}
	}
	if g.coin(1, 6) {
		k.DlDst, mk.DlDst = g.mac(), [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	}
	if g.coin(1, 8) {
		k.IPv6Src = g.ipv6()
		prefixBytes(mk.IPv6Src[:], g.r.IntN(129))
	}
	if g.coin(1, 8) {
		k.TcpFlags, mk.TcpFlags = uint16(g.r.IntN(0x1000)), uint16(g.r.IntN(0x1000))
	}
	if g.coin(1, 10) {
		k.NwFrag, mk.NwFrag = uint8(g.r.IntN(4)), uint8(1+g.r.IntN(3))
	}
	m.Normalize()
	return m
}

func (g *flowGen) ip() uint32 {
	if g.coin(1, 8) {
		return g.r.Uint32()
	}
	return pick(g.r, poolIPs)
}

func (g *flowGen) tp() uint16 {
	if g.coin(1, 8) {
		return uint16(g.r.Uint32())
	}
	return pick(g.r, poolTp)
}

func (g *flowGen) mac() [6]byte {
	if g.coin(1, 8) {
		var m [6]byte
		for i := range m {
			m[i] = byte(g.r.Uint32())
		}
		return m
	}
	return pick(g.r, poolMACs)
}

func (g *flowGen) ipv6() [16]byte {
	a := pick(g.r, poolIPv6)
	if g.coin(1, 8) {
		a[15] = byte(g.r.Uint32())
	}
	return a
}

// key draws a random packet key: pool values mostly, random ones sometimes.
func (g *flowGen) key() Key {
	var k Key
	k.InPort = pick(g.r, poolPorts)
	k.DlType = pick(g.r, poolTypes)
	k.NwSrc, k.NwDst = g.ip(), g.ip()
	k.NwProto = pick(g.r, poolProtos)
	k.TpSrc, k.TpDst = g.tp(), g.tp()
	k.VLANs[0].TCI = pick(g.r, poolTCI)
	k.DlSrc, k.DlDst = g.mac(), g.mac()
	k.IPv6Src = g.ipv6()
	k.TcpFlags = uint16(g.r.IntN(0x1000))
	k.NwFrag = uint8(g.r.IntN(4))
	k.NwTTL = uint8(g.r.Uint32())
	packetLike(&k)
	return k
}

// packetLike gives k what extraction gives every packet (see Extract): a
// later fragment has no transport header (zero ports and TCP flags), and
// ICMP's type and code are 8 bits. Megaflow masks may rely on it, as Open
// vSwitch's do (finishMask).
func packetLike(k *Key) {
	if k.NwFrag&FragLater != 0 {
		k.TpSrc, k.TpDst, k.TcpFlags = 0, 0, 0
	}
	if k.DlType == EthTypeIPv4 && k.NwProto == IPProtoICMP || k.DlType == EthTypeIPv6 && k.NwProto == IPProtoICMPv6 {
		k.TpSrc &= 0xff
		k.TpDst &= 0xff
	}
}

// agreeLike returns k with other's bits outside mask, made packet-like
// (packetLike); ok is false when that changes a bit of mask.
func agreeLike(k, other, mask *Key) (p Key, ok bool) {
	p = *k
	pw, ow, mw := p.Words(), other.Words(), mask.Words()
	for i := range pw {
		pw[i] = pw[i]&mw[i] | ow[i]&^mw[i]
	}
	packetLike(&p)
	kw := k.Words()
	for i := range pw {
		if (pw[i]^kw[i])&mw[i] != 0 {
			return p, false
		}
	}
	return p, true
}

// keyFor draws a key that matches m, taking m's bits and random ones
// elsewhere.
func (g *flowGen) keyFor(m *Match) Key {
	k := g.key()
	kw, mk, mm := k.Words(), m.Key.Words(), m.Mask.Words()
	for i := range kw {
		kw[i] = kw[i]&^mm[i] | mk[i]
	}
	packetLike(&k)
	return k
}

func (g *flowGen) actions() []Action {
	n := 1 + g.r.IntN(2)
	as := make([]Action, n)
	for i := range as {
		as[i] = Action{Type: ActOutput, Port: uint32(1 + g.r.IntN(6))}
	}
	return as
}

func (g *flowGen) flow() Flow {
	return Flow{
		Match:    g.match(),
		Priority: pick(g.r, poolPriorities),
		Actions:  g.actions(),
		Cookie:   uint64(g.r.IntN(4)),
	}
}

// refRule is a rule of refTable.
type refRule struct {
	match    Match
	priority uint16
	actions  []Action
	cookie   uint64
	seq      uint64
}

// refTable is the reference model of the rule table: a plain list with the
// flow-mod semantics written out directly, and lookup by linear scan.
type refTable struct {
	rules []*refRule
	seq   uint64
}

func (t *refTable) add(f *Flow) {
	m := normalizedMatch(&f.Match)
	t.seq++
	nr := &refRule{match: m, priority: f.Priority, actions: slices.Clone(f.Actions), cookie: f.Cookie, seq: t.seq}
	for i, r := range t.rules {
		if r.match == m && r.priority == f.Priority {
			t.rules[i] = nr
			return
		}
	}
	t.rules = append(t.rules, nr)
}

// selects reports whether the flow-mod criteria in f select r.
func (t *refTable) selects(f *Flow, strict, useOutPort bool, r *refRule) bool {
	if (r.cookie^f.Cookie)&f.CookieMask != 0 {
		return false
	}
	if useOutPort && f.OutPort != 0 && f.OutPort != PortNone {
		found := false
		for _, a := range r.actions {
			found = found || (a.Type == ActOutput && a.Port == f.OutPort)
		}
		if !found {
			return false
		}
	}
	m := normalizedMatch(&f.Match)
	if strict {
		return r.match == m && r.priority == f.Priority
	}
	// Non-strict: every packet that r matches must match m. Check it bit
	// by bit: each bit m constrains must be constrained by r to the same
	// value.
	rk, rm, mk, mm := r.match.Key.Words(), r.match.Mask.Words(), m.Key.Words(), m.Mask.Words()
	for i := range rk {
		for b := range 64 {
			bit := uint64(1) << b
			if mm[i]&bit == 0 {
				continue
			}
			if rm[i]&bit == 0 || rk[i]&bit != mk[i]&bit {
				return false
			}
		}
	}
	return true
}

func (t *refTable) modify(f *Flow, strict bool) (n int, added bool) {
	for _, r := range t.rules {
		if t.selects(f, strict, false, r) {
			r.actions = slices.Clone(f.Actions)
			if f.CookieMask == 0 && f.Cookie != 0 {
				r.cookie = f.Cookie
			}
			n++
		}
	}
	if n == 0 && f.CookieMask == 0 {
		t.add(f)
		added = true
	}
	return n, added
}

func (t *refTable) delete(f *Flow, strict bool) int {
	kept := t.rules[:0]
	n := 0
	for _, r := range t.rules {
		if t.selects(f, strict, true, r) {
			n++
			continue
		}
		kept = append(kept, r)
	}
	t.rules = kept
	return n
}

// lookup is the reference classification: a linear scan for the matching
// rule with the highest priority, the earliest installed among equals.
func (t *refTable) lookup(k *Key) *refRule {
	var best *refRule
	for _, r := range t.rules {
		if !r.match.Matches(k) {
			continue
		}
		if best == nil || r.priority > best.priority || (r.priority == best.priority && r.seq < best.seq) {
			best = r
		}
	}
	return best
}

// sameRule reports whether the table's rule r is the reference's rule want
// (nil for none), with the same actions.
func sameRule(r *Rule, want *refRule) bool {
	if r == nil || want == nil {
		return r == nil && want == nil
	}
	return r.Match() == want.match && r.Priority == want.priority && slices.Equal(r.Actions, want.actions) && r.Cookie == want.cookie
}

// ruleMatchText is FormatMatch of r's match and priority.
func ruleMatchText(r *Rule) string {
	m := r.Match()
	return FormatMatch(&m, r.Priority)
}

// ruleText is FormatFlow of the flow that installs r.
func ruleText(r *Rule) string {
	f := r.Flow()
	return FormatFlow(&f)
}
