package flow

import (
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net/netip"
	"strconv"
	"strings"
)

// Command is the ovs-ofctl command a flow string is written for; it decides
// which keywords the string may use, as ovs-ofctl does.
type Command uint8

// The commands.
const (
	// CmdAdd is add-flow: actions are required; priority, cookie (without
	// a mask) and timeouts are allowed.
	CmdAdd Command = iota
	// CmdModify is mod-flows: as CmdAdd, and cookie=V/M and out_port
	// select the flows to modify.
	CmdModify
	// CmdDelete is del-flows: no actions, priority or timeouts; cookie=V/M
	// and out_port select the flows to delete.
	CmdDelete
)

// ErrUnsupportedSyntax is wrapped by a SyntaxError for syntax that Open vSwitch
// accepts but ovsxdp does not implement (controller, group, learn, ct,
// conjunction, ...).
var ErrUnsupportedSyntax = errors.New("not supported by ovsxdp")

// ErrTooManyActions is returned, wrapped in a SyntaxError, for a flow with
// more than MaxActions actions.
var ErrTooManyActions = errors.New("too many actions")

// SyntaxError is a flow string that cannot be parsed: the token at byte
// offset Pos (a key=value pair or an action) and the reason.
type SyntaxError struct {
	Pos    int    // byte offset of Token in the flow string
	Token  string // the offending key=value, key:value or word
	Reason string
	Err    error // ErrUnsupportedSyntax, ErrTooManyActions, or nil
}

// Error reports the column (Pos+1), the token and the reason.
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("flow: at column %d %q: %s", e.Pos+1, Clipped(e.Token), e.Reason)
}

// maxQuoted bounds how much of a piece of the input an error message
// repeats: a flow of megabytes gives an error of a line.
const maxQuoted = 64

// Clipped formats a piece of the input in an error message (%s or %q): at
// most maxQuoted bytes of it, and when it is longer "..." and its length.
type Clipped string

func (c Clipped) Format(f fmt.State, verb rune) {
	s := string(c)
	if len(s) > maxQuoted {
		s = s[:maxQuoted]
	}
	if verb == 'q' {
		s = strconv.Quote(s)
	}
	io.WriteString(f, s)
	if len(c) > maxQuoted {
		fmt.Fprintf(f, "... (%d bytes)", len(c))
	}
}

// Unwrap returns ErrUnsupportedSyntax for unsupported syntax and
// ErrTooManyActions for an action list over MaxActions.
func (e *SyntaxError) Unwrap() error { return e.Err }

// Parser parses ovs-ofctl flow syntax. The zero Parser knows port numbers
// and OpenFlow's reserved port names only.
type Parser struct {
	// PortNames, if not nil, resolves a port name such as "eth0" to its
	// OpenFlow port number. It is consulted after numbers and reserved
	// names.
	PortNames func(name string) (uint32, bool)
	// TLV is the bridge's TLV map, which says where tun_metadata0-63 live
	// and how long they are; a flow naming a field it does not map is
	// refused (ErrTLVUnmapped). Nil maps nothing.
	TLV *TLVMap
	// FromWire says the text is a match decoded from an OpenFlow message
	// (NXM, OXM or ofp_match), which the switch takes as it came: not
	// one ovs-ofctl is to send, which it would send as OpenFlow 1.0 where
	// it can, rewriting a match on "no VLAN header" (finish).
	FromWire bool
}

// ParseFlow parses one flow in ovs-ofctl syntax for cmd with the zero
// Parser.
func ParseFlow(s string, cmd Command) (*Flow, error) {
	var p Parser
	return p.ParseFlow(s, cmd)
}

// ParseMatch parses a match without actions or flow keywords (priority,
// cookie, ...) with the zero Parser.
func ParseMatch(s string) (*Match, error) {
	var p Parser
	return p.ParseMatch(s)
}

// token is one key[=:value] or key(value) item of a flow string.
type token struct {
	key, value string
	pos, end   int  // s[pos:end] is the whole token
	valPos     int  // offset of value
	hasValue   bool // key was followed by '=' or ':'
	paren      bool // key was followed by '('
	// arrow is what follows "->" right after check_pkt_larger's closing
	// parenthesis, up to the next separator (check_pkt_larger(N)->DST);
	// hasArrow says there was one. No other item has it.
	arrow    string
	hasArrow bool
}

func (t *token) text(s string) string { return s[t.pos:t.end] }

