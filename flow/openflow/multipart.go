package openflow

import "fmt"

// Multipart (stats) types.
const (
	MPDesc          uint16 = 0
	MPFlow          uint16 = 1
	MPAggregate     uint16 = 2
	MPTable         uint16 = 3
	MPPort          uint16 = 4
	MPGroup         uint16 = 6
	MPGroupDesc     uint16 = 7
	MPTableFeatures uint16 = 12
	MPPortDesc      uint16 = 13
	MPFlowMonitor   uint16 = 16
	MPExperimenter  uint16 = 0xffff
)

// Nicira stats subtypes.
const (
	nxstFlow        = 0
	nxstAggregate   = 1
	nxstFlowMonitor = 2
	nxstGroup       = 7
	nxstGroupDesc   = 8
)

// MultipartMore is the flag saying more reply parts follow.
const MultipartMore uint16 = 1

// Multipart is the common part of every multipart (stats) message.
type Multipart struct {
	Flags uint16
}

// MultipartRaw is a multipart request or reply this package does not decode
// (queue, meter, table features, ...). The daemon answers a request with
// OFPBRC_BAD_MULTIPART (BAD_STAT in 1.0), or BAD_EXPERIMENTER /
// BAD_EXP_TYPE for an experimenter one.
type MultipartRaw struct {
	Multipart
	Reply        bool
	Type         uint16
	Experimenter uint32 // Type == MPExperimenter only
	ExpType      uint32
	Body         []byte
}

// DescRequest asks for the switch description.
type DescRequest struct{ Multipart }

// DescReply is the switch description.
type DescReply struct {
	Multipart
	MfrDesc, HWDesc, SWDesc, SerialNum, DPDesc string
}

// FlowStatsRequest is a flow or (with Aggregate) aggregate stats request:
// OFPMP_FLOW / OFPMP_AGGREGATE, or NXST_FLOW / NXST_AGGREGATE with Nicira.
// Match10 is used by OpenFlow 1.0's standard form, Match by the others.
type FlowStatsRequest struct {
	Multipart
	Aggregate  bool
	Nicira     bool
	TableID    uint8
	OutPort    uint32
	OutGroup   uint32
	Cookie     uint64
	CookieMask uint64
	Match10    Match10
	Match      []Field
}

// FlowStats is one flow in a flow stats reply. Match10 and Actions are
// used by OpenFlow 1.0's standard form; Match and Actions by NXST_FLOW
// (with IdleAge, HardAge); Match and Instructions by 1.1+. 1.5's
// ofp_flow_desc carries the counters as OXS stats, present per Stats15.
type FlowStats struct {
	TableID      uint8
	DurationSec  uint32
	DurationNsec uint32
	Priority     uint16
	IdleTimeout  uint16
	HardTimeout  uint16
	Flags        uint16
	Importance   uint16
	IdleAge      uint16
	HardAge      uint16
	Cookie       uint64
	PacketCount  uint64
	ByteCount    uint64
	IdleSec      uint32
	IdleNsec     uint32
	Stats15      OXSPresent
	Match10      Match10
	Match        []Field
	Actions      []Action
	Instructions []Instruction
}

// OXSPresent says which OpenFlow 1.5 OXS statistics a reply carries.
type OXSPresent uint8

// OXS fields (bit i is field i).
const (
	OXSDuration    OXSPresent = 1 << 0
	OXSIdleTime    OXSPresent = 1 << 1
	OXSFlowCount   OXSPresent = 1 << 3
	OXSPacketCount OXSPresent = 1 << 4
	OXSByteCount   OXSPresent = 1 << 5
)

// FlowStatsReply is a flow stats reply (NXST_FLOW with Nicira).
type FlowStatsReply struct {
	Multipart
	Nicira  bool
	Entries []FlowStats
}

// AggregateReply is an aggregate stats reply (NXST_AGGREGATE with Nicira).
// In 1.5 the counters are OXS stats, present per Stats15.
type AggregateReply struct {
	Multipart
	Nicira      bool
	PacketCount uint64
	ByteCount   uint64
	FlowCount   uint32
	Stats15     OXSPresent
}

// TableStatsRequest asks for table stats.
type TableStatsRequest struct{ Multipart }

// TableStats is one table; Name, Wildcards and MaxEntries are 1.0 only.
type TableStats struct {
	TableID      uint8
	Name         string
	Wildcards    uint32
	MaxEntries   uint32
	ActiveCount  uint32
	LookupCount  uint64
	MatchedCount uint64
}

// TableStatsReply is a table stats reply.
type TableStatsReply struct {
	Multipart
	Entries []TableStats
}

// PortStatsRequest asks for one port's counters (PortAny: all ports).
type PortStatsRequest struct {
	Multipart
	PortNo uint32
}

