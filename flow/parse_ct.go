package flow

import (
	"fmt"
	"net/netip"
	"strings"
)

// This file parses the connection tracking syntax of ovs-fields(7) and
// ovs-actions(7): the ct_state match, the ct(...) action with its nat(...)
// and exec(...) arguments, and ct_clear.

// ctStateNames are the names of the ct_state bits, lowest bit first, as
// Open vSwitch parses and prints them.
var ctStateNames = [...]string{"new", "est", "rel", "rpl", "inv", "trk", "snat", "dnat"}

// ctStateValid follows an unknown ct_state flag in errors.
const ctStateValid = " (valid flags are new, est, rel, rpl, inv, trk, snat, dnat)"

// parseCtState parses a ct_state match: +flag-flag... (the flags named are
// matched, the others wildcarded), flags or numbers joined by | (an exact
// match), or VALUE/MASK numbers.
func parseCtState(s string) (v, m uint64, reason string) {
	const all = 0xff
	switch {
	case s == "":
		return 0, 0, "missing ct_state flags"
	case s[0] == '+' || s[0] == '-':
		return parseSignedFlags(s, ctStateNames[:], "ct_state flag", ctStateValid)
	case strings.Contains(s, "/"):
		val, maskText, _ := strings.Cut(s, "/")
		var err error
		if v, err = parseNum(val, 32); err != nil {
			return 0, 0, err.Error()
		}
		if m, err = parseNum(maskText, 32); err != nil {
			return 0, 0, "mask: " + err.Error()
		}
		if v&^all != 0 || m&^all != 0 {
			return 0, 0, fmt.Sprintf("%s: unknown ct_state flags (defined flags are 0xff)", Clipped(s))
		}
		return v & m, m, ""
	}
	for _, part := range strings.Split(s, "|") {
		if b, ok := flagBit(ctStateNames[:], part); ok {
			v |= b
			continue
		}
		n, err := parseNum(part, 32)
		if err != nil {
			return 0, 0, fmt.Sprintf("unknown ct_state flag %q%s", Clipped(part), ctStateValid)
		}
		if n&^all != 0 {
			return 0, 0, fmt.Sprintf("%s: unknown ct_state flags (defined flags are 0xff)", Clipped(part))
		}
		v |= n
	}
	return v, all, ""
}

// Connection tracking helpers (alg=) by their ports.
const (
	ctAlgFTP  = 21
	ctAlgTFTP = 69
)

// ct parses ct([ARG]...) (ovs-actions(7)).
func (ap *actionParser) ct(t *token) error {
	s := ap.s
	ct := &CT{Table: CTNoTable}
	var commitTok *token
	lx := lexer{s: s, i: t.valPos, end: t.valPos + len(t.value)}
	for {
		at, ok, err := lx.next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		noValue := func() error {
			if at.hasValue || at.paren {
				return errAt(s, &at, "ct argument %s takes no value", at.key)
			}
			return nil
		}
		switch at.key {
		case "commit":
			if err := noValue(); err != nil {
				return err
			}
			ct.Commit = true
			commitTok = &at
		case "force":
			if err := noValue(); err != nil {
				return err
			}
			ct.Force = true
		case "table":
			v, err := parseDecimal(at.value, 32)
			switch {
			case err != nil:
				return errAt(s, &at, "ct table: %v", err)
			case v == CTNoTable:
				return errAt(s, &at, "ct table 255 is not valid (tables are 0 to %d)", MaxTable)
			case v > CTNoTable:
				return errAt(s, &at, "ct table %d out of range (tables are 0 to %d)", v, MaxTable)
			}
			ct.Table = uint8(v)
		case "zone":
			if err := ap.ctZone(ct, &at); err != nil {
				return err
			}
		case "alg":
			switch at.value {
			case "ftp":
				ct.Alg = ctAlgFTP
			case "tftp":
				ct.Alg = ctAlgTFTP
			default:
				return errAt(s, &at, `invalid "alg" argument %q (ftp or tftp)`, at.value)
			}
		case "nat":
			if ct.NAT != nil {
				return errAt(s, &at, "ct takes one nat argument")
			}
			if len(ct.Exec) > 0 {
				return errAt(s, &at, "nat must come before exec(...) in ct")
			}
			n, err := ap.nat(&at)
			if err != nil {
				return err
			}
			ct.NAT = n
		case "exec":
			sub := actionParser{p: ap.p, s: s, m: ap.m, vlan: ap.vlan, table: ap.table, inCT: ct}
			acts, err := sub.parse(at.valPos, at.valPos+len(at.value))
			if err != nil {
				return err
			}
			ct.Exec = append(ct.Exec, acts...)
			if len(ct.Exec) > MaxActions {
				e := errAt(s, &at, "%d actions in exec, more than the %d a flow may have", len(ct.Exec), MaxActions)
				e.Err = ErrTooManyActions
				return e
			}
		default:
			return errAt(s, &at, `invalid argument %q to "ct" action (commit, force, table, zone, alg, nat, exec)`, at.key)
		}
	}
	if err := ap.ctCheck(t, ct, commitTok); err != nil {
		return err
	}
	ap.add(Action{Type: ActCT, CT: ct})
	return nil
}