func isSep(c byte) bool { return c == ',' || c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// lexer splits s[i:end] into tokens the way ovs-ofctl does: items are
// separated by commas or white space; a key ends at '=', ':' or '('; a value
// after '=' or ':' runs to the next separator outside parentheses, a value
// after '(' to the matching ')'.
type lexer struct {
	s      string
	i, end int
}

func (l *lexer) next() (t token, ok bool, err error) {
	s := l.s
	for l.i < l.end && isSep(s[l.i]) {
		l.i++
	}
	if l.i >= l.end {
		return t, false, nil
	}
	t.pos = l.i
	for l.i < l.end && !isSep(s[l.i]) && s[l.i] != '=' && s[l.i] != ':' && s[l.i] != '(' {
		l.i++
	}
	t.key = s[t.pos:l.i]
	t.valPos = l.i
	if l.i >= l.end || isSep(s[l.i]) {
		t.end = l.i
		return t, true, nil
	}
	delim := s[l.i]
	l.i++
	t.valPos = l.i
	depth := 0
	if delim == '(' {
		t.paren = true
		depth = 1
		for l.i < l.end {
			if s[l.i] == '(' {
				depth++
			} else if s[l.i] == ')' {
				depth--
				if depth == 0 {
					break
				}
			}
			l.i++
		}
		if depth != 0 {
			t.end = l.end
			return t, false, &SyntaxError{Pos: t.pos, Token: s[t.pos:l.end], Reason: "unbalanced parentheses"}
		}
		t.value = s[t.valPos:l.i]
		l.i++
		if strings.HasPrefix(s[l.i:l.end], "->") && strings.EqualFold(t.key, "check_pkt_larger") {
			l.i += 2
			start := l.i
			for l.i < l.end && !isSep(s[l.i]) {
				l.i++
			}
			t.arrow, t.hasArrow = s[start:l.i], true
		}
		t.end = l.i
		return t, true, nil
	}
	t.hasValue = true
	for l.i < l.end {
		c := s[l.i]
		if depth == 0 && isSep(c) {
			break
		}
		if c == '(' {
			depth++
		} else if c == ')' && depth > 0 {
			depth--
		}
		l.i++
	}
	t.value = s[t.valPos:l.i]
	t.end = l.i
	return t, true, nil
}

// errAt builds a SyntaxError for token t of s.
func errAt(s string, t *token, format string, args ...any) *SyntaxError {
	if format != "%s" { // "%s": a reason whose own quotes are clipped
		for i, a := range args {
			if str, ok := a.(string); ok {
				args[i] = Clipped(str)
			}
		}
	}
	return &SyntaxError{Pos: t.pos, Token: t.text(s), Reason: fmt.Sprintf(format, args...)}
}

func unsupportedAt(s string, t *token, format string, args ...any) *SyntaxError {
	e := errAt(s, t, format, args...)
	e.Err = ErrUnsupportedSyntax
	return e
}

// ParseFlow parses one flow in ovs-ofctl syntax for cmd: a match, flow
// keywords, and (for CmdAdd and CmdModify) "actions=" followed by the
// action list. The result agrees with what ovs-ofctl parse-flow makes of
// the same text, except that ovsxdp rejects fields whose prerequisites are
// missing where Open vSwitch silently drops them.
func (p *Parser) ParseFlow(s string, cmd Command) (*Flow, error) {
	f := new(Flow)
	if err := p.ParseFlowTo(f, s, cmd); err != nil {
		return nil, err
	}
	return f, nil
}

// ParseFlowTo is ParseFlow into *f, which it overwrites whole, so that a
// caller that parses many flows one after the other can reuse one Flow.
// After an error *f is undefined.
func (p *Parser) ParseFlowTo(f *Flow, s string, cmd Command) error {
	*f = Flow{Priority: DefaultPriority, OutPort: PortNone}
	if cmd != CmdAdd {
		f.Table = TableAll
	}
	matchEnd, actPos := len(s), -1
	if i := strings.Index(s, "action"); i >= 0 {
		rest := s[i:]
		switch {
		case strings.HasPrefix(rest, "actions="):
			actPos = i + len("actions=")
		case strings.HasPrefix(rest, "action="):
			actPos = i + len("action=")
		default:
			l := lexer{s: s, i: i, end: len(s)}
			t, _, _ := l.next()
			return errAt(s, &t, `expected "actions=" followed by the action list`)
		}
		matchEnd = i
	}
	if cmd == CmdDelete && actPos >= 0 {
		t := token{pos: matchEnd, end: len(s)}
		return errAt(s, &t, "del-flows takes no actions")
	}
	if cmd != CmdDelete && actPos < 0 {
		t := token{pos: 0, end: len(s)}
		return errAt(s, &t, `must specify actions ("actions=...")`)
	}

	mp := matchParser{p: p, s: s, wire: p.FromWire}
	if err := mp.parse(matchEnd, func(t *token) (bool, error) { return mp.flowKeyword(f, cmd, t) }); err != nil {
		return err
	}
	f.Match = mp.m
	if actPos >= 0 {
		ap := actionParser{p: p, s: s, m: &f.Match, vlan: f.Match.Key.VLANs[0].TCI&VLANPresent != 0, table: f.Table, top: true}
		acts, err := ap.parse(actPos, len(s))
		if err != nil {
			return err
		}
		if len(acts) > MaxActions {
			t := token{pos: matchEnd, end: actPos - 1}
			e := errAt(s, &t, "%d actions, more than the %d a flow may have (as in Open vSwitch)", len(acts), MaxActions)
			e.Err = ErrTooManyActions
			return e
		}
		f.Actions = acts
	}
	return nil
}

// ParseMatch parses a match: fields and protocol shorthands only.
func (p *Parser) ParseMatch(s string) (*Match, error) {
	mp := matchParser{p: p, s: s, wire: p.FromWire}
	if err := mp.parse(len(s), nil); err != nil {
		return nil, err
	}
	m := mp.m
	return &m, nil
}

// matchParser builds a Match from the match part of a flow string.
type matchParser struct {
	p    *Parser
	s    string
	m    Match
	nxm  bool        // a field needs NXM: OpenFlow 1.0 cannot carry it
	wire bool        // the match came in a message (Parser.FromWire, WireMatch)
	used []usedField // matched fields, for the prerequisite check
}

type usedField struct {
	f   *field
	tok token
}

// protocols are the shorthands for dl_type and nw_proto.
var protocols = map[string]struct {
	dlType  uint16
	nwProto uint8
}{
	"ip":    {EthTypeIPv4, 0},
	"ipv6":  {EthTypeIPv6, 0},
	"icmp":  {EthTypeIPv4, IPProtoICMP},
	"icmp6": {EthTypeIPv6, IPProtoICMPv6},
	"tcp":   {EthTypeIPv4, IPProtoTCP},
	"tcp6":  {EthTypeIPv6, IPProtoTCP},
	"udp":   {EthTypeIPv4, IPProtoUDP},
	"udp6":  {EthTypeIPv6, IPProtoUDP},
	"sctp":  {EthTypeIPv4, IPProtoSCTP},
	"sctp6": {EthTypeIPv6, IPProtoSCTP},
	"arp":   {EthTypeARP, 0},
	"rarp":  {EthTypeRARP, 0},
}

// unsupportedFields are match keywords Open vSwitch knows that ovsxdp does
// not implement.
var unsupportedFields = map[string]bool{
	"igmp": true, "mpls": true, "mplsm": true, "nsh": true,
	"skb_priority": true, "tun_id": true,
	"tunnel_id": true, "tun_src": true, "tun_dst": true, "recirc_id": true,
	"dp_hash": true, "actset_output": true, "packet_type": true,
	"mpls_label": true, "mpls_tc": true, "mpls_bos": true, "mpls_ttl": true,
	"in_port_oxm": true, "importance": true,
	"out_group": true, "nd_reserved": true, "nd_options_type": true,
	"dl_vlan1": true, "vlan_tci1": true, "dl_vlan_pcp1": true,
}

// parse reads the tokens of s[:end]. kw, if not nil, is offered each token
// first and reports whether it was a flow keyword.
func (mp *matchParser) parse(end int, kw func(*token) (bool, error)) error {
	l := lexer{s: mp.s, end: end}
	for {
		t, ok, err := l.next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if kw != nil {
			done, err := kw(&t)
			if err != nil {
				return err
			}
			if done {
				continue
			}
		}
		if err := mp.item(&t); err != nil {
			return err
		}
	}
	return mp.finish()
}

// item applies one match item: a protocol shorthand or field=value.
func (mp *matchParser) item(t *token) error {
	s := mp.s
	if t.paren {
		return errAt(s, t, "parentheses are not allowed in a match")
	}
	if pr, ok := protocols[t.key]; ok {
		if t.hasValue {
			return errAt(s, t, "protocol %s takes no value", t.key)
		}
		mp.m.Key.DlType, mp.m.Mask.DlType = pr.dlType, 0xffff
		if pr.nwProto != 0 {
			mp.m.Key.NwProto, mp.m.Mask.NwProto = pr.nwProto, 0xff
			// A later dl_type may take away what nw_proto needs.
			mp.record(fieldByName["nw_proto"], t, 0xff)
		}
		return nil
	}
	if i, ok := tunMetaIndex(t.key); ok {
		return mp.setTunMeta(i, t)
	}
	f := fieldByName[t.key]
	if f == nil {
		if unsupportedFields[t.key] {
			return unsupportedAt(s, t, "field %s is not supported", t.key)
		}
		return errAt(s, t, "unknown field %s", t.key)
	}
	if !t.hasValue || t.value == "" {
		return errAt(s, t, "field %s needs a value", t.key)
	}
	var err error
	switch f.kind {
	case kindIPv6:
		err = mp.setIPv6(f, t)
	case kindNum128:
		err = mp.set128(f, t)
	default:
		err = mp.setScalar(f, t)
	}
	return err
}

// setScalar parses and applies a field that fits a uint64.
func (mp *matchParser) setScalar(f *field, t *token) error {
	s := mp.s
	val, maskText, hasMask := strings.Cut(t.value, "/")
	if hasMask && !f.maskable {
		return errAt(s, t, "field %s is not maskable", t.key)
	}
	var v, m uint64
	full := storageBits(f.st)
	switch f.kind {
	case kindPort:
		port, err := mp.p.parsePort(val)
		if err != nil {
			return errAt(s, t, "%v", err)
		}
		v, m = uint64(port), full
	case kindMAC:
		mac, ok := parseMAC(val)
		if !ok {
			return errAt(s, t, "invalid Ethernet address %q", val)
		}
		v, m = mac, full
		if hasMask {
			if m, ok = parseMAC(maskText); !ok {
				return errAt(s, t, "invalid Ethernet mask %q", maskText)
			}
		}
		if m != full && m != 0 {
			mp.nxm = true // OpenFlow 1.0 matches Ethernet addresses exactly or not at all
		}
	case kindIPv4:
		ip, ok := ipv4FromText(val)
		if !ok {
			return errAt(s, t, "invalid IP address %q", val)
		}
		v, m = uint64(ip), full
		if hasMask {
			mk, err := parseIPv4Mask(maskText)
			if err != "" {
				return errAt(s, t, "%s", err)
			}
			m = uint64(mk)
		}
		if !isCIDR32(uint32(m)) || f.of10 == of10No && m != 0 {
			mp.nxm = true
		}
	case kindFrag:
		var ok bool
		if v, m, ok = parseFrag(val); !ok {
			return errAt(s, t, `unknown fragment type %q (valid types are "no", "yes", "first", "later", "not_later")`, val)
		}
		mp.nxm = true
	case kindTCPFlags:
		var err string
		if v, m, err = parseTCPFlags(t.value); err != "" {
			return errAt(s, t, "%s", err)
		}
	case kindCtState:
		var err string
		if v, m, err = parseCtState(t.value); err != "" {
			return errAt(s, t, "%s", err)
		}
	case kindTunFlags:
		var err string
		if v, m, err = parseTunFlags(t.value); err != "" {
			return errAt(s, t, "%s", err)
		}
	default:
		var err error
		if v, err = parseNum(val, 64); err != nil {
			return errAt(s, t, "%v", err)
		}
		m = f.bits >> f.shift
		if hasMask {
			if m, err = parseNum(maskText, 64); err != nil {
				return errAt(s, t, "mask: %v", err)
			}
			if m > f.max {
				return errAt(s, t, "mask %s out of range for %s (at most %#x)", maskText, t.key, f.max)
			}
		}
		if reason := checkMatchValue(f, v); reason != "" {
			return errAt(s, t, "%s", reason)
		}
		if f.of10 == of10No && m != 0 || hasMask && m != 0 && m != 0xffff {
			mp.nxm = true
		}
		mp.applyNum(f, v, m)
		mp.record(f, t, m)
		return nil
	}
	mp.applyRaw(f.st, v&m, m, full)
	mp.record(f, t, m)
	if f.of10 == of10No && m != 0 {
		mp.nxm = true
	}
	return nil
}

// checkMatchValue checks a number written for a match on f.
func checkMatchValue(f *field, v uint64) string {
	switch f.id {
	case FieldDlVLAN:
		if v > VLANVIDMask && v != 0xffff {
			return fmt.Sprintf("dl_vlan %d out of range (0 to 4095, or 0xffff for no VLAN)", v)
		}
		return ""
	case FieldNwTos:
		if v > 0xff || v&3 != 0 {
			return fmt.Sprintf("nw_tos %d is not a valid TOS (0 to 252, a multiple of 4; the low bits are nw_ecn)", v)
		}
		return ""
	case FieldCtNwProto:
		if v == 0 {
			return "ct_nw_proto=0 cannot be matched: Open vSwitch carries ct_nw_proto (and ct_tp_src, ct_tp_dst) only when it is not 0"
		}
	case FieldDlType:
		if v < EthTypeMinTy || v > 0xffff {
			return fmt.Sprintf("dl_type %#x is not an Ethertype (0x0600 to 0xffff)", v)
		}
		return ""
	}
	if v > f.max {
		return fmt.Sprintf("value %d out of range for %s (at most %d)", v, f.name, f.max)
	}
	return ""
}

// applyNum applies a numeric field's value v and mask m (in the field's own
// units) to the match, as Open vSwitch's match_set_* functions do.
func (mp *matchParser) applyNum(f *field, v, m uint64) {
	var sv, sm uint64
	bitsCovered := f.bits
	switch f.id {
	case FieldDlVLAN:
		if v == 0xffff { // no VLAN header
			sv, sm, bitsCovered = 0, 0xffff, 0xffff
		} else {
			sv, sm = v|VLANPresent, VLANPresent|VLANVIDMask
		}
	case FieldDlVLANPCP, FieldVLANPCP:
		sv, sm = v<<13|VLANPresent, VLANPCPMask|VLANPresent
	default:
		sv, sm = (v&m)<<f.shift&f.bits, m<<f.shift&f.bits
	}
	mp.applyRaw(f.st, sv&sm, sm, bitsCovered)
}

// applyRaw replaces the bits `covered` of storage st with value v and mask
// m, keeping the other bits (nw_tos and nw_ecn share a byte; the VLAN
// fields share the TCI).
func (mp *matchParser) applyRaw(st storage, v, m, covered uint64) {
	k, mk := getNum(&mp.m.Key, st), getNum(&mp.m.Mask, st)
	k = k&^covered | v&m
	mk = mk&^covered | m
	setNum(&mp.m.Key, st, k&mk)
	setNum(&mp.m.Mask, st, mk)
}

func (mp *matchParser) record(f *field, t *token, m uint64) {
	if m != 0 {
		mp.used = append(mp.used, usedField{f: f, tok: *t})
	}
}

// setIPv6 parses and applies an IPv6 address field.
func (mp *matchParser) setIPv6(f *field, t *token) error {
	s := mp.s
	val, maskText, hasMask := strings.Cut(t.value, "/")
	a, ok := ipv6FromText(val)
	if !ok {
		return errAt(s, t, "invalid IPv6 address %q", val)
	}
	var m [16]byte
	for i := range m {
		m[i] = 0xff
	}
	if hasMask {
		var reason string
		if m, reason = parseIPv6Mask(maskText); reason != "" {
			return errAt(s, t, "%s", reason)
		}
	}
	k, mk := ip6Of(&mp.m.Key, f.st), ip6Of(&mp.m.Mask, f.st)
	nonzero := false
	for i := range k {
		k[i], mk[i] = a[i]&m[i], m[i]
		nonzero = nonzero || m[i] != 0
	}
	if nonzero {
		mp.nxm = true
		mp.used = append(mp.used, usedField{f: f, tok: *t})
	}
	return nil
}

// set128 parses and applies a 128-bit number field (xxreg).
func (mp *matchParser) set128(f *field, t *token) error {
	val, maskText, hasMask := strings.Cut(t.value, "/")
	v, reason := parse128(val, f.name)
	if reason != "" {
		return errAt(mp.s, t, "%s", reason)
	}
	m := ones(128)
	if hasMask {
		if m, reason = parse128(maskText, f.name); reason != "" {
			return errAt(mp.s, t, "%s", reason)
		}
	}
	set128(&mp.m.Key, f.st, v.and(m))
	set128(&mp.m.Mask, f.st, m)
	if !m.isZero() {
		mp.nxm = true
	}
	return nil
}

// parse128 parses a number of up to 128 bits: decimal up to 64 bits, or
// hexadecimal with 0x.
func parse128(s, name string) (u128, string) {
	h, ok := strings.CutPrefix(s, "0x")
	if !ok {
		h, ok = strings.CutPrefix(s, "0X")
	}
	if !ok {
		v, err := parseDecimal(s, 64)
		if err != nil {
			return u128{}, err.Error()
		}
		return u128{lo: v}, ""
	}
	h = strings.TrimLeft(h, "0")
	if len(h) > 32 {
		return u128{}, s + ": value too large for 16-byte field " + name
	}
	var v u128
	for _, c := range h {
		d, err := strconv.ParseUint(string(c), 16, 8)
		if err != nil {
			return u128{}, fmt.Sprintf("%s: invalid hexadecimal number", s)
		}
		v = v.shl(4).or(u128{lo: d})
	}
	return v, ""
}

// finish checks prerequisites and applies OpenFlow 1.0's VLAN rewriting.
func (mp *matchParser) finish() error {
	m := &mp.m
	for i := range mp.used {
		u := &mp.used[i]
		if prereqMet(m, u.f.pre) {
			continue
		}
		if _, short := protocols[u.tok.key]; short {
			return errAt(mp.s, &u.tok, "%s sets nw_proto, which requires %s", u.tok.key, prereqText[u.f.pre])
		}
		return errAt(mp.s, &u.tok, "%s requires %s", u.tok.key, prereqText[u.f.pre])
	}
	// ovs-ofctl sends a flow as OpenFlow 1.0 when it can, and only NXM
	// carries IPv6 L3/L4 matches.
	if m.Key.DlType == EthTypeIPv6 && m.Mask.DlType != 0 &&
		(m.Mask.NwProto != 0 || m.Mask.NwTos != 0 || m.Mask.TpSrc != 0 || m.Mask.TpDst != 0) {
		mp.nxm = true
	}
	// OpenFlow 1.0 can only say "no VLAN header" when the present bit is
	// matched as 0, so such a match becomes exactly vlan_tci=0x0000 when
	// ovs-ofctl would send it as OpenFlow 1.0. A match that came in a
	// message stays as it came.
	if !mp.nxm && !mp.wire && m.Mask.VLANs[0].TCI&VLANPresent != 0 && m.Key.VLANs[0].TCI&VLANPresent == 0 {
		m.Key.VLANs[0].TCI, m.Mask.VLANs[0].TCI = 0, 0xffff
	}
	m.Normalize()
	return nil
}

// flowKeyword handles priority, cookie, timeouts, table, out_port and
// the flow mod flags.
func (mp *matchParser) flowKeyword(f *Flow, cmd Command, t *token) (bool, error) {
	s := mp.s
	allowed := func(ok bool, what string) error {
		if !ok {
			return errAt(s, t, "%s is not allowed with %s", t.key, what)
		}
		if !t.hasValue || t.value == "" {
			return errAt(s, t, "%s needs a value", t.key)
		}
		return nil
	}
	cmdName := [...]string{CmdAdd: "add-flow", CmdModify: "mod-flows", CmdDelete: "del-flows"}[cmd]
	switch t.key {
	case "priority":
		if err := allowed(cmd != CmdDelete, cmdName); err != nil {
			return true, err
		}
		v, err := parseNum(t.value, 16)
		if err != nil {
			return true, errAt(s, t, "invalid priority: %v", err)
		}
		f.Priority = uint16(v)
	case "idle_timeout", "hard_timeout", "idle", "hard":
		// "idle:N" and "hard:N" are how ovs-ofctl prints a flow_mod's
		// timeouts (and so FormatFlow); they are accepted so that its
		// output parses back.
		if err := allowed(cmd != CmdDelete, cmdName); err != nil {
			return true, err
		}
		v, err := parseNum(t.value, 16)
		if err != nil {
			return true, errAt(s, t, "invalid %s: %v", t.key, err)
		}
		if strings.HasPrefix(t.key, "idle") {
			f.IdleTimeout = uint16(v)
		} else {
			f.HardTimeout = uint16(v)
		}
	case "cookie":
		if err := allowed(true, cmdName); err != nil {
			return true, err
		}
		val, maskText, hasMask := strings.Cut(t.value, "/")
		v, err := parseNum(val, 64)
		if err != nil {
			return true, errAt(s, t, "invalid cookie: %v", err)
		}
		if hasMask {
			if cmd == CmdAdd {
				return true, errAt(s, t, "add-flow cannot use a cookie mask")
			}
			mk, err := parseNum(maskText, 64)
			if err != nil {
				return true, errAt(s, t, "invalid cookie mask: %v", err)
			}
			f.CookieMask = mk
		}
		if cmd == CmdAdd && v == 1<<64-1 {
			return true, errAt(s, t, "cookie 0xffffffffffffffff is reserved")
		}
		f.Cookie = v & maskOr(f.CookieMask, hasMask)
	case "table":
		if err := allowed(true, cmdName); err != nil {
			return true, err
		}
		v, err := parseDecimal(t.value, 32)
		if err != nil {
			return true, errAt(s, t, "invalid table: %v", err)
		}
		switch {
		case v == TableAll && cmd != CmdAdd:
		case v > MaxTable && cmd == CmdAdd:
			return true, errAt(s, t, "table %d out of range: add-flow takes tables 0 to %d", v, MaxTable)
		case v > TableAll:
			return true, errAt(s, t, "table %d out of range: tables are 0 to %d (255: all)", v, MaxTable)
		}
		f.Table = uint8(v)
	case "out_port":
		if err := allowed(cmd != CmdAdd, cmdName); err != nil {
			return true, err
		}
		port, err := mp.p.parsePort(t.value)
		if err != nil {
			return true, errAt(s, t, "%v", err)
		}
		f.OutPort = port
	default:
		flag, ok := flagNamed(t.key)
		if !ok {
			return false, nil
		}
		if cmd == CmdDelete {
			return true, errAt(s, t, "%s is not allowed with %s", t.key, cmdName)
		}
		if t.hasValue {
			return true, errAt(s, t, "%s takes no value", t.key)
		}
		f.Flags |= flag
	}
	return true, nil
}

func maskOr(m uint64, has bool) uint64 {
	if has {
		return m
	}
	return 1<<64 - 1
}

// parseNum parses a decimal or 0x-prefixed hexadecimal number of at most
// bitSize bits. Leading zeros are refused: Open vSwitch reads them as octal.
func parseNum(s string, bitSize int) (uint64, error) {
	if len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		v, err := strconv.ParseUint(s[2:], 16, bitSize)
		if err != nil || s[2] == '+' || s[2] == '-' {
			return 0, numError(s, err, bitSize)
		}
		return v, nil
	}
	return parseDecimal(s, bitSize)
}

