package ofconv

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// OFPET_FLOW_MOD_FAILED codes, which differ between OpenFlow 1.0 and 1.1+.
// A 1.0 code from 256 on is Open vSwitch's Nicira vendor error for what
// 1.0 lacks (ofconn's errorMsg sends it so).
func flowModError(v uint8, what string, detail string) *openflow.Error {
	codes := map[string][2]uint16{ // {1.0, 1.1+}
		"bad_command":       {4, 6},
		"table_full":        {0, 1},
		"overlap":           {1, 3},
		"bad_emerg_timeout": {3, 3},
		"bad_flags":         {258, 7},
		"bad_table_id":      {0, 2}, // 1.1+ only
	}
	c := codes[what]
	code := c[1]
	if v == openflow.Version10 {
		code = c[0]
	}
	return &openflow.Error{Type: openflow.ErrTypeFlowModFailed, Code: code, Sentinel: openflow.ErrBadMessage, Detail: detail}
}

// Mod is a flow mod in the flow language's terms.
type Mod struct {
	Flow   *flow.Flow
	Cmd    flow.Command
	Strict bool
}

// FlowFromMod converts a flow mod of version v. For OpenFlow 1.0 (and
// NXT_FLOW_MOD) fm.TableID must already say the table: TableAll unless the
// connection enabled NXT_FLOW_MOD_TABLE_ID (0 for an add then).
func FlowFromMod(p *flow.Parser, v uint8, fm *openflow.FlowMod) (*Mod, error) {
	return flowFromMod(p, v, fm, true)
}

// flowFromMod is FlowFromMod; check says whether to check the actions
// against the match (a packet out checks them against its packet). It
// converts the flow mod directly (direct.go) when it can, through the
// text otherwise.
func flowFromMod(p *flow.Parser, v uint8, fm *openflow.FlowMod, check bool) (*Mod, error) {
	if mod, ok, err := flowFromModDirect(v, fm, check); ok {
		return mod, err
	}
	return flowFromModText(p, v, fm, check)
}

// A Converter converts flow mods as FlowFromMod does, into a Mod and a
// flow of its own that each conversion overwrites (the flow's actions
// excepted, which are new each time): for a caller that copies the flow
// at once, as a bundle keeps each of its adds in the form the table
// keeps it (flow.FlowBatch), it saves a conversion's largest allocation,
// the flow's two whole keys. It is not safe for concurrent use.
type Converter struct {
	mf modFlow
}

// FlowFromMod is FlowFromMod into c's Mod, good until c's next
// conversion. A flow mod that the text path converts has a Mod of its
// own.
func (c *Converter) FlowFromMod(p *flow.Parser, v uint8, fm *openflow.FlowMod) (*Mod, error) {
	if mod, ok, err := flowFromModDirectInto(&c.mf, v, fm, true); ok {
		return mod, err
	}
	return flowFromModText(p, v, fm, true)
}

// flowFromModDirect is flowFromMod without the text round trip; false
// when the flow mod needs the text path, which alone then answers (an
// error of the flow mod's command included).
func flowFromModDirect(v uint8, fm *openflow.FlowMod, check bool) (*Mod, bool, error) {
	return flowFromModDirectInto(nil, v, fm, check)
}

// flowFromModDirectInto is flowFromModDirect into mf (nil: a new one).
func flowFromModDirectInto(mf *modFlow, v uint8, fm *openflow.FlowMod, check bool) (*Mod, bool, error) {
	cmd, strict, table, err := modCommand(v, fm)
	if err != nil {
		return nil, false, nil
	}
	flags, err := modFlags(v, fm)
	if err != nil {
		return nil, true, err
	}
	fields := fm.Match
	if v == openflow.Version10 && !fm.Nicira {
		fields = fm.Match10.Fields()
	}
	fields, nxCookie, nxMask, hasCookie := splitCookie(fields)
	if mf == nil {
		mf = new(modFlow)
	}
	if !directFlowInto(mf, v, fm, fields, cmd, table) {
		return nil, false, nil
	}
	if check && cmd != flow.CmdDelete {
		if err := checkModActions(v, fm, &mf.f.Match); err != nil {
			return nil, true, err
		}
	}
	mod := &mf.mod
	mod.Cmd, mod.Strict = cmd, strict
	finishMod(v, fm, mod, &mf.f, nxCookie, nxMask, hasCookie, flags)
	return mod, true, nil
}

