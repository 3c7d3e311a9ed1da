package flow

import (
	"slices"
	"strconv"
	"strings"
)

// This file is the learn action (ovs-actions(7) "learn"): what it holds,
// how it prints, and the flow it builds from a packet. Its parser is in
// parse_learn.go; translation runs it (xlate.go) and the Table installs
// what it learned (table_learn.go). flow/learn.go is something else: the
// normal action's MAC learning table.

// Learn is the argument of a learn action: the flow it adds, given as
// fixed parameters and specs that take values from the packet.
type Learn struct {
	Table          uint8
	Priority       uint16
	IdleTimeout    uint16 // 0: none
	HardTimeout    uint16 // 0: none
	FinIdleTimeout uint16 // the learned flow gets fin_timeout(...) when either is set
	FinHardTimeout uint16
	Cookie         uint64
	Flags          LearnFlags
	Specs          []LearnSpec
}

// LearnFlags are the flags of a learn action.
type LearnFlags uint8

// The learn flags.
const (
	LearnSendFlowRem   LearnFlags = 1 << iota // send_flow_rem: the learned flow carries it
	LearnDeleteLearned                        // delete_learned: removing the learning flow removes the learned ones
)

// LearnSpecKind is what a learn spec makes of its value.
type LearnSpecKind uint8

// The learn spec kinds.
const (
	LearnMatch  LearnSpecKind = iota + 1 // DST=SRC, DST=VALUE or bare DST: a match of the learned flow
	LearnLoad                            // load:SRC->DST, load:VALUE->DST: a load action of the learned flow
	LearnOutput                          // output:SRC: an output action of the learned flow
)

// LearnSpec is one spec of a learn action. The value is Src read from the
// packet, or Value when Imm; it goes to Dst (LearnMatch, LearnLoad) or is
// the output port (LearnOutput).
type LearnSpec struct {
	Kind  LearnSpecKind
	Imm   bool
	Value u128
	Src   Subfield
	Dst   Subfield
}

// Immediate returns the value of an immediate spec (Imm) as its high and
// low 64 bits.
func (sp *LearnSpec) Immediate() (hi, lo uint64) { return sp.Value.hi, sp.Value.lo }

// equal reports whether two learn actions are the same.
func (l *Learn) equal(o *Learn) bool {
	if l == o {
		return true
	}
	if l == nil || o == nil {
		return false
	}
	return l.Table == o.Table && l.Priority == o.Priority && l.IdleTimeout == o.IdleTimeout &&
		l.HardTimeout == o.HardTimeout && l.FinIdleTimeout == o.FinIdleTimeout &&
		l.FinHardTimeout == o.FinHardTimeout && l.Cookie == o.Cookie && l.Flags == o.Flags &&
		slices.Equal(l.Specs, o.Specs)
}

// deletesLearned reports whether the learn action removes what it
// learned when its flow goes, and which learned flows those are: the flows
// of its table with its cookie, as Open vSwitch identifies them.
func (l *Learn) deletesLearned() (learnedCookie, bool) {
	return learnedCookie{table: l.Table, cookie: l.Cookie}, l.Flags&LearnDeleteLearned != 0
}

// learnedCookie identifies the flows a delete_learned learn action owns.
type learnedCookie struct {
	table  uint8
	cookie uint64
}

// formatLearn writes a learn action as ovs-ofctl prints it.
func formatLearn(b *strings.Builder, l *Learn) {
	b.WriteString("learn(table=" + strconv.Itoa(int(l.Table)))
	num := func(name string, v uint16) {
		b.WriteString("," + name + "=" + strconv.Itoa(int(v)))
	}
	if l.IdleTimeout != 0 {
		num("idle_timeout", l.IdleTimeout)
	}
	if l.HardTimeout != 0 {
		num("hard_timeout", l.HardTimeout)
	}
	if l.FinIdleTimeout != 0 {
		num("fin_idle_timeout", l.FinIdleTimeout)
	}
	if l.FinHardTimeout != 0 {
		num("fin_hard_timeout", l.FinHardTimeout)
	}
	if l.Priority != DefaultPriority {
		num("priority", l.Priority)
	}
	if l.Flags&LearnSendFlowRem != 0 {
		b.WriteString(",send_flow_rem")
	}
	if l.Flags&LearnDeleteLearned != 0 {
		b.WriteString(",delete_learned")
	}
	if l.Cookie != 0 {
		b.WriteString(",cookie=0x" + strconv.FormatUint(l.Cookie, 16))
	}
	for i := range l.Specs {
		sp := &l.Specs[i]
		b.WriteByte(',')
		switch {
		case sp.Kind == LearnMatch && sp.Imm && sp.Dst.whole():
			f := sp.Dst.field()
			b.WriteString(f.name + "=" + learnValueText(f, sp.Value))
		case sp.Kind == LearnMatch && sp.Imm:
			b.WriteString(sp.Dst.String() + "=" + u128Text(sp.Value))
		case sp.Kind == LearnMatch:
			b.WriteString(sp.Dst.String())
			if sp.Src.Field != sp.Dst.Field || sp.Src.Ofs != sp.Dst.Ofs {
				b.WriteString("=" + sp.Src.String())
			}
		case sp.Kind == LearnLoad && sp.Imm:
			b.WriteString("load:" + u128Text(sp.Value) + "->" + sp.Dst.String())
		case sp.Kind == LearnLoad:
			b.WriteString("load:" + sp.Src.String() + "->" + sp.Dst.String())
		case sp.Kind == LearnOutput:
			b.WriteString("output:" + sp.Src.String())
		}
	}
	b.WriteByte(')')
}

