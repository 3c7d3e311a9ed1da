package flow

import (
	"bytes"
	"errors"
	"testing"
)

func TestControllerTranslate(t *testing.T) {
	tests := []struct {
		name    string
		flows   []string
		in      string
		wantODP string // FormatODPActions
		want    PacketIn
	}{
		{name: "plain controller carries the rule's table, cookie and registers",
			flows: []string{"cookie=0x10,in_port=1,actions=load:5->NXM_NX_REG0[],write_metadata:0x7,resubmit(,3)",
				"table=3,cookie=0x2a,reg0=5,actions=controller"},
			in:      "in_port=1",
			wantODP: "userspace(pid=0,controller(reason=1,dont_send=0,continuation=0,recirc_id=0,rule_cookie=0x2a,controller_id=0,max_len=65535))",
			want:    PacketIn{Reason: ReasonAction, MaxLen: 65535, Table: 3, Cookie: 0x2a, InPort: 1, Metadata: 7, Regs: [NumRegs]uint32{5}}},
		{name: "arguments and a set field committed before it",
			flows:   []string{"ip,actions=mod_dl_src:00:00:00:00:00:09,controller(reason=no_match,max_len=128,id=7,userdata=01.02),output:2"},
			in:      "in_port=4,ip",
			wantODP: "mod_dl_src:00:00:00:00:00:09,userspace(pid=0,controller(reason=0,dont_send=0,continuation=0,recirc_id=0,rule_cookie=0,controller_id=7,max_len=128)),2",
			want:    PacketIn{Reason: ReasonNoMatch, MaxLen: 128, ControllerID: 7, Userdata: []byte{1, 2}, Table: 0, Cookie: 0, InPort: 4}},
		{name: "a table-miss flow's controller action is an explicit miss",
			flows:   []string{"priority=0,actions=CONTROLLER:128"},
			in:      "in_port=2",
			wantODP: "userspace(pid=0,controller(reason=6,dont_send=0,continuation=0,recirc_id=0,rule_cookie=0,controller_id=0,max_len=128))",
			want:    PacketIn{Reason: ReasonExplicitMiss, MaxLen: 128, Table: 0, Cookie: 0, InPort: 2}},
		{name: "a group's output to the controller has the reason group",
			flows:   []string{"priority=1,actions=group:1"},
			in:      "in_port=2",
			wantODP: "-",
			want:    PacketIn{Reason: ReasonGroup, MaxLen: 65535, Table: 0, Cookie: 0, InPort: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := NewTable()
			if err := tbl.AddGroups([]*Group{mustGroup(t, "group_id=1,type=all,bucket=actions=controller")}); err != nil {
				t.Fatal(err)
			}
			for _, s := range tt.flows {
				f, err := ParseFlow(s, CmdAdd)
				if err != nil {
					t.Fatal(err)
				}
				if err := tbl.Add(f); err != nil {
					t.Fatal(err)
				}
			}
			snap := tbl.Snapshot()
			k := microflow(t, tt.in)
			tr := snap.Translate(&k, false)
			if got := FormatODPActions(tr.Actions); tt.wantODP != "-" && got != tt.wantODP {
				t.Errorf("datapath actions\n got %s\nwant %s", got, tt.wantODP)
			}
			var pi *PacketIn
			for i := range tr.Actions {
				if tr.Actions[i].Type == ActController {
					pi = tr.Actions[i].PacketIn
				}
			}
			if pi == nil {
				t.Fatal("no controller datapath action")
			}
			if pi.Reason != tt.want.Reason || pi.MaxLen != tt.want.MaxLen || pi.ControllerID != tt.want.ControllerID ||
				!bytes.Equal(pi.Userdata, tt.want.Userdata) || pi.Table != tt.want.Table || pi.Cookie != tt.want.Cookie ||
				pi.InPort != tt.want.InPort || pi.Metadata != tt.want.Metadata || pi.Regs != tt.want.Regs {
				t.Errorf("packet in\n got %+v\nwant %+v", *pi, tt.want)
			}
		})
	}
}

// missPolicy is a PortLiveness that also answers MissToController.
type missPolicy struct{ on bool }

