package ofconv

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// This file converts learn(...) and fin_timeout(...) between the flow
// language and their Nicira actions (NXAST_LEARN, NXAST_FIN_TIMEOUT), as
// Open vSwitch encodes and checks them.

// nxFinTimeout is the NXAST_FIN_TIMEOUT subtype, which the codec keeps as
// raw bytes.
const nxFinTimeout = 19

// The flags of NXAST_LEARN.
const (
	nxLearnSendFlowRem   uint16 = 1 << 0
	nxLearnDeleteLearned uint16 = 1 << 1
)

// learnAction encodes a learn action as NXAST_LEARN, its fields named by
// their NXM headers in every version, as Open vSwitch sends them.
func learnAction(l *flow.Learn) (openflow.Action, error) {
	a := &openflow.ActLearn{
		IdleTimeout: l.IdleTimeout, HardTimeout: l.HardTimeout, Priority: l.Priority, Cookie: l.Cookie,
		TableID: l.Table, FinIdleTimeout: l.FinIdleTimeout, FinHardTimeout: l.FinHardTimeout,
		Specs: make([]openflow.LearnSpec, 0, len(l.Specs)),
	}
	if l.Flags&flow.LearnSendFlowRem != 0 {
		a.Flags |= nxLearnSendFlowRem
	}
	if l.Flags&flow.LearnDeleteLearned != 0 {
		a.Flags |= nxLearnDeleteLearned
	}
	for i := range l.Specs {
		sp := &l.Specs[i]
		var ws openflow.LearnSpec
		switch sp.Kind {
		case flow.LearnMatch:
			ws.Dst = openflow.LearnDstMatch
		case flow.LearnLoad:
			ws.Dst = openflow.LearnDstLoad
		case flow.LearnOutput:
			ws.Dst = openflow.LearnDstOutput
		default:
			return nil, fmt.Errorf("%w: learn spec kind %d", openflow.ErrUnencodable, sp.Kind)
		}
		if sp.Kind == flow.LearnOutput {
			ws.NBits = uint16(sp.Src.Bits())
		} else {
			ws.NBits = uint16(sp.Dst.Bits())
			h, err := header(sp.Dst.Field)
			if err != nil {
				return nil, err
			}
			ws.DstField, ws.DstOfs = h, uint16(sp.Dst.Ofs)
		}
		if sp.Imm {
			if sp.Kind == flow.LearnOutput {
				return nil, fmt.Errorf("%w: learn output of an immediate value", openflow.ErrUnencodable)
			}
			hi, lo := sp.Immediate()
			ws.SrcImmediate = true
			ws.Value = learnImmediateBytes(hi, lo, int(ws.NBits))
		} else {
			h, err := header(sp.Src.Field)
			if err != nil {
				return nil, err
			}
			ws.Src, ws.SrcOfs = h, uint16(sp.Src.Ofs)
		}
		a.Specs = append(a.Specs, ws)
	}
	return a, nil
}

// learnImmediateBytes writes the low nbits of hi:lo big-endian in the
// whole 16-bit words that hold them, as nx_flow_mod_spec carries them.
func learnImmediateBytes(hi, lo uint64, nbits int) []byte {
	var full [16]byte
	binary.BigEndian.PutUint64(full[:8], hi)
	binary.BigEndian.PutUint64(full[8:], lo)
	return append([]byte(nil), full[16-(nbits+15)/16*2:]...)
}

// finTimeoutAction encodes fin_timeout(...) as NXAST_FIN_TIMEOUT.
func finTimeoutAction(a *flow.Action) openflow.Action {
	d := binary.BigEndian.AppendUint16(nil, uint16(a.Value))
	d = binary.BigEndian.AppendUint16(d, uint16(a.Mask))
	d = append(d, 0, 0)
	return &openflow.ActRaw{Type: typeExperimenter, Experimenter: openflow.NiciraExperimenter, Subtype: nxFinTimeout, Data: d}
}

// finTimeoutText writes NXAST_FIN_TIMEOUT as ovs-ofctl action text.
func finTimeoutText(d []byte) (string, error) {
	if len(d) != 6 {
		return "", actionError(openflow.CodeBadActionLen, "fin_timeout length")
	}
	idle, hard := binary.BigEndian.Uint16(d), binary.BigEndian.Uint16(d[2:])
	var args []string
	if idle != 0 {
		args = append(args, "idle_timeout="+strconv.Itoa(int(idle)))
	}
	if hard != 0 {
		args = append(args, "hard_timeout="+strconv.Itoa(int(hard)))
	}
	return "fin_timeout(" + strings.Join(args, ",") + ")", nil
}

