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
}

// MaxTable is the highest OpenFlow table number; TableAll selects every
// table in mod-flows, del-flows and dump-flows.
const (
	MaxTable = 254
	TableAll = 255
)

// DefaultPriority is an OpenFlow flow's priority when none is given.
const DefaultPriority = 32768