// ctZone parses zone=N or zone=SRC[A..B] (a 16-bit subfield).
func (ap *actionParser) ctZone(ct *CT, at *token) error {
	s := ap.s
	if at.value == "" {
		return errAt(s, at, "ct zone needs a number (0 to 65535) or a 16-bit field")
	}
	if c := at.value[0]; c >= '0' && c <= '9' {
		v, err := parseNum(at.value, 16)
		if err != nil {
			return errAt(s, at, "ct zone: %v (zones are 0 to 65535)", err)
		}
		if ct.ZoneSrc.Field == FieldNone { // as in Open vSwitch, a zone field given before wins
			ct.Zone = uint16(v)
		}
		return nil
	}
	sf, reason := ap.readableSubfield(at.value)
	if reason != "" {
		return errAt(s, at, "ct zone: %s", reason)
	}
	if sf.Bits() != 16 {
		return errAt(s, at, "ct zone %s is %d bits wide; a zone field must be 16 bits", at.value, sf.Bits())
	}
	ct.Zone, ct.ZoneSrc = 0, sf
	return nil
}

// ctCheck checks a parsed ct action against the rest of the flow, as Open
// vSwitch checks it when it decodes and installs the flow.
func (ap *actionParser) ctCheck(t *token, ct *CT, commitTok *token) error {
	s := ap.s
	if ct.Force && !ct.Commit {
		return errAt(s, t, `ct "force" flag requires "commit" flag`)
	}
	if !ct.Commit && (len(ct.Exec) > 0 || ct.NAT != nil && ct.NAT.Kind != NATRestore) {
		return errAt(s, t, "ct requires commit for exec(...) and nat(src|dst); without commit only a bare nat is allowed")
	}
	m := ap.m
	if m == nil {
		return nil // a group's bucket: translation checks the packet
	}
	if !prereqMet(m, preIP) {
		return errAt(s, t, "ct requires ip or ipv6 in the match")
	}
	if ct.Commit && m.Mask.CtState&CtStateInv != 0 && m.Key.CtState&CtStateInv != 0 {
		return errAt(s, commitTok, "ct cannot commit a packet the match says is invalid (ct_state=+inv)")
	}
	switch {
	case ct.Alg == ctAlgFTP && !prereqMet(m, preTCP):
		return errAt(s, t, "ct alg=ftp requires tcp or tcp6 in the match")
	case ct.Alg == ctAlgTFTP && !prereqMet(m, preUDP):
		return errAt(s, t, "ct alg=tftp requires udp or udp6 in the match")
	}
	if n := ct.NAT; n != nil && n.AddrMin.IsValid() {
		if n.AddrMin.Is4() && m.Key.DlType != EthTypeIPv4 {
			return errAt(s, t, "ct nat to an IPv4 address requires ip in the match")
		}
		if n.AddrMin.Is6() && m.Key.DlType != EthTypeIPv6 {
			return errAt(s, t, "ct nat to an IPv6 address requires ipv6 in the match")
		}
	}
	return nil
}

