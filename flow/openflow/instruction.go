package openflow

import "fmt"

// Instruction types (OpenFlow 1.1+).
const (
	InstGotoTable     uint16 = 1
	InstWriteMetadata uint16 = 2
	InstWriteActions  uint16 = 3
	InstApplyActions  uint16 = 4
	InstClearActions  uint16 = 5
	InstMeter         uint16 = 6
	InstStatTrigger   uint16 = 7
	InstExperimenter  uint16 = 0xffff
)

// Instruction is one OpenFlow 1.1+ instruction. Which fields are meaningful
// depends on Type: TableID for goto_table; Metadata and MetadataMask for
// write_metadata; Actions for write/apply actions; MeterID for meter.
// Experimenter and stat-trigger instructions keep Raw (the bytes after the
// 4-byte type/length header).
type Instruction struct {
	Type         uint16
	TableID      uint8
	Metadata     uint64
	MetadataMask uint64
	Actions      []Action
	MeterID      uint32
	Raw          []byte
}

// DecodeInstructions decodes an instruction list of version v (1.3+).
func DecodeInstructions(v uint8, b []byte) ([]Instruction, error) {
	return decodeInstructions(v, &rd{b: b})
}

func decodeInstructions(v uint8, r *rd) ([]Instruction, error) {
	insts := make([]Instruction, 0, countTLVs(r.b))
	for r.err == nil && r.len() > 0 {
		if r.len() < 4 {
			return nil, badInstruction(CodeBadInstructionLen, "%d bytes left over after instructions", r.len())
		}
		t := uint16(r.b[0])<<8 | uint16(r.b[1])
		l := int(r.b[2])<<8 | int(r.b[3])
		if l < 8 || l%8 != 0 || l > r.len() {
			return nil, badInstruction(CodeBadInstructionLen, "instruction %d length %d", t, l)
		}
		ir := r.sub(l, "instruction")
		ir.skip(4, "")
		in := Instruction{Type: t}
		fixed := func(n int) bool { return ir.len() == n }
		ok := true
		switch t {
		case InstGotoTable:
			ok = fixed(4)
			in.TableID = ir.u8("")
			ir.skip(3, "")
		case InstWriteMetadata:
			ok = fixed(20)
			ir.skip(4, "")
			in.Metadata, in.MetadataMask = ir.u64(""), ir.u64("")
		case InstWriteActions, InstApplyActions, InstClearActions:
			ir.skip(4, "")
			acts, err := decodeActions(v, ir, 0)
			if err != nil {
				return nil, err
			}
			if t == InstClearActions && len(acts) != 0 {
				return nil, badInstruction(CodeBadInstructionLen, "clear_actions with actions")
			}
			if t != InstClearActions {
				in.Actions = acts
			}
		case InstMeter:
			ok = fixed(4)
			in.MeterID = ir.u32("")
		case InstStatTrigger, InstExperimenter:
			if t == InstStatTrigger && v != Version15 {
				return nil, badInstruction(CodeBadInstructionUnknown, "instruction type %d", t).withItem(InstructionName(t))
			}
			in.Raw = ir.rest()
		default:
			return nil, badInstruction(CodeBadInstructionUnknown, "instruction type %d", t).withItem(InstructionName(t))
		}
		if !ok || ir.err != nil {
			return nil, badInstruction(CodeBadInstructionLen, "instruction %d length %d", t, l)
		}
		insts = append(insts, in)
	}
	return insts, r.err
}

// EncodeInstructions encodes instructions for version v (1.3+).
func EncodeInstructions(v uint8, insts []Instruction) ([]byte, error) {
	w := &wr{}
	err := appendInstructions(v, w, insts)
	return w.b, err
}

func appendInstructions(v uint8, w *wr, insts []Instruction) error {
	if v == Version10 && len(insts) > 0 {
		return fmt.Errorf("%w: instructions in OpenFlow 1.0", ErrUnencodable)
	}
	for i := range insts {
		in := &insts[i]
		s := begin(w, in.Type)
		switch in.Type {
		case InstGotoTable:
			w.u8(in.TableID)
		case InstWriteMetadata:
			w.zeros(4)
			w.u64(in.Metadata)
			w.u64(in.MetadataMask)
		case InstWriteActions, InstApplyActions, InstClearActions:
			w.zeros(4)
			if err := appendActions(v, w, in.Actions); err != nil {
				return err
			}
		case InstMeter:
			w.u32(in.MeterID)
		default:
			w.bytes(in.Raw)
		}
		if err := end(w, s); err != nil {
			return err
		}
	}
	return nil
}
