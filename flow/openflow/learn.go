package openflow

import "fmt"

const nxLearn = 16

// Learn spec destinations.
const (
	LearnDstMatch  uint8 = 0
	LearnDstLoad   uint8 = 1
	LearnDstOutput uint8 = 2
)

// ActLearn is NXAST_LEARN: add or modify a flow built from the packet.
type ActLearn struct {
	IdleTimeout    uint16
	HardTimeout    uint16
	Priority       uint16
	Cookie         uint64
	Flags          uint16
	TableID        uint8
	FinIdleTimeout uint16
	FinHardTimeout uint16
	Specs          []LearnSpec
}

// LearnSpec is one nx_flow_mod_spec: NBits bits from a field (Src at
// SrcOfs) or an immediate Value, matched on, loaded into, or output to
// (Dst), with DstField at DstOfs for match and load.
type LearnSpec struct {
	NBits        uint16
	SrcImmediate bool
	Src          FieldHeader
	SrcOfs       uint16
	Value        []byte
	Dst          uint8
	DstField     FieldHeader
	DstOfs       uint16
}

func decodeLearn(r *rd) (Action, error) {
	a := &ActLearn{IdleTimeout: r.u16(""), HardTimeout: r.u16(""), Priority: r.u16(""), Cookie: r.u64(""), Flags: r.u16(""), TableID: r.u8("")}
	pad := r.u8("")
	a.FinIdleTimeout, a.FinHardTimeout = r.u16(""), r.u16("")
	if r.err != nil {
		return nil, r.err
	}
	if pad != 0 {
		// Open vSwitch refuses a learn whose padding is not zero.
		return nil, badAction(CodeBadActionArgument, "nonzero learn padding")
	}
	a.Specs = []LearnSpec{}
	for r.len() >= 2 {
		h := r.u16("learn spec")
		if h == 0 {
			break
		}
		if h&0xc000 != 0 || (h>>11)&3 == 3 || h&0x3ff == 0 {
			return nil, badAction(CodeBadActionArgument, "learn spec header 0x%04x", h)
		}
		s := LearnSpec{NBits: h & 0x3ff, SrcImmediate: h&(1<<13) != 0, Dst: uint8(h>>11) & 3}
		if s.SrcImmediate {
			s.Value = r.copyN(int(s.NBits+15)/16*2, "learn immediate")
			if s.Value == nil {
				s.Value = []byte{}
			}
		} else {
			s.Src, _ = decodeFieldHeader(r)
			s.SrcOfs = r.u16("learn spec")
		}
		if s.Dst != LearnDstOutput {
			s.DstField, _ = decodeFieldHeader(r)
			s.DstOfs = r.u16("learn spec")
		}
		if r.err != nil {
			return nil, r.err
		}
		a.Specs = append(a.Specs, s)
	}
	for _, c := range r.rest() {
		if c != 0 {
			return nil, badAction(CodeBadActionArgument, "nonzero padding after learn specs")
		}
	}
	return a, nil
}

func (a *ActLearn) appendAction(_ uint8, w *wr) error {
	s := beginNX(w, nxLearn)
	w.u16(a.IdleTimeout)
	w.u16(a.HardTimeout)
	w.u16(a.Priority)
	w.u64(a.Cookie)
	w.u16(a.Flags)
	w.u8(a.TableID)
	w.zeros(1)
	w.u16(a.FinIdleTimeout)
	w.u16(a.FinHardTimeout)
	for _, sp := range a.Specs {
		if sp.NBits == 0 || sp.NBits > 0x3ff || sp.Dst > LearnDstOutput {
			return fmt.Errorf("%w: learn spec of %d bits to %d", ErrUnencodable, sp.NBits, sp.Dst)
		}
		h := sp.NBits | uint16(sp.Dst)<<11
		if sp.SrcImmediate {
			h |= 1 << 13
			if len(sp.Value) != int(sp.NBits+15)/16*2 {
				return fmt.Errorf("%w: learn immediate of %d bytes for %d bits", ErrUnencodable, len(sp.Value), sp.NBits)
			}
		}
		w.u16(h)
		if sp.SrcImmediate {
			w.bytes(sp.Value)
		} else {
			sp.Src.append(w)
			w.u16(sp.SrcOfs)
		}
		if sp.Dst != LearnDstOutput {
			sp.DstField.append(w)
			w.u16(sp.DstOfs)
		}
	}
	return end(w, s)
}