func parseDecimal(s string, bitSize int) (uint64, error) {
	if s == "" || s[0] < '0' || s[0] > '9' || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("invalid number %q", Clipped(s))
	}
	v, err := strconv.ParseUint(s, 10, bitSize)
	if err != nil {
		return 0, numError(s, err, bitSize)
	}
	return v, nil
}

func numError(s string, err error, bitSize int) error {
	if errors.Is(err, strconv.ErrRange) {
		return fmt.Errorf("%s does not fit in %d bits", Clipped(s), bitSize)
	}
	return fmt.Errorf("invalid number %q", Clipped(s))
}

// reservedPorts are OpenFlow's reserved port names (case-insensitive).
var reservedPorts = map[string]uint32{
	"in_port": PortInPort, "table": PortTable, "normal": PortNormal,
	"flood": PortFlood, "all": PortAll, "controller": PortController,
	"local": PortLocal, "any": PortNone, "none": PortNone,
}

// parsePort parses a port: a decimal OpenFlow 1.0 number (or an OpenFlow
// 1.1 reserved number, 0xffffff00 and up), a reserved name, or a name that
// PortNames knows.
func (p *Parser) parsePort(s string) (uint32, error) {
	if s != "" && s[0] >= '0' && s[0] <= '9' {
		v, err := strconv.ParseUint(s, 10, 32)
		if err == nil {
			switch {
			case v <= 0xffff:
				return uint32(v), nil
			case v >= 0xffffff00:
				return uint32(v - 0xffff0000), nil
			}
			return 0, fmt.Errorf("port %s out of range (0 to 65535)", Clipped(s))
		}
	}
	if v, ok := reservedPorts[strings.ToLower(s)]; ok {
		return v, nil
	}
	if p != nil && p.PortNames != nil && s != "" {
		if v, ok := p.PortNames(s); ok {
			return v, nil
		}
	}
	return 0, fmt.Errorf("unknown port %q", Clipped(s))
}

