package daemon

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/ovsxdp/ovsxdp/flow"
)

// TestWriteStateAsMarshalIndent checks that the streamed state file is
// byte for byte what json.MarshalIndent writes for the same state, with
// no bridge, a bridge without flows and bridges with flows and groups.
func TestWriteStateAsMarshalIndent(t *testing.T) {
	var p flow.Parser
	table := flow.NewTable()
	for _, s := range []string{
		"priority=10,in_port=1,actions=output:2",
		"table=3,priority=200,tcp,nw_src=10.0.0.0/8,tp_dst=80,actions=load:0x1->NXM_NX_REG0[1],resubmit(,4)",
		"cookie=0x5,ip,actions=note:3c.26.3e",
	} {
		f, err := p.ParseFlow(s, flow.CmdAdd)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if err := table.Add(f); err != nil {
			t.Fatal(err)
		}
	}
	rules := table.Dump(nil)
	// Enough flows for several of writeFlows' parts.
	many := flow.NewTable()
	var fs []flow.Flow
	for i := range 2*flowsPart + 100 {
		f, err := p.ParseFlow(fmt.Sprintf("priority=%d,ip,nw_dst=10.%d.%d.0/24,actions=load:0x%x->NXM_NX_REG1[],resubmit(,2)", i%5, i/256, i%256, i), flow.CmdAdd)
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, *f)
	}
	if err := many.AddFlows(fs); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		bridges []bridgeState
		rules   [][]*flow.Rule
	}{
		{name: "no bridge"},
		{name: "no flows", bridges: []bridgeState{{Name: "br0", Policy: "guarded", PMDs: 1, Ports: []*portConfig{}}}, rules: [][]*flow.Rule{nil}},
		{name: "flows", bridges: []bridgeState{
			{Name: "br0", Policy: "guarded", PMDs: 2, Idle: "spin", GRO: "off", Ports: []*portConfig{}, Groups: []string{"group_id=1,type=all,bucket=actions=output:2"}},
			{Name: "br1", Policy: "legacy", PMDs: 1, SpareSpin: "off", Ports: []*portConfig{}},
		}, rules: [][]*flow.Rule{rules, rules[:1]}},
		{name: "many flows", bridges: []bridgeState{
			{Name: "br0", Policy: "guarded", PMDs: 1, Ports: []*portConfig{}},
			{Name: "br1", Policy: "guarded", PMDs: 1, Ports: []*portConfig{}},
		}, rules: [][]*flow.Rule{many.Dump(nil), rules}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := state{Version: stateVersion, Bridges: []bridgeState{}}
			st.Bridges = append(st.Bridges, tc.bridges...)
			heads, err := bridgeHeads(&st)
			if err != nil {
				t.Fatal(err)
			}
			// One worker and several: with one, the later parts
			// reuse the buffers of the earlier ones.
			var outs [2]bytes.Buffer
			for i, workers := range []int{1, 3} {
				w := bufio.NewWriter(&outs[i])
				if err := writeState(w, st.Version, heads, tc.rules, workers); err != nil {
					t.Fatal(err)
				}
				w.Flush()
			}
			buf := &outs[0]
			if !bytes.Equal(outs[0].Bytes(), outs[1].Bytes()) {
				t.Errorf("one worker wrote\n%s\nthree wrote\n%s", outs[0].Bytes(), outs[1].Bytes())
			}

			for i := range st.Bridges {
				st.Bridges[i].Flows = []string{}
				for _, r := range tc.rules[i] {
					f := r.Flow()
					st.Bridges[i].Flows = append(st.Bridges[i].Flows, flow.FormatFlowAsWritten(&f))
				}
			}
			want, err := json.MarshalIndent(&st, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, '\n')
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("writeState wrote\n%s\nwant (json.MarshalIndent)\n%s", buf.Bytes(), want)
			}
		})
	}
}

// TestWriteJSONStringAsMarshal checks that the state file's string
// writer writes what json.Marshal does, for flow text and for strings
// with control characters, HTML characters and non-ASCII.
func TestWriteJSONStringAsMarshal(t *testing.T) {
	for _, s := range []string{
		"",
		"priority=10,in_port=1 actions=load:0x1->NXM_NX_REG0[1],resubmit(,4)",
		`note:"quoted" and \ back`,
		"<&>",
		"tab\there, newline\n, nul\x00",
		"é ü \u2028 \xff",
	} {
		var buf bytes.Buffer
		w := bufio.NewWriter(&buf)
		if err := writeJSONString(w, s); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		w.Flush()
		want, _ := json.Marshal(s)
		if buf.String() != string(want) {
			t.Errorf("%q: wrote %s, want %s", s, buf.String(), want)
		}
	}
}