// PortStats is one port's counters. Duration is 1.3+; in 1.4+ the last
// four counters are the Ethernet property, present unless NoEthernet.
type PortStats struct {
	PortNo                    uint32
	RxPackets, TxPackets      uint64
	RxBytes, TxBytes          uint64
	RxDropped, TxDropped      uint64
	RxErrors, TxErrors        uint64
	RxFrameErr, RxOverErr     uint64
	RxCRCErr, Collisions      uint64
	DurationSec, DurationNsec uint32
	NoEthernet                bool
	OtherProps                []Property
}

// PortStatsReply is a port stats reply.
type PortStatsReply struct {
	Multipart
	Entries []PortStats
}

// PortDescRequest asks for port descriptions (PortNo is 1.5 only).
type PortDescRequest struct {
	Multipart
	PortNo uint32
}

// PortDescReply lists ports.
type PortDescReply struct {
	Multipart
	Ports []Port
}

// GroupStatsRequest asks for group counters (GroupAny: all).
type GroupStatsRequest struct {
	Multipart
	GroupID uint32
}

// GroupStatsReply is a group stats reply.
type GroupStatsReply struct {
	Multipart
	Entries []GroupStats
}

// GroupDescRequest asks for group descriptions (GroupID is 1.5 only).
type GroupDescRequest struct {
	Multipart
	GroupID uint32
}

// GroupDescReply is a group description reply.
type GroupDescReply struct {
	Multipart
	Entries []GroupDesc
}