// learnText writes NXAST_LEARN as ovs-ofctl learn syntax, refusing what
// Open vSwitch refuses with the error it gives: unknown flags and table
// 255 are OFPBAC_BAD_ARGUMENT.
func learnText(a *openflow.ActLearn) (string, error) {
	if a.Flags&^(nxLearnSendFlowRem|nxLearnDeleteLearned) != 0 {
		return "", actionError(openflow.CodeBadActionArgument, "learn flags 0x%x", a.Flags)
	}
	if a.TableID == 0xff || a.TableID > flow.MaxTable {
		return "", actionError(openflow.CodeBadActionArgument, "learn to table %d", a.TableID)
	}
	args := []string{"table=" + strconv.Itoa(int(a.TableID))}
	num := func(name string, v uint16) {
		if v != 0 {
			args = append(args, name+"="+strconv.Itoa(int(v)))
		}
	}
	num("idle_timeout", a.IdleTimeout)
	num("hard_timeout", a.HardTimeout)
	num("fin_idle_timeout", a.FinIdleTimeout)
	num("fin_hard_timeout", a.FinHardTimeout)
	args = append(args, "priority="+strconv.Itoa(int(a.Priority)))
	if a.Flags&nxLearnSendFlowRem != 0 {
		args = append(args, "send_flow_rem")
	}
	if a.Flags&nxLearnDeleteLearned != 0 {
		args = append(args, "delete_learned")
	}
	if a.Cookie != 0 {
		args = append(args, "cookie=0x"+strconv.FormatUint(a.Cookie, 16))
	}
	for i := range a.Specs {
		s, err := learnSpecText(&a.Specs[i])
		if err != nil {
			return "", err
		}
		args = append(args, s)
	}
	return "learn(" + strings.Join(args, ",") + ")", nil
}

// learnSpecText writes one nx_flow_mod_spec as a learn argument.
func learnSpecText(sp *openflow.LearnSpec) (string, error) {
	if sp.NBits == 0 || sp.Dst > openflow.LearnDstOutput || sp.Dst == openflow.LearnDstOutput && sp.SrcImmediate {
		return "", actionError(openflow.CodeBadActionArgument, "learn spec of %d bits to %d", sp.NBits, sp.Dst)
	}
	if !sp.SrcImmediate && sp.Src.HasMask || sp.Dst != openflow.LearnDstOutput && sp.DstField.HasMask {
		return "", actionError(openflow.CodeBadActionArgument, "learn spec names a masked field header")
	}
	var src, dst string
	var err error
	if !sp.SrcImmediate {
		if src, err = learnSubfieldText(sp.Src, sp.SrcOfs, sp.NBits); err != nil {
			return "", err
		}
	}
	if sp.Dst != openflow.LearnDstOutput {
		if dst, err = learnSubfieldText(sp.DstField, sp.DstOfs, sp.NBits); err != nil {
			return "", err
		}
	}
	switch {
	case sp.Dst == openflow.LearnDstOutput:
		return "output:" + src, nil
	case sp.Dst == openflow.LearnDstLoad && sp.SrcImmediate:
		return "load:" + learnValueHex(sp.Value, sp.NBits) + "->" + dst, nil
	case sp.Dst == openflow.LearnDstLoad:
		return "load:" + src + "->" + dst, nil
	case !sp.SrcImmediate:
		return dst + "=" + src, nil
	}
	name := sp.DstField.Name
	if sp.DstOfs == 0 && int(sp.NBits) == fieldBits(name) {
		// The whole field: its value in the field's own notation.
		v := learnValueBytes(sp.Value, sp.NBits)
		return name + "=" + valueText(name, v[len(v)-(int(sp.NBits)+7)/8:]), nil
	}
	return dst + "=" + learnValueHex(sp.Value, sp.NBits), nil
}

// learnSubfieldText checks a learn spec's field and bit range and writes
// it as NAME[A..B]. A range past the field's end is OFPBAC_BAD_SET_LEN in
// Open vSwitch (mf_check_src, mf_check_dst).
func learnSubfieldText(h openflow.FieldHeader, ofs, nbits uint16) (string, error) {
	if h.Name != "" && int(ofs)+int(nbits) > fieldBits(h.Name) {
		return "", actionError(codeBadSetLen, "learn spec bits %d..%d of %s", ofs, int(ofs)+int(nbits)-1, h.Name)
	}
	return subfieldText(h, ofs, nbits)
}

// codeBadSetLen is OFPBAC_BAD_SET_LEN.
const codeBadSetLen uint16 = 14

// learnValueBytes returns the low nbits of an immediate value, the bits
// above them cleared (Open vSwitch takes only those).
func learnValueBytes(b []byte, nbits uint16) []byte {
	v := append([]byte(nil), b...)
	for i := range v {
		bit := (len(v) - 1 - i) * 8 // the lowest bit of v[i]
		switch {
		case bit >= int(nbits):
			v[i] = 0
		case bit+8 > int(nbits):
			v[i] &= byte(1)<<(int(nbits)-bit) - 1
		}
	}
	return v
}

// learnValueHex writes the low nbits of an immediate value as 0xHEX.
func learnValueHex(b []byte, nbits uint16) string {
	return valueText("", learnValueBytes(b, nbits))
}