// parseMAC parses xx:xx:xx:xx:xx:xx (one or two hex digits per byte) into
// the low 48 bits of a number.
// ParseMAC reads an Ethernet address as the flow syntax (and Open
// vSwitch's commands) write it: six hexadecimal bytes of one or two
// digits, separated by colons.
func ParseMAC(s string) ([6]byte, bool) {
	v, ok := parseMAC(s)
	return numMAC(v), ok
}

func parseMAC(s string) (uint64, bool) {
	var v uint64
	for i := 0; i < 6; i++ {
		var part string
		if i < 5 {
			var ok bool
			if part, s, ok = strings.Cut(s, ":"); !ok {
				return 0, false
			}
		} else {
			part = s
		}
		if len(part) < 1 || len(part) > 2 {
			return 0, false
		}
		b, err := strconv.ParseUint(part, 16, 8)
		if err != nil {
			return 0, false
		}
		v = v<<8 | b
	}
	return v, true
}

func ipv4FromText(s string) (uint32, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return 0, false
	}
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]), true
}

// parseIPv4Mask parses /N or /a.b.c.d; it returns a reason on error.
func parseIPv4Mask(s string) (uint32, string) {
	if strings.Contains(s, ".") {
		m, ok := ipv4FromText(s)
		if !ok {
			return 0, fmt.Sprintf("invalid IP mask %q", Clipped(s))
		}
		return m, ""
	}
	n, err := parseDecimal(s, 8)
	if err != nil || n > 32 {
		return 0, fmt.Sprintf("invalid prefix length %q (0 to 32)", Clipped(s))
	}
	if n == 0 {
		return 0, ""
	}
	return ^uint32(0) << (32 - n), ""
}

