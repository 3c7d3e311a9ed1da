package conntrack

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/ovsxdp/ovsxdp/flow"
)

// Fragment reassembly before tracking, as Open vSwitch's userspace
// datapath does it (lib/ipf.c, dpctl/ipf-*): the fragments of a packet are
// held until all have arrived; the reassembled packet then goes through
// ct; its connection tracking state, and the addresses and transport
// header that NAT may have rewritten, are copied onto the held fragments,
// which then go on in place of the reassembled packet, so the packet
// leaves as it was fragmented.
//
// Track does not reassemble by itself: it gets one frame and must give it
// back, and it finds a fragment invalid. A datapath that reassembles puts
// a Defrag before Track: Add holds each fragment, and when one completes
// a packet it gets the reassembled frame to Track and then Finish to
// carry the result over to the fragments.

// Open vSwitch's defaults (dpctl/ipf-set-min-frag, ipf-set-max-nfrags).
const (
	DefaultMinV4FragSize = 1200 // the smallest IPv4 fragment that is not the last, IP header included
	DefaultMinV6FragSize = 1280
	DefaultMaxFrags      = 1000   // fragments held at once
	fragListTimeout      = 15e9   // nanoseconds an incomplete packet's fragments are held
	maxReassembled       = 0xffff // an IPv4 packet's largest size
)

// FragStatus is what Add did with a frame.
type FragStatus uint8

// The outcomes of Add.
const (
	NotFragment  FragStatus = iota // not a fragment: track it as it is
	FragHeld                       // held (a copy is kept): the caller does not forward the frame
	FragComplete                   // it completed a packet: see Add
	FragInvalid                    // a fragment reassembly refuses: track it as it is (it is +inv)
)

// FragRefusal is why Hold refused a fragment (FragInvalid).
type FragRefusal uint8

// The reasons a fragment is refused.
const (
	RefusedNone     FragRefusal = iota
	RefusedInvalid              // malformed: a truncated header, a wrong IPv4 header checksum, a length past the frame, a packet over 65,535 bytes
	RefusedTooSmall             // not the last fragment and smaller than the minimum (dpctl/ipf-set-min-frag)
	RefusedOverlap              // overlaps a fragment held for the same packet, or a second last fragment
	RefusedLimit                // as many fragments held as dpctl/ipf-set-max-nfrags allows
	RefusedDisabled             // reassembly of its IP version is off (dpctl/ipf-set-enabled)
)

// DefragCounters are the counts dpctl/ipf-get-status shows, per IP version.
type DefragCounters struct {
	Accepted, CompletedSent, Expired, TooSmall, Overlap, Purged uint64
}

// Defrag reassembles fragments. It is shared by every poll thread.
type Defrag struct {
	mu       sync.Mutex // guards everything below
	lists    map[fragKey]*fragList
	nfrag    int
	maxFrags int
	minSize  [2]int  // IPv4, IPv6
	disabled [2]bool // IPv4, IPv6
	count    [2]DefragCounters
	// expired holds the fragments that expired, for TakeExpired, when
	// Hold was given metadata with them.
	expired []expiredFrag
}

// expiredFrag is an expired fragment, with its domain.
type expiredFrag struct {
	domain uint32
	Expired
}

// Expired is a fragment held past the timeout, as Hold kept it, and the
// metadata Hold was given with it.
type Expired struct {
	Frame []byte
	Meta  any
}

// fragKey identifies the fragments of one packet.
type fragKey struct {
	src, dst [16]byte
	id       uint32
	zone     uint16
	proto    uint8 // IPv4 only
	v6       bool
	recirc   uint32
	domain   uint32 // the caller's (a bridge): fragments of different domains never meet
}

type fragList struct {
	frags   []frag
	expires int64
}

// frag is a held fragment: a copy of its frame, the range of the
// packet's data it carries and where its headers are.
type frag struct {
	frame      []byte
	start, end int // data bytes [start, end)
	l3         int // the IP header
	data       int // its data
	fragHdr    int // IPv6: the fragment header
	nextOff    int // IPv6: the byte that names the fragment header
	last, v6   bool
	meta       any // what the caller of Hold keeps with it
}

