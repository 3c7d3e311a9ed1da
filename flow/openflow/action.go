package openflow

import (
	"fmt"
)

// Action is one decoded action. The implementations are the Act* types
// below; actions that this package recognises but does not decode field by
// field (bundle, learn2, ...) are *ActRaw and re-encode to
// the same bytes. An action this package does not know is a decoding error
// (an *Error of type OFPET_BAD_ACTION), never a panic.
type Action interface {
	appendAction(v uint8, w *wr) error
}

// Standard action types: OpenFlow 1.0 numbering (a10*, unexported: the
// Act* types stand for them) and 1.1+ (ActType*, the Type of ActEthertype,
// ActSimple, ActU32 and ActTTL).
const (
	a10Output     = 0
	a10SetVLANVID = 1
	a10SetVLANPCP = 2
	a10StripVLAN  = 3
	a10SetDLSrc   = 4
	a10SetDLDst   = 5
	a10SetNWSrc   = 6
	a10SetNWDst   = 7
	a10SetNWTOS   = 8
	a10SetTPSrc   = 9
	a10SetTPDst   = 10
	a10Enqueue    = 11

	ActTypeOutput     = 0
	ActTypeCopyTTLOut = 11
	ActTypeCopyTTLIn  = 12
	ActTypeSetMPLSTTL = 15
	ActTypeDecMPLSTTL = 16
	ActTypePushVLAN   = 17
	ActTypePopVLAN    = 18
	ActTypePushMPLS   = 19
	ActTypePopMPLS    = 20
	ActTypeSetQueue   = 21
	ActTypeGroup      = 22
	ActTypeSetNWTTL   = 23
	ActTypeDecNWTTL   = 24
	ActTypeSetField   = 25
	ActTypePushPBB    = 26
	ActTypePopPBB     = 27
	a15CopyField      = 28
	ActTypeMeter      = 29 // OpenFlow 1.5+

	aExperimenter = 0xffff
)

// Nicira action subtypes decoded here; NXAct* are the Subtype of ActNX.
const (
	nxResubmit      = 1
	nxSetTunnel     = 2
	nxRegMove       = 6
	nxRegLoad       = 7
	nxNote          = 8
	nxSetTunnel64   = 9
	nxResubmitTable = 14
	nxOutputReg     = 15
	NXActExit       = 17
	NXActDecTTL     = 18
	nxController    = 20
	nxOutputReg2    = 32
	nxRegLoad2      = 33
	nxConjunction   = 34
	nxController2   = 37
	nxGroup         = 40 // NXAST_GROUP, OpenFlow 1.0's group action
	nxClone         = 42
	NXActCTClear    = 43
	nxResubmitCT    = 44
)

// Nicira action subtypes accepted and kept raw.
var nxRawSubtypes = map[uint16]string{
	4: "set_queue", 5: "pop_queue", 10: "multipath", 12: "bundle", 13: "bundle_load",
	19: "fin_timeout", 21: "dec_ttl_cnt_ids", 22: "write_metadata",
	23: "push_mpls", 24: "pop_mpls", 25: "set_mpls_ttl", 26: "dec_mpls_ttl",
	27: "stack_push", 28: "stack_pop", 29: "sample", 30: "set_mpls_label", 31: "set_mpls_tc",
	38: "sample2", 39: "output_trunc", 41: "sample3",
	45: "learn2", 46: "encap", 47: "decap", 48: "dec_nsh_ttl", 49: "check_pkt_larger",
	50: "delete_field", 0xfe: "debug_slow", 0xff: "debug_recirc",
}

// maxActionDepth bounds nesting (clone inside clone ...).
const maxActionDepth = 16

// ActOutput outputs to a port (OFPAT_OUTPUT); MaxLen matters for the
// controller port.
type ActOutput struct {
	Port   uint32
	MaxLen uint16
}

// ActEnqueue is OpenFlow 1.0's OFPAT_ENQUEUE.
type ActEnqueue struct {
	Port    uint32
	QueueID uint32
}

// ActSetVLANVID is OpenFlow 1.0's mod_vlan_vid.
type ActSetVLANVID struct{ VID uint16 }

// ActSetVLANPCP is OpenFlow 1.0's mod_vlan_pcp.
type ActSetVLANPCP struct{ PCP uint8 }

// ActPopVLAN is strip_vlan (1.0's OFPAT_STRIP_VLAN, 1.1+'s OFPAT_POP_VLAN).
type ActPopVLAN struct{}