func isCIDR32(m uint32) bool { return m == 0 || bits.OnesCount32(m) == bits.LeadingZeros32(^m) }

func ipv6FromText(s string) ([16]byte, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is6() || a.Zone() != "" {
		return [16]byte{}, false
	}
	return a.As16(), true
}

func parseIPv6Mask(s string) ([16]byte, string) {
	if strings.Contains(s, ":") {
		m, ok := ipv6FromText(s)
		if !ok {
			return m, fmt.Sprintf("invalid IPv6 mask %q", Clipped(s))
		}
		return m, ""
	}
	var m [16]byte
	n, err := parseDecimal(s, 8)
	if err != nil || n > 128 {
		return m, fmt.Sprintf("invalid prefix length %q (0 to 128)", Clipped(s))
	}
	for i := 0; i < int(n); i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return m, ""
}

// parseFrag parses an ip_frag value into NwFrag value and mask.
func parseFrag(s string) (v, m uint64, ok bool) {
	switch s {
	case "no":
		return 0, FragAny, true
	case "yes":
		return FragAny, FragAny, true
	case "first":
		return FragAny, FragAny | FragLater, true
	case "later":
		return FragAny | FragLater, FragAny | FragLater, true
	case "not_later":
		return 0, FragLater, true
	}
	return 0, 0, false
}