func decodeMultipart(v uint8, r *rd, reply bool) (Message, error) {
	typ, flags := r.u16("multipart"), r.u16("multipart")
	if v != Version10 {
		r.skip(4, "multipart")
	}
	mp := Multipart{Flags: flags}
	if r.err != nil {
		return nil, r.err
	}
	raw := func() (Message, error) {
		return &MultipartRaw{Multipart: mp, Reply: reply, Type: typ, Body: r.rest()}, nil
	}
	if typ == MPExperimenter {
		exp := r.u32("multipart experimenter")
		if v == Version10 && exp != NiciraExperimenter {
			// OpenFlow 1.0's vendor stats have no subtype.
			return &MultipartRaw{Multipart: mp, Reply: reply, Type: typ, Experimenter: exp, Body: r.rest()}, r.err
		}
		st := r.u32("multipart experimenter")
		if v == Version10 {
			r.skip(4, "multipart experimenter")
		}
		if r.err != nil {
			return nil, r.err
		}
		if v == Version13 && exp == onfExperimenter && st == onfstFlowMonitor && !reply {
			return decodeFlowMonitorRequest(v, r, mp, MonitorONF)
		}
		if v == Version13 && exp == onfExperimenter && st == onfstFlowMonitor {
			return decodeFlowMonitorReply(v, r, mp, MonitorONF)
		}
		if exp != NiciraExperimenter {
			return &MultipartRaw{Multipart: mp, Reply: reply, Type: typ, Experimenter: exp, ExpType: st, Body: r.rest()}, nil
		}
		switch {
		case (st == nxstFlow || st == nxstAggregate) && !reply:
			m := &FlowStatsRequest{Multipart: mp, Nicira: true, Aggregate: st == nxstAggregate}
			m.OutPort = port10(r.u16("nx flow stats request"))
			n := int(r.u16("nx flow stats request"))
			m.TableID = r.u8("nx flow stats request")
			r.skip(3, "nx flow stats request")
			if r.err != nil {
				return nil, r.err
			}
			fs, err := decodeNXMatch(r, n)
			m.Match = fs
			return m, err
		case st == nxstFlow:
			m := &FlowStatsReply{Multipart: mp, Nicira: true}
			var err error
			if m.Entries, err = decodeEach(v, r, []FlowStats{}, decodeNXFlowStats); err != nil {
				return nil, err
			}
			return m, nil
		case st == nxstAggregate:
			m := &AggregateReply{Multipart: mp, Nicira: true, PacketCount: r.u64("nx aggregate"), ByteCount: r.u64("nx aggregate"), FlowCount: r.u32("nx aggregate")}
			r.skip(4, "nx aggregate")
			return m, r.err
		case v == Version10 && st == nxstGroup:
			return decodeGroupStats(v, r, mp, reply)
		case v == Version10 && st == nxstGroupDesc:
			return decodeGroupDesc(v, r, mp, reply)
		case st == nxstFlowMonitor && !reply:
			return decodeFlowMonitorRequest(v, r, mp, MonitorNicira)
		case st == nxstFlowMonitor:
			return decodeFlowMonitorReply(v, r, mp, MonitorNicira)
		}
		return &MultipartRaw{Multipart: mp, Reply: reply, Type: typ, Experimenter: exp, ExpType: st, Body: r.rest()}, nil
	}
	switch typ {
	case MPTableFeatures:
		if v == Version10 {
			return raw()
		}
		ts, err := decodeTableFeatures(r)
		if err != nil {
			return nil, err
		}
		if reply {
			return &TableFeaturesReply{Multipart: mp, Tables: ts}, nil
		}
		return &TableFeaturesRequest{Multipart: mp, Tables: ts}, nil
	case MPFlowMonitor:
		if v >= Version14 && !reply {
			return decodeFlowMonitorRequest(v, r, mp, MonitorOpenFlow14)
		}
		if v >= Version14 {
			return decodeFlowMonitorReply(v, r, mp, MonitorOpenFlow14)
		}
		return raw()
	case MPDesc:
		if !reply {
			return &DescRequest{mp}, nil
		}
		return &DescReply{Multipart: mp, MfrDesc: r.str(256, "desc"), HWDesc: r.str(256, "desc"), SWDesc: r.str(256, "desc"), SerialNum: r.str(32, "desc"), DPDesc: r.str(256, "desc")}, r.err
	case MPFlow, MPAggregate:
		if !reply {
			m := &FlowStatsRequest{Multipart: mp, Aggregate: typ == MPAggregate}
			if v == Version10 {
				m.Match10 = decodeMatch10(r)
				m.TableID = r.u8("flow stats request")
				r.skip(1, "flow stats request")
				m.OutPort = port10(r.u16("flow stats request"))
				return m, r.err
			}
			m.TableID = r.u8("flow stats request")
			r.skip(3, "flow stats request")
			m.OutPort, m.OutGroup = r.u32("flow stats request"), r.u32("flow stats request")
			r.skip(4, "flow stats request")
			m.Cookie, m.CookieMask = r.u64("flow stats request"), r.u64("flow stats request")
			if r.err != nil {
				return nil, r.err
			}
			fs, err := decodeOXMMatch(r)
			m.Match = fs
			return m, err
		}
		if typ == MPAggregate {
			m := &AggregateReply{Multipart: mp}
			if v == Version15 {
				st, err := decodeOXS(r)
				if err != nil {
					return nil, err
				}
				m.PacketCount, m.ByteCount, m.FlowCount, m.Stats15 = st.packets, st.bytes, st.flows, st.present
				return m, nil
			}
			m.PacketCount, m.ByteCount, m.FlowCount = r.u64("aggregate"), r.u64("aggregate"), r.u32("aggregate")
			r.skip(4, "aggregate")
			return m, r.err
		}
		m := &FlowStatsReply{Multipart: mp}
		var err error
		if m.Entries, err = decodeEach(v, r, []FlowStats{}, decodeFlowStats); err != nil {
			return nil, err
		}
		return m, nil
	case MPTable:
		if !reply {
			return &TableStatsRequest{mp}, nil
		}
		m := &TableStatsReply{Multipart: mp, Entries: []TableStats{}}
		for r.err == nil && r.len() > 0 {
			var t TableStats
			t.TableID = r.u8("table stats")
			r.skip(3, "table stats")
			if v == Version10 {
				t.Name = r.str(32, "table stats")
				t.Wildcards, t.MaxEntries = r.u32("table stats"), r.u32("table stats")
			}
			t.ActiveCount = r.u32("table stats")
			t.LookupCount, t.MatchedCount = r.u64("table stats"), r.u64("table stats")
			m.Entries = append(m.Entries, t)
		}
		return m, r.err
	case MPPort:
		if !reply {
			m := &PortStatsRequest{Multipart: mp}
			if v == Version10 {
				m.PortNo = port10(r.u16("port stats request"))
				r.skip(6, "port stats request")
			} else {
				m.PortNo = r.u32("port stats request")
				r.skip(4, "port stats request")
			}
			return m, r.err
		}
		m := &PortStatsReply{Multipart: mp}
		var err error
		if m.Entries, err = decodeEach(v, r, []PortStats{}, decodePortStats); err != nil {
			return nil, err
		}
		return m, nil
	case MPPortDesc:
		if !reply {
			m := &PortDescRequest{Multipart: mp}
			if v == Version15 {
				m.PortNo = r.u32("port desc request")
				r.skip(4, "port desc request")
			}
			return m, r.err
		}
		m := &PortDescReply{Multipart: mp}
		var err error
		if m.Ports, err = decodeEach(v, r, []Port{}, decodePort); err != nil {
			return nil, err
		}
		return m, nil
	case MPGroup:
		if v == Version10 {
			return raw()
		}
		return decodeGroupStats(v, r, mp, reply)
	case MPGroupDesc:
		if v == Version10 {
			return raw()
		}
		return decodeGroupDesc(v, r, mp, reply)
	}
	return raw()
}

