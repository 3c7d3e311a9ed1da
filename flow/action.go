package flow

// ActionType is the kind of one flow action.
type ActionType uint8

// The actions. Outputs to reserved ports (in_port, flood, all, normal, local)
// are ActOutput with a reserved Port number: the datapath resolves them,
// because only it knows the bridge's ports.
const (
	ActOutput     ActionType = iota + 1 // output:Port
	ActSetField                         // set_field / mod_dl_* / mod_nw_* / mod_tp_* / mod_nw_tos / mod_nw_ttl
	ActDecTTL                           // dec_ttl
	ActSetVLANVID                       // mod_vlan_vid: set the VID, pushing a tag if there is none
	ActSetVLANPCP                       // mod_vlan_pcp: set the PCP, pushing a tag if there is none
	ActPushVLAN                         // push_vlan:Value (an Ethertype, 0x8100 or 0x88a8)
	ActPopVLAN                          // strip_vlan / pop_vlan

	// OpenFlow pipeline actions: translation runs them; they never reach
	// a datapath action list.
	ActLoad          // load:Value->Dst; set_field on metadata, pkt_mark and the registers
	ActMove          // move:Src->Dst
	ActOutputReg     // output:Src (the port number is in a field)
	ActResubmit      // resubmit(Port,Table); goto_table:Table (written resubmit(,Table) as ovs-ofctl does for OpenFlow 1.0)
	ActWriteMetadata // write_metadata:Value/Mask
	ActPush          // push:Src
	ActPop           // pop:Dst
	ActNote          // note:Note (hex bytes); does nothing
	ActExit          // exit: stop the whole pipeline
	ActClone         // clone(...): the next Value actions are its body
	ActGroup         // group:Value: run the group's buckets (see Group)

	// ActConjunction is conjunction(Value,Table/Port): this flow is clause
	// Table (1-based) of the Port clauses of conjunctive match Value. Only
	// the classifier reads it (conj.go); translation runs it as nothing.
	ActConjunction

	// ActLearn is learn(...): translation builds the flow Learn describes
	// from the packet, and the cache miss that ran it installs it.
	ActLearn
	// ActFinTimeout is fin_timeout(idle_timeout=Value,hard_timeout=Mask):
	// a learned flow's shorter timeouts once TCP FIN or RST was seen.
	ActFinTimeout

	// ActController is controller(...) (controller.go): a copy of the
	// packet goes to the bridge's OpenFlow controllers as a packet in.
	// Value is max_len, Table the reason, Mask the controller id and Note
	// the userdata bytes. Translation keeps it as a datapath action, with
	// PacketIn set to what the packet in carries besides the packet.
	ActController

	// ActCT is ct(...) (see CT, in CT): connection tracking. Translation
	// keeps it as a datapath action, followed by a recirculation when CT
	// names a table.
	ActCT
	// ActCTClear is ct_clear: the packet's connection tracking state
	// (ct_state, ct_zone, ct_mark, ct_label and the ct tuple) becomes zero.
	ActCTClear
	// ActRecirc is the datapath action recirc(Value): the packet, with the
	// key as the actions before left it and RecircID set to Value, goes
	// through the datapath's lookup again. Only translation makes it.
	ActRecirc
	// ActHash is the datapath action hash(l4(B)) or hash(sym_l4(B)):
	// the datapath hashes the packet as it is and writes the hash into
	// its key's DpHash, for the recirculation after it. Value is a
	// dp_hash group's selection_method_param: the algorithm in the upper
	// 32 bits (dpHashL4, dpHashSymL4), the basis B in the lower. Only
	// translation makes it.
	ActHash

	// ActWriteActions is the OpenFlow 1.1+ instruction write_actions(...):
	// the next Value actions are its body, which translation adds to the
	// packet's action set (actionset.go); the set runs when the pipeline
	// ends. A flow writes it after its other actions (the apply_actions
	// instruction) and clear_actions, before write_metadata and
	// goto_table.
	ActWriteActions
	// ActClearActions is the instruction clear_actions: the packet's
	// action set becomes empty.
	ActClearActions
	// ActMeter is meter:Value: the packet goes through the OpenFlow meter
	// Value (meter.go); one that exceeds it is dropped. Translation makes
	// it the datapath action meter(N), with Value the datapath meter id N
	// and Meter the meter it runs; a meter that does not exist translates
	// to nothing, as in Open vSwitch.
	ActMeter

	// ActCheckPktLarger is check_pkt_larger(Value)->Dst: Dst, one bit, is
	// set when the packet is longer than Value bytes, else cleared.
	// Translation runs the rest of the action list twice, with the bit
	// set and clear, into the two branches of an ActCheckPktLen.
	ActCheckPktLarger
	// ActCheckPktLen is the datapath action check_pkt_len(size=Value,
	// gt(...),le(...)): the next Mask>>32 actions are the branch for a
	// packet longer than Value bytes, the uint32(Mask) after them the
	// branch for the others. The branch runs on the packet itself when
	// nothing follows it, else on a copy, and the actions after the two
	// branches go on with the packet as it was. Only translation makes it.
	ActCheckPktLen
)

