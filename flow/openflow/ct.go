package openflow

import (
	"fmt"
	"net/netip"
)

// This file decodes and encodes the connection tracking actions NXAST_CT
// and NXAST_NAT (ct_clear is an ActNX), laid out as Open vSwitch's
// nicira-ext.h and ofp-actions.c define them.

// Nicira subtypes of the connection tracking actions.
const (
	nxCT  = 35
	nxNAT = 36
)

// NXAST_CT flags.
const (
	CTFlagCommit uint16 = 1 << 0
	CTFlagForce  uint16 = 1 << 1
)

// CTRecircNone in ActCT.RecircTable: the ct action does not recirculate.
const CTRecircNone = 0xff

// NXAST_NAT flags.
const (
	NATFlagSrc         uint16 = 1 << 0
	NATFlagDst         uint16 = 1 << 1
	NATFlagPersistent  uint16 = 1 << 2
	NATFlagProtoHash   uint16 = 1 << 3
	NATFlagProtoRandom uint16 = 1 << 4
	natFlagsKnown             = NATFlagSrc | NATFlagDst | NATFlagPersistent | NATFlagProtoHash | NATFlagProtoRandom
)

// NXAST_NAT range_present bits: which optional values follow the action's
// fixed part, in this order.
const (
	natRangeIPv4Min  = 1 << 0
	natRangeIPv4Max  = 1 << 1
	natRangeIPv6Min  = 1 << 2
	natRangeIPv6Max  = 1 << 3
	natRangeProtoMin = 1 << 4
	natRangeProtoMax = 1 << 5
)

// OFPET_BAD_ACTION codes of the set-field family (OpenFlow 1.2+ numbering),
// which Open vSwitch also uses for subfield references.
const (
	CodeBadActionSetType     uint16 = 13 // OFPBAC_BAD_SET_TYPE
	CodeBadActionSetLen      uint16 = 14 // OFPBAC_BAD_SET_LEN
	CodeBadActionSetArgument uint16 = 15 // OFPBAC_BAD_SET_ARGUMENT
)

const ctFixedLen = 24 // struct nx_action_conntrack

// ActCT is NXAST_CT: ct(...). The zone is ZoneSrc[ZoneOfs..ZoneOfs+ZoneNBits)
// when ZoneFromField, else ZoneImm. RecircTable is CTRecircNone when the
// action does not recirculate. Actions are the nested actions (nat and the
// exec(...) list) in wire order.
type ActCT struct {
	Flags         uint16
	ZoneFromField bool
	ZoneSrc       FieldHeader
	ZoneOfs       uint16
	ZoneNBits     uint16
	ZoneImm       uint16
	RecircTable   uint8
	Alg           uint16
	Actions       []Action
}

// ActNAT is NXAST_NAT: nat(...), only valid nested in a ct action.
// AddrMin and AddrMax are both IPv4 or both IPv6 when present (invalid
// when absent; AddrMax only with AddrMin); ProtoMin and ProtoMax are 0 when
// absent (ProtoMax only with ProtoMin, and a port range only with an
// address range), as the wire's range_present bits allow.
type ActNAT struct {
	Flags            uint16
	AddrMin, AddrMax netip.Addr
	ProtoMin         uint16
	ProtoMax         uint16
}

func decodeCT(v uint8, r *rd, depth int) (Action, error) {
	// r starts after the subtype: 14 fixed bytes, then nested actions.
	if r.len() < ctFixedLen-10 {
		return nil, badAction(CodeBadActionLen, "ct action length %d", r.len()+10).withItem("NXAST_CT")
	}
	a := &ActCT{Flags: r.u16("ct")}
	zoneSrc := r.u32("ct")
	zone := r.u16("ct")
	a.RecircTable = r.u8("ct")
	r.skip(3, "ct")
	a.Alg = r.u16("ct")
	if r.err != nil {
		return nil, r.err
	}
	if a.Flags&CTFlagForce != 0 && a.Flags&CTFlagCommit == 0 {
		return nil, badAction(CodeBadActionArgument, "ct: force without commit").withItem("NXAST_CT")
	}
	if zoneSrc != 0 {
		hr := &rd{b: be32(zoneSrc)}
		a.ZoneSrc, _ = decodeFieldHeader(hr)
		if a.ZoneSrc.Class == ClassExperimenter {
			return nil, badAction(CodeBadActionSetType, "ct: zone from an experimenter field").withItem("NXAST_CT")
		}
		a.ZoneFromField = true
		a.ZoneOfs, a.ZoneNBits = zone>>6, zone&0x3f+1
		if a.ZoneNBits != 16 {
			return nil, badAction(CodeBadActionSetLen, "ct: zone of %d bits, not 16", a.ZoneNBits).withItem("NXAST_CT")
		}
	} else {
		a.ZoneImm = zone
	}
	acts, err := decodeActions(v, r, depth+1)
	if err != nil {
		return nil, err
	}
	a.Actions = acts
	if a.Flags&CTFlagCommit == 0 {
		// Without commit, only a bare nat may be nested (it applies a
		// connection's existing translation).
		for _, x := range acts {
			n, ok := x.(*ActNAT)
			if !ok || n.Flags != 0 || n.AddrMin.IsValid() {
				return nil, badAction(CodeBadActionArgument, "ct: actions other than a bare nat need commit").withItem("NXAST_CT")
			}
		}
	}
	return a, nil
}