// ActSetDLAddr is OpenFlow 1.0's mod_dl_src / mod_dl_dst.
type ActSetDLAddr struct {
	Dst  bool
	Addr [6]byte
}

// ActSetNWAddr is OpenFlow 1.0's mod_nw_src / mod_nw_dst.
type ActSetNWAddr struct {
	Dst  bool
	Addr uint32
}

// ActSetNWTOS is OpenFlow 1.0's mod_nw_tos.
type ActSetNWTOS struct{ TOS uint8 }

// ActSetTPPort is mod_tp_src / mod_tp_dst as OpenFlow 1.0 and 1.1 write
// them (OFPAT_SET_TP_SRC/DST, types 9 and 10 in both).
type ActSetTPPort struct {
	Dst  bool
	Port uint16
}

// ActEthertype is push_vlan, push_mpls, pop_mpls or push_pbb (1.1+), by Type.
type ActEthertype struct {
	Type      uint16 // ActTypePushVLAN, ActTypePushMPLS, ActTypePopMPLS or ActTypePushPBB
	EtherType uint16
}

// ActSimple is a 1.1+ action without arguments, by Type: copy_ttl_out,
// copy_ttl_in, dec_mpls_ttl, dec_ttl (OFPAT_DEC_NW_TTL), pop_pbb.
type ActSimple struct{ Type uint16 }

// ActU32 is a 1.1+ action with one 32-bit argument: set_queue, group,
// and OpenFlow 1.5's meter. In OpenFlow 1.0 a group action is NXAST_GROUP.
type ActU32 struct {
	Type  uint16 // ActTypeSetQueue, ActTypeGroup or ActTypeMeter
	Value uint32
}

// ActTTL is set_mpls_ttl or set_nw_ttl (1.1+).
type ActTTL struct {
	Type uint16 // ActTypeSetMPLSTTL or ActTypeSetNWTTL
	TTL  uint8
}

// ActSetField is OFPAT_SET_FIELD (1.2+) or, with Nicira set, NXAST_REG_LOAD2;
// Field.Mask is set for a masked load.
type ActSetField struct {
	Field  Field
	Nicira bool
}

// ActResubmit is NXAST_RESUBMIT (Table 255, not WithTable),
// NXAST_RESUBMIT_TABLE or NXAST_RESUBMIT_TABLE_CT (CT). InPort 0xfff8
// (OFPP_IN_PORT) keeps the packet's in_port.
type ActResubmit struct {
	InPort    uint16
	Table     uint8
	WithTable bool
	CT        bool
}

// ActRegLoad is NXAST_REG_LOAD: load Value into Dst[Ofs..Ofs+NBits).
type ActRegLoad struct {
	Dst   FieldHeader
	Ofs   uint16
	NBits uint16
	Value uint64
}

// ActRegMove is NXAST_REG_MOVE or, with CopyField, OpenFlow 1.5's
// OFPAT_COPY_FIELD (which ovs-ofctl uses for move in 1.5).
type ActRegMove struct {
	NBits          uint16
	SrcOfs, DstOfs uint16
	Src, Dst       FieldHeader
	CopyField      bool
}

// ActOutputReg is NXAST_OUTPUT_REG (or OUTPUT_REG2 with V2): output to the
// port in Src[Ofs..Ofs+NBits).
type ActOutputReg struct {
	Src    FieldHeader
	Ofs    uint16
	NBits  uint16
	MaxLen uint16
	V2     bool
}

// ActNote is NXAST_NOTE; Data includes the padding to 8 bytes as received.
type ActNote struct{ Data []byte }

// ActNX is a Nicira action without arguments, by Subtype: exit, dec_ttl,
// ct_clear.
type ActNX struct{ Subtype uint16 }

// ActSetTunnel is NXAST_SET_TUNNEL (32-bit) or NXAST_SET_TUNNEL64.
type ActSetTunnel struct {
	TunID uint64
	Is64  bool
}

// ActController is NXAST_CONTROLLER.
type ActController struct {
	MaxLen       uint16
	ControllerID uint16
	Reason       uint8
}

// ActController2 is NXAST_CONTROLLER2; the Has* flags say which
// properties are present.
type ActController2 struct {
	MaxLen       uint16
	ControllerID uint16
	Reason       uint8
	UserData     []byte
	Pause        bool
	MeterID      uint32
	HasMaxLen    bool
	HasID        bool
	HasReason    bool
	HasUserData  bool
	HasMeterID   bool
}