// NewDefrag returns a reassembler with Open vSwitch's defaults.
func NewDefrag() *Defrag {
	return &Defrag{
		lists:    map[fragKey]*fragList{},
		maxFrags: DefaultMaxFrags,
		minSize:  [2]int{DefaultMinV4FragSize, DefaultMinV6FragSize},
	}
}

// Counters returns the counts for IPv4 (v6 false) or IPv6.
func (d *Defrag) Counters(v6 bool) DefragCounters {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.count[b2i(v6)]
}

// Held returns the number of fragments held.
func (d *Defrag) Held() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.nfrag
}

// Limits of the settings, as Open vSwitch's.
const (
	minFragSizeLowest = 400
	maxFragsHighest   = 5000
)

// SetEnabled turns reassembly of IPv4 (v6 false) or IPv6 fragments on or
// off (dpctl/ipf-set-enabled, ipf-set-disabled). Fragments of a disabled
// version go to the tracker as they are, which finds them invalid.
func (d *Defrag) SetEnabled(v6, on bool) {
	d.mu.Lock()
	d.disabled[b2i(v6)] = !on
	d.mu.Unlock()
}

// SetMinFragSize sets the smallest size (IP header included) of a
// fragment that is not the last (dpctl/ipf-set-min-frag); at least 400.
func (d *Defrag) SetMinFragSize(v6 bool, size int) error {
	if size < minFragSizeLowest {
		return fmt.Errorf("min fragment size %d below %d: %w", size, minFragSizeLowest, ErrBadConfig)
	}
	d.mu.Lock()
	d.minSize[b2i(v6)] = size
	d.mu.Unlock()
	return nil
}

// SetMaxFrags sets how many fragments may be held at once
// (dpctl/ipf-set-max-nfrags); at most 5000.
func (d *Defrag) SetMaxFrags(n int) error {
	if n < 0 || n > maxFragsHighest {
		return fmt.Errorf("max fragments %d over %d: %w", n, maxFragsHighest, ErrBadConfig)
	}
	d.mu.Lock()
	d.maxFrags = n
	d.mu.Unlock()
	return nil
}

// Status formats the reassembler's settings and counts as
// dpctl/ipf-get-status prints them.
func (d *Defrag) Status() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, "        "+format+"\n", args...) }
	p("Fragmentation Module Status")
	p("---------------------------")
	p("v4 enabled: %d", b2i(!d.disabled[0]))
	p("v6 enabled: %d", b2i(!d.disabled[1]))
	p("max num frags (v4/v6): %d", d.maxFrags)
	p("num frag: %d", d.nfrag)
	for v, name := range []string{"v4", "v6"} {
		c := d.count[v]
		p("min %s frag size: %d", name, d.minSize[v])
		p("%s frags accepted: %d", name, c.Accepted)
		p("%s frags completed: %d", name, c.CompletedSent)
		p("%s frags expired: %d", name, c.Expired)
		p("%s frags too small: %d", name, c.TooSmall)
		p("%s frags overlapped: %d", name, c.Overlap)
		p("%s frags purged: %d", name, c.Purged)
	}
	return b.String()
}