func decodeNXFlowStats(v uint8, r *rd) (FlowStats, error) {
	var e FlowStats
	l := int(r.u16("nx flow stats"))
	if l < 48 || l%8 != 0 {
		return e, badMessage("nx flow stats length %d", l)
	}
	er := r.sub(l-2, "nx flow stats")
	e.TableID = er.u8("")
	er.skip(1, "")
	e.DurationSec, e.DurationNsec = er.u32(""), er.u32("")
	e.Priority, e.IdleTimeout, e.HardTimeout = er.u16(""), er.u16(""), er.u16("")
	n := int(er.u16(""))
	e.IdleAge, e.HardAge = er.u16(""), er.u16("")
	e.Cookie, e.PacketCount, e.ByteCount = er.u64(""), er.u64(""), er.u64("")
	if er.err != nil {
		return e, er.err
	}
	fs, err := decodeNXMatch(er, n)
	if err != nil {
		return e, err
	}
	e.Match = fs
	e.Actions, err = decodeActions(v, er, 0)
	return e, err
}

func decodeFlowStats(v uint8, r *rd) (FlowStats, error) {
	var e FlowStats
	l := int(r.u16("flow stats"))
	if l < 8 {
		return e, badMessage("flow stats length %d", l)
	}
	er := r.sub(l-2, "flow stats")
	var err error
	switch v {
	case Version10:
		e.TableID = er.u8("")
		er.skip(1, "")
		e.Match10 = decodeMatch10(er)
		e.DurationSec, e.DurationNsec = er.u32(""), er.u32("")
		e.Priority, e.IdleTimeout, e.HardTimeout = er.u16(""), er.u16(""), er.u16("")
		er.skip(6, "")
		e.Cookie, e.PacketCount, e.ByteCount = er.u64(""), er.u64(""), er.u64("")
		if er.err != nil {
			return e, er.err
		}
		e.Actions, err = decodeActions(v, er, 0)
		return e, err
	case Version15:
		// ofp_flow_desc: OFPMP_FLOW_DESC, numbered as 1.3's OFPMP_FLOW.
		er.skip(2, "")
		e.TableID = er.u8("")
		er.skip(1, "")
		e.Priority, e.IdleTimeout, e.HardTimeout, e.Flags, e.Importance = er.u16(""), er.u16(""), er.u16(""), er.u16(""), er.u16("")
		e.Cookie = er.u64("")
		if er.err != nil {
			return e, er.err
		}
		if e.Match, err = decodeOXMMatch(er); err != nil {
			return e, err
		}
		st, err := decodeOXS(er)
		if err != nil {
			return e, err
		}
		e.Stats15 = st.present
		e.DurationSec, e.DurationNsec, e.IdleSec, e.IdleNsec = st.durSec, st.durNsec, st.idleSec, st.idleNsec
		e.PacketCount, e.ByteCount = st.packets, st.bytes
		if st.present&OXSFlowCount != 0 {
			return e, badMessage("flow_count in a flow stats entry")
		}
		e.Instructions, err = decodeInstructions(v, er)
		return e, err
	}
	e.TableID = er.u8("")
	er.skip(1, "")
	e.DurationSec, e.DurationNsec = er.u32(""), er.u32("")
	e.Priority, e.IdleTimeout, e.HardTimeout, e.Flags = er.u16(""), er.u16(""), er.u16(""), er.u16("")
	if v >= Version14 {
		e.Importance = er.u16("")
		er.skip(2, "")
	} else {
		er.skip(4, "")
	}
	e.Cookie, e.PacketCount, e.ByteCount = er.u64(""), er.u64(""), er.u64("")
	if er.err != nil {
		return e, er.err
	}
	if e.Match, err = decodeOXMMatch(er); err != nil {
		return e, err
	}
	e.Instructions, err = decodeInstructions(v, er)
	return e, err
}

type oxsStats struct {
	present           OXSPresent
	durSec, durNsec   uint32
	idleSec, idleNsec uint32
	flows             uint32
	packets, bytes    uint64
}