// whole reports whether the subfield is its whole field.
func (sf Subfield) whole() bool {
	return sf.Ofs == 0 && sf.Bits() == sf.field().width()
}

// learnValueText writes a whole field's value as Open vSwitch writes it
// in a learn spec (mf_format): addresses in their notation, ports by
// number, and numbers in the base the field is shown in.
func learnValueText(f *field, v u128) string {
	switch f.kind {
	case kindMAC:
		return macText(v.lo)
	case kindIPv4:
		return ipv4Text(uint32(v.lo))
	case kindIPv6:
		var a [16]byte
		for i := 0; i < 8; i++ {
			a[i] = byte(v.hi >> (56 - 8*i))
			a[8+i] = byte(v.lo >> (56 - 8*i))
		}
		return ipv6Text(&a)
	case kindPort:
		return portText(uint32(v.lo))
	}
	if learnDecimal[f.id] {
		return strconv.FormatUint(v.lo, 10)
	}
	return "0x" + strings.TrimPrefix(u128Text(v), "0x")
}

// learnDecimal are the fields Open vSwitch writes in decimal.
var learnDecimal = map[FieldID]bool{
	FieldNwProto: true, FieldNwTTL: true, FieldIPDSCP: true, FieldNwECN: true,
	FieldTpSrc: true, FieldTpDst: true, FieldTCPSrc: true, FieldTCPDst: true,
	FieldUDPSrc: true, FieldUDPDst: true, FieldSCTPSrc: true, FieldSCTPDst: true,
	FieldICMPType: true, FieldICMPCode: true, FieldICMPv6Type: true, FieldICMPv6Code: true,
	FieldArpOp: true, FieldDlVLANPCP: true, FieldVLANPCP: true, FieldNwTos: true,
}

// learnedFlow builds the flow that l learns from a packet whose flow is
// k, as Open vSwitch's learn does (its fm is a modify-strict with the
// learn's table, priority, cookie, timeouts and send_flow_rem).
func (l *Learn) learnedFlow(k *Key) Flow {
	f := Flow{
		Table:       l.Table,
		Priority:    l.Priority,
		Cookie:      l.Cookie,
		IdleTimeout: l.IdleTimeout,
		HardTimeout: l.HardTimeout,
	}
	if l.Flags&LearnSendFlowRem != 0 {
		f.Flags = FlagSendFlowRem
	}
	if l.FinIdleTimeout != 0 || l.FinHardTimeout != 0 {
		f.Actions = append(f.Actions, Action{Type: ActFinTimeout, Value: uint64(l.FinIdleTimeout), Mask: uint64(l.FinHardTimeout)})
	}
	for i := range l.Specs {
		sp := &l.Specs[i]
		v := sp.Value
		if !sp.Imm {
			v = sp.Src.read(k)
		}
		switch sp.Kind {
		case LearnMatch:
			sp.Dst.write(&f.Match.Key, v)
			sp.Dst.consult(&f.Match.Mask)
		case LearnLoad:
			f.Actions = append(f.Actions, Action{Type: ActLoad, Dst: sp.Dst, Value: v.lo})
		case LearnOutput:
			if sp.Src.Bits() > 16 && !v.shr(16).isZero() {
				continue
			}
			port := uint32(v.lo)
			if port < PortMax || port == PortInPort || port == PortFlood || port == PortLocal || port == PortAll {
				f.Actions = append(f.Actions, Action{Type: ActOutput, Port: port})
			}
		}
	}
	f.Match.Normalize()
	return f
}

// learnedFlowText writes a learned flow as Open vSwitch's trace shows it.
func learnedFlowText(f *Flow) string {
	var b strings.Builder
	b.WriteString("table=" + strconv.Itoa(int(f.Table)))
	if m := FormatMatch(&f.Match, DefaultPriority); m != "" {
		b.WriteString(" " + m)
	}
	b.WriteString(" priority=" + strconv.Itoa(int(f.Priority)))
	if f.Cookie != 0 {
		b.WriteString(" cookie=0x" + strconv.FormatUint(f.Cookie, 16))
	}
	if f.IdleTimeout != 0 {
		b.WriteString(" idle=" + strconv.Itoa(int(f.IdleTimeout)))
	}
	if f.HardTimeout != 0 {
		b.WriteString(" hard=" + strconv.Itoa(int(f.HardTimeout)))
	}
	b.WriteString(" actions=")
	formatActions(&b, f.Actions)
	return b.String()
}

// formatFinTimeout writes fin_timeout(...) as ovs-ofctl prints it.
func formatFinTimeout(b *strings.Builder, a *Action) {
	b.WriteString("fin_timeout(")
	sep := ""
	if a.Value != 0 {
		b.WriteString("idle_timeout=" + strconv.FormatUint(a.Value, 10))
		sep = ","
	}
	if a.Mask != 0 {
		b.WriteString(sep + "hard_timeout=" + strconv.FormatUint(a.Mask, 10))
	}
	b.WriteByte(')')
}
