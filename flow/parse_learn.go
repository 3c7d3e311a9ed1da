package flow

import (
	"strconv"
	"strings"
)

// This file parses learn(...) and fin_timeout(...) as ovs-ofctl does
// (ovs-actions(7)).

// learn parses learn(ARGUMENT...).
func (ap *actionParser) learn(t *token) error {
	s := ap.s
	if !t.paren {
		return errAt(s, t, "learn needs (arguments)")
	}
	l := &Learn{Table: 1, Priority: DefaultPriority}
	// What the learned flow matches so far: the prerequisites of a match
	// spec must be met by the specs before it, as in Open vSwitch.
	var learned Match
	lx := lexer{s: s, i: t.valPos, end: t.valPos + len(t.value)}
	for {
		at, ok, err := lx.next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if err := ap.learnArg(l, &at, &learned); err != nil {
			return err
		}
	}
	ap.add(Action{Type: ActLearn, Learn: l})
	return nil
}

// learnArg parses one argument of learn(...) into l.
func (ap *actionParser) learnArg(l *Learn, t *token, learned *Match) error {
	s := ap.s
	num := func(bits int) (uint64, error) {
		v, err := parseDecimal(t.value, bits)
		if err != nil {
			return 0, errAt(s, t, "%s: %v", t.key, err)
		}
		return v, nil
	}
	var err error
	var v uint64
	switch t.key {
	case "table":
		if v, err = num(8); err != nil {
			return err
		}
		if v > MaxTable {
			return errAt(s, t, "table id %d not valid for `learn' action", v)
		}
		l.Table = uint8(v)
	case "priority", "idle_timeout", "hard_timeout", "fin_idle_timeout", "fin_hard_timeout":
		if v, err = num(16); err != nil {
			return err
		}
		switch t.key {
		case "priority":
			l.Priority = uint16(v)
		case "idle_timeout":
			l.IdleTimeout = uint16(v)
		case "hard_timeout":
			l.HardTimeout = uint16(v)
		case "fin_idle_timeout":
			l.FinIdleTimeout = uint16(v)
		default:
			l.FinHardTimeout = uint16(v)
		}
	case "cookie":
		if l.Cookie, err = parseNum(t.value, 64); err != nil {
			return errAt(s, t, "cookie: %v", err)
		}
	case "send_flow_rem":
		l.Flags |= LearnSendFlowRem
	case "delete_learned":
		l.Flags |= LearnDeleteLearned
	case "limit", "result_dst":
		// A limit makes the learned actions depend on how many flows the
		// action learned before, which a megaflow cannot hold.
		return unsupportedAt(s, t, "learn %s= is not supported (it needs a per-action count of learned flows)", t.key)
	case "load":
		return ap.learnLoad(l, t)
	case "output":
		src, reason := parseSubfield(t.value)
		if reason == "" {
			reason = ap.readable(src)
		}
		if reason != "" {
			return errAt(s, t, "%s", reason)
		}
		l.Specs = append(l.Specs, LearnSpec{Kind: LearnOutput, Src: src})
	default:
		return ap.learnMatch(l, t, learned)
	}
	return nil
}

// learnMatch parses a match spec: FIELD[...]=SRC[...], FIELD=VALUE,
// FIELD[...]=VALUE or a bare FIELD[...].
func (ap *actionParser) learnMatch(l *Learn, t *token, learned *Match) error {
	s := ap.s
	dst, reason := parseSubfield(t.key)
	if reason != "" {
		return errAt(s, t, "unknown keyword %s", t.key)
	}
	f := dst.field()
	if !prereqMet(learned, f.pre) {
		return errAt(s, t, "%s: the learned flow's match lacks the prerequisites of %s (%s)", t.key, f.name, prereqText[f.pre])
	}
	sp := LearnSpec{Kind: LearnMatch, Dst: dst, Src: dst}
	if t.hasValue {
		src, srcReason := parseSubfield(t.value)
		if srcReason != "" {
			v, immReason := learnImmediate(ap.p, f, dst, t.value)
			if immReason != "" {
				return errAt(s, t, "%s value %s cannot be parsed as a subfield (%s) or an immediate value (%s)", t.key, t.value, srcReason, immReason)
			}
			sp.Imm, sp.Value, sp.Src = true, v, Subfield{}
		} else {
			if src.Bits() != dst.Bits() {
				return errAt(s, t, "bit widths of %s (%d) and %s (%d) differ", t.key, src.Bits(), t.value, dst.Bits())
			}
			sp.Src = src
		}
	}
	if !sp.Imm {
		if reason := ap.readable(sp.Src); reason != "" {
			return errAt(s, t, "%s", reason)
		}
	}
	// Record what the learned match holds, for the prerequisites of the
	// specs after this one (an immediate value is known; a copied one is
	// taken to satisfy them).
	v := sp.Value
	if !sp.Imm {
		v = ones(dst.Bits())
	}
	dst.write(&learned.Key, v)
	dst.consult(&learned.Mask)
	l.Specs = append(l.Specs, sp)
	return nil
}