// tcpFlagNames are the names of the TCP flag bits, lowest bit first.
var tcpFlagNames = [...]string{"fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr", "ns", "[200]", "[400]", "[800]"}

// flagBit returns the bit of the flag called name among names (lowest bit
// first).
func flagBit(names []string, name string) (uint64, bool) {
	for i, n := range names {
		if n == name {
			return 1 << i, true
		}
	}
	return 0, false
}

// parseSignedFlags parses +flag-flag... (s starts with + or -): the flags
// named, of names, are the mask, those written with + the value. what
// names a flag in errors ("TCP flag"), and valid follows an unknown one's
// error.
func parseSignedFlags(s string, names []string, what, valid string) (v, m uint64, reason string) {
	for s != "" {
		set := s[0] == '+'
		if s[0] != '+' && s[0] != '-' {
			return 0, 0, fmt.Sprintf("expected + or - before %q", Clipped(s))
		}
		s = s[1:]
		n := strings.IndexAny(s, "+-")
		if n < 0 {
			n = len(s)
		}
		name := s[:n]
		s = s[n:]
		b, ok := flagBit(names, name)
		if !ok {
			return 0, 0, fmt.Sprintf("unknown %s %q%s", what, Clipped(name), valid)
		}
		if m&b != 0 {
			return 0, 0, fmt.Sprintf("%s %s given twice", what, Clipped(name))
		}
		m |= b
		if set {
			v |= b
		}
	}
	return v, m, ""
}

// parseTCPFlags parses +flag-flag..., flag|flag..., or value[/mask].
func parseTCPFlags(s string) (v, m uint64, reason string) {
	if s == "" {
		return 0, 0, "missing TCP flags"
	}
	if s[0] == '+' || s[0] == '-' {
		return parseSignedFlags(s, tcpFlagNames[:], "TCP flag", "")
	}
	if s[0] >= '0' && s[0] <= '9' {
		val, maskText, hasMask := strings.Cut(s, "/")
		var err error
		if v, err = parseNum(val, 64); err != nil {
			return 0, 0, err.Error()
		}
		m = 0xfff
		if hasMask {
			if m, err = parseNum(maskText, 64); err != nil {
				return 0, 0, "mask: " + err.Error()
			}
		}
		if v > 0xfff || m > 0xfff {
			return 0, 0, "TCP flags have 12 bits (at most 0xfff)"
		}
		return v & m, m, ""
	}
	for _, name := range strings.Split(s, "|") {
		b, ok := flagBit(tcpFlagNames[:], name)
		if !ok {
			return 0, 0, fmt.Sprintf("unknown TCP flag %q", Clipped(name))
		}
		v |= b
	}
	return v, 0xfff, ""
}

// actionParser parses an action list against the flow's match, which
// decides the prerequisites of set_field and friends.
type actionParser struct {
	p     *Parser
	s     string
	m     *Match
	vlan  bool  // a VLAN header is present at this point of the list
	table uint8 // the flow's table (TableAll: not known)

	acts    []Action
	dropTok *token
	first   *token // first action that is not "drop"
	pending *pendingLoad

	conjTok, otherTok *token // see noteConjToken

	// inCT is the ct action whose exec(...) this parser reads, nil
	// outside one.
	inCT *CT

	// top: this parser reads a flow's own actions, where the OpenFlow
	// 1.1+ instructions (clear_actions, write_actions) may stand;
	// instr is the latest instruction written, and wroteSet whether
	// clear_actions or write_actions was (see instruction).
	top      bool
	instr    instrStage
	wroteSet bool
}

// pendingLoad is the low half of a 128-bit field written as two loads.
type pendingLoad struct {
	f   *field
	lo  uint64
	tok token
}

// unsupportedActions are actions Open vSwitch knows that ovsxdp does not
// implement.
var unsupportedActions = map[string]bool{
	"enqueue": true, "set_tunnel": true,
	"set_tunnel64": true, "set_queue": true, "pop_queue": true,
	"multipath": true, "bundle": true, "bundle_load": true,
	"sample": true, "push_mpls": true, "pop_mpls": true,
	"set_mpls_label": true, "set_mpls_tc": true, "set_mpls_ttl": true,
	"dec_mpls_ttl": true,
	"encap":        true, "decap": true, "dec_nsh_ttl": true,
	"output_trunc": true, "set_vlan_vid": true,
	"set_vlan_pcp": true, "mod_nw_proto": true, "delete_field": true, "debug_recirc": true,
	"debug_slow": true, "set_mpls": true, "enqueue_port": true,
}

func (ap *actionParser) parse(pos, end int) ([]Action, error) {
	l := lexer{s: ap.s, i: pos, end: end}
	for {
		t, ok, err := l.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		if err := ap.action(&t); err != nil {
			return nil, err
		}
	}
	if ap.pending != nil {
		return nil, ap.halfLoad(&ap.pending.tok)
	}
	if ap.dropTok != nil && ap.first != nil {
		return nil, errAt(ap.s, ap.dropTok, `"drop" must not be accompanied by any other action or instruction`)
	}
	if err := ap.checkConjunctions(); err != nil {
		return nil, err
	}
	return ap.acts, nil
}

func (ap *actionParser) halfLoad(t *token) error {
	return unsupportedAt(ap.s, t, "a 128-bit field must be loaded whole: load to NAME[0..63] followed by load to NAME[64..127]")
}

func (ap *actionParser) add(a Action) {
	ap.acts = append(ap.acts, a)
}

