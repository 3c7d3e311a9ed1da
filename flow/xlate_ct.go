package flow

import "strconv"

// This file translates connection tracking, as Open vSwitch's
// ofproto-dpif-xlate does:
//
//   - ct(...) commits the header rewrites before it (as an output does),
//     resolves its zone (zone=SRC reads the flow, and the bits read join
//     the megaflow's mask) and its exec(...) actions (the ct_mark and
//     ct_label values they write), and becomes a datapath ct action;
//   - with table=T it also freezes the pipeline's state under a
//     recirculation id (xlate_recirc.go) and emits recirc(id): the
//     tracked packet comes back to the datapath's lookup with that id,
//     and its translation thaws the state and goes on at table T;
//   - either way, the actions after ct(...) go on with the packet as it
//     was, untracked: the ct fields are zero for them (ovs-actions(7):
//     "the original instance of the packet will continue processing the
//     current actions list as an untracked packet");
//   - ct_clear zeroes the ct fields, and becomes a datapath ct_clear only
//     when the packet is tracked in the datapath (it went through ct
//     before it recirculated to this pass).

// ct translates a ct action.
func (x *xlate) ct(c *CT) {
	// The tracker sees the packet as the actions so far changed it.
	x.commit()
	r := &CT{Commit: c.Commit, Force: c.Force, Zone: c.Zone, Table: c.Table, Alg: c.Alg, NAT: c.NAT}
	if c.ZoneSrc.Field != FieldNone && c.ZoneSrc.field() != nil {
		r.Zone = uint16(c.ZoneSrc.read(&x.flow).lo)
		c.ZoneSrc.consult(&x.wc)
	}
	// As Open vSwitch, the trace shows the exec actions as the ct's own
	// (an empty list as drop).
	if len(c.Exec) == 0 {
		x.report(TraceAction, "drop")
	}
	for i := range c.Exec {
		if x.trace != nil {
			x.report(TraceAction, FormatActions(c.Exec[i:i+1]))
		}
		x.ctExec(r, &c.Exec[i])
	}
	x.emit(Action{Type: ActCT, CT: r})
	if c.Table != CTNoTable {
		x.freeze(c.Table)
	}
	x.flow.clearCT()
	x.report(TraceDetail, "Sets the packet to an untracked state, and clears all the conntrack fields.")
	x.conntracked = false
}

// ctExec resolves one exec action of a ct into the mark and label the
// datapath ct action sets: set_field (and load, move) into ct_mark or
// ct_label. Sources are read from the flow, and consulted.
//
// A set_field on ct_mark takes its value from Value and its mask from
// Mask (0: the whole field); on ct_label the value is IPv6 (big-endian,
// as Key.CtLabel) when it is not zero, else Value, and the mask is the
// low 64 bits Mask gives (0: the whole field).
func (x *xlate) ctExec(r *CT, a *Action) {
	var dst FieldID
	var v, m u128
	switch a.Type {
	case ActSetField:
		dst = a.Field
		if dst == FieldCtLabel && a.IPv6 != ([16]byte{}) {
			v = u128FromBytes(&a.IPv6)
		} else {
			v = u128{lo: a.Value}
		}
		m = u128{^uint64(0), ^uint64(0)}
		if a.Mask != 0 {
			m = u128{lo: a.Mask}
		}
	case ActLoad:
		dst = a.Dst.Field
		m = a.Dst.mask()
		v = u128{lo: a.Value}.shl(uint(a.Dst.Ofs))
	case ActMove:
		dst = a.Dst.Field
		m = a.Dst.mask()
		if a.Src.field() != nil {
			moved := a.Src.read(&x.flow)
			v = moved.shl(uint(a.Dst.Ofs))
			a.Src.consult(&x.wc)
			if x.trace != nil {
				x.report(TraceDetail, ctSubfieldText(a.Dst)+" is now "+u128Text(moved))
			}
		}
	default:
		return
	}
	v = v.and(m)
	switch dst {
	case FieldCtMark:
		mm := uint32(m.lo)
		r.SetMark = true
		r.Mark = r.Mark&^mm | uint32(v.lo)&mm
		r.MarkMask |= mm
		x.flow.CtMark = x.flow.CtMark&^mm | uint32(v.lo)&mm
	case FieldCtLabel:
		r.SetLabel = true
		cur := u128FromBytes(&r.Label)
		u128ToBytes(cur.andNot(m).or(v), &r.Label)
		mask := u128FromBytes(&r.LabelMask)
		u128ToBytes(mask.or(m), &r.LabelMask)
		f := u128FromBytes(&x.flow.CtLabel)
		u128ToBytes(f.andNot(m).or(v), &x.flow.CtLabel)
	}
}

// ctSubfieldText writes a subfield of ct_mark or ct_label as Open
// vSwitch's trace names it.
func ctSubfieldText(sf Subfield) string {
	name, width := "NXM_NX_CT_MARK", uint(32)
	if sf.Field == FieldCtLabel {
		name, width = "NXM_NX_CT_LABEL", 128
	}
	switch {
	case sf.Ofs == 0 && sf.Bits() == width:
		return name + "[]"
	case sf.Bits() == 1:
		return name + "[" + strconv.Itoa(int(sf.Ofs)) + "]"
	}
	return name + "[" + strconv.Itoa(int(sf.Ofs)) + ".." + strconv.Itoa(int(sf.Ofs)+int(sf.Bits())-1) + "]"
}