func (a *ActCT) appendAction(v uint8, w *wr) error {
	s := beginNX(w, nxCT)
	w.u16(a.Flags)
	if a.ZoneFromField {
		if a.ZoneSrc.Class == ClassExperimenter {
			return fmt.Errorf("%w: ct zone from an experimenter field", ErrUnencodable)
		}
		on, err := ofsNBits(a.ZoneOfs, a.ZoneNBits)
		if err != nil {
			return err
		}
		h := a.ZoneSrc
		h.HasMask = false
		h.append(w)
		w.u16(on)
	} else {
		w.u32(0)
		w.u16(a.ZoneImm)
	}
	w.u8(a.RecircTable)
	w.zeros(3)
	w.u16(a.Alg)
	if err := appendActions(v, w, a.Actions); err != nil {
		return err
	}
	return end(w, s)
}

func natError(format string, args ...any) error {
	return badAction(CodeBadActionArgument, format, args...).withItem("NXAST_NAT")
}

func decodeNAT(r *rd) (Action, error) {
	// r starts after the subtype: 2 bytes of padding, flags,
	// range_present, then the values range_present announces.
	r.skip(2, "nat")
	a := &ActNAT{Flags: r.u16("nat")}
	present := r.u16("nat")
	if r.err != nil {
		return nil, r.err
	}
	f := a.Flags
	if f&^natFlagsKnown != 0 || f&NATFlagSrc != 0 && f&NATFlagDst != 0 ||
		f&NATFlagProtoHash != 0 && f&NATFlagProtoRandom != 0 {
		return nil, natError("nat: flags 0x%x", f)
	}
	short := func(what string) error { return natError("nat: %s missing", what) }
	switch {
	case present&natRangeIPv4Min != 0:
		if present&(natRangeIPv6Min|natRangeIPv6Max) != 0 {
			return nil, natError("nat: both IPv4 and IPv6 ranges")
		}
		if r.len() < 4 {
			return nil, short("IPv4 minimum")
		}
		a.AddrMin = netip.AddrFrom4([4]byte(r.bytes(4, "nat")))
		if a.AddrMin.IsUnspecified() {
			return nil, natError("nat: IPv4 minimum 0.0.0.0")
		}
		if present&natRangeIPv4Max != 0 {
			if r.len() < 4 {
				return nil, short("IPv4 maximum")
			}
			a.AddrMax = netip.AddrFrom4([4]byte(r.bytes(4, "nat")))
			if a.AddrMax.Less(a.AddrMin) {
				return nil, natError("nat: IPv4 range %s-%s", a.AddrMin, a.AddrMax)
			}
		}
	case present&natRangeIPv4Max != 0:
		return nil, natError("nat: IPv4 maximum without minimum")
	case present&natRangeIPv6Min != 0:
		if r.len() < 16 {
			return nil, short("IPv6 minimum")
		}
		a.AddrMin = netip.AddrFrom16([16]byte(r.bytes(16, "nat")))
		if a.AddrMin.IsUnspecified() {
			return nil, natError("nat: IPv6 minimum ::")
		}
		if present&natRangeIPv6Max != 0 {
			if r.len() < 16 {
				return nil, short("IPv6 maximum")
			}
			a.AddrMax = netip.AddrFrom16([16]byte(r.bytes(16, "nat")))
			if a.AddrMax.Less(a.AddrMin) {
				return nil, natError("nat: IPv6 range %s-%s", a.AddrMin, a.AddrMax)
			}
		}
	case present&natRangeIPv6Max != 0:
		return nil, natError("nat: IPv6 maximum without minimum")
	}
	switch {
	case present&natRangeProtoMin != 0:
		if !a.AddrMin.IsValid() {
			return nil, natError("nat: port range without an address range")
		}
		if r.len() < 2 {
			return nil, short("port minimum")
		}
		a.ProtoMin = r.u16("nat")
		if a.ProtoMin == 0 {
			return nil, natError("nat: port minimum 0")
		}
		if present&natRangeProtoMax != 0 {
			if r.len() < 2 {
				return nil, short("port maximum")
			}
			a.ProtoMax = r.u16("nat")
			if a.ProtoMax < a.ProtoMin {
				return nil, natError("nat: port range %d-%d", a.ProtoMin, a.ProtoMax)
			}
		}
	case present&natRangeProtoMax != 0:
		return nil, natError("nat: port maximum without minimum")
	}
	// What is left is padding to 8 bytes.
	r.skip(r.len(), "nat")
	return a, nil
}

func (a *ActNAT) appendAction(_ uint8, w *wr) error {
	s := beginNX(w, nxNAT)
	w.zeros(2)
	w.u16(a.Flags)
	at := w.pos()
	w.u16(0)
	var present uint16
	if a.AddrMax.IsValid() && !a.AddrMin.IsValid() || a.AddrMax.IsValid() && a.AddrMax.Is4() != a.AddrMin.Is4() {
		return fmt.Errorf("%w: nat address range %s-%s", ErrUnencodable, a.AddrMin, a.AddrMax)
	}
	if a.AddrMin.IsValid() {
		n := a.AddrMin.AsSlice()
		if a.AddrMin.Is4() {
			present |= natRangeIPv4Min
		} else {
			present |= natRangeIPv6Min
		}
		w.bytes(n)
		if a.AddrMax.IsValid() {
			present |= present << 1 // the matching maximum bit
			w.bytes(a.AddrMax.AsSlice())
		}
	}
	if a.ProtoMin != 0 || a.ProtoMax != 0 {
		if !a.AddrMin.IsValid() || a.ProtoMin == 0 {
			return fmt.Errorf("%w: nat port range %d-%d", ErrUnencodable, a.ProtoMin, a.ProtoMax)
		}
		present |= natRangeProtoMin
		w.u16(a.ProtoMin)
		if a.ProtoMax != 0 {
			present |= natRangeProtoMax
			w.u16(a.ProtoMax)
		}
	}
	w.put16(at, present)
	return end(w, s)
}