// ActConjunction is NXAST_CONJUNCTION: conjunction(ID, Clause/NClauses),
// with Clause counted from 0 on the wire.
type ActConjunction struct {
	Clause, NClauses uint8
	ID               uint32
}

// ActClone is NXAST_CLONE.
type ActClone struct{ Actions []Action }

// ActRaw is an action recognised but kept as bytes. For a Nicira action,
// Experimenter is NiciraExperimenter and Data follows the subtype; for a
// standard one, Data follows the 4-byte type/length header.
type ActRaw struct {
	Type         uint16
	Experimenter uint32
	Subtype      uint16
	Data         []byte
}

// DecodeActions decodes a list of actions of version v.
func DecodeActions(v uint8, b []byte) ([]Action, error) {
	return decodeActions(v, &rd{b: b}, 0)
}

// EncodeActions encodes actions for version v.
func EncodeActions(v uint8, acts []Action) ([]byte, error) {
	w := &wr{}
	err := appendActions(v, w, acts)
	return w.b, err
}

func appendActions(v uint8, w *wr, acts []Action) error {
	for _, a := range acts {
		if err := a.appendAction(v, w); err != nil {
			return err
		}
	}
	return nil
}

func decodeActions(v uint8, r *rd, depth int) ([]Action, error) {
	if depth > maxActionDepth {
		return nil, badAction(CodeBadActionArgument, "actions nested deeper than %d", maxActionDepth)
	}
	// Counted first, so that the list is one allocation, not its growth.
	acts := make([]Action, 0, countTLVs(r.b))
	for r.err == nil && r.len() > 0 {
		if r.len() < 8 {
			return nil, badAction(CodeBadActionLen, "%d bytes left over after actions", r.len())
		}
		t := uint16(r.b[0])<<8 | uint16(r.b[1])
		l := int(r.b[2])<<8 | int(r.b[3])
		if l < 8 || l%8 != 0 || l > r.len() {
			return nil, badAction(CodeBadActionLen, "action type %d length %d", t, l)
		}
		ar := r.sub(l, "action")
		ar.skip(4, "action")
		a, err := decodeAction(v, t, ar, depth)
		if err != nil {
			return nil, relabel(err, ErrBadAction, ErrTypeBadAction, CodeBadActionLen)
		}
		if ar.err != nil {
			return nil, relabel(ar.err, ErrBadAction, ErrTypeBadAction, CodeBadActionLen)
		}
		acts = append(acts, a)
	}
	return acts, r.err
}

// fixed checks that an action has exactly n bytes after its 4-byte header.
func fixed(r *rd, t uint16, n int) error {
	if r.len() != n {
		return badAction(CodeBadActionLen, "action type %d length %d", t, r.len()+4)
	}
	return nil
}

func decodeAction(v uint8, t uint16, r *rd, depth int) (Action, error) {
	if t == aExperimenter {
		return decodeExperimenterAction(v, r, depth)
	}
	if v == Version10 {
		return decodeAction10(t, r)
	}
	switch t {
	case ActTypeOutput:
		if err := fixed(r, t, 12); err != nil {
			return nil, err
		}
		a := &ActOutput{Port: r.u32(""), MaxLen: r.u16("")}
		r.skip(6, "")
		return a, nil
	case ActTypeCopyTTLOut, ActTypeCopyTTLIn, ActTypeDecMPLSTTL, ActTypeDecNWTTL, ActTypePopVLAN, ActTypePopPBB:
		if err := fixed(r, t, 4); err != nil {
			return nil, err
		}
		r.skip(4, "")
		if t == ActTypePopVLAN {
			return &ActPopVLAN{}, nil
		}
		return &ActSimple{Type: t}, nil
	case ActTypeSetMPLSTTL, ActTypeSetNWTTL:
		if err := fixed(r, t, 4); err != nil {
			return nil, err
		}
		a := &ActTTL{Type: t, TTL: r.u8("")}
		r.skip(3, "")
		return a, nil
	case ActTypePushVLAN, ActTypePushMPLS, ActTypePopMPLS, ActTypePushPBB:
		if err := fixed(r, t, 4); err != nil {
			return nil, err
		}
		a := &ActEthertype{Type: t, EtherType: r.u16("")}
		r.skip(2, "")
		return a, nil
	case ActTypeSetQueue, ActTypeGroup:
		if err := fixed(r, t, 4); err != nil {
			return nil, err
		}
		return &ActU32{Type: t, Value: r.u32("")}, nil
	case ActTypeSetField:
		f, err := decodeField(r)
		if err != nil {
			return nil, err
		}
		if err := zeroPad(r); err != nil {
			return nil, err
		}
		return &ActSetField{Field: f}, nil
	case a10SetTPSrc, a10SetTPDst:
		// OpenFlow 1.1's OFPAT_SET_TP_SRC/DST keep OpenFlow 1.0's
		// numbers and layout. Open vSwitch takes them in every later
		// version too: ovs-ofctl writes mod_tp_src so in OpenFlow 1.2+
		// when the match names no L4 protocol (a packet out), since no
		// OXM field then fits.
		if err := fixed(r, t, 4); err != nil {
			return nil, err
		}
		a := &ActSetTPPort{Dst: t == a10SetTPDst, Port: r.u16("")}
		r.skip(2, "")
		return a, nil
	case a15CopyField:
		if v == Version15 {
			a := &ActRegMove{CopyField: true, NBits: r.u16(""), SrcOfs: r.u16(""), DstOfs: r.u16("")}
			r.skip(2, "")
			a.Src, _ = decodeFieldHeader(r)
			a.Dst, _ = decodeFieldHeader(r)
			if r.err != nil {
				return nil, r.err
			}
			return a, zeroPad(r)
		}
	case ActTypeMeter:
		if v == Version15 {
			if err := fixed(r, t, 4); err != nil {
				return nil, err
			}
			return &ActU32{Type: t, Value: r.u32("")}, nil
		}
	}
	return nil, badAction(CodeBadActionType, "unknown action type %d for version 0x%02x", t, v).withItem(ActionTypeName(v, t))
}