// freeze freezes the pipeline's state under a recirculation id and emits
// recirc(id): the tracked packet resumes at table in its next pass. The
// stack, registers, metadata and in_port are frozen as translation sees
// them.
func (x *xlate) freeze(table uint8) {
	st := frozenState{
		table:       table,
		inPort:      x.flow.InPort,
		metadata:    x.flow.Metadata,
		regs:        x.flow.Regs,
		stack:       x.stack,
		conntracked: true,
		actset:      x.actset,
	}
	if x.emitRecirc(&st) {
		x.report(TraceDetail, "A clone of the packet is forked to recirculate. The forked pipeline will be resumed at table "+strconv.Itoa(int(table))+".")
	}
}

// emitRecirc allocates the recirculation id of st and emits recirc(id),
// and reports whether it could (else the translation fails).
func (x *xlate) emitRecirc(st *frozenState) bool {
	var n *recircNode
	if x.s.recircs != nil {
		n = x.s.recircs.alloc(st)
	}
	if n == nil {
		x.fail(VerdictNoRecircContext, "Failed to allocate recirculation id")
		return false
	}
	x.tr.recircs = append(x.tr.recircs, n)
	x.emit(Action{Type: ActRecirc, Value: uint64(n.id)})
	return true
}

// thaw starts the translation of a packet that came back from a
// recirculation: the frozen state of its id is restored and the pipeline
// goes on at the frozen table. It reports false (and fails the
// translation) when the id is unknown.
func (x *xlate) thaw(id uint32) bool {
	var n *recircNode
	if x.s.recircs != nil {
		n = x.s.recircs.lookup(id)
	}
	if n == nil {
		x.fail(VerdictNoRecircContext, "No recirculation context for recirc_id 0x"+strconv.FormatUint(uint64(id), 16))
		return false
	}
	x.tr.recircs = append(x.tr.recircs, n)
	st := &n.state
	x.flow.InPort = st.inPort
	x.flow.Metadata = st.metadata
	x.flow.Regs = st.regs
	x.stack = append(x.stack[:0], st.stack...)
	x.actset = append(x.actset[:0], st.actset...)
	x.conntracked = st.conntracked
	if x.trace != nil {
		node := x.report(TraceAction, "thaw")
		// Not a terminal step: as a table's, it is written at its
		// parent's depth when it is the last (formatTrace).
		node.Subs = append(node.Subs, &TraceNode{Kind: TraceTable, Text: "Resuming from table " + strconv.Itoa(int(st.table))})
		if len(st.acts) > 0 {
			var all []Action
			for _, a := range st.acts {
				all = append(all, a...)
			}
			node.Subs = append(node.Subs, &TraceNode{Kind: TraceTable, Text: "Restoring actions: " + FormatActions(all)})
		}
	}
	if len(st.acts) == 0 {
		x.lookupAndRun(st.table, false, x.flow.InPort)
		return true
	}
	// A dp_hash group froze the pipeline: its action and those after it
	// run again, in the table they ran in, with the packet's dp_hash now
	// set.
	x.table = st.table
	for _, acts := range st.acts {
		if x.exit || x.err != VerdictOK {
			break
		}
		x.run(acts)
	}
	return true
}

// ctClear translates ct_clear.
func (x *xlate) ctClear() {
	if !x.conntracked {
		return
	}
	x.flow.clearCT()
	x.emit(Action{Type: ActCTClear})
}

// clearCT zeroes k's connection tracking fields.
func (k *Key) clearCT() {
	var c ctSnapshot
	c.restore(k)
}

// ctSnapshot holds a key's connection tracking fields.
type ctSnapshot struct {
	label, ip6src, ip6dst [16]byte
	nwsrc, nwdst, mark    uint32
	zone, tpsrc, tpdst    uint16
	state, proto          uint8
}

func (c *ctSnapshot) save(k *Key) {
	*c = ctSnapshot{k.CtLabel, k.CtIPv6Src, k.CtIPv6Dst, k.CtNwSrc, k.CtNwDst, k.CtMark, k.CtZone, k.CtTpSrc, k.CtTpDst, k.CtState, k.CtNwProto}
}

func (c *ctSnapshot) restore(k *Key) {
	k.CtLabel, k.CtIPv6Src, k.CtIPv6Dst = c.label, c.ip6src, c.ip6dst
	k.CtNwSrc, k.CtNwDst, k.CtMark = c.nwsrc, c.nwdst, c.mark
	k.CtZone, k.CtTpSrc, k.CtTpDst = c.zone, c.tpsrc, c.tpdst
	k.CtState, k.CtNwProto = c.state, c.proto
}

// u128FromBytes reads a big-endian 128-bit number.
func u128FromBytes(b *[16]byte) u128 {
	var v u128
	for i := 0; i < 8; i++ {
		v.hi = v.hi<<8 | uint64(b[i])
		v.lo = v.lo<<8 | uint64(b[8+i])
	}
	return v
}

// u128ToBytes writes v big-endian into b.
func u128ToBytes(v u128, b *[16]byte) {
	for i := 0; i < 8; i++ {
		b[i] = byte(v.hi >> (56 - 8*i))
		b[8+i] = byte(v.lo >> (56 - 8*i))
	}
}
