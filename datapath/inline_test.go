package datapath

import (
	"testing"

	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// mustInline are the functions of datapath that dispatch and output
// need inlined, each with the loop that needs it (see testenv.Inlined).
var mustInline = []testenv.Inlined{
	{Name: "transmittable", Why: "output's usual copy makes no call to checkOutput"},
	{Name: "recordedQueue", Why: "output's usual copy, takeRun and takeAll pick the tx queue without a call"},
	{Name: "(*pmd).rxBytes", Why: "dispatch's extraction loop reads each frame without a call"},
	{Name: "(*pmd).rxFrame", Why: "dispatch's and outputRun's loops take each frame without a call"},
	{Name: "(*pmd).rxQueueOf", Why: "dispatch's and outputRun's loops read each rx queue without a call"},
	{Name: "(*outBatches).full", Why: "output and outputRun's loop test for room without a call"},
	{Name: "(*outBatches).holdLent", Why: "takeLent and queueLent's loop extend the loan's last run without a call (holdLentRun is split off for that; cost 77 of 80)"},
	{Name: "singleOutput", Why: "dispatch's loop tests a megaflow's one output without a call"},
}

// TestInline fails naming each function of mustInline that the compiler
// no longer inlines.
func TestInline(t *testing.T) {
	testenv.CheckInlined(t, "github.com/ovsxdp/ovsxdp/datapath", mustInline)
}