// zeroPad consumes the rest of an action, which must be padding below 8 bytes.
func zeroPad(r *rd) error {
	if r.len() >= 8 {
		return badAction(CodeBadActionLen, "%d bytes of padding", r.len())
	}
	r.skip(r.len(), "")
	return nil
}

func decodeAction10(t uint16, r *rd) (Action, error) {
	switch t {
	case a10Output:
		if err := fixed(r, t, 4); err != nil {
			return nil, err
		}
		return &ActOutput{Port: port10(r.u16("")), MaxLen: r.u16("")}, nil
	case a10SetVLANVID:
		if err := fixed(r, t, 4); err != nil {
			return nil, err
		}
		a := &ActSetVLANVID{VID: r.u16("")}
		r.skip(2, "")
		return a, nil
	case a10SetVLANPCP, a10SetNWTOS:
		if err := fixed(r, t, 4); err != nil {
			return nil, err
		}
		x := r.u8("")
		r.skip(3, "")
		if t == a10SetNWTOS {
			return &ActSetNWTOS{TOS: x}, nil
		}
		return &ActSetVLANPCP{PCP: x}, nil
	case a10StripVLAN:
		if err := fixed(r, t, 4); err != nil {
			return nil, err
		}
		r.skip(4, "")
		return &ActPopVLAN{}, nil
	case a10SetDLSrc, a10SetDLDst:
		if err := fixed(r, t, 12); err != nil {
			return nil, err
		}
		a := &ActSetDLAddr{Dst: t == a10SetDLDst}
		copy(a.Addr[:], r.bytes(6, ""))
		r.skip(6, "")
		return a, nil
	case a10SetNWSrc, a10SetNWDst:
		if err := fixed(r, t, 4); err != nil {
			return nil, err
		}
		return &ActSetNWAddr{Dst: t == a10SetNWDst, Addr: r.u32("")}, nil
	case a10SetTPSrc, a10SetTPDst:
		if err := fixed(r, t, 4); err != nil {
			return nil, err
		}
		a := &ActSetTPPort{Dst: t == a10SetTPDst, Port: r.u16("")}
		r.skip(2, "")
		return a, nil
	case a10Enqueue:
		if err := fixed(r, t, 12); err != nil {
			return nil, err
		}
		a := &ActEnqueue{Port: port10(r.u16(""))}
		r.skip(6, "")
		a.QueueID = r.u32("")
		return a, nil
	}
	return nil, badAction(CodeBadActionType, "unknown OpenFlow 1.0 action type %d", t).withItem(ActionTypeName(Version10, t))
}

