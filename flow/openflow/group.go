package openflow

// Group mod commands and group types.
const (
	GroupAdd    uint16 = 0
	GroupModify uint16 = 1
	GroupDelete uint16 = 2

	GroupAll      uint8 = 0
	GroupSelect   uint8 = 1
	GroupIndirect uint8 = 2
	GroupFF       uint8 = 3

	GroupAny uint32 = 0xffffffff // OFPG_ANY / OFPG_ALL in requests
)

// OpenFlow 1.5 bucket property types.
const (
	bucketPropWeight     = 0
	bucketPropWatchPort  = 1
	bucketPropWatchGroup = 2
)

// GroupBodies15 reports whether groups of version v use OpenFlow 1.5's
// group mod, bucket and group desc layout (bucket ids, bucket and group
// properties): 1.5 and later, and OpenFlow 1.0's Nicira group messages
// (NXT_GROUP_MOD, NXST_GROUP_DESC), whose bodies are 1.5's with 1.0
// actions inside, as Open vSwitch sends them.
func GroupBodies15(v uint8) bool { return v == Version10 || v >= Version15 }

// Bucket is a group bucket. BucketID exists in 1.5 only; there Weight,
// WatchPort and WatchGroup are properties, present when the matching Has*
// flag is set (in 1.3/1.4 they are always present).
type Bucket struct {
	BucketID      uint32
	Weight        uint16
	WatchPort     uint32
	WatchGroup    uint32
	Actions       []Action
	HasWeight     bool
	HasWatchPort  bool
	HasWatchGroup bool
	OtherProps    []Property
}

func decodeBuckets(v uint8, r *rd) ([]Bucket, error) {
	bs := []Bucket{}
	for r.err == nil && r.len() > 0 {
		l := 0
		if r.len() >= 2 {
			l = int(r.b[0])<<8 | int(r.b[1])
		}
		minLen := 16
		if GroupBodies15(v) {
			minLen = 8
		}
		if l < minLen || l%8 != 0 || l > r.len() {
			return nil, newErr(ErrBadMessage, ErrTypeGroupModFailed, 12 /* OFPGMFC_BAD_BUCKET */, "bucket length %d", l)
		}
		br := r.sub(l, "bucket")
		br.skip(2, "")
		var b Bucket
		if !GroupBodies15(v) {
			b.Weight, b.WatchPort, b.WatchGroup = br.u16(""), br.u32(""), br.u32("")
			b.HasWeight, b.HasWatchPort, b.HasWatchGroup = true, true, true
			br.skip(4, "")
			acts, err := decodeActions(v, br, 0)
			if err != nil {
				return nil, err
			}
			b.Actions = acts
		} else {
			al := int(br.u16(""))
			b.BucketID = br.u32("")
			acts, err := decodeActions(v, br.sub(al, "bucket actions"), 0)
			if err != nil {
				return nil, err
			}
			b.Actions = acts
			props, err := decodeProps(br, "bucket property")
			if err != nil {
				return nil, err
			}
			for _, p := range props {
				pr := &rd{b: p.Data}
				switch {
				case p.Type == bucketPropWeight && len(p.Data) == 4 && !b.HasWeight:
					b.Weight, b.HasWeight = pr.u16(""), true
				case p.Type == bucketPropWatchPort && len(p.Data) == 4 && !b.HasWatchPort:
					b.WatchPort, b.HasWatchPort = pr.u32(""), true
				case p.Type == bucketPropWatchGroup && len(p.Data) == 4 && !b.HasWatchGroup:
					b.WatchGroup, b.HasWatchGroup = pr.u32(""), true
				default:
					b.OtherProps = append(b.OtherProps, p)
				}
			}
		}
		if br.err != nil {
			return nil, br.err
		}
		bs = append(bs, b)
	}
	return bs, r.err
}

func appendBuckets(v uint8, w *wr, bs []Bucket) error {
	for i := range bs {
		b := &bs[i]
		start := w.pos()
		w.u16(0)
		if !GroupBodies15(v) {
			w.u16(b.Weight)
			w.u32(b.WatchPort)
			w.u32(b.WatchGroup)
			w.zeros(4)
			if err := appendActions(v, w, b.Actions); err != nil {
				return err
			}
		} else {
			at := w.pos()
			w.u16(0)
			w.u32(b.BucketID)
			as := w.pos()
			if err := appendActions(v, w, b.Actions); err != nil {
				return err
			}
			if w.pos()-as > 0xffff {
				return ErrTooLong
			}
			w.put16(at, uint16(w.pos()-as))
			var ps []Property
			if b.HasWeight {
				ps = append(ps, Property{bucketPropWeight, append(be16(b.Weight), 0, 0)})
			}
			if b.HasWatchPort {
				ps = append(ps, Property{bucketPropWatchPort, be32(b.WatchPort)})
			}
			if b.HasWatchGroup {
				ps = append(ps, Property{bucketPropWatchGroup, be32(b.WatchGroup)})
			}
			if err := appendProps(w, append(ps, b.OtherProps...)); err != nil {
				return err
			}
		}
		if w.pos()-start > 0xffff {
			return ErrTooLong
		}
		w.put16(start, uint16(w.pos()-start))
	}
	return nil
}

// GroupMod is OFPT_GROUP_MOD (1.1+) or, in OpenFlow 1.0, NXT_GROUP_MOD.
// CommandBucketID and Props exist in 1.5 and NXT_GROUP_MOD only.
type GroupMod struct {
	Command         uint16
	Type            uint8
	GroupID         uint32
	CommandBucketID uint32
	Buckets         []Bucket
	Props           []Property
}

