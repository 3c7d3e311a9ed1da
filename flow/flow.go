package flow

// Flow is one OpenFlow flow as ovs-ofctl's flow syntax describes it: what
// add-flow installs, and what mod-flows and del-flows select with.
type Flow struct {
	Match    Match
	Priority uint16 // DefaultPriority unless given
	// Table is the OpenFlow table (0-254). For mod-flows, del-flows and
	// dump-flows TableAll selects every table; it is their default.
	Table   uint8
	Actions []Action

	Cookie     uint64
	CookieMask uint64 // mod-flows/del-flows: which Cookie bits must match (cookie=V/M); 0 matches any

	IdleTimeout uint16 // seconds; 0 = none
	HardTimeout uint16 // seconds; 0 = none

	// OutPort filters mod-flows/del-flows/dump-flows to flows that output to
	// this port (out_port=); PortNone (or 0 in a zero Flow) means any.
	OutPort uint32

	// Flags are the flow mod's flags (send_flow_rem, check_overlap,
	// reset_counts, no_packet_counts, no_byte_counts); add-flow and
	// mod-flows only.
	Flags FlowFlags
}

// FlowFlags are a flow mod's flags, as Open vSwitch keeps them with a
// rule. The bits are Open vSwitch's own numbering, not a version's wire
// flags.
type FlowFlags uint8

const (
	// FlagSendFlowRem (send_flow_rem): the controllers hear of the
	// rule's removal (OFPT_FLOW_REMOVED).
	FlagSendFlowRem FlowFlags = 1 << iota
	// FlagNoPacketCounts and FlagNoByteCounts (no_packet_counts,
	// no_byte_counts) are kept and shown; as in Open vSwitch, the
	// rule still counts.
	FlagNoPacketCounts
	FlagNoByteCounts
	// FlagCheckOverlap (check_overlap): an add that overlaps a rule of
	// the same table and priority is refused (ErrOverlap).
	FlagCheckOverlap
	// FlagResetCounts (reset_counts): an add that replaces a rule, or a
	// modify, starts the rule's counters afresh; without it they carry
	// over. Every OpenFlow 1.0 add has it, as in Open vSwitch.
	FlagResetCounts
)

// flagNames are the flags' keywords, in the order Open vSwitch prints
// them.
var flagNames = [...]struct {
	flag FlowFlags
	name string
}{
	{FlagSendFlowRem, "send_flow_rem"},
	{FlagCheckOverlap, "check_overlap"},
	{FlagResetCounts, "reset_counts"},
	{FlagNoPacketCounts, "no_packet_counts"},
	{FlagNoByteCounts, "no_byte_counts"},
}

// String is the flags as Open vSwitch prints them: each keyword followed
// by a space ("send_flow_rem reset_counts "); no flags is "".
func (f FlowFlags) String() string {
	s := ""
	for _, n := range flagNames {
		if f&n.flag != 0 {
			s += n.name + " "
		}
	}
	return s
}

// flagNamed returns the flag whose keyword is name.
func flagNamed(name string) (FlowFlags, bool) {
	for _, n := range flagNames {
		if n.name == name {
			return n.flag, true
		}
	}
	return 0, false
}

// MaxTable is the highest OpenFlow table number; TableAll selects every
// table in mod-flows, del-flows and dump-flows.
const (
	MaxTable = 254
	TableAll = 255
)

// DefaultPriority is an OpenFlow flow's priority when none is given.
const DefaultPriority = 32768