func decodeExperimenterAction(v uint8, r *rd, depth int) (Action, error) {
	exp := r.u32("experimenter action")
	if exp != NiciraExperimenter {
		return nil, badAction(CodeBadActionExperimenter, "experimenter 0x%08x", exp).withItem(fmt.Sprintf("experimenter action 0x%08x", exp))
	}
	st := r.u16("nicira action")
	if r.err != nil {
		return nil, r.err
	}
	// r now holds the bytes after the subtype; fixed sizes are counted from
	// there (a 16-byte action leaves 6).
	fx := func(n int) error {
		if r.len() != n {
			return badAction(CodeBadActionLen, "nicira action %d length %d", st, r.len()+10)
		}
		return nil
	}
	switch st {
	case nxResubmit, nxResubmitTable, nxResubmitCT:
		if err := fx(6); err != nil {
			return nil, err
		}
		a := &ActResubmit{InPort: r.u16(""), Table: 255}
		if st != nxResubmit {
			a.WithTable, a.CT = true, st == nxResubmitCT
			a.Table = r.u8("")
			r.skip(3, "")
		} else {
			r.skip(4, "")
		}
		return a, nil
	case nxSetTunnel:
		if err := fx(6); err != nil {
			return nil, err
		}
		r.skip(2, "")
		return &ActSetTunnel{TunID: uint64(r.u32(""))}, nil
	case nxSetTunnel64:
		if err := fx(14); err != nil {
			return nil, err
		}
		r.skip(6, "")
		return &ActSetTunnel{TunID: r.u64(""), Is64: true}, nil
	case nxRegLoad:
		if err := fx(14); err != nil {
			return nil, err
		}
		on := r.u16("")
		fh, n := decodeFieldHeader(r)
		if n != int(fh.Len) || fh.HasMask {
			return nil, badAction(CodeBadActionArgument, "reg_load destination")
		}
		return &ActRegLoad{Ofs: on >> 6, NBits: on&0x3f + 1, Dst: fh, Value: r.u64("")}, nil
	case nxRegMove:
		a := &ActRegMove{NBits: r.u16(""), SrcOfs: r.u16(""), DstOfs: r.u16("")}
		a.Src, _ = decodeFieldHeader(r)
		a.Dst, _ = decodeFieldHeader(r)
		if r.err != nil {
			return nil, r.err
		}
		return a, zeroPad(r)
	case nxOutputReg:
		if err := fx(14); err != nil {
			return nil, err
		}
		on := r.u16("")
		a := &ActOutputReg{Ofs: on >> 6, NBits: on&0x3f + 1}
		a.Src, _ = decodeFieldHeader(r)
		a.MaxLen = r.u16("")
		r.skip(6, "")
		return a, nil
	case nxOutputReg2:
		on := r.u16("")
		a := &ActOutputReg{Ofs: on >> 6, NBits: on&0x3f + 1, V2: true, MaxLen: r.u16("")}
		a.Src, _ = decodeFieldHeader(r)
		if r.err != nil {
			return nil, r.err
		}
		return a, zeroPad(r)
	case nxRegLoad2:
		f, err := decodeField(r)
		if err != nil {
			return nil, err
		}
		if err := zeroPad(r); err != nil {
			return nil, err
		}
		return &ActSetField{Field: f, Nicira: true}, nil
	case nxNote:
		return &ActNote{Data: r.rest()}, nil
	case NXActExit, NXActDecTTL, NXActCTClear:
		if err := fx(6); err != nil {
			return nil, err
		}
		r.skip(6, "")
		return &ActNX{Subtype: st}, nil
	case nxController:
		if err := fx(6); err != nil {
			return nil, err
		}
		a := &ActController{MaxLen: r.u16(""), ControllerID: r.u16(""), Reason: r.u8("")}
		r.skip(1, "")
		return a, nil
	case nxController2:
		return decodeController2(r)
	case nxConjunction:
		if err := fx(6); err != nil {
			return nil, err
		}
		return &ActConjunction{Clause: r.u8(""), NClauses: r.u8(""), ID: r.u32("")}, nil
	case nxLearn:
		return decodeLearn(r)
	case nxCT:
		return decodeCT(v, r, depth)
	case nxNAT:
		return decodeNAT(r)
	case nxGroup:
		if v != Version10 {
			break
		}
		if err := fx(6); err != nil {
			return nil, err
		}
		r.skip(2, "")
		return &ActU32{Type: ActTypeGroup, Value: r.u32("")}, nil
	case nxClone:
		r.skip(6, "clone")
		if r.err != nil {
			return nil, r.err
		}
		acts, err := decodeActions(v, r, depth+1)
		if err != nil {
			return nil, err
		}
		return &ActClone{Actions: acts}, nil
	}
	if _, ok := nxRawSubtypes[st]; ok {
		return &ActRaw{Type: aExperimenter, Experimenter: exp, Subtype: st, Data: r.rest()}, nil
	}
	return nil, badAction(CodeBadActionExpType, "unknown nicira action subtype %d", st).withItem(NXActionName(st))
}