// decodeOXS reads struct ofp_stats (OpenFlow 1.5): reserved, length, OXS
// TLVs of class 0x8002, padding to 8.
func decodeOXS(r *rd) (oxsStats, error) {
	var s oxsStats
	r.skip(2, "stats")
	l := int(r.u16("stats"))
	if r.err != nil {
		return s, r.err
	}
	if l < 4 {
		return s, badMessage("stats length %d", l)
	}
	sr := r.sub(l-4, "stats")
	r.skip(pad8(l)-l, "stats padding")
	for sr.err == nil && sr.len() > 0 {
		h := sr.u32("oxs")
		class, field, n := uint16(h>>16), uint8(h>>9)&0x7f, int(uint8(h))
		if class != 0x8002 || h&0x100 != 0 || field > 7 || s.present&(1<<field) != 0 {
			return s, badMessage("oxs header 0x%08x", h)
		}
		want := 8
		if OXSPresent(1<<field) == OXSFlowCount {
			want = 4
		}
		if n != want {
			return s, badMessage("oxs field %d length %d", field, n)
		}
		switch OXSPresent(1 << field) {
		case OXSDuration:
			s.durSec, s.durNsec = sr.u32(""), sr.u32("")
		case OXSIdleTime:
			s.idleSec, s.idleNsec = sr.u32(""), sr.u32("")
		case OXSFlowCount:
			s.flows = sr.u32("")
		case OXSPacketCount:
			s.packets = sr.u64("")
		case OXSByteCount:
			s.bytes = sr.u64("")
		default:
			return s, badMessage("oxs field %d", field)
		}
		s.present |= 1 << field
	}
	if sr.err != nil {
		return s, sr.err
	}
	return s, r.err
}

func appendOXS(w *wr, s oxsStats) {
	start := w.pos()
	w.u16(0)
	w.u16(0)
	put := func(f uint8, n int) { w.u32(0x8002<<16 | uint32(f)<<9 | uint32(n)) }
	for f := uint8(0); f < 8; f++ {
		if s.present&(1<<f) == 0 {
			continue
		}
		switch OXSPresent(1 << f) {
		case OXSDuration:
			put(f, 8)
			w.u32(s.durSec)
			w.u32(s.durNsec)
		case OXSIdleTime:
			put(f, 8)
			w.u32(s.idleSec)
			w.u32(s.idleNsec)
		case OXSFlowCount:
			put(f, 4)
			w.u32(s.flows)
		case OXSPacketCount:
			put(f, 8)
			w.u64(s.packets)
		case OXSByteCount:
			put(f, 8)
			w.u64(s.bytes)
		}
	}
	w.put16(start+2, uint16(w.pos()-start))
	w.pad8(start)
}

func decodePortStats(v uint8, r *rd) (PortStats, error) {
	var p PortStats
	if v < Version14 {
		if v == Version10 {
			p.PortNo = port10(r.u16("port stats"))
			r.skip(6, "port stats")
		} else {
			p.PortNo = r.u32("port stats")
			r.skip(4, "port stats")
		}
		for _, x := range []*uint64{&p.RxPackets, &p.TxPackets, &p.RxBytes, &p.TxBytes, &p.RxDropped, &p.TxDropped, &p.RxErrors, &p.TxErrors, &p.RxFrameErr, &p.RxOverErr, &p.RxCRCErr, &p.Collisions} {
			*x = r.u64("port stats")
		}
		if v == Version13 {
			p.DurationSec, p.DurationNsec = r.u32("port stats"), r.u32("port stats")
		}
		return p, r.err
	}
	l := int(r.u16("port stats"))
	if l < 80 {
		return p, badMessage("port stats length %d", l)
	}
	pr := r.sub(l-2, "port stats")
	pr.skip(2, "")
	p.PortNo = pr.u32("")
	p.DurationSec, p.DurationNsec = pr.u32(""), pr.u32("")
	for _, x := range []*uint64{&p.RxPackets, &p.TxPackets, &p.RxBytes, &p.TxBytes, &p.RxDropped, &p.TxDropped, &p.RxErrors, &p.TxErrors} {
		*x = pr.u64("")
	}
	props, err := decodeProps(pr, "port stats property")
	if err != nil {
		return p, err
	}
	p.NoEthernet = true
	for _, pp := range props {
		if pp.Type == 0 && p.NoEthernet && len(pp.Data) == 36 {
			er := &rd{b: pp.Data}
			er.skip(4, "")
			p.RxFrameErr, p.RxOverErr, p.RxCRCErr, p.Collisions = er.u64(""), er.u64(""), er.u64(""), er.u64("")
			p.NoEthernet = false
			continue
		}
		p.OtherProps = append(p.OtherProps, pp)
	}
	return p, pr.err
}

// --- encoding ---

func mpType(reply bool, v uint8) (uint8, error) {
	if reply {
		return typeOf(kMultipartReply, v)
	}
	return typeOf(kMultipartRequest, v)
}

func mpHeader(v uint8, w *wr, mp Multipart, typ uint16) {
	w.u16(typ)
	w.u16(mp.Flags)
	if v != Version10 {
		w.zeros(4)
	}
}

func nxMPHeader(v uint8, w *wr, mp Multipart, sub uint32) {
	mpHeader(v, w, mp, MPExperimenter)
	w.u32(NiciraExperimenter)
	w.u32(sub)
	if v == Version10 {
		w.zeros(4)
	}
}

