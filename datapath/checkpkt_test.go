package datapath

import (
	"bytes"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// TestCheckPktLarger: a poll thread runs check_pkt_len on what it
// receives. Long frames take the longer-than branch (a rewrite and an
// output on a copy of the packet, since an output follows the check),
// short ones the other (a rewrite, no output), and the output after the
// check sends every frame as it came. ofproto/trace writes the megaflow's
// check_pkt_len with both branches, as Open vSwitch does (a rewrite no
// output follows is left out).
func TestCheckPktLarger(t *testing.T) {
	b := newTestBridge(t, Config{})
	src, _ := addMemPort(t, b, vport.MemConfig{Name: "src"}, 1)
	long, _ := addMemPort(t, b, vport.MemConfig{Name: "long"}, 2)
	all, _ := addMemPort(t, b, vport.MemConfig{Name: "all"}, 3)
	addFlows(t, b,
		"table=0,in_port=1,actions=resubmit(,1),output:3",
		"table=1,actions=check_pkt_larger(200)->reg0[0],mod_dl_dst:02:00:00:00:00:09,resubmit(,2)",
		"table=2,reg0=0x1/0x1,actions=output:2",
	)
	short := buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: 1, dport: 2, payloadSz: 18})
	big := buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: 1, dport: 2, payloadSz: 300})
	sent := [][]byte{short, big, short, big, short}
	if n := src.Inject(0, sent); n != len(sent) {
		t.Fatalf("%d of %d frames injected", n, len(sent))
	}
	quiesce(t, b, src)
	gotLong, gotAll := drainAll(long), drainAll(all)
	if len(gotLong) != 2 || len(gotAll) != len(sent) {
		t.Fatalf("port 2 sent %d frames, want the 2 long ones; port 3 %d, want all %d", len(gotLong), len(gotAll), len(sent))
	}
	for _, f := range gotLong {
		if len(f) != len(big) || !bytes.Equal(f[:6], []byte{2, 0, 0, 0, 0, 9}) || !bytes.Equal(f[6:], big[6:]) {
			t.Errorf("port 2 sent % x, want the long frame with destination 02:00:00:00:00:09", f[:14])
		}
	}
	for i, f := range gotAll {
		if !bytes.Equal(f, sent[i]) {
			t.Errorf("port 3's frame %d is not the frame received: % x", i, f[:14])
		}
	}
	checkAccounting(t, b)

	k, err := flow.ParseMicroflow("in_port=1,udp")
	if err != nil {
		t.Fatal(err)
	}
	want := "check_pkt_len(size=200,gt(set(eth(dst=02:00:00:00:00:09)),2),le(drop)),3" // Open vSwitch 3.1's for these flows (output:LOCAL for output:2, its datapath port 2 there)
	if got := b.Trace(k).DatapathActions(); got != want {
		t.Errorf("trace's datapath actions\n got %s\nwant %s", got, want)
	}
}

// TestCheckPktLargerNormalOnCopy: the normal action in a check_pkt_len
// branch that runs on a copy of the packet (an output follows the check)
// forwards by the copy's rewritten destination: to the port the MAC
// table holds it on, not flooded as the packet's own unknown destination
// would be. The output after the check sends the packet as it came.
func TestCheckPktLargerNormalOnCopy(t *testing.T) {
	b := newTestBridge(t, Config{})
	src, _ := addMemPort(t, b, vport.MemConfig{Name: "src"}, 1)
	known, _ := addMemPort(t, b, vport.MemConfig{Name: "known"}, 2)
	other, _ := addMemPort(t, b, vport.MemConfig{Name: "other"}, 3)
	dst := [6]byte{2, 0, 0, 0, 0, 9}
	if _, _, ok := b.MACs().AddStatic(dst, 0, 2, time.Now().UnixNano()); !ok {
		t.Fatal("no room for a static MAC entry")
	}
	addFlows(t, b,
		"table=0,in_port=1,actions=resubmit(,1),output:3",
		"table=1,actions=check_pkt_larger(200)->reg0[0],mod_dl_dst:02:00:00:00:00:09,NORMAL",
	)
	frame := buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: 1, dport: 2, payloadSz: 300})
	if n := src.Inject(0, [][]byte{frame}); n != 1 {
		t.Fatal("frame not injected")
	}
	quiesce(t, b, src)
	gotKnown, gotOther := drainAll(known), drainAll(other)
	if len(gotKnown) != 1 || !bytes.Equal(gotKnown[0][:6], dst[:]) {
		t.Errorf("port 2 sent %d frames, want the copy, to 02:00:00:00:00:09", len(gotKnown))
	}
	if len(gotOther) != 1 || !bytes.Equal(gotOther[0], frame) {
		t.Errorf("port 3 sent %d frames, want only the frame as it came (no flooded copy)", len(gotOther))
	}
	checkAccounting(t, b)
}