// Controller2 property types.
const (
	nxac2MaxLen   = 0
	nxac2ID       = 1
	nxac2Reason   = 2
	nxac2UserData = 3
	nxac2Pause    = 4
	nxac2MeterID  = 5
)

func decodeController2(r *rd) (Action, error) {
	r.skip(6, "controller2")
	props, err := decodeProps(r, "controller2 property")
	if err != nil {
		return nil, err
	}
	a := &ActController2{}
	for _, p := range props {
		pr := &rd{b: p.Data}
		switch p.Type {
		case nxac2MaxLen:
			a.MaxLen, a.HasMaxLen = pr.u16("max_len"), true
		case nxac2ID:
			a.ControllerID, a.HasID = pr.u16("controller_id"), true
		case nxac2Reason:
			a.Reason, a.HasReason = pr.u8("reason"), true
		case nxac2UserData:
			a.UserData, a.HasUserData = pr.rest(), true
		case nxac2Pause:
			a.Pause = true
		case nxac2MeterID:
			a.MeterID, a.HasMeterID = pr.u32("meter_id"), true
		default:
			return nil, badAction(CodeBadActionArgument, "controller2 property %d", p.Type)
		}
		if pr.err != nil {
			return nil, badAction(CodeBadActionLen, "controller2 property %d length %d", p.Type, len(p.Data)+4)
		}
		if pr.len() != 0 && p.Type != nxac2MaxLen && p.Type != nxac2ID && p.Type != nxac2Reason {
			// As Open vSwitch, a 16- or 8-bit value may come with
			// padding: it sends them in properties of 8 bytes.
			return nil, badAction(CodeBadActionLen, "controller2 property %d length %d", p.Type, len(p.Data)+4)
		}
	}
	return a, nil
}

// action encoding helpers: begin writes type and a placeholder length;
// end pads to 8 and fills the length in.
func begin(w *wr, t uint16) int {
	start := w.pos()
	w.u16(t)
	w.u16(0)
	return start
}

func beginNX(w *wr, subtype uint16) int {
	start := begin(w, aExperimenter)
	w.u32(NiciraExperimenter)
	w.u16(subtype)
	return start
}

func end(w *wr, start int) error {
	w.pad8(start)
	l := w.pos() - start
	if l > 0xfff8 {
		return fmt.Errorf("%w: action of %d bytes", ErrTooLong, l)
	}
	w.put16(start+2, uint16(l))
	return nil
}

func only10(v uint8, what string) error {
	if v != Version10 {
		return fmt.Errorf("%w: %s exists only in OpenFlow 1.0", ErrUnencodable, what)
	}
	return nil
}

func only13(v uint8, what string) error {
	if v == Version10 {
		return fmt.Errorf("%w: %s does not exist in OpenFlow 1.0", ErrUnencodable, what)
	}
	return nil
}

func (a *ActOutput) appendAction(v uint8, w *wr) error {
	s := begin(w, a10Output)
	if v == Version10 {
		p, err := port10Wire(a.Port)
		if err != nil {
			return err
		}
		w.u16(p)
		w.u16(a.MaxLen)
	} else {
		w.u32(a.Port)
		w.u16(a.MaxLen)
	}
	return end(w, s)
}

func (a *ActEnqueue) appendAction(v uint8, w *wr) error {
	if err := only10(v, "enqueue"); err != nil {
		return err
	}
	p, err := port10Wire(a.Port)
	if err != nil {
		return err
	}
	s := begin(w, a10Enqueue)
	w.u16(p)
	w.zeros(6)
	w.u32(a.QueueID)
	return end(w, s)
}

func (a *ActSetVLANVID) appendAction(v uint8, w *wr) error {
	if err := only10(v, "mod_vlan_vid"); err != nil {
		return err
	}
	s := begin(w, a10SetVLANVID)
	w.u16(a.VID)
	return end(w, s)
}

func (a *ActSetVLANPCP) appendAction(v uint8, w *wr) error {
	if err := only10(v, "mod_vlan_pcp"); err != nil {
		return err
	}
	s := begin(w, a10SetVLANPCP)
	w.u8(a.PCP)
	return end(w, s)
}