// Lists formats the packets whose fragments are held, one a line, as
// dpctl/ipf-get-status -m prints them (sorted; Open vSwitch prints them
// in hash order).
func (d *Defrag) Lists() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]string, 0, len(d.lists))
	for key, l := range d.lists {
		var src, dst netip.Addr
		dlType := flow.EthTypeIPv4
		if key.v6 {
			src, dst, dlType = netip.AddrFrom16(key.src), netip.AddrFrom16(key.dst), flow.EthTypeIPv6
		} else {
			src, dst = netip.AddrFrom4([4]byte(key.src[:4])), netip.AddrFrom4([4]byte(key.dst[:4]))
		}
		first, last := false, false
		for _, f := range l.frags {
			first = first || f.start == 0
			last = last || f.last
		}
		state := "other frag"
		switch {
		case first && last:
			state = "first/last frag"
		case first:
			state = "first frag"
		case last:
			state = "last frag"
		}
		out = append(out, fmt.Sprintf("(src=%s,dst=%s,recirc_id=%d,ip_id=%d,dl_type=0x%x,zone=%d,nw_proto=%d,num_fragments=%d,state=%s)",
			src, dst, key.recirc, key.id, dlType, key.zone, key.proto, len(l.frags), state))
	}
	slices.Sort(out)
	return out
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// fragInfo is what parseFrag learns of a fragment.
type fragInfo struct {
	key      fragKey
	f        frag // frame not yet set
	ipEnd    int  // end of the IP packet in the frame
	tooSmall bool // refused for its size
}

