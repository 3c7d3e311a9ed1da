package flow

import (
	"slices"
	"strings"
)

// This file is the action set of OpenFlow 1.1+: the instructions
// clear_actions and write_actions(...), which empty it and add to it, and
// its execution when the pipeline ends, in the order ovs-actions(7) gives
// ("Action Sets"):
//
//	strip_vlan, push_vlan, dec_ttl (the last of each type written);
//	every set_field, load, move and mod_* written, in order;
//	group, else output, else resubmit (the last of the type written).
//
// Without a group, output or resubmit the set sends the packet nowhere
// and runs nothing.

// instrStage is the latest OpenFlow 1.1+ instruction an action list has
// written: the instructions go in this order, each at most once.
type instrStage uint8

const (
	stageApply    instrStage = iota // apply_actions: the plain actions
	stageClear                      // clear_actions
	stageWrite                      // write_actions(...)
	stageMetadata                   // write_metadata
	stageGoto                       // goto_table
)

var instrNames = [...]string{"apply_actions", "clear_actions", "write_actions", "write_metadata", "goto_table"}

// instruction parses clear_actions and write_actions(...), and reports
// whether t was one of them. It checks the order of the instructions
// around them, as ovs-ofctl does for OpenFlow 1.1+: clear_actions and
// write_actions come after the plain actions and before write_metadata
// and goto_table, each at most once; and once a list has either, no
// plain action may follow an instruction.
func (ap *actionParser) instruction(t *token, name string) (bool, error) {
	stage := stageApply
	switch name {
	case "clear_actions":
		stage = stageClear
	case "write_actions":
		stage = stageWrite
	case "write_metadata":
		stage = stageMetadata
	case "goto_table":
		stage = stageGoto
	}
	isSet := stage == stageClear || stage == stageWrite
	if isSet && !ap.top {
		return true, errAt(ap.s, t, "instruction %s may not be used in an action list", name)
	}
	if !ap.top {
		return false, nil
	}
	if isSet || ap.wroteSet {
		switch {
		case stage == ap.instr && stage != stageApply:
			return true, errAt(ap.s, t, "duplicate %s instruction not allowed, for OpenFlow 1.1+ compatibility", instrNames[stage])
		case stage < ap.instr:
			return true, errAt(ap.s, t, "invalid instruction ordering: %s must appear before %s, for OpenFlow 1.1+ compatibility", instrNames[stage], instrNames[ap.instr])
		}
	}
	ap.instr = max(ap.instr, stage)
	switch stage {
	case stageClear:
		if t.hasValue || t.paren {
			return true, errAt(ap.s, t, "clear_actions takes no argument")
		}
		ap.wroteSet = true
		ap.add(Action{Type: ActClearActions})
		return true, nil
	case stageWrite:
		ap.wroteSet = true
		return true, ap.writeActions(t)
	}
	return false, nil
}

// writeActions parses write_actions(ACTIONS). An empty body writes
// nothing, and the instruction is left out, as Open vSwitch does.
func (ap *actionParser) writeActions(t *token) error {
	if !t.paren {
		return errAt(ap.s, t, "write_actions needs (actions)")
	}
	sub := actionParser{p: ap.p, s: ap.s, m: ap.m, vlan: ap.vlan, table: ap.table}
	body, err := sub.parse(t.valPos, t.valPos+len(t.value))
	if err != nil {
		return err
	}
	for i := range body {
		switch a := &body[i]; {
		case InActionSet(a):
		case a.Type == ActCT || a.Type == ActCTClear || a.Type == ActController:
			return unsupportedAt(ap.s, t, "%s in an action set is not supported", actionName(a))
		case a.Type == ActResubmit && a.Spelling == SpellGotoTable:
			return errAt(ap.s, t, "instruction goto_table may not be used in an action set")
		default:
			return errAt(ap.s, t, "disallowed action in action set: %s", actionName(a))
		}
	}
	if len(body) > 0 {
		ap.add(Action{Type: ActWriteActions, Value: uint64(len(body))})
		ap.acts = append(ap.acts, body...)
	}
	return nil
}

// InActionSet reports whether a write_actions may hold a: what Open
// vSwitch's action set runs, less connection tracking and packet-ins,
// which ovsxdp does not run from a set.
func InActionSet(a *Action) bool {
	switch a.Type {
	case ActOutput, ActGroup, ActSetField, ActLoad, ActMove, ActPushVLAN, ActPopVLAN,
		ActSetVLANVID, ActSetVLANPCP, ActDecTTL:
		return true
	case ActResubmit:
		return a.Spelling != SpellGotoTable
	}
	return false
}

// actionName is the keyword of a's action, for error messages.
func actionName(a *Action) string {
	if name := nestedName(a.Type); name != "" {
		return name
	}
	var b strings.Builder
	formatAction(&b, a)
	name, _, _ := strings.Cut(b.String(), ":")
	name, _, _ = strings.Cut(name, "(")
	return name
}

// isActionSetInstr reports whether t is clear_actions or write_actions.
func isActionSetInstr(t ActionType) bool {
	return t == ActClearActions || t == ActWriteActions
}

// WithoutActionSet returns acts without clear_actions and write_actions
// (acts itself when it has neither): what OpenFlow 1.0, which has no
// instructions, carries of them, as Open vSwitch encodes a flow for it.
func WithoutActionSet(acts []Action) []Action {
	if !slices.ContainsFunc(acts, func(a Action) bool { return isActionSetInstr(a.Type) }) {
		return acts
	}
	var out []Action
	for i := 0; i < len(acts); i++ {
		switch acts[i].Type {
		case ActWriteActions:
			i += len(nestedBody(acts, i))
		case ActClearActions:
		default:
			out = append(out, acts[i])
		}
	}
	return out
}

// writeActions runs write_actions: its body joins the packet's action
// set.
func (x *xlate) writeActions(body []Action) {
	x.actset = append(x.actset, body...)
	x.reportActionSet("action set is")
}

// clearActions runs clear_actions: the action set becomes empty.
func (x *xlate) clearActions() {
	x.reportActionSet("action set was")
	x.actset = x.actset[:0]
}

// reportActionSet traces the action set as it would run, as Open
// vSwitch's ofproto/trace shows it: "<what>: ACTIONS", or "<what> empty".
func (x *xlate) reportActionSet(what string) {
	if x.trace == nil {
		return
	}
	if run := actionSet(nil, x.actset); len(run) > 0 {
		x.report(TraceDetail, what+": "+FormatActions(run))
	} else {
		x.report(TraceDetail, what+" empty")
	}
}

// runActionSet runs the action set when the pipeline has ended.
func (x *xlate) runActionSet() {
	if len(x.actset) == 0 {
		return
	}
	var buf [16]Action
	run := actionSet(buf[:0], x.actset)
	x.actset = x.actset[:0]
	if len(run) == 0 {
		return
	}
	oldTrace := x.trace
	if node := x.report(TraceEnd, "--. Executing action set:"); node != nil {
		x.trace = &node.Subs
	}
	x.run(run)
	x.trace = oldTrace
}