func (a *ActPopVLAN) appendAction(v uint8, w *wr) error {
	t := uint16(ActTypePopVLAN)
	if v == Version10 {
		t = a10StripVLAN
	}
	return end(w, begin(w, t))
}

func (a *ActSetDLAddr) appendAction(v uint8, w *wr) error {
	if err := only10(v, "mod_dl_src/dst"); err != nil {
		return err
	}
	t := uint16(a10SetDLSrc)
	if a.Dst {
		t = a10SetDLDst
	}
	s := begin(w, t)
	w.bytes(a.Addr[:])
	w.zeros(6)
	return end(w, s)
}

func (a *ActSetNWAddr) appendAction(v uint8, w *wr) error {
	if err := only10(v, "mod_nw_src/dst"); err != nil {
		return err
	}
	t := uint16(a10SetNWSrc)
	if a.Dst {
		t = a10SetNWDst
	}
	s := begin(w, t)
	w.u32(a.Addr)
	return end(w, s)
}

func (a *ActSetNWTOS) appendAction(v uint8, w *wr) error {
	if err := only10(v, "mod_nw_tos"); err != nil {
		return err
	}
	s := begin(w, a10SetNWTOS)
	w.u8(a.TOS)
	return end(w, s)
}

func (a *ActSetTPPort) appendAction(v uint8, w *wr) error {
	t := uint16(a10SetTPSrc)
	if a.Dst {
		t = a10SetTPDst
	}
	s := begin(w, t)
	w.u16(a.Port)
	return end(w, s)
}

func (a *ActEthertype) appendAction(v uint8, w *wr) error {
	if err := only13(v, "push/pop"); err != nil {
		return err
	}
	s := begin(w, a.Type)
	w.u16(a.EtherType)
	return end(w, s)
}

func (a *ActSimple) appendAction(v uint8, w *wr) error {
	if err := only13(v, "ttl action"); err != nil {
		return err
	}
	return end(w, begin(w, a.Type))
}

func (a *ActU32) appendAction(v uint8, w *wr) error {
	if v == Version10 && a.Type == ActTypeGroup {
		s := beginNX(w, nxGroup)
		w.zeros(2)
		w.u32(a.Value)
		return end(w, s)
	}
	if err := only13(v, "set_queue/group"); err != nil {
		return err
	}
	if a.Type == ActTypeMeter && v < Version15 {
		return fmt.Errorf("%w: the meter action before OpenFlow 1.5 (it is an instruction)", ErrUnencodable)
	}
	s := begin(w, a.Type)
	w.u32(a.Value)
	return end(w, s)
}

func (a *ActTTL) appendAction(v uint8, w *wr) error {
	if err := only13(v, "set ttl"); err != nil {
		return err
	}
	s := begin(w, a.Type)
	w.u8(a.TTL)
	return end(w, s)
}

func (a *ActSetField) appendAction(v uint8, w *wr) error {
	var s int
	if a.Nicira {
		s = beginNX(w, nxRegLoad2)
	} else {
		if err := only13(v, "set_field"); err != nil {
			return err
		}
		s = begin(w, ActTypeSetField)
	}
	if err := a.Field.append(w); err != nil {
		return err
	}
	return end(w, s)
}

func (a *ActResubmit) appendAction(_ uint8, w *wr) error {
	st := uint16(nxResubmit)
	switch {
	case a.CT:
		st = nxResubmitCT
	case a.WithTable:
		st = nxResubmitTable
	}
	s := beginNX(w, st)
	w.u16(a.InPort)
	if st != nxResubmit {
		w.u8(a.Table)
	}
	return end(w, s)
}

func (a *ActSetTunnel) appendAction(_ uint8, w *wr) error {
	if a.Is64 {
		s := beginNX(w, nxSetTunnel64)
		w.zeros(6)
		w.u64(a.TunID)
		return end(w, s)
	}
	if a.TunID > 0xffffffff {
		return fmt.Errorf("%w: 64-bit tunnel id in set_tunnel", ErrUnencodable)
	}
	s := beginNX(w, nxSetTunnel)
	w.zeros(2)
	w.u32(uint32(a.TunID))
	return end(w, s)
}

func ofsNBits(ofs, nbits uint16) (uint16, error) {
	if nbits < 1 || nbits > 64 || ofs > 0x3ff {
		return 0, fmt.Errorf("%w: offset %d, %d bits", ErrUnencodable, ofs, nbits)
	}
	return ofs<<6 | (nbits - 1), nil
}