// HasCheckPktLen reports whether acts hold a check_pkt_len.
func HasCheckPktLen(acts []Action) bool {
	for i := range acts {
		if acts[i].Type == ActCheckPktLen {
			return true
		}
	}
	return false
}

// CheckPktLenBranches returns the two branches of the ActCheckPktLen at
// acts[i], longer-than first, and the index after them.
func CheckPktLenBranches(acts []Action, i int) (gt, le []Action, next int) {
	a := &acts[i]
	ng, nl := int(a.Mask>>32), int(uint32(a.Mask))
	start := i + 1
	if start+ng+nl > len(acts) {
		return nil, nil, len(acts) // not made by translation: a malformed list
	}
	return acts[start : start+ng], acts[start+ng : start+ng+nl], start + ng + nl
}

// Spelling is how a flow wrote an action that has several spellings. The
// zero value is the spelling ovs-ofctl prints for OpenFlow 1.0.
type Spelling uint8

// The spellings.
const (
	SpellDefault     Spelling = iota
	SpellGotoTable            // ActResubmit written goto_table:T
	SpellSetField             // ActLoad, ActSetField, ActSetVLANVID/PCP written set_field:V->F (a whole field)
	SpellLoad                 // ActSetField written load:V->NXM[]
	SpellImpliedPush          // ActSetVLANVID/PCP written mod_vlan_* where no tag is known: OpenFlow 1.1+ pushes one first
	SpellMod                  // ActSetField written mod_nw_ttl
	SpellSetTunnel            // ActLoad of tun_id written set_tunnel:V
	SpellSetTunnel64          // ActLoad of tun_id written set_tunnel64:V
)

// TableCurrent in a resubmit's Table means the table the resubmit runs in.
const TableCurrent = 255

// Action is one flow action. It is comparable, so action lists can be
// compared element-wise (mod-flows, tests).
type Action struct {
	Type  ActionType
	Field FieldID // ActSetField: which field
	// Spelling and Named say how the flow wrote the action, where Open
	// vSwitch prints spellings alike in one OpenFlow version and apart in
	// another (it keeps an action's "raw" encoding): see FormatActionsIn.
	Spelling Spelling
	Named    FieldID  // SpellSetField on a packet field: the field as written (tcp_dst, ip_dscp, ...)
	Port     uint32   // ActOutput: an OpenFlow port or a reserved Port* value
	Value    uint64   // ActSetField for fields of up to 64 bits (MACs in the low 48 bits); VID/PCP; push_vlan's Ethertype; ActGroup's group id; ActOutput: see AsInPort; ActClone, ActWriteActions: the body's length; ActCheckPktLarger, ActCheckPktLen: the length in bytes
	IPv6     [16]byte // ActSetField for the 128-bit fields (ipv6_src, ipv6_dst, nd_target)

	Src, Dst Subfield  // ActMove, ActOutputReg, ActPush (Src); ActLoad, ActMove, ActPop, ActCheckPktLarger (Dst)
	Mask     uint64    // ActWriteMetadata: the metadata bits written; ActCheckPktLen: its branches' lengths
	Table    uint8     // ActResubmit: the table, or TableCurrent
	Pause    bool      // ActController: controller(pause), which freezes the pipeline for the controller to resume
	Note     string    // ActNote: the bytes as written; ActDecTTL: controller ids, "" for none
	Learn    *Learn    // ActLearn: immutable once parsed
	PacketIn *PacketIn // ActController as a datapath action: immutable
	CT       *CT       // ActCT: immutable once parsed
	Meter    *Meter    // ActMeter as a datapath action
}

// outputAsInPort marks the Value of a datapath ActOutput to PortFlood,
// PortAll or PortNormal whose flow wrote in_port: the low 32 bits are the
// written in_port.
const outputAsInPort = 1 << 32

// AsInPort returns the in_port that an output to flood, all or normal
// resolves against when the flow wrote in_port before it (translation
// records it), and false when the flow did not, and the output resolves
// against the port the packet came in on.
func (a *Action) AsInPort() (uint32, bool) {
	if a.Type != ActOutput || a.Value&outputAsInPort == 0 {
		return 0, false
	}
	return uint32(a.Value), true
}

// Reserved OpenFlow port numbers (OpenFlow 1.0 values, as ovs-ofctl prints
// them with their names).
const (
	PortMax        = 0xff00
	PortInPort     = 0xfff8
	PortTable      = 0xfff9
	PortNormal     = 0xfffa
	PortFlood      = 0xfffb
	PortAll        = 0xfffc
	PortController = 0xfffd
	PortLocal      = 0xfffe
	PortNone       = 0xffff
)

// MaxActions is the most actions a flow may have: as many as Open vSwitch
// takes in one flow (ovs-ofctl refuses 4096 output actions, whose encoding
// passes 64 KiB). A longer list is refused when the flow is parsed
// (ErrTooManyActions), so a flow that is accepted always runs whole. It
// also bounds the actions one packet may run: Execute runs none of a
// longer list (built in code, not parsed) and returns VerdictActionCap.
const MaxActions = 4095
