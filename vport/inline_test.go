package vport

import (
	"testing"

	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// mustInline are the functions of vport that the ring's loops and
// datapath's output need inlined, each with the loop that needs it (see
// testenv.Inlined).
var mustInline = []testenv.Inlined{
	{Name: "small", Why: "pushSmall's and popSmall's loops choose the in-line copy with no call"},
	{Name: "moveSmall", Why: "pushSmall's and popSmall's loops copy a small frame with no call (copy would call memmove)"},
	{Name: "(*ring).ready", Why: "pop and lend answer an idle poll without a call"},
	{Name: "(*Device).Snapshot", Why: "datapath's output and takeRun read a device's state once, without a call"},
	{Name: "DeviceState.Registration", Why: "datapath's transmittable, inlined in output, makes no call"},
	{Name: "DeviceState.Running", Why: "datapath's transmittable, inlined in output, makes no call"},
	{Name: "DeviceState.Carrier", Why: "datapath's transmittable, inlined in output, makes no call"},
	{Name: "DeviceState.TxQueues", Why: "datapath's transmittable and recordedQueue, inlined in output, make no call"},
	{Name: "RxQueue.Recorded", Why: "datapath's output and takeRun test the recorded rx queue without a call"},
	{Name: "RxQueue.Queue", Why: "datapath's recordedQueue, inlined in output, makes no call"},
}

// TestInline fails naming each function of mustInline that the compiler
// no longer inlines.
func TestInline(t *testing.T) {
	testenv.CheckInlined(t, "github.com/ovsxdp/ovsxdp/vport", mustInline)
}