// modCommand reads a flow mod's command and the table it goes to.
func modCommand(v uint8, fm *openflow.FlowMod) (cmd flow.Command, strict bool, table uint8, err error) {
	switch fm.Command {
	case openflow.FlowAdd:
		cmd = flow.CmdAdd
	case openflow.FlowModify, openflow.FlowModifyStrict:
		cmd, strict = flow.CmdModify, fm.Command == openflow.FlowModifyStrict
	case openflow.FlowDelete, openflow.FlowDeleteStrict:
		cmd, strict = flow.CmdDelete, fm.Command == openflow.FlowDeleteStrict
	default:
		return 0, false, 0, flowModError(v, "bad_command", fmt.Sprintf("flow mod command %d", fm.Command))
	}
	table = fm.TableID
	if table == flow.TableAll && cmd != flow.CmdDelete && v != openflow.Version10 && !fm.Nicira {
		// OpenFlow 1.2 and later take "all tables" for deletes only,
		// as Open vSwitch checks.
		return 0, false, 0, flowModError(v, "bad_table_id", "table 255 (all) in an add or modify")
	}
	if table == flow.TableAll && cmd == flow.CmdAdd {
		// An add to "all tables" goes to table 0, as in Open vSwitch.
		table = 0
	}
	return cmd, strict, table, nil
}

// flowFromModText is flowFromMod through the flow language's text: the
// flow mod is written as ovs-ofctl would write it and parsed. It is the
// reference the direct conversion is held equal to, and converts what
// that one does not.
func flowFromModText(p *flow.Parser, v uint8, fm *openflow.FlowMod, check bool) (*Mod, error) {
	p = wireParser(p)
	mod := &Mod{}
	var table uint8
	var err error
	if mod.Cmd, mod.Strict, table, err = modCommand(v, fm); err != nil {
		return nil, err
	}
	flags, err := modFlags(v, fm)
	if err != nil {
		return nil, err
	}
	fields := fm.Match
	if v == openflow.Version10 && !fm.Nicira {
		fields = fm.Match10.Fields()
	}
	fields, nxCookie, nxMask, hasCookie := splitCookie(fields)
	mt, err := matchText(fields)
	if err != nil {
		return nil, err
	}
	// Open vSwitch checks the actions against the match before anything
	// else can refuse the flow mod. The check takes the parsed flow's
	// match (the actions only read it), so that the match is parsed
	// once, not once more for the check: that was a fifth of the
	// conversion's time. A flow mod refused before its flow is parsed
	// is checked against its match parsed alone: a match that does not
	// parse is refused as such.
	check = check && mod.Cmd != flow.CmdDelete
	checkAlone := func() (matchOK bool, err error) {
		m, err := p.ParseMatch(mt)
		if err != nil {
			return false, nil
		}
		if check {
			return true, checkModActions(v, fm, m)
		}
		return true, nil
	}
	var parts []string
	if table <= flow.MaxTable {
		parts = append(parts, "table="+strconv.Itoa(int(table)))
	}
	if mt != "" {
		parts = append(parts, mt)
	}
	text := strings.Join(parts, ",")
	if mod.Cmd != flow.CmdDelete {
		var at string
		if v == openflow.Version10 || fm.Nicira {
			at, err = actionsText(fm.Actions)
		} else {
			at, err = instructionsText(fm.Instructions)
		}
		if err != nil {
			if _, cerr := checkAlone(); cerr != nil {
				return nil, cerr
			}
			return nil, err
		}
		if at == "" {
			at = "drop"
		}
		if text != "" {
			text += ","
		}
		text += "actions=" + at
	}
	f, err := p.ParseFlow(text, mod.Cmd)
	if err != nil {
		// Which part is wrong decides the error's type: the match alone
		// parses when the actions are at fault.
		matchOK, cerr := checkAlone()
		if cerr != nil {
			return nil, cerr
		}
		return nil, parseError(err, !matchOK, text)
	}
	if check {
		if err := checkModActions(v, fm, &f.Match); err != nil {
			return nil, err
		}
	}
	finishMod(v, fm, mod, f, nxCookie, nxMask, hasCookie, flags)
	return mod, nil
}

// wireFlag is a flow mod flag on the wire, in the versions that carry it.
type wireFlag struct {
	raw        uint16
	flag       flow.FlowFlags
	minVersion uint8
}

// wireFlags are the flow mod flags of OpenFlow 1.0 to 1.5. Bit 2 is
// OpenFlow 1.0's emergency flag (ofpff10Emerg) and 1.2's reset_counts.
var wireFlags = [...]wireFlag{
	{1 << 0, flow.FlagSendFlowRem, openflow.Version10},
	{1 << 1, flow.FlagCheckOverlap, openflow.Version10},
	{1 << 2, flow.FlagResetCounts, openflow.Version13},
	{1 << 3, flow.FlagNoPacketCounts, openflow.Version13},
	{1 << 4, flow.FlagNoByteCounts, openflow.Version13},
}

const ofpff10Emerg uint16 = 1 << 2

