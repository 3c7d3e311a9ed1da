package ofconv

import (
	"errors"
	"testing"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// TestModFlags: each version's flow mod flags as Open vSwitch reads them
// (test/TestFlowModFlagErrorsMatchOVS holds the errors to its replies),
// and back as flow stats carry them.
func TestModFlags(t *testing.T) {
	all := flow.FlagSendFlowRem | flow.FlagCheckOverlap | flow.FlagResetCounts | flow.FlagNoPacketCounts | flow.FlagNoByteCounts
	tests := []struct {
		v         uint8
		cmd       uint8
		raw, idle uint16
		want      flow.FlowFlags
		code      int // the error's code, -1 for none
	}{
		{openflow.Version10, openflow.FlowAdd, 0, 0, flow.FlagResetCounts, -1},
		{openflow.Version10, openflow.FlowModify, 0, 0, 0, -1},
		{openflow.Version10, openflow.FlowAdd, 0x3, 0, flow.FlagSendFlowRem | flow.FlagCheckOverlap | flow.FlagResetCounts, -1},
		{openflow.Version10, openflow.FlowAdd, 0x8, 0, 0, 258},
		{openflow.Version10, openflow.FlowAdd, 0x4, 0, 0, 0},    // emergency: OFPFMFC_ALL_TABLES_FULL
		{openflow.Version10, openflow.FlowDelete, 0x4, 9, 0, 3}, // emergency with a timeout
		{openflow.Version13, openflow.FlowAdd, 0, 0, 0, -1},
		{openflow.Version13, openflow.FlowAdd, 0x1f, 0, all, -1},
		{openflow.Version13, openflow.FlowAdd, 0x20, 0, 0, 7},
		{openflow.Version15, openflow.FlowModify, 0x5, 0, flow.FlagSendFlowRem | flow.FlagResetCounts, -1},
	}
	for _, tt := range tests {
		got, err := modFlags(tt.v, &openflow.FlowMod{Command: tt.cmd, Flags: tt.raw, IdleTimeout: tt.idle})
		var oe *openflow.Error
		code := -1
		if errors.As(err, &oe) {
			if oe.Type != openflow.ErrTypeFlowModFailed {
				t.Errorf("v%d 0x%x: error type %d", tt.v, tt.raw, oe.Type)
			}
			code = int(oe.Code)
		}
		if got != tt.want || code != tt.code {
			t.Errorf("v%d command %d flags 0x%x: %q, code %d (%v); want %q, code %d", tt.v, tt.cmd, tt.raw, got, code, err, tt.want, tt.code)
		}
	}
	if raw := FlagsToWire(openflow.Version13, all); raw != 0x1f {
		t.Errorf("1.3 wire flags 0x%x, want 0x1f", raw)
	}
	if raw := FlagsToWire(openflow.Version10, all); raw != 0x3 {
		t.Errorf("1.0 wire flags 0x%x, want 0x3", raw)
	}
}