// learnImmediate parses the immediate value of a match spec: written as
// the field's own values when the spec is the whole field, as a number
// that fits in the subfield otherwise.
func learnImmediate(p *Parser, f *field, dst Subfield, text string) (u128, string) {
	if !dst.whole() {
		v, reason := parse128(text, f.name)
		if reason != "" {
			return u128{}, "cannot parse integer value"
		}
		if !v.andNot(ones(dst.Bits())).isZero() {
			return u128{}, "value " + text + " does not fit into " + strconv.Itoa(int(dst.Bits())) + " bits"
		}
		return v, ""
	}
	switch f.kind {
	case kindMAC:
		v, ok := parseMAC(text)
		if !ok {
			return u128{}, "invalid Ethernet address"
		}
		return u128{lo: v}, ""
	case kindIPv4:
		v, ok := ipv4FromText(text)
		if !ok {
			return u128{}, "invalid IP address"
		}
		return u128{lo: uint64(v)}, ""
	case kindIPv6:
		a, ok := ipv6FromText(text)
		if !ok {
			return u128{}, "invalid IPv6 address"
		}
		var v u128
		for i := 0; i < 8; i++ {
			v.hi = v.hi<<8 | uint64(a[i])
			v.lo = v.lo<<8 | uint64(a[8+i])
		}
		return v, ""
	case kindPort:
		port, err := p.parsePort(text)
		if err != nil {
			return u128{}, err.Error()
		}
		return u128{lo: uint64(port)}, ""
	case kindNum, kindNum128:
		v, reason := parse128(text, f.name)
		if reason != "" {
			return u128{}, reason
		}
		if !v.andNot(ones(f.width())).isZero() {
			return u128{}, "value " + text + " does not fit into " + strconv.Itoa(int(f.width())) + " bits"
		}
		return v, ""
	}
	return u128{}, "a learn match on " + f.name + " is not supported"
}

// learnLoad parses load:SRC[...]->DST[...] and load:VALUE->DST[...].
func (ap *actionParser) learnLoad(l *Learn, t *token) error {
	s := ap.s
	srcText, dstText, ok := strings.Cut(t.value, "->")
	switch {
	case ok && srcText == "":
		return errAt(s, t, "load: missing source before `->' in `%s'", t.value)
	case !ok:
		return errAt(s, t, "load: missing `->' in `%s'", t.value)
	}
	dst, reason := parseSubfield(dstText)
	if reason != "" {
		return errAt(s, t, "%s", reason)
	}
	if f := dst.field(); f.set != setReg {
		return unsupportedAt(s, t, "learn load into %s is not supported (registers, metadata and pkt_mark are)", f.name)
	}
	if dst.Bits() > 64 {
		return unsupportedAt(s, t, "learn load of more than 64 bits (%s) is not supported", dstText)
	}
	sp := LearnSpec{Kind: LearnLoad, Dst: dst}
	if c := srcText[0]; c >= '0' && c <= '9' {
		v, reason := parse128(srcText, "load")
		if reason != "" {
			return errAt(s, t, "load: garbage before `->' in `%s'", t.value)
		}
		if !v.andNot(ones(dst.Bits())).isZero() {
			return errAt(s, t, "%s: value does not fit into %d bits", t.value, dst.Bits())
		}
		sp.Imm, sp.Value = true, v
	} else {
		src, reason := parseSubfield(srcText)
		if reason == "" {
			reason = ap.readable(src)
		}
		if reason != "" {
			return errAt(s, t, "%s", reason)
		}
		if src.Bits() != dst.Bits() {
			return errAt(s, t, "%s: source field is %d bits wide but destination is %d bits wide", t.value, src.Bits(), dst.Bits())
		}
		sp.Src = src
	}
	l.Specs = append(l.Specs, sp)
	return nil
}

// finTimeout parses fin_timeout(idle_timeout=N,hard_timeout=N).
func (ap *actionParser) finTimeout(t *token) error {
	s := ap.s
	if !t.paren {
		return errAt(s, t, "fin_timeout needs (arguments)")
	}
	a := Action{Type: ActFinTimeout}
	lx := lexer{s: s, i: t.valPos, end: t.valPos + len(t.value)}
	for {
		at, ok, err := lx.next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		v, err := parseDecimal(at.value, 16)
		if err != nil {
			return errAt(s, &at, "%s: %v", at.key, err)
		}
		switch at.key {
		case "idle_timeout":
			a.Value = v
		case "hard_timeout":
			a.Mask = v
		default:
			return errAt(s, &at, "invalid key '%s' in 'fin_timeout' argument", at.key)
		}
	}
	ap.add(a)
	return nil
}