func (m *MultipartRaw) msgType(v uint8) (uint8, error) { return mpType(m.Reply, v) }
func (m *MultipartRaw) appendBody(v uint8, w *wr) error {
	mpHeader(v, w, m.Multipart, m.Type)
	if m.Type == MPExperimenter {
		w.u32(m.Experimenter)
		switch {
		case v != Version10:
			w.u32(m.ExpType)
		case m.Experimenter == NiciraExperimenter:
			w.u32(m.ExpType)
			w.zeros(4)
		case m.ExpType != 0:
			return fmt.Errorf("%w: vendor stats subtype in OpenFlow 1.0", ErrUnencodable)
		}
	}
	w.bytes(m.Body)
	return nil
}

func (m *DescRequest) msgType(v uint8) (uint8, error) { return mpType(false, v) }
func (m *DescRequest) appendBody(v uint8, w *wr) error {
	mpHeader(v, w, m.Multipart, MPDesc)
	return nil
}

func (m *DescReply) msgType(v uint8) (uint8, error) { return mpType(true, v) }
func (m *DescReply) appendBody(v uint8, w *wr) error {
	mpHeader(v, w, m.Multipart, MPDesc)
	w.str(m.MfrDesc, 256)
	w.str(m.HWDesc, 256)
	w.str(m.SWDesc, 256)
	w.str(m.SerialNum, 32)
	w.str(m.DPDesc, 256)
	return nil
}

func (m *FlowStatsRequest) msgType(v uint8) (uint8, error) { return mpType(false, v) }
func (m *FlowStatsRequest) appendBody(v uint8, w *wr) error {
	if m.Nicira {
		sub := uint32(nxstFlow)
		if m.Aggregate {
			sub = nxstAggregate
		}
		nxMPHeader(v, w, m.Multipart, sub)
		op, err := port10Wire(m.OutPort)
		if err != nil {
			return err
		}
		w.u16(op)
		at := w.pos()
		w.u16(0)
		w.u8(m.TableID)
		w.zeros(3)
		n, err := appendNXMatch(w, m.Match)
		if err != nil {
			return err
		}
		w.put16(at, uint16(n))
		return nil
	}
	typ := MPFlow
	if m.Aggregate {
		typ = MPAggregate
	}
	mpHeader(v, w, m.Multipart, typ)
	if v == Version10 {
		op, err := port10Wire(m.OutPort)
		if err != nil {
			return err
		}
		m.Match10.append(w)
		w.u8(m.TableID)
		w.zeros(1)
		w.u16(op)
		return nil
	}
	w.u8(m.TableID)
	w.zeros(3)
	w.u32(m.OutPort)
	w.u32(m.OutGroup)
	w.zeros(4)
	w.u64(m.Cookie)
	w.u64(m.CookieMask)
	return appendOXMMatch(w, m.Match)
}

func (m *FlowStatsReply) msgType(v uint8) (uint8, error) { return mpType(true, v) }
func (m *FlowStatsReply) appendBody(v uint8, w *wr) error {
	if m.Nicira {
		nxMPHeader(v, w, m.Multipart, nxstFlow)
	} else {
		mpHeader(v, w, m.Multipart, MPFlow)
	}
	for i := range m.Entries {
		e := &m.Entries[i]
		start := w.pos()
		w.u16(0)
		var err error
		switch {
		case m.Nicira:
			err = e.appendNX(v, w)
		case v == Version10:
			w.u8(e.TableID)
			w.zeros(1)
			e.Match10.append(w)
			w.u32(e.DurationSec)
			w.u32(e.DurationNsec)
			w.u16(e.Priority)
			w.u16(e.IdleTimeout)
			w.u16(e.HardTimeout)
			w.zeros(6)
			w.u64(e.Cookie)
			w.u64(e.PacketCount)
			w.u64(e.ByteCount)
			err = appendActions(v, w, e.Actions)
		case v == Version15:
			w.zeros(2)
			w.u8(e.TableID)
			w.zeros(1)
			w.u16(e.Priority)
			w.u16(e.IdleTimeout)
			w.u16(e.HardTimeout)
			w.u16(e.Flags)
			w.u16(e.Importance)
			w.u64(e.Cookie)
			if err = appendOXMMatch(w, e.Match); err == nil {
				appendOXS(w, oxsStats{present: e.Stats15 &^ OXSFlowCount, durSec: e.DurationSec, durNsec: e.DurationNsec,
					idleSec: e.IdleSec, idleNsec: e.IdleNsec, packets: e.PacketCount, bytes: e.ByteCount})
				err = appendInstructions(v, w, e.Instructions)
			}
		default:
			w.u8(e.TableID)
			w.zeros(1)
			w.u32(e.DurationSec)
			w.u32(e.DurationNsec)
			w.u16(e.Priority)
			w.u16(e.IdleTimeout)
			w.u16(e.HardTimeout)
			w.u16(e.Flags)
			if v >= Version14 {
				w.u16(e.Importance)
				w.zeros(2)
			} else {
				w.zeros(4)
			}
			w.u64(e.Cookie)
			w.u64(e.PacketCount)
			w.u64(e.ByteCount)
			if err = appendOXMMatch(w, e.Match); err == nil {
				err = appendInstructions(v, w, e.Instructions)
			}
		}
		if err != nil {
			return err
		}
		if w.pos()-start > 0xffff {
			return ErrTooLong
		}
		w.put16(start, uint16(w.pos()-start))
	}
	return nil
}

