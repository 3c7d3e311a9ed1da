package flow

import (
	"testing"

	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// mustInline are the functions of flow that its exact-match, megaflow
// and extraction loops need inlined, each with the loop that needs it
// (see testenv.Inlined).
var mustInline = []testenv.Inlined{
	{Name: "(*Key).Words", Why: "every key loop (extract, emcCommonHashes, hitRun, find) reads a key as words without a call"},
	{Name: "keyBits", Why: "extract's common path stores a frame's fields into key words with no call"},
	{Name: "zeroCommon", Why: "extract clears a reused key's common words without a call"},
	{Name: "zeroUncommon", Why: "extract clears a reused non-plain key's other words without a call"},
	{Name: "ExtractReusing", Why: "datapath's dispatch loop reaches extract with one call, its arguments in registers"},
	{Name: "mum", Why: "emcCommonHashes's loop hashes a batch's keys with no call"},
	{Name: "(*emcEntry).holdsCommon", Why: "hitRun's loop, find and lookupEach compare the common words without a call (cost 79 of 80)"},
	{Name: "(*EMC).holdsExtra", Why: "find compares a slot's extra words without a call"},
	{Name: "(*EMC).slots", Why: "find picks its two slots without a call"},
	{Name: "(*EMC).probeSlot", Why: "lookupEach's loop probes the exact-match cache without a call"},
	{Name: "liveAt", Why: "lookupEach's hit case and lookupHashed check the megaflow without a call"},
	{Name: "(*EMC).admits", Why: "a megaflow hit in lookupEach whose insertion is refused costs no call"},
	{Name: "(*EMC).next", Why: "admits draws its random number without a call"},
	{Name: "(*Megaflows).sole", Why: "lookupEach's loop takes a one-subtable classifier's path without a call"},
	{Name: "(*Megaflows).batched", Why: "lookupEach's loop and LookupBatchPlain test the classifier's size without a call"},
	{Name: "(*mfSubtable).hashKey", Why: "mfSubtable.lookup hashes a key of more than fastWords words without a call"},
	{Name: "wordOf", Why: "mfSubtable.lookup and find read key words without a call"},
	{Name: "mixMasked", Why: "mfSubtable.lookup and hashKey mix each masked word without a call"},
	{Name: "tagOf", Why: "mfSubtable.lookup and find take the hash's tag without a call"},
	{Name: "tagLanes", Why: "mfSubtable.lookup's probe loop matches a group's tags without a call"},
	{Name: "zeroLanes", Why: "mfSubtable.lookup's probe loop ends on an empty slot without a call"},
	{Name: "lane", Why: "mfSubtable.lookup's probe loop finds a matching slot without a call"},
	{Name: "(*mfSubtable).rec", Why: "mfSubtable.lookup's probe loop addresses a record without a call"},
	{Name: "recWord", Why: "mfSubtable.lookup's probe loop compares a record's words without a call"},
	{Name: "recMegaflow", Why: "mfSubtable.lookup returns a record's megaflow without a call"},
	{Name: "(*mfSubtable).touch", Why: "mfSubtable.lookup reads the home record ahead without a call"},
	{Name: "OnlyOutput", Why: "datapath's dispatch loop tests a megaflow's actions once per run without a call"},
	{Name: "(*Megaflow).FinalOutputs", Why: "datapath's dispatch loop reads a megaflow's outputs without a call"},
	{Name: "(*Megaflow).OutputsNormal", Why: "datapath's dispatch loop tests for the normal action without a call"},
	{Name: "(*Cache).AccountTCPFlags", Why: "datapath's account loop ORs a run's TCP flags without a call"},
}

// TestInline fails naming each function of mustInline that the compiler
// no longer inlines.
func TestInline(t *testing.T) {
	testenv.CheckInlined(t, "github.com/ovsxdp/ovsxdp/flow", mustInline)
}