// parseFrag validates a fragment as Open vSwitch does: whole IP header, a
// right IPv4 header checksum, a length that matches the frame, and a
// fragment that is not the last at least the minimum size.
func (d *Defrag) parseFrag(frame []byte, k *flow.Key, off *flow.Offsets, zone uint16) (fragInfo, FragStatus) {
	var fi fragInfo
	if k.NwFrag&flow.FragAny == 0 || off.L3 == flow.NoOffset {
		return fi, NotFragment
	}
	l3 := int(off.L3)
	h := frame[l3:]
	fi.key.zone, fi.key.recirc = zone, k.RecircID
	switch k.DlType {
	case flow.EthTypeIPv4:
		if len(h) < ipv4HeaderMinLen {
			return fi, FragInvalid
		}
		ihl := int(h[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(h[2:4]))
		if ihl < ipv4HeaderMinLen || total < ihl || total > len(h) ||
			flow.FoldSum(flow.OnesSum(0, h[:ihl])) != 0xffff {
			return fi, FragInvalid
		}
		fo := binary.BigEndian.Uint16(h[6:8])
		fi.f.last = fo&0x2000 == 0
		fi.f.start = int(fo&0x1fff) * 8
		fi.f.end = fi.f.start + total - ihl
		fi.f.l3, fi.f.data = l3, l3+ihl
		fi.ipEnd = l3 + total
		if !fi.f.last && (total < d.minSize[0] || (total-ihl)%8 != 0) {
			fi.tooSmall = true
			return fi, FragInvalid
		}
		copy(fi.key.src[:4], h[12:16])
		copy(fi.key.dst[:4], h[16:20])
		fi.key.id = uint32(binary.BigEndian.Uint16(h[4:6]))
		fi.key.proto = h[9]
	case flow.EthTypeIPv6:
		if len(h) < ipv6HeaderLen {
			return fi, FragInvalid
		}
		total := ipv6HeaderLen + int(binary.BigEndian.Uint16(h[4:6]))
		if total > len(h) {
			return fi, FragInvalid
		}
		end := l3 + total
		next, nextOff, pos := h[6], l3+6, l3+ipv6HeaderLen
		for range 8 {
			if next != 0 && next != 43 && next != 60 {
				break
			}
			if end-pos < 8 || end-pos < (int(frame[pos+1])+1)*8 {
				return fi, FragInvalid
			}
			next, nextOff, pos = frame[pos], pos, pos+(int(frame[pos+1])+1)*8
		}
		if next != 44 || end-pos < 8 {
			return fi, FragInvalid
		}
		offlg := binary.BigEndian.Uint16(frame[pos+2 : pos+4])
		fi.f.last = offlg&1 == 0
		fi.f.start = int(offlg &^ 7)
		fi.f.l3, fi.f.data, fi.f.v6 = l3, pos+8, true
		fi.f.end = fi.f.start + end - fi.f.data
		fi.f.fragHdr, fi.f.nextOff, fi.ipEnd = pos, nextOff, end
		if !fi.f.last && (total < d.minSize[1] || (end-fi.f.data)%8 != 0) {
			fi.tooSmall = true
			return fi, FragInvalid
		}
		fi.key.v6 = true
		copy(fi.key.src[:], h[8:24])
		copy(fi.key.dst[:], h[24:40])
		fi.key.id = binary.BigEndian.Uint32(frame[pos+4 : pos+8])
	default:
		return fi, NotFragment
	}
	return fi, FragHeld
}

// Add takes a frame that Extract described with k and off, on its way to
// ct in zone. For a fragment it keeps a copy and reports FragHeld, or,
// when the fragment completes its packet, FragComplete with the
// reassembled frame (the first fragment's Ethernet header and the whole IP
// packet) and the held fragments (this one included) in the order of
// their offsets, which the caller tracks with Track and Finish and then
// sends on in that order. Fragments it
// refuses (malformed, too small, overlapping, over the limit) are
// FragInvalid and go through Track unchanged, as Open vSwitch lets them.
func (d *Defrag) Add(frame []byte, k *flow.Key, off *flow.Offsets, zone uint16, now int64) (FragStatus, []byte, [][]byte) {
	r := d.Hold(frame, k, off, zone, 0, now, nil)
	return r.Status, r.Whole, r.Frags
}

// Held is what Hold did with a frame.
type Held struct {
	Status  FragStatus
	Refused FragRefusal // why, when Status is FragInvalid
	// With FragComplete: the reassembled frame, and the held fragments
	// (the one given included, as a copy) in the order of their offsets,
	// with the metadata each was held with.
	Whole []byte
	Frags [][]byte
	Metas []any
}

// Hold is Add with metadata that the caller keeps with the fragment:
// Hold gives it back with the fragment when the packet completes, and
// TakeExpired when the fragment expires. Fragments are reassembled only
// with fragments of the same domain (a datapath's bridge: its fragments
// come back on its own poll threads). It says why it refused a fragment.
func (d *Defrag) Hold(frame []byte, k *flow.Key, off *flow.Offsets, zone uint16, domain uint32, now int64, meta any) Held {
	if k.NwFrag&flow.FragAny != 0 {
		d.mu.Lock()
		disabled := d.disabled[b2i(k.DlType == flow.EthTypeIPv6)]
		d.mu.Unlock()
		if disabled {
			return Held{Status: FragInvalid, Refused: RefusedDisabled}
		}
	}
	fi, st := d.parseFrag(frame, k, off, zone)
	fi.key.domain = domain
	if st != FragHeld {
		if st != FragInvalid {
			return Held{Status: st}
		}
		if fi.tooSmall {
			d.mu.Lock()
			d.count[b2i(k.DlType == flow.EthTypeIPv6)].TooSmall++
			d.mu.Unlock()
			return Held{Status: st, Refused: RefusedTooSmall}
		}
		return Held{Status: st, Refused: RefusedInvalid}
	}
	v := b2i(fi.key.v6)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.expireLocked(now)
	if d.nfrag >= d.maxFrags {
		return Held{Status: FragInvalid, Refused: RefusedLimit}
	}
	if fi.f.end > 0xffff {
		return Held{Status: FragInvalid, Refused: RefusedInvalid}
	}
	l := d.lists[fi.key]
	if l == nil {
		l = &fragList{expires: now + fragListTimeout}
		d.lists[fi.key] = l
	}
	for _, f := range l.frags {
		if fi.f.start < f.end && f.start < fi.f.end || (fi.f.last && f.last) {
			d.count[v].Overlap++
			return Held{Status: FragInvalid, Refused: RefusedOverlap}
		}
	}
	fi.f.frame = append([]byte(nil), frame[:fi.ipEnd]...)
	fi.f.meta = meta
	l.frags = append(l.frags, fi.f)
	d.nfrag++
	d.count[v].Accepted++
	whole, ok := reassemble(l.frags)
	if !ok {
		return Held{Status: FragHeld}
	}
	delete(d.lists, fi.key)
	// They go on in the order of their offsets, as Open vSwitch sends
	// them.
	slices.SortFunc(l.frags, func(a, b frag) int { return a.start - b.start })
	d.nfrag -= len(l.frags)
	d.count[v].CompletedSent += uint64(len(l.frags))
	r := Held{Status: FragComplete, Whole: whole, Frags: make([][]byte, len(l.frags)), Metas: make([]any, len(l.frags))}
	for i, f := range l.frags {
		r.Frags[i], r.Metas[i] = f.frame, f.meta
	}
	return r
}

// TakeExpired appends to dst the fragments of domain (held by Hold with
// metadata) that expired since the last call, and forgets them. Open
// vSwitch's ipf sends such fragments on, marked invalid; so may the
// caller.
func (d *Defrag) TakeExpired(domain uint32, dst []Expired) []Expired {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.expired) == 0 {
		return dst
	}
	kept := d.expired[:0]
	for _, e := range d.expired {
		if e.domain == domain {
			dst = append(dst, e.Expired)
		} else {
			kept = append(kept, e)
		}
	}
	clear(d.expired[len(kept):])
	d.expired = kept
	return dst
}