// modFlags reads the flags of flow mod fm of version v, as Open vSwitch
// does: a flag the version does not carry is OFPFMFC_BAD_FLAGS; every
// OpenFlow 1.0 add resets counters (reset_counts); and 1.0's emergency
// flow cache, which Open vSwitch does not have, refuses the flow mod
// (OFPFMFC_BAD_EMERG_TIMEOUT with a timeout, else OFPFMFC_TABLE_FULL).
func modFlags(v uint8, fm *openflow.FlowMod) (flow.FlowFlags, error) {
	raw := fm.Flags
	var flags flow.FlowFlags
	for _, f := range wireFlags {
		if raw&f.raw != 0 && v >= f.minVersion {
			raw &^= f.raw
			flags |= f.flag
		}
	}
	emerg := v == openflow.Version10 && raw&ofpff10Emerg != 0
	if emerg {
		raw &^= ofpff10Emerg
	}
	if raw != 0 {
		return 0, flowModError(v, "bad_flags", fmt.Sprintf("flow mod flags 0x%x", raw))
	}
	if emerg {
		if fm.IdleTimeout != 0 || fm.HardTimeout != 0 {
			return 0, flowModError(v, "bad_emerg_timeout", "emergency flow with a timeout")
		}
		return 0, flowModError(v, "table_full", "no emergency flow cache")
	}
	if v == openflow.Version10 && fm.Command == openflow.FlowAdd {
		flags |= flow.FlagResetCounts
	}
	return flags, nil
}

// FlagsToWire is flags as version v carries them in a flow stats reply.
func FlagsToWire(v uint8, flags flow.FlowFlags) uint16 {
	var raw uint16
	for _, f := range wireFlags {
		if flags&f.flag != 0 && v >= f.minVersion {
			raw |= f.raw
		}
	}
	return raw
}

// finishMod sets what the flow mod says besides its match and actions
// (priority, cookie, timeouts, flags, out_port) in f, and makes it mod's
// flow.
func finishMod(v uint8, fm *openflow.FlowMod, mod *Mod, f *flow.Flow, nxCookie, nxMask uint64, hasCookie bool, flags flow.FlowFlags) {
	f.Priority = fm.Priority
	f.Cookie = fm.Cookie
	f.CookieMask = 0
	if v != openflow.Version10 && !fm.Nicira && mod.Cmd != flow.CmdAdd {
		f.Cookie, f.CookieMask = fm.Cookie&fm.CookieMask, fm.CookieMask
	}
	if hasCookie && mod.Cmd != flow.CmdAdd {
		// NXM's cookie match selects the flows to modify or delete.
		f.Cookie, f.CookieMask = nxCookie&nxMask, nxMask
	}
	f.Flags = 0
	if mod.Cmd != flow.CmdDelete {
		f.IdleTimeout, f.HardTimeout = fm.IdleTimeout, fm.HardTimeout
		f.Flags = flags
	}
	f.OutPort = flow.PortNone
	if mod.Cmd == flow.CmdDelete && fm.OutPort != openflow.PortAny {
		f.OutPort = flowPort(fm.OutPort)
	}
	mod.Flow = f
}

// checkModActions checks a flow mod's actions against its match m, as
// Open vSwitch does before it takes the flow mod.
func checkModActions(v uint8, fm *openflow.FlowMod, m *flow.Match) error {
	if v == openflow.Version10 || fm.Nicira {
		return CheckActions(v, m, fm.Actions)
	}
	return CheckInstructions(v, m, fm.Instructions)
}

// PacketOutActions converts a packet out's actions of version v through
// the flow language, checked as Open vSwitch checks them: against every
// field of the packet, whose key is k (PacketMatch). A Nicira flow mod
// carries the plain action list in every version.
func PacketOutActions(p *flow.Parser, v uint8, k *flow.Key, acts []openflow.Action) ([]flow.Action, error) {
	pm := PacketMatch(k)
	if err := CheckActions(v, &pm, acts); err != nil {
		return nil, err
	}
	// The flow language's own checks see the packet's protocols, so that
	// an action it cannot run on them is refused (as for a flow).
	var m flow.Match
	if k.DlType != 0 { // 0: a packet that did not parse
		m.Key.DlType, m.Mask.DlType = pm.Key.DlType, pm.Mask.DlType
		m.Key.NwProto, m.Mask.NwProto = pm.Key.NwProto, pm.Mask.NwProto
	}
	fm := &openflow.FlowMod{Nicira: true, Command: openflow.FlowAdd, Actions: acts, OutPort: openflow.PortAny,
		Match: FieldsFromMatch(&m, true)}
	mod, err := flowFromMod(p, v, fm, false)
	if err != nil {
		return nil, err
	}
	return mod.Flow.Actions, nil
}

