package flow

import "net/netip"

// Connection tracking state bits (ct_state), with Open vSwitch's values
// (ovs-fields(7)).
const (
	CtStateNew     = 0x01 // new: the first packet of a connection not yet committed
	CtStateEst     = 0x02 // est: part of an established connection
	CtStateRel     = 0x04 // rel: related to a connection (an ICMP error about it)
	CtStateRpl     = 0x08 // rpl: in the reply direction
	CtStateInv     = 0x10 // inv: invalid (the tracker could not make sense of it)
	CtStateTracked = 0x20 // trk: went through the tracker
	CtStateSNAT    = 0x40 // snat: source address or port translated
	CtStateDNAT    = 0x80 // dnat: destination address or port translated
)

// CTNoTable in CT.Table means the ct action does not recirculate.
const CTNoTable = 255

// CT is the argument list of a ct(...) action, as ovs-actions(7) describes
// it: ct([commit][,force][,zone=N|zone=SRC][,table=T][,alg=ALG]
// [,nat[(...)]][,exec(ACTIONS)]).
type CT struct {
	Commit bool // commit: create the connection if it is new
	Force  bool // force: a committed connection in the other direction is ended first

	// Zone is zone=N when ZoneSrc.Field is FieldNone, else the zone is
	// read from ZoneSrc (zone=NXM_NX_REG13[0..15]) when the action runs.
	Zone    uint16
	ZoneSrc Subfield

	Table uint8  // table=T: the table the packet recirculates to, or CTNoTable
	Alg   uint16 // alg=ftp (21) or alg=tftp (69); 0 for none
	NAT   *NAT   // nat or nat(...); nil when absent

	// Exec is exec(...): set_field, load and move actions on ct_mark and
	// ct_label, applied to the connection when it is committed.
	Exec []Action

	// As a datapath action (ActCT in Translation.Actions) a CT is
	// resolved: Zone holds the zone (ZoneSrc is empty), Exec is nil, and
	// the values its exec actions write are in SetMark (ct_mark bits under
	// MarkMask become Mark) and SetLabel (likewise for the label, both
	// stored big-endian like Key.CtLabel).
	SetMark, SetLabel bool
	Mark, MarkMask    uint32
	Label, LabelMask  [16]byte
}

// Conntrack is a connection tracker: what Execute runs an ActCT datapath
// action with. It is shared by every poll thread of a datapath.
type Conntrack interface {
	// Track runs ct on the packet that frame, k and off describe (as
	// Extract found them): it finds the packet's connection in ct.Zone,
	// commits it when ct.Commit says so and it is new, applies ct.NAT and
	// the mark and label ct sets, and writes ct_state, ct_zone, ct_mark,
	// ct_label and the connection's original-direction tuple into k. NAT
	// rewrites the frame in place (checksums included) and keeps k and off
	// describing it. now is the time in nanoseconds (a monotonic clock).
	// The verdict is VerdictOK, or why the packet must be dropped
	// (VerdictCTFull). Track does not allocate on a hit.
	Track(frame []byte, k *Key, off *Offsets, ct *CT, now int64) Verdict
}

// NATKind is what a nat argument of ct translates.
type NATKind uint8

// The kinds of NAT.
const (
	NATRestore NATKind = iota // bare "nat": apply the connection's existing translation, if any
	NATSrc                    // nat(src=...)
	NATDst                    // nat(dst=...)
)

// NAT is the nat(...) argument of a ct action:
// nat(src|dst[=ADDR[-ADDR][:PORT[-PORT]]][,persistent][,hash|random]).
type NAT struct {
	Kind NATKind
	// AddrMin..AddrMax is the address range (both invalid when absent; both
	// IPv4 or both IPv6). PortMin..PortMax is the port range (0 when absent).
	AddrMin, AddrMax netip.Addr
	PortMin, PortMax uint16
	Persistent       bool
	Hash             bool
	Random           bool
}
