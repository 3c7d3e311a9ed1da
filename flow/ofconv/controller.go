package ofconv

import (
	"strconv"
	"strings"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// controllerAction encodes a controller action as Open vSwitch does: one
// with the reason action, no controller id, no userdata and no meter is an
// output to the CONTROLLER port with its max_len; one with userdata, pause
// or a meter_id is NXAST_CONTROLLER2, with the properties that differ
// from the defaults; any other is NXAST_CONTROLLER.
func controllerAction(a *flow.Action) openflow.Action {
	reason := uint8(a.Table)
	switch {
	case a.Note != "" || a.Port != 0 || a.Pause:
		c := &openflow.ActController2{UserData: []byte(a.Note), HasUserData: a.Note != "", Pause: a.Pause}
		if a.Value != flow.MaxLenAll {
			c.MaxLen, c.HasMaxLen = uint16(a.Value), true
		}
		if a.Mask != 0 {
			c.ControllerID, c.HasID = uint16(a.Mask), true
		}
		if a.Port != 0 {
			c.MeterID, c.HasMeterID = a.Port, true
		}
		if reason != uint8(flow.ReasonAction) {
			c.Reason, c.HasReason = reason, true
		}
		return c
	case reason == uint8(flow.ReasonAction) && a.Mask == 0:
		return &openflow.ActOutput{Port: ofPort(flow.PortController), MaxLen: uint16(a.Value)}
	}
	return &openflow.ActController{MaxLen: uint16(a.Value), ControllerID: uint16(a.Mask), Reason: reason}
}

// controllerText writes NXAST_CONTROLLER or NXAST_CONTROLLER2 in
// ovs-ofctl syntax.
func controllerText(a openflow.Action) (string, error) {
	maxLen, id, reason := uint16(flow.MaxLenAll), uint16(0), uint8(flow.ReasonAction)
	var userdata []byte
	var meterID uint32
	pause := false
	switch a := a.(type) {
	case *openflow.ActController:
		maxLen, id, reason = a.MaxLen, a.ControllerID, a.Reason
	case *openflow.ActController2:
		pause = a.Pause
		if a.HasMeterID {
			meterID = a.MeterID
		}
		if a.HasMaxLen {
			maxLen = a.MaxLen
		}
		if a.HasID {
			id = a.ControllerID
		}
		if a.HasReason {
			reason = a.Reason
		}
		userdata = a.UserData
	}
	if int(reason) > int(flow.ReasonPacketOut) {
		return "", actionError(openflow.CodeBadActionArgument, "controller reason %d", reason)
	}
	parts := []string{"reason=" + flow.PacketInReason(reason).String(), "max_len=" + strconv.Itoa(int(maxLen)), "id=" + strconv.Itoa(int(id))}
	if len(userdata) > 0 {
		parts = append(parts, "userdata="+dotted(userdata))
	}
	if pause {
		parts = append(parts, "pause")
	}
	if meterID != 0 {
		parts = append(parts, "meter_id="+strconv.FormatUint(uint64(meterID), 10))
	}
	return "controller(" + strings.Join(parts, ",") + ")", nil
}