// nat parses the nat argument of ct: nat, or
// nat(src|dst[=ADDR[-ADDR][:PORT[-PORT]]][,persistent][,hash|random]).
func (ap *actionParser) nat(t *token) (*NAT, error) {
	s := ap.s
	n := &NAT{Kind: NATRestore}
	var flagTok *token
	lx := lexer{s: s, i: t.valPos, end: t.valPos + len(t.value)}
	for {
		at, ok, err := lx.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		switch at.key {
		case "src", "dst":
			if n.Kind != NATRestore {
				return nil, errAt(s, &at, `nat takes only one of "src" or "dst"`)
			}
			n.Kind = NATSrc
			if at.key == "dst" {
				n.Kind = NATDst
			}
			if reason := parseNATRange(n, at.value); reason != "" {
				return nil, errAt(s, &at, "%s", reason)
			}
		case "persistent", "hash", "random":
			if at.hasValue || at.paren {
				return nil, errAt(s, &at, "nat flag %s takes no value", at.key)
			}
			switch at.key {
			case "persistent":
				n.Persistent = true
			case "hash":
				n.Hash = true
			default:
				n.Random = true
			}
			if flagTok == nil {
				flagTok = &at
			}
			if n.Hash && n.Random {
				return nil, errAt(s, &at, `nat takes "hash" or "random", not both`)
			}
		default:
			return nil, errAt(s, &at, "invalid key %q in nat argument (src, dst, persistent, hash, random)", at.key)
		}
	}
	if n.Kind == NATRestore && flagTok != nil {
		return nil, errAt(s, flagTok, `nat flags are allowed only with "src" or "dst"`)
	}
	if !n.AddrMin.IsValid() {
		// Open vSwitch keeps the flags of a nat without an address, but
		// they choose among addresses and ports, and it prints none.
		n.Persistent, n.Hash, n.Random = false, false, false
	}
	return n, nil
}

// parseNATRange parses ADDR[-ADDR][:PORT[-PORT]] into n (an IPv6 address
// may be written in brackets, as it must be before a port). It returns a
// reason when s is not valid. A single address or port is stored as a
// range of one.
func parseNATRange(n *NAT, s string) string {
	if s == "" {
		return ""
	}
	bad := func(why string) string { return fmt.Sprintf("invalid nat range %q: %s", Clipped(s), why) }
	rest := s
	min, rest, ok := scanNATAddr(rest)
	if !ok {
		return bad("expected an IPv4 or IPv6 address")
	}
	max := min
	if strings.HasPrefix(rest, "-") {
		if max, rest, ok = scanNATAddr(rest[1:]); !ok || max.Is4() != min.Is4() {
			return bad("expected a second address of the same family after -")
		}
		if max.Less(min) {
			return bad("the last address is below the first")
		}
	}
	var pmin, pmax uint64
	if strings.HasPrefix(rest, ":") {
		rest = rest[1:]
		i := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
		if i < 0 {
			i = len(rest)
		}
		var err error
		if pmin, err = parseDecimal(rest[:i], 16); err != nil {
			return bad("port: " + err.Error())
		}
		rest, pmax = rest[i:], pmin
		if strings.HasPrefix(rest, "-") {
			rest = rest[1:]
			if i = strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' }); i < 0 {
				i = len(rest)
			}
			if pmax, err = parseDecimal(rest[:i], 16); err != nil {
				return bad("port: " + err.Error())
			}
			rest = rest[i:]
			if pmax < pmin {
				return bad("the last port is below the first")
			}
			if pmin == 0 {
				return bad("a port range starts at 1 or above")
			}
		}
	}
	if rest != "" {
		return fmt.Sprintf("garbage %q after nat range %q", Clipped(rest), Clipped(s))
	}
	if min.IsUnspecified() {
		// Open vSwitch encodes no address for 0.0.0.0 (or ::): it reads
		// as no range at all.
		if max != min || pmin != 0 {
			return bad("a range cannot start at the unspecified address")
		}
		return ""
	}
	n.AddrMin, n.AddrMax = min, max
	n.PortMin, n.PortMax = uint16(pmin), uint16(pmax)
	return ""
}