func (a *ActRegLoad) appendAction(_ uint8, w *wr) error {
	on, err := ofsNBits(a.Ofs, a.NBits)
	if err != nil {
		return err
	}
	if a.Dst.Class == ClassExperimenter {
		return fmt.Errorf("%w: reg_load to an experimenter field", ErrUnencodable)
	}
	s := beginNX(w, nxRegLoad)
	w.u16(on)
	a.Dst.append(w)
	w.u64(a.Value)
	return end(w, s)
}

func (a *ActRegMove) appendAction(v uint8, w *wr) error {
	var s int
	if a.CopyField {
		if v < Version15 {
			return fmt.Errorf("%w: copy_field before OpenFlow 1.5", ErrUnencodable)
		}
		s = begin(w, a15CopyField)
		w.u16(a.NBits)
		w.u16(a.SrcOfs)
		w.u16(a.DstOfs)
		w.zeros(2)
		a.Src.append(w)
		a.Dst.append(w)
		return end(w, s)
	}
	s = beginNX(w, nxRegMove)
	w.u16(a.NBits)
	w.u16(a.SrcOfs)
	w.u16(a.DstOfs)
	a.Src.append(w)
	a.Dst.append(w)
	return end(w, s)
}

func (a *ActOutputReg) appendAction(_ uint8, w *wr) error {
	on, err := ofsNBits(a.Ofs, a.NBits)
	if err != nil {
		return err
	}
	if a.V2 {
		s := beginNX(w, nxOutputReg2)
		w.u16(on)
		w.u16(a.MaxLen)
		a.Src.append(w)
		return end(w, s)
	}
	if a.Src.Class == ClassExperimenter {
		return fmt.Errorf("%w: output_reg from an experimenter field", ErrUnencodable)
	}
	s := beginNX(w, nxOutputReg)
	w.u16(on)
	a.Src.append(w)
	w.u16(a.MaxLen)
	w.zeros(6)
	return end(w, s)
}

func (a *ActNote) appendAction(_ uint8, w *wr) error {
	s := beginNX(w, nxNote)
	w.bytes(a.Data)
	return end(w, s)
}

func (a *ActNX) appendAction(_ uint8, w *wr) error {
	return end(w, beginNX(w, a.Subtype))
}

func (a *ActController) appendAction(_ uint8, w *wr) error {
	s := beginNX(w, nxController)
	w.u16(a.MaxLen)
	w.u16(a.ControllerID)
	w.u8(a.Reason)
	return end(w, s)
}

func (a *ActController2) appendAction(_ uint8, w *wr) error {
	s := beginNX(w, nxController2)
	w.zeros(6)
	var ps []Property
	// 16-bit values in properties of 8 bytes, as Open vSwitch sends them.
	if a.HasMaxLen {
		ps = append(ps, Property{nxac2MaxLen, append(be16(a.MaxLen), 0, 0)})
	}
	if a.HasID {
		ps = append(ps, Property{nxac2ID, append(be16(a.ControllerID), 0, 0)})
	}
	if a.HasReason {
		ps = append(ps, Property{nxac2Reason, []byte{a.Reason}})
	}
	if a.HasUserData {
		ps = append(ps, Property{nxac2UserData, a.UserData})
	}
	if a.Pause {
		ps = append(ps, Property{nxac2Pause, nil})
	}
	if a.HasMeterID {
		ps = append(ps, Property{nxac2MeterID, be32(a.MeterID)})
	}
	if err := appendProps(w, ps); err != nil {
		return err
	}
	return end(w, s)
}

func (a *ActConjunction) appendAction(_ uint8, w *wr) error {
	s := beginNX(w, nxConjunction)
	w.u8(a.Clause)
	w.u8(a.NClauses)
	w.u32(a.ID)
	return end(w, s)
}

func (a *ActClone) appendAction(v uint8, w *wr) error {
	s := beginNX(w, nxClone)
	w.zeros(6)
	if err := appendActions(v, w, a.Actions); err != nil {
		return err
	}
	return end(w, s)
}

func (a *ActRaw) appendAction(_ uint8, w *wr) error {
	var s int
	if a.Type == aExperimenter {
		s = begin(w, aExperimenter)
		w.u32(a.Experimenter)
		w.u16(a.Subtype)
	} else {
		s = begin(w, a.Type)
	}
	w.bytes(a.Data)
	return end(w, s)
}