func (e *FlowStats) appendNX(v uint8, w *wr) error {
	w.u8(e.TableID)
	w.zeros(1)
	w.u32(e.DurationSec)
	w.u32(e.DurationNsec)
	w.u16(e.Priority)
	w.u16(e.IdleTimeout)
	w.u16(e.HardTimeout)
	at := w.pos()
	w.u16(0)
	w.u16(e.IdleAge)
	w.u16(e.HardAge)
	w.u64(e.Cookie)
	w.u64(e.PacketCount)
	w.u64(e.ByteCount)
	n, err := appendNXMatch(w, e.Match)
	if err != nil {
		return err
	}
	w.put16(at, uint16(n))
	return appendActions(v, w, e.Actions)
}

func (m *AggregateReply) msgType(v uint8) (uint8, error) { return mpType(true, v) }
func (m *AggregateReply) appendBody(v uint8, w *wr) error {
	if m.Nicira {
		nxMPHeader(v, w, m.Multipart, nxstAggregate)
	} else {
		mpHeader(v, w, m.Multipart, MPAggregate)
	}
	if v == Version15 && !m.Nicira {
		appendOXS(w, oxsStats{present: m.Stats15 & (OXSFlowCount | OXSPacketCount | OXSByteCount),
			flows: m.FlowCount, packets: m.PacketCount, bytes: m.ByteCount})
		return nil
	}
	w.u64(m.PacketCount)
	w.u64(m.ByteCount)
	w.u32(m.FlowCount)
	w.zeros(4)
	return nil
}

func (m *TableStatsRequest) msgType(v uint8) (uint8, error) { return mpType(false, v) }
func (m *TableStatsRequest) appendBody(v uint8, w *wr) error {
	mpHeader(v, w, m.Multipart, MPTable)
	return nil
}

func (m *TableStatsReply) msgType(v uint8) (uint8, error) { return mpType(true, v) }
func (m *TableStatsReply) appendBody(v uint8, w *wr) error {
	mpHeader(v, w, m.Multipart, MPTable)
	for _, t := range m.Entries {
		w.u8(t.TableID)
		w.zeros(3)
		if v == Version10 {
			w.str(t.Name, 32)
			w.u32(t.Wildcards)
			w.u32(t.MaxEntries)
		}
		w.u32(t.ActiveCount)
		w.u64(t.LookupCount)
		w.u64(t.MatchedCount)
	}
	return nil
}

func (m *PortStatsRequest) msgType(v uint8) (uint8, error) { return mpType(false, v) }
func (m *PortStatsRequest) appendBody(v uint8, w *wr) error {
	mpHeader(v, w, m.Multipart, MPPort)
	if v == Version10 {
		p, err := port10Wire(m.PortNo)
		if err != nil {
			return err
		}
		w.u16(p)
		w.zeros(6)
		return nil
	}
	w.u32(m.PortNo)
	w.zeros(4)
	return nil
}

func (m *PortStatsReply) msgType(v uint8) (uint8, error) { return mpType(true, v) }
func (m *PortStatsReply) appendBody(v uint8, w *wr) error {
	mpHeader(v, w, m.Multipart, MPPort)
	for i := range m.Entries {
		p := &m.Entries[i]
		if v < Version14 {
			if v == Version10 {
				n, err := port10Wire(p.PortNo)
				if err != nil {
					return err
				}
				w.u16(n)
				w.zeros(6)
			} else {
				w.u32(p.PortNo)
				w.zeros(4)
			}
			for _, x := range []uint64{p.RxPackets, p.TxPackets, p.RxBytes, p.TxBytes, p.RxDropped, p.TxDropped, p.RxErrors, p.TxErrors, p.RxFrameErr, p.RxOverErr, p.RxCRCErr, p.Collisions} {
				w.u64(x)
			}
			if v == Version13 {
				w.u32(p.DurationSec)
				w.u32(p.DurationNsec)
			}
			continue
		}
		start := w.pos()
		w.u16(0)
		w.zeros(2)
		w.u32(p.PortNo)
		w.u32(p.DurationSec)
		w.u32(p.DurationNsec)
		for _, x := range []uint64{p.RxPackets, p.TxPackets, p.RxBytes, p.TxBytes, p.RxDropped, p.TxDropped, p.RxErrors, p.TxErrors} {
			w.u64(x)
		}
		if !p.NoEthernet {
			w.u16(0)
			w.u16(40)
			w.zeros(4)
			for _, x := range []uint64{p.RxFrameErr, p.RxOverErr, p.RxCRCErr, p.Collisions} {
				w.u64(x)
			}
		}
		if err := appendProps(w, p.OtherProps); err != nil {
			return err
		}
		if w.pos()-start > 0xffff {
			return ErrTooLong
		}
		w.put16(start, uint16(w.pos()-start))
	}
	return nil
}