// Forget drops every fragment of domain, held or expired, counting the
// held ones as purged: its owner is going away.
func (d *Defrag) Forget(domain uint32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for key, l := range d.lists {
		if key.domain == domain {
			d.count[b2i(key.v6)].Purged += uint64(len(l.frags))
			d.nfrag -= len(l.frags)
			delete(d.lists, key)
		}
	}
	kept := d.expired[:0]
	for _, e := range d.expired {
		if e.domain != domain {
			kept = append(kept, e)
		}
	}
	clear(d.expired[len(kept):])
	d.expired = kept
}

// reassemble builds the packet when the fragments cover it without a gap:
// the first fragment's headers, without the IPv4 fragment fields or the
// IPv6 fragment header, and every fragment's data.
func reassemble(frags []frag) ([]byte, bool) {
	var first, last *frag
	size := 0
	for i := range frags {
		f := &frags[i]
		size += f.end - f.start
		if f.start == 0 {
			first = f
		}
		if f.last {
			last = f
		}
	}
	// Overlaps were refused, so the sizes add up only without a gap, once
	// no fragment lies past the last one (which a gap could make up for).
	if first == nil || last == nil || size != last.end {
		return nil, false
	}
	for i := range frags {
		if frags[i].end > last.end {
			return nil, false
		}
	}
	hdr := first.data
	if first.v6 {
		hdr = first.fragHdr
	}
	out := make([]byte, hdr+size)
	copy(out, first.frame[:hdr])
	for _, f := range frags {
		copy(out[hdr+f.start:], f.frame[f.data:])
	}
	h := out[first.l3:]
	if first.v6 {
		plen := len(h) - ipv6HeaderLen
		if plen > 0xffff {
			return nil, false
		}
		out[first.nextOff] = first.frame[first.fragHdr] // what followed the fragment header
		if out[first.nextOff] == 44 {
			// An IPv6 fragment header inside the fragmentable part:
			// the reassembled packet would be a fragment again.
			return nil, false
		}
		binary.BigEndian.PutUint16(h[4:6], uint16(plen))
		return out, true
	}
	if len(h) > maxReassembled {
		return nil, false
	}
	ihl := int(h[0]&0x0f) * 4
	binary.BigEndian.PutUint16(h[2:4], uint16(len(h)))
	h[6], h[7] = 0, 0
	h[10], h[11] = 0, 0
	binary.BigEndian.PutUint16(h[10:12], ^flow.FoldSum(flow.OnesSum(0, h[:ihl])))
	return out, true
}

// expireLocked gives up on the packets that stayed incomplete for longer
// than the timeout: their fragments, when Hold had metadata with them,
// wait for TakeExpired.
func (d *Defrag) expireLocked(now int64) {
	for key, l := range d.lists {
		if now > l.expires {
			d.count[b2i(key.v6)].Expired += uint64(len(l.frags))
			d.nfrag -= len(l.frags)
			for _, f := range l.frags {
				if f.meta != nil {
					d.expired = append(d.expired, expiredFrag{domain: key.domain, Expired: Expired{Frame: f.frame, Meta: f.meta}})
				}
			}
			delete(d.lists, key)
		}
	}
}