// action parses one action.
func (ap *actionParser) action(t *token) error {
	s := ap.s
	name := strings.ToLower(t.key)
	if ap.pending != nil && name != "load" {
		return ap.halfLoad(&ap.pending.tok)
	}
	if name == "drop" {
		if t.hasValue || t.paren {
			return errAt(s, t, "drop takes no argument")
		}
		if ap.dropTok == nil {
			ap.dropTok = t
		}
		return nil
	}
	if ap.inCT != nil {
		if done, err := ap.execAction(t, name); done {
			return err
		}
	}
	if ap.first == nil {
		ap.first = t
	}
	ap.noteConjToken(t, name)
	if done, err := ap.instruction(t, name); done {
		return err
	}
	if done, err := ap.pipelineAction(t, name); done {
		return err
	}
	switch name {
	case "conjunction":
		return ap.conjunction(t)
	case "learn":
		return ap.learn(t)
	case "fin_timeout":
		return ap.finTimeout(t)
	case "controller":
		return ap.controller(t)
	case "ct":
		return ap.ct(t)
	case "ct_clear":
		return ap.ctClear(t)
	case "nat":
		return errAt(s, t, `Cannot have NAT action outside of "ct" action`)
	}
	if t.paren {
		if unsupportedActions[name] || name == "output" || name == "dec_ttl" {
			return unsupportedAt(s, t, "action %s(...) is not supported", name)
		}
		return errAt(s, t, "unknown action %s", t.key)
	}
	noArg := func() error {
		if t.hasValue {
			return errAt(s, t, "%s takes no argument", name)
		}
		return nil
	}
	switch name {
	case "output":
		return ap.output(t, t.value)
	case "mod_dl_src", "mod_dl_dst":
		v, ok := parseMAC(t.value)
		if !ok {
			return errAt(s, t, "invalid Ethernet address %q", t.value)
		}
		id := FieldDlSrc
		if name == "mod_dl_dst" {
			id = FieldDlDst
		}
		ap.add(Action{Type: ActSetField, Field: id, Value: v})
	case "mod_nw_src", "mod_nw_dst":
		v, ok := ipv4FromText(t.value)
		if !ok {
			return errAt(s, t, "invalid IP address %q", t.value)
		}
		id := FieldNwSrc
		if name == "mod_nw_dst" {
			id = FieldNwDst
		}
		ap.add(Action{Type: ActSetField, Field: id, Value: uint64(v)})
	case "mod_nw_tos":
		v, err := parseNum(t.value, 8)
		if err != nil || v&3 != 0 {
			return errAt(s, t, "%q is not a valid TOS (0 to 252, a multiple of 4)", t.value)
		}
		ap.add(Action{Type: ActSetField, Field: FieldNwTos, Value: v})
	case "mod_nw_ecn", "mod_nw_ttl":
		f := fieldByName["nw_ecn"]
		if name == "mod_nw_ttl" {
			f = fieldByName["nw_ttl"]
		}
		v, err := parseNum(t.value, 8)
		if err != nil || v > f.max {
			return errAt(s, t, "%q is not a valid value for %s (0 to %d)", t.value, f.name, f.max)
		}
		if !prereqMet(ap.m, f.setPre) {
			return errAt(s, t, "%s requires %s", name, prereqText[f.setPre])
		}
		spell := SpellDefault
		if f.id == FieldNwTTL {
			spell = SpellMod
		}
		ap.add(Action{Type: ActSetField, Field: f.id, Value: v, Spelling: spell})
	case "dec_ttl":
		if err := noArg(); err != nil {
			return err
		}
		ap.add(Action{Type: ActDecTTL})
	case "mod_tp_src", "mod_tp_dst":
		v, err := parseNum(t.value, 16)
		if err != nil {
			return errAt(s, t, "invalid port number %q", t.value)
		}
		id := FieldTpSrc
		if name == "mod_tp_dst" {
			id = FieldTpDst
		}
		ap.add(Action{Type: ActSetField, Field: id, Value: v})
	case "mod_vlan_vid":
		v, err := parseNum(t.value, 16)
		if err != nil || v > VLANVIDMask {
			return errAt(s, t, "%q is not a valid VLAN VID (0 to 4095)", t.value)
		}
		ap.add(Action{Type: ActSetVLANVID, Value: v, Spelling: ap.impliedPush()})
		ap.vlan = true
	case "mod_vlan_pcp":
		v, err := parseNum(t.value, 8)
		if err != nil || v > 7 {
			return errAt(s, t, "%q is not a valid VLAN PCP (0 to 7)", t.value)
		}
		ap.add(Action{Type: ActSetVLANPCP, Value: v, Spelling: ap.impliedPush()})
		ap.vlan = true
	case "strip_vlan", "pop_vlan":
		if err := noArg(); err != nil {
			return err
		}
		ap.vlan = false
		ap.add(Action{Type: ActPopVLAN})
	case "push_vlan":
		v, err := parseNum(t.value, 16)
		if err != nil || (v != EthTypeVLAN && v != EthTypeQinQ) {
			return errAt(s, t, "%q is not a VLAN Ethertype (0x8100 or 0x88a8)", t.value)
		}
		ap.vlan = true
		ap.add(Action{Type: ActPushVLAN, Value: v})
	case "set_field":
		return ap.setField(t)
	case "set_tunnel", "set_tunnel64":
		return ap.setTunnel(t, name)
	case "load":
		return ap.load(t)
	case "meter":
		v, err := parseNum(t.value, 32)
		if !t.hasValue || err != nil {
			return errAt(s, t, "meter needs a meter id (a 32-bit number)")
		}
		ap.add(Action{Type: ActMeter, Value: v})
	case "group":
		v, err := parseNum(t.value, 32)
		if !t.hasValue || err != nil {
			return errAt(s, t, "group needs a group id (0 to %d)", uint32(GroupMax))
		}
		ap.add(Action{Type: ActGroup, Value: v})
	default:
		if unsupportedActions[name] {
			return unsupportedAt(s, t, "action %s is not supported", name)
		}
		if t.hasValue {
			return errAt(s, t, "unknown action %s", t.key)
		}
		if _, err := ap.p.parsePort(t.key); err != nil {
			return errAt(s, t, "unknown action or port %s", t.key)
		}
		return ap.output(t, t.key)
	}
	return nil
}

// output adds output to the port written as text.
func (ap *actionParser) output(t *token, text string) error {
	port, err := ap.p.parsePort(text)
	if err != nil && lookupSubfieldField(strings.SplitN(text, "[", 2)[0]) != nil {
		sf, reason := parseSubfield(text)
		if reason != "" {
			return errAt(ap.s, t, "%s", reason)
		}
		if sf.Bits() > 32 {
			return errAt(ap.s, t, "%s: a port number has at most 32 bits", text)
		}
		ap.add(Action{Type: ActOutputReg, Src: sf})
		return nil
	}
	if err != nil {
		return errAt(ap.s, t, "%v", err)
	}
	switch {
	case port == PortController:
		ap.add(ControllerAction(ReasonAction, MaxLenAll))
		return nil
	case port == PortTable:
		return unsupportedAt(ap.s, t, "output to %s is not supported", portText(port))
	case port == PortNone:
		return errAt(ap.s, t, "cannot output to port ANY")
	case port >= PortMax && port < PortInPort:
		return errAt(ap.s, t, "output port %d out of range (0 to 65279 or a reserved port)", port)
	}
	ap.add(Action{Type: ActOutput, Port: port})
	return nil
}

