package datapath

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// TestPacketOut sends packets out through the pipeline: actions that
// rewrite and output, a resubmit into a table, IN_PORT, and FLOOD, which
// leaves in_port out; a frame that cannot be parsed is refused.
func TestPacketOut(t *testing.T) {
	b := newTestBridge(t, Config{})
	m1, _ := addMemPort(t, b, vport.MemConfig{Name: "p1"}, 1)
	m2, _ := addMemPort(t, b, vport.MemConfig{Name: "p2"}, 2)
	m3, _ := addMemPort(t, b, vport.MemConfig{Name: "p3"}, 3)
	addFlows(t, b, "table=4,udp,actions=mod_tp_dst:99,output:3")
	frame := buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: 1, dport: 2, payloadSz: 20})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	parse := func(s string) []flow.Action {
		f, err := flow.ParseFlow("actions="+s, flow.CmdAdd)
		if err != nil {
			t.Fatal(err)
		}
		return f.Actions
	}
	tests := []struct {
		name          string
		acts          string
		want1, want2  int
		want3         int
		wantTPDst99On int // port whose frame has tp_dst 99, 0 for none
	}{
		{"output", "output:2", 0, 1, 0, 0},
		{"resubmit", "resubmit(,4)", 0, 0, 1, 3},
		{"in_port", "in_port", 1, 0, 0, 0},
		{"flood", "flood", 0, 1, 1, 0},
		{"no rule", "resubmit(,9)", 0, 0, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := b.PacketOut(ctx, frame, 1, parse(tc.acts)); err != nil {
				t.Fatal(err)
			}
			got := [][][]byte{drainAll(m1), drainAll(m2), drainAll(m3)}
			for i, want := range []int{tc.want1, tc.want2, tc.want3} {
				if len(got[i]) != want {
					t.Errorf("port %d sent %d frames, want %d", i+1, len(got[i]), want)
				}
			}
			if tc.wantTPDst99On != 0 {
				f := got[tc.wantTPDst99On-1][0]
				if !bytes.Equal(f[36:38], []byte{0, 99}) {
					t.Errorf("udp destination port %x, want 0063", f[36:38])
				}
			}
		})
	}
	if err := b.PacketOut(ctx, frame[:10], 1, parse("output:2")); !errors.Is(err, ErrMalformedPacket) {
		t.Errorf("a 10-byte frame: %v, want ErrMalformedPacket", err)
	}
	checkAccounting(t, b)
}