func decodeGroupMod(v uint8, r *rd) (*GroupMod, error) {
	m := &GroupMod{Command: r.u16("group mod"), Type: r.u8("group mod")}
	r.skip(1, "group mod")
	m.GroupID = r.u32("group mod")
	var err error
	if !GroupBodies15(v) {
		m.Buckets, err = decodeBuckets(v, r)
		return m, err
	}
	bl := int(r.u16("group mod"))
	r.skip(2, "group mod")
	m.CommandBucketID = r.u32("group mod")
	if m.Buckets, err = decodeBuckets(v, r.sub(bl, "group mod buckets")); err != nil {
		return nil, err
	}
	m.Props, err = decodeProps(r, "group property")
	return m, err
}

func (m *GroupMod) msgType(v uint8) (uint8, error) {
	if v == Version10 {
		return typeOf(kExperimenter, v)
	}
	return typeOf(kGroupMod, v)
}

func (m *GroupMod) appendBody(v uint8, w *wr) error {
	if v == Version10 {
		nxHeader(w, nxtGroupMod)
	}
	w.u16(m.Command)
	w.u8(m.Type)
	w.zeros(1)
	w.u32(m.GroupID)
	if !GroupBodies15(v) {
		return appendBuckets(v, w, m.Buckets)
	}
	at := w.pos()
	w.u16(0)
	w.zeros(2)
	w.u32(m.CommandBucketID)
	bs := w.pos()
	if err := appendBuckets(v, w, m.Buckets); err != nil {
		return err
	}
	if w.pos()-bs > 0xffff {
		return ErrTooLong
	}
	w.put16(at, uint16(w.pos()-bs))
	return appendProps(w, m.Props)
}

// GroupDesc is one entry of a group-desc reply.
type GroupDesc struct {
	Type    uint8
	GroupID uint32
	Buckets []Bucket
	Props   []Property // 1.5
}

// GroupStats is one entry of a group stats reply.
type GroupStats struct {
	GroupID      uint32
	RefCount     uint32
	PacketCount  uint64
	ByteCount    uint64
	DurationSec  uint32
	DurationNsec uint32
	Buckets      []BucketCounter
}

// BucketCounter is a bucket's counters in a group stats reply.
type BucketCounter struct {
	PacketCount, ByteCount uint64
}

// decodeGroupStats decodes a group stats request or reply body
// (OFPMP_GROUP, or NXST_GROUP in OpenFlow 1.0: the same body).
func decodeGroupStats(v uint8, r *rd, mp Multipart, reply bool) (Message, error) {
	if !reply {
		m := &GroupStatsRequest{Multipart: mp, GroupID: r.u32("group stats request")}
		r.skip(4, "group stats request")
		return m, r.err
	}
	m := &GroupStatsReply{Multipart: mp, Entries: []GroupStats{}}
	for r.err == nil && r.len() > 0 {
		l := int(r.u16("group stats"))
		if l < 40 || (l-40)%16 != 0 {
			return nil, badMessage("group stats length %d", l)
		}
		gr := r.sub(l-2, "group stats")
		gr.skip(2, "")
		g := GroupStats{GroupID: gr.u32(""), RefCount: gr.u32("")}
		gr.skip(4, "")
		g.PacketCount, g.ByteCount = gr.u64(""), gr.u64("")
		g.DurationSec, g.DurationNsec = gr.u32(""), gr.u32("")
		for gr.err == nil && gr.len() > 0 {
			g.Buckets = append(g.Buckets, BucketCounter{gr.u64(""), gr.u64("")})
		}
		if gr.err != nil {
			return nil, gr.err
		}
		m.Entries = append(m.Entries, g)
	}
	return m, r.err
}

// decodeGroupDesc decodes a group desc request or reply body
// (OFPMP_GROUP_DESC, or NXST_GROUP_DESC in OpenFlow 1.0 with 1.5's body).
func decodeGroupDesc(v uint8, r *rd, mp Multipart, reply bool) (Message, error) {
	if !reply {
		m := &GroupDescRequest{Multipart: mp}
		if GroupBodies15(v) {
			m.GroupID = r.u32("group desc request")
			r.skip(4, "group desc request")
		}
		return m, r.err
	}
	m := &GroupDescReply{Multipart: mp, Entries: []GroupDesc{}}
	for r.err == nil && r.len() > 0 {
		l := int(r.u16("group desc"))
		min := 8
		if GroupBodies15(v) {
			min = 16
		}
		if l < min {
			return nil, badMessage("group desc length %d", l)
		}
		gr := r.sub(l-2, "group desc")
		g := GroupDesc{Type: gr.u8("")}
		gr.skip(1, "")
		g.GroupID = gr.u32("")
		var err error
		if !GroupBodies15(v) {
			g.Buckets, err = decodeBuckets(v, gr)
		} else {
			bl := int(gr.u16(""))
			gr.skip(6, "")
			if g.Buckets, err = decodeBuckets(v, gr.sub(bl, "group desc buckets")); err == nil {
				g.Props, err = decodeProps(gr, "group property")
			}
		}
		if err != nil {
			return nil, err
		}
		if gr.err != nil {
			return nil, gr.err
		}
		m.Entries = append(m.Entries, g)
	}
	return m, r.err
}