// setFieldOK reports an error for a set_field/load on f that is not
// writable, not supported, or lacks its prerequisite.
func (ap *actionParser) setFieldOK(t *token, f *field, what string) error {
	switch {
	case f.set == setNone && (f.id == FieldVLANTCI || f.id == FieldDlVLAN || f.id == FieldDlVLANPCP):
		return unsupportedAt(ap.s, t, "%s of %s is not supported", what, f.name)
	case f.set == setNone:
		return errAt(ap.s, t, "%s is read-only", f.name)
	}
	ok := prereqMet(ap.m, f.setPre)
	if f.setPre == preVLAN {
		ok = ap.vlan
	}
	if !ok {
		return errAt(ap.s, t, "%s of %s requires %s", what, f.name, prereqText[f.setPre])
	}
	return nil
}

// setField parses set_field:VALUE->FIELD.
func (ap *actionParser) setField(t *token) error {
	s := ap.s
	val, name, ok := strings.Cut(t.value, "->")
	if !ok {
		return errAt(s, t, `set_field needs VALUE->FIELD`)
	}
	f := fieldByName[name]
	if f == nil {
		return errAt(s, t, "unknown field %q", name)
	}
	if isTunMetaField(f.id) {
		if err := ap.checkTunMetaMapped(t, f.id); err != nil {
			return err
		}
		return ap.setTunMetaField(t, f, val)
	}
	if f.set == setReg {
		return ap.setFieldReg(t, f, val)
	}
	if f.set == setCT {
		if ap.inCT == nil {
			return errAt(s, t, "%s", ctFieldOutside)
		}
		return ap.setFieldReg(t, f, val)
	}
	if f.set == setTCI {
		// As the loads of a register: one per run of mask bits.
		n := len(ap.acts)
		if err := ap.setFieldReg(t, f, val); err != nil {
			return err
		}
		ap.wroteTCI(ap.acts[n:])
		return nil
	}
	if strings.Contains(val, "/") {
		return errAt(s, t, "set_field takes no mask")
	}
	if err := ap.setFieldOK(t, f, "set_field"); err != nil {
		return err
	}
	a := Action{Type: ActSetField, Field: f.id, Spelling: SpellSetField, Named: f.id}
	switch f.kind {
	case kindMAC:
		v, ok := parseMAC(val)
		if !ok {
			return errAt(s, t, "invalid Ethernet address %q", val)
		}
		a.Value = v
	case kindIPv4:
		v, ok := ipv4FromText(val)
		if !ok {
			return errAt(s, t, "invalid IP address %q", val)
		}
		a.Value = uint64(v)
	case kindIPv6:
		v, ok := ipv6FromText(val)
		if !ok {
			return errAt(s, t, "invalid IPv6 address %q", val)
		}
		a.IPv6 = v
	default:
		v, err := parseNum(val, 64)
		if err != nil {
			return errAt(s, t, "%v", err)
		}
		if v > f.max || f.id == FieldNwTos && v&3 != 0 {
			return errAt(s, t, "%s is not a valid value for %s", val, f.name)
		}
		a.Value = v
	}
	ap.addSet(f, a)
	return nil
}

// addSet adds a set-field action in the form ovs-ofctl prints it: the
// spellings that print alike share one representation.
func (ap *actionParser) addSet(f *field, a Action) {
	switch f.set {
	case setVLANVID:
		ap.add(Action{Type: ActSetVLANVID, Value: a.Value & VLANVIDMask, Spelling: a.Spelling})
		return
	case setVLANPCP:
		ap.add(Action{Type: ActSetVLANPCP, Value: a.Value, Spelling: a.Spelling})
		return
	}
	switch f.id {
	case FieldIPDSCP:
		a.Field, a.Value = FieldNwTos, a.Value<<2
	case FieldTCPSrc, FieldUDPSrc:
		a.Field = FieldTpSrc
	case FieldTCPDst, FieldUDPDst:
		a.Field = FieldTpDst
	}
	ap.add(a)
}

// isL4Port tells whether id is a TCP or UDP port, which Open vSwitch
// loads through NXM (NXM_OF_TCP_SRC[] and the like) as it sets it with
// mod_tp_src: the load is kept apart so that it prints as written.
func isL4Port(id FieldID) bool {
	switch id {
	case FieldTCPSrc, FieldTCPDst, FieldUDPSrc, FieldUDPDst:
		return true
	}
	return false
}

// load parses load:VALUE->DST[] (and the two halves of a 128-bit field),
// for the fields whose set_field ovs-ofctl prints as load.
func (ap *actionParser) load(t *token) error {
	s := ap.s
	val, dst, ok := strings.Cut(t.value, "->")
	if !ok {
		return errAt(s, t, "load needs VALUE->FIELD[]")
	}
	if f := lookupSubfieldField(strings.SplitN(dst, "[", 2)[0]); f != nil && (f.set == setReg || f.set == setTCI || f.set == setCT) {
		return ap.loadReg(t, val, dst)
	}
	name, sub, ok := strings.Cut(dst, "[")
	if !ok || !strings.HasSuffix(sub, "]") {
		return errAt(s, t, "load destination %q needs a [] subfield", dst)
	}
	sub = strings.TrimSuffix(sub, "]")
	f := fieldByNXM[name]
	if f == nil {
		f = fieldByName[name]
	}
	if id, ok := nxmNames[name]; f == nil && ok && isL4Port(id) {
		f = fieldByID[id]
	}
	if f == nil {
		return unsupportedAt(s, t, "load to %s is not supported", name)
	}
	if f.set != setLoad && !isL4Port(f.id) {
		return unsupportedAt(s, t, "load to %s is not supported (use set_field)", name)
	}
	if err := ap.setFieldOK(t, f, "load"); err != nil {
		return err
	}
	v, err := parseNum(val, 64)
	if err != nil {
		return errAt(s, t, "%v", err)
	}
	if f.kind == kindIPv6 {
		switch {
		case sub == "0..63" && ap.pending == nil:
			ap.pending = &pendingLoad{f: f, lo: v, tok: *t}
			return nil
		case sub == "64..127" && ap.pending != nil && ap.pending.f == f:
			a := Action{Type: ActSetField, Field: f.id, Spelling: SpellLoad}
			for i := 0; i < 8; i++ {
				a.IPv6[i] = byte(v >> (56 - 8*i))
				a.IPv6[8+i] = byte(ap.pending.lo >> (56 - 8*i))
			}
			ap.pending = nil
			ap.add(a)
			return nil
		}
		return ap.halfLoad(t)
	}
	if sub != "" {
		return unsupportedAt(s, t, "load to part of %s is not supported", name)
	}
	limit := f.max
	switch f.kind {
	case kindMAC:
		limit = 1<<48 - 1
	case kindIPv4:
		limit = 1<<32 - 1
	}
	if v > limit {
		return errAt(s, t, "%s does not fit in %s", val, name)
	}
	ap.add(Action{Type: ActSetField, Field: f.id, Value: v, Spelling: SpellLoad})
	return nil
}