func (m *PortDescRequest) msgType(v uint8) (uint8, error) { return mpType(false, v) }
func (m *PortDescRequest) appendBody(v uint8, w *wr) error {
	mpHeader(v, w, m.Multipart, MPPortDesc)
	if v == Version15 {
		w.u32(m.PortNo)
		w.zeros(4)
	}
	return nil
}

func (m *PortDescReply) msgType(v uint8) (uint8, error) { return mpType(true, v) }
func (m *PortDescReply) appendBody(v uint8, w *wr) error {
	mpHeader(v, w, m.Multipart, MPPortDesc)
	for i := range m.Ports {
		if err := m.Ports[i].append(v, w); err != nil {
			return err
		}
	}
	return nil
}

// groupMPHeader writes the header of a group multipart message: the
// Nicira stats header with subtype nx in OpenFlow 1.0, else type typ.
func groupMPHeader(v uint8, w *wr, mp Multipart, typ uint16, nx uint32) {
	if v == Version10 {
		nxMPHeader(v, w, mp, nx)
		return
	}
	mpHeader(v, w, mp, typ)
}

func no10(v uint8, what string) error {
	if v == Version10 {
		return fmt.Errorf("%w: %s in OpenFlow 1.0", ErrUnencodable, what)
	}
	return nil
}

func (m *GroupStatsRequest) msgType(v uint8) (uint8, error) { return mpType(false, v) }
func (m *GroupStatsRequest) appendBody(v uint8, w *wr) error {
	groupMPHeader(v, w, m.Multipart, MPGroup, nxstGroup)
	w.u32(m.GroupID)
	w.zeros(4)
	return nil
}

func (m *GroupStatsReply) msgType(v uint8) (uint8, error) { return mpType(true, v) }
func (m *GroupStatsReply) appendBody(v uint8, w *wr) error {
	groupMPHeader(v, w, m.Multipart, MPGroup, nxstGroup)
	for _, g := range m.Entries {
		l := 40 + 16*len(g.Buckets)
		if l > 0xffff {
			return ErrTooLong
		}
		w.u16(uint16(l))
		w.zeros(2)
		w.u32(g.GroupID)
		w.u32(g.RefCount)
		w.zeros(4)
		w.u64(g.PacketCount)
		w.u64(g.ByteCount)
		w.u32(g.DurationSec)
		w.u32(g.DurationNsec)
		for _, b := range g.Buckets {
			w.u64(b.PacketCount)
			w.u64(b.ByteCount)
		}
	}
	return nil
}

func (m *GroupDescRequest) msgType(v uint8) (uint8, error) { return mpType(false, v) }
func (m *GroupDescRequest) appendBody(v uint8, w *wr) error {
	groupMPHeader(v, w, m.Multipart, MPGroupDesc, nxstGroupDesc)
	if GroupBodies15(v) {
		w.u32(m.GroupID)
		w.zeros(4)
	}
	return nil
}

func (m *GroupDescReply) msgType(v uint8) (uint8, error) { return mpType(true, v) }
func (m *GroupDescReply) appendBody(v uint8, w *wr) error {
	groupMPHeader(v, w, m.Multipart, MPGroupDesc, nxstGroupDesc)
	for i := range m.Entries {
		g := &m.Entries[i]
		start := w.pos()
		w.u16(0)
		w.u8(g.Type)
		w.zeros(1)
		w.u32(g.GroupID)
		if !GroupBodies15(v) {
			if err := appendBuckets(v, w, g.Buckets); err != nil {
				return err
			}
		} else {
			at := w.pos()
			w.u16(0)
			w.zeros(6)
			bs := w.pos()
			if err := appendBuckets(v, w, g.Buckets); err != nil {
				return err
			}
			w.put16(at, uint16(w.pos()-bs))
			if err := appendProps(w, g.Props); err != nil {
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

// decodeEach decodes records with dec until r is used up, appending them to
// out (so that the caller chooses between a nil and an empty list), and
// returns the first error, dec's or r's.
func decodeEach[T any](v uint8, r *rd, out []T, dec func(uint8, *rd) (T, error)) ([]T, error) {
	for r.err == nil && r.len() > 0 {
		e, err := dec(v, r)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, r.err
}