// Expire gives up on the fragments held longer than the timeout (15 s)
// without completing their packet, as Open vSwitch does, and returns how
// many. Add expires too; a datapath calls Expire when idle.
func (d *Defrag) Expire(now int64) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	before := d.nfrag
	d.expireLocked(now)
	return before - d.nfrag
}

// Finish carries the outcome of ct on a reassembled packet (whole, with
// key wk after Track) over to its fragments, in place: the addresses of
// every fragment and the transport header of the first become the
// reassembled packet's (NAT may have changed them; the first fragment's
// transport checksum, which covers the whole packet, stays right), and
// each fragment's key, which fk holds in the same order as frags (from
// Extract), gets wk's connection tracking fields.
func Finish(whole []byte, wk *flow.Key, frags [][]byte, fk []flow.Key) {
	var wo flow.Offsets
	var tmp flow.Key
	flow.Extract(&tmp, &wo, whole, 0)
	if wo.L3 == flow.NoOffset {
		return
	}
	for i, fr := range frags {
		var off flow.Offsets
		var k flow.Key
		flow.Extract(&k, &off, fr, 0)
		if off.L3 == flow.NoOffset || off.L3 != wo.L3 {
			continue
		}
		l3 := int(off.L3)
		w := whole[l3:]
		h := fr[l3:]
		if wk.DlType == flow.EthTypeIPv6 {
			copy(h[8:40], w[8:40])
		} else {
			old := [8]byte(h[12:20])
			copy(h[12:20], w[12:20])
			fixCsum(h[10:12], sumDiff(0, old[:], h[12:20]), false)
		}
		if k.NwFrag&flow.FragLater == 0 && off.L4 != flow.NoOffset && wo.L4 != flow.NoOffset {
			// The first fragment: its transport header is the
			// reassembled packet's.
			n := min(len(fr)-int(off.L4), len(whole)-int(wo.L4), transportHeaderLen(wk))
			copy(fr[off.L4:int(off.L4)+n], whole[wo.L4:int(wo.L4)+n])
		}
		if i < len(fk) {
			CopyCT(&fk[i], wk)
			setKeyAddrs(&fk[i], keyTuple(wk))
			if k.NwFrag&flow.FragLater == 0 {
				fk[i].TpSrc, fk[i].TpDst = wk.TpSrc, wk.TpDst
			}
		}
	}
}

// transportHeaderLen is how much of the transport header Finish copies.
func transportHeaderLen(k *flow.Key) int {
	switch k.NwProto {
	case flow.IPProtoTCP:
		return tcpHeaderMinLen
	case flow.IPProtoUDP, flow.IPProtoICMP, flow.IPProtoICMPv6:
		return 8
	}
	return 0
}

// keyTuple returns a tuple holding k's addresses.
func keyTuple(k *flow.Key) *tuple {
	t := &tuple{v6: k.DlType == flow.EthTypeIPv6}
	if t.v6 {
		t.src, t.dst = k.IPv6Src, k.IPv6Dst
	} else {
		binary.BigEndian.PutUint32(t.src[:4], k.NwSrc)
		binary.BigEndian.PutUint32(t.dst[:4], k.NwDst)
	}
	return t
}

// CopyCT copies the connection tracking fields of src into dst.
func CopyCT(dst, src *flow.Key) {
	dst.CtState, dst.CtZone, dst.CtMark, dst.CtLabel = src.CtState, src.CtZone, src.CtMark, src.CtLabel
	dst.CtNwSrc, dst.CtNwDst, dst.CtIPv6Src, dst.CtIPv6Dst = src.CtNwSrc, src.CtNwDst, src.CtIPv6Src, src.CtIPv6Dst
	dst.CtNwProto, dst.CtTpSrc, dst.CtTpDst = src.CtNwProto, src.CtTpSrc, src.CtTpDst
}