// scanNATAddr reads an address at the start of s: IPv4, IPv6 in brackets,
// or IPv6 without brackets (which then runs to the first character that
// cannot be part of one).
func scanNATAddr(s string) (netip.Addr, string, bool) {
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return netip.Addr{}, s, false
		}
		a, err := netip.ParseAddr(s[1:end])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return netip.Addr{}, s, false
		}
		return a, s[end+1:], true
	}
	span := func(chars string) int {
		i := 0
		for i < len(s) && strings.IndexByte(chars, s[i]) >= 0 {
			i++
		}
		return i
	}
	if i := span("0123456789."); i > 0 {
		if a, err := netip.ParseAddr(s[:i]); err == nil && a.Is4() {
			return a, s[i:], true
		}
	}
	i := span("0123456789abcdefABCDEF:.")
	a, err := netip.ParseAddr(s[:i])
	if err != nil || !a.Is6() {
		return netip.Addr{}, s, false
	}
	return a, s[i:], true
}

// execAction checks an action inside ct(exec(...)): only set_field, load
// and move into ct_mark or ct_label, and a nat that comes first, as in
// Open vSwitch. It reports whether it handled t itself (nat, drop).
func (ap *actionParser) execAction(t *token, name string) (bool, error) {
	s := ap.s
	switch name {
	case "drop":
		return false, nil
	case "nat":
		if ap.inCT.NAT != nil || len(ap.inCT.Exec) > 0 || len(ap.acts) > 0 {
			return true, errAt(s, t, "nat inside exec(...) must come first and only once in ct")
		}
		n, err := ap.nat(t)
		if err != nil {
			return true, err
		}
		ap.inCT.NAT = n
		return true, nil
	case "set_field", "load", "move":
		_, dst, ok := strings.Cut(t.value, "->")
		if !ok {
			return false, nil // the action's own parser says what is missing
		}
		f := lookupSubfieldField(strings.SplitN(dst, "[", 2)[0])
		if f == nil {
			return false, nil
		}
		if f.set != setCT {
			return true, errAt(s, t, "ct action doesn't support nested modification of %s (only ct_mark and ct_label)", f.name)
		}
		return false, nil
	}
	return true, errAt(s, t, "ct action doesn't support nested action %s (only set_field, load and move into ct_mark and ct_label)", name)
}

// ctClear parses ct_clear.
func (ap *actionParser) ctClear(t *token) error {
	if t.hasValue || t.paren {
		return errAt(ap.s, t, "ct_clear takes no argument")
	}
	ap.add(Action{Type: ActCTClear})
	return nil
}

// ctFieldOutside is the reason a set_field, load, move or pop into ct_mark
// or ct_label is refused outside ct(exec(...)).
const ctFieldOutside = "cannot set CT fields outside of ct action (ct_mark and ct_label are written by ct(commit,exec(...)))"

// equal reports whether two ct actions say the same.
func (c *CT) equal(o *CT) bool {
	if c == o {
		return true
	}
	if c == nil || o == nil {
		return false
	}
	x, y := *c, *o
	if (x.NAT == nil) != (y.NAT == nil) || x.NAT != nil && *x.NAT != *y.NAT {
		return false
	}
	if len(x.Exec) != len(y.Exec) {
		return false
	}
	for i := range x.Exec {
		if !sameAction(x.Exec[i], y.Exec[i]) {
			return false
		}
	}
	x.NAT, y.NAT, x.Exec, y.Exec = nil, nil, nil, nil
	return x.Commit == y.Commit && x.Force == y.Force && x.Zone == y.Zone && x.ZoneSrc == y.ZoneSrc &&
		x.Table == y.Table && x.Alg == y.Alg && x.SetMark == y.SetMark && x.SetLabel == y.SetLabel &&
		x.Mark == y.Mark && x.MarkMask == y.MarkMask && x.Label == y.Label && x.LabelMask == y.LabelMask
}