func (missPolicy) PortLive(uint32) bool      { return false }
func (m *missPolicy) MissToController() bool { return m.on }

func TestControllerTableMiss(t *testing.T) {
	tbl := pipeline(t, "in_port=1,actions=resubmit(,2)")
	k := microflow(t, "in_port=1")
	if tr := tbl.Snapshot().Translate(&k, false); len(tr.Actions) != 0 {
		t.Fatalf("without a miss policy a miss drops: got %s", FormatODPActions(tr.Actions))
	}
	m := &missPolicy{on: true}
	tbl.SetPortLiveness(m)
	tr := tbl.Snapshot().Translate(&k, false)
	if len(tr.Actions) != 1 || tr.Actions[0].Type != ActController {
		t.Fatalf("a miss with the policy on: got %s", FormatODPActions(tr.Actions))
	}
	if pi := tr.Actions[0].PacketIn; pi.Reason != ReasonImplicitMiss || pi.Table != 2 || pi.Cookie != CookieNone {
		t.Errorf("miss packet in: %+v", *pi)
	}
	m.on = false
	tbl.SetPortLiveness(m)
	if tr := tbl.Snapshot().Translate(&k, false); len(tr.Actions) != 0 {
		t.Errorf("policy off: got %s", FormatODPActions(tr.Actions))
	}
}

// pinRecorder is an Outputter and PacketInSink.
type pinRecorder struct {
	recorder
	pins   []*PacketIn
	frames [][]byte
}

func (r *pinRecorder) PacketIn(pi *PacketIn, frame []byte) {
	r.pins = append(r.pins, pi)
	r.frames = append(r.frames, append([]byte(nil), frame...))
}

func TestControllerExecute(t *testing.T) {
	in := ipv4TCP().build(t)
	k, off := extracted(in, execInPort)
	pi := &PacketIn{Reason: ReasonAction, MaxLen: 64}
	acts := []Action{
		set(FieldDlSrc, macValue("0a:00:00:00:00:01")),
		{Type: ActController, Value: 64, Table: uint8(ReasonAction), PacketIn: pi},
		output(2),
	}
	var r pinRecorder
	if _, v := Execute(bytes.Clone(in), &k, &off, acts, &r); v != VerdictOK {
		t.Fatalf("verdict %v", v)
	}
	if len(r.pins) != 1 || r.pins[0] != pi || len(r.ports) != 1 {
		t.Fatalf("got %d packet ins, %d outputs", len(r.pins), len(r.ports))
	}
	if !bytes.Equal(r.frames[0][:6], in[:6]) || !bytes.Equal(r.frames[0][6:12], []byte{0x0a, 0, 0, 0, 0, 1}) {
		t.Errorf("the packet in does not carry the frame as the actions before it left it")
	}
	// An Outputter that is no PacketInSink sees only the outputs.
	var plain recorder
	k, off = extracted(in, execInPort)
	if _, v := Execute(bytes.Clone(in), &k, &off, acts, &plain); v != VerdictOK || len(plain.ports) != 1 {
		t.Fatalf("verdict %v, outputs %v", v, plain.ports)
	}
}

func TestControllerParseErrors(t *testing.T) {
	for _, tt := range []struct {
		in, want    string
		unsupported bool
	}{
		{"actions=controller(pause)", "controller(pause) is not supported", true},
		{"actions=controller(meter_id=1)", "meter_id", true},
		{"actions=controller(reason=explicit_miss)", `unknown reason "explicit_miss"`, false},
		{"actions=controller(max_len=65536)", `invalid max_len "65536"`, false},
		{"actions=controller:0x10", `unknown key "0x10" parsing controller action`, false},
	} {
		_, err := ParseFlow(tt.in, CmdAdd)
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tt.want)) {
			t.Errorf("%s: got %v, want %q", tt.in, err, tt.want)
			continue
		}
		if errors.Is(err, ErrUnsupportedSyntax) != tt.unsupported {
			t.Errorf("%s: unsupported=%v, want %v", tt.in, !tt.unsupported, tt.unsupported)
		}
	}
}

func mustGroup(t *testing.T, s string) *Group {
	t.Helper()
	g, err := ParseGroup(s, GroupCmdAdd)
	if err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return g
}