// flowPort converts the codec's 32-bit port numbering to the flow
// language's.
func flowPort(p uint32) uint32 {
	if p >= openflow.PortMax {
		return p - 0xffff0000
	}
	return p
}

// SelectionFromStats converts a flow or aggregate stats request to the
// flow that selects the rules (for flow.Table.Dump).
func SelectionFromStats(p *flow.Parser, v uint8, req *openflow.FlowStatsRequest) (*flow.Flow, error) {
	fields := req.Match
	if v == openflow.Version10 && !req.Nicira {
		fields = req.Match10.Fields()
	}
	fields, cookie, mask, hasCookie := splitCookie(fields)
	m, err := MatchFromFields(p, fields)
	if err != nil {
		return nil, err
	}
	f := &flow.Flow{Match: *m, Table: req.TableID, OutPort: flow.PortNone}
	if req.OutPort != openflow.PortAny {
		f.OutPort = flowPort(req.OutPort)
	}
	if v != openflow.Version10 && !req.Nicira {
		f.Cookie, f.CookieMask = req.Cookie&req.CookieMask, req.CookieMask
	}
	if hasCookie {
		f.Cookie, f.CookieMask = cookie&mask, mask
	}
	return f, nil
}

// Duration is d as flow stats and flow removals carry it: whole seconds,
// and the rest in nanoseconds at millisecond precision, as Open vSwitch
// counts; a negative d is 0.
func Duration(d time.Duration) (sec, nsec uint32) {
	d = max(d, 0)
	return uint32(d / time.Second), uint32(d % time.Second / time.Millisecond * time.Millisecond)
}

// FlowStats converts a rule to a flow stats entry of version v (NXST_FLOW
// when nicira), at now.
func FlowStats(v uint8, nicira bool, r *flow.Rule, now time.Time) (openflow.FlowStats, error) {
	pk, by := r.Stats()
	idle, hard := r.Timeouts()
	e := openflow.FlowStats{
		TableID:     r.Table,
		Priority:    r.Priority,
		IdleTimeout: idle,
		HardTimeout: hard,
		Cookie:      r.Cookie,
		PacketCount: pk,
		ByteCount:   by,
	}
	e.DurationSec, e.DurationNsec = Duration(r.Duration(now))
	if v >= openflow.Version13 && !nicira {
		e.Flags = FlagsToWire(v, r.Flags)
	}
	if v >= openflow.Version15 {
		e.Stats15 = openflow.OXSDuration | openflow.OXSPacketCount | openflow.OXSByteCount
		if used := r.LastUsed(); !used.IsZero() {
			e.Stats15 |= openflow.OXSIdleTime
			e.IdleSec, e.IdleNsec = Duration(now.Sub(used))
		}
	}
	if nicira {
		age := func(t time.Time) uint16 {
			s := now.Sub(t) / time.Second
			return uint16(min(s, 0xfffe) + 1)
		}
		e.IdleAge = age(r.LastUsed())
		e.HardAge = age(r.Modified)
	}
	var err error
	m := r.Match()
	if v == openflow.Version10 && !nicira {
		e.Match10 = Match10FromMatch(&m)
		e.Actions, err = ActionsToOF(v, &m, r.Actions)
	} else if v == openflow.Version10 || nicira {
		e.Match = FieldsFromMatch(&m, true)
		e.Actions, err = ActionsToOF(v, &m, r.Actions)
	} else {
		e.Match = FieldsFromMatch(&m, false)
		e.Instructions, err = InstructionsFromActions(v, &m, r.Table, r.Actions)
	}
	return e, err
}

// NXM_NX_COOKIE, with which NXM flow mods and NXST_FLOW select flows by
// cookie.
const (
	nxmCookieClass = 0x0001
	nxmCookieField = 30
)

// splitCookie takes the NXM cookie match out of fs.
func splitCookie(fs []openflow.Field) (rest []openflow.Field, cookie, mask uint64, ok bool) {
	if !slices.ContainsFunc(fs, isNXMCookie) {
		// The usual flow mod: its fields as they are, not a copy of
		// them per flow mod.
		return fs, 0, 0, false
	}
	for _, f := range fs {
		if !isNXMCookie(f) {
			rest = append(rest, f)
			continue
		}
		cookie, mask, ok = binary.BigEndian.Uint64(f.Value), ^uint64(0), true
		if len(f.Mask) == 8 {
			mask = binary.BigEndian.Uint64(f.Mask)
		}
	}
	return rest, cookie, mask, ok
}

// isNXMCookie reports whether f is NXM's cookie match.
func isNXMCookie(f openflow.Field) bool {
	return f.Class == nxmCookieClass && f.Field == nxmCookieField && len(f.Value) == 8
}
