package flow

import (
	"bytes"
	"errors"
	"reflect"
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
			wantODP: "set(eth(src=00:00:00:00:00:09)),userspace(pid=0,controller(reason=0,dont_send=0,continuation=0,recirc_id=0,rule_cookie=0,controller_id=7,max_len=128)),2",
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
			if got := FormatDatapathActions(tr.Actions, &k, nil); tt.wantODP != "-" && got != tt.wantODP {
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

// TestControllerPacketInMetadata checks the tunnel and connection
// tracking fields a packet in reports, and that the megaflow matches
// those that come from the packet, so that every packet it holds reports
// the same.
func TestControllerPacketInMetadata(t *testing.T) {
	const tracked = "in_port=1,udp,ct_state=+new+trk,ct_zone=5,ct_mark=3,ct_label=0x11,ct_nw_src=1.1.1.1,ct_nw_dst=2.2.2.2,ct_nw_proto=17,ct_tp_src=53,ct_tp_dst=54"
	tests := []struct {
		name     string
		flows    []string
		in       string
		want     func(pi *PacketIn)
		wantMask func(m *Key)
	}{
		{name: "a decapsulated packet's tunnel, matched by the megaflow",
			flows: []string{"actions=controller"},
			in:    "in_port=5,tun_id=0x7,tun_src=1.1.1.1,tun_dst=2.2.2.2,tun_flags=+oam,udp",
			want: func(pi *PacketIn) {
				pi.TunID, pi.TunSrc, pi.TunDst, pi.TunFlags = 7, 0x01010101, 0x02020202, TunFlagOAM
			},
			wantMask: func(m *Key) {
				// The controller action's, and what every megaflow of a
				// decapsulated packet matches (tunnelReceived).
				m.TunID, m.TunSrc, m.TunDst = ^uint64(0), ^uint32(0), ^uint32(0)
				m.TunFlags = TunFlagsOpenFlow | TunFlagDF | TunFlagCsum | TunFlagKey | TunFlagOpts | TunFlagGeneve
				m.TunIPv6Src, m.TunIPv6Dst = allOnes16, allOnes16
				m.TunMetaPresent = ^uint64(0)
				for i := range m.TunMeta {
					m.TunMeta[i] = 0xff
				}
			}},
		{name: "a tunnel set by the actions: only the set fields are matched, as set_field's own",
			flows:    []string{"actions=set_field:0x9->tun_id,set_field:3.3.3.3->tun_dst,controller"},
			in:       "in_port=1,udp",
			want:     func(pi *PacketIn) { pi.TunID, pi.TunDst = 9, 0x03030303 },
			wantMask: func(m *Key) { m.TunID, m.TunDst = ^uint64(0), ^uint32(0) }},
		{name: "a tracked packet's ct fields and tuple, matched by the megaflow",
			flows: []string{"actions=controller"},
			in:    tracked,
			want: func(pi *PacketIn) {
				pi.DlType, pi.CtState, pi.CtZone, pi.CtMark, pi.CtLabel[15] = EthTypeIPv4, CtStateNew|CtStateTracked, 5, 3, 0x11
				pi.CtNwSrc, pi.CtNwDst, pi.CtNwProto, pi.CtTpSrc, pi.CtTpDst = 0x01010101, 0x02020202, 17, 53, 54
			},
			wantMask: func(m *Key) {
				m.CtState, m.CtZone, m.CtMark, m.CtLabel = 0xff, ^uint16(0), ^uint32(0), allOnes16
				m.CtNwSrc, m.CtNwDst, m.CtNwProto, m.CtTpSrc, m.CtTpDst = ^uint32(0), ^uint32(0), 0xff, ^uint16(0), ^uint16(0)
			}},
		{name: "an invalid packet reports no tuple",
			flows: []string{"actions=controller"},
			in:    "in_port=1,udp,ct_state=+inv+trk,ct_zone=5",
			want:  func(pi *PacketIn) { pi.DlType, pi.CtState, pi.CtZone = EthTypeIPv4, CtStateInv|CtStateTracked, 5 },
			wantMask: func(m *Key) {
				m.CtState, m.CtZone, m.CtMark, m.CtLabel = 0xff, ^uint16(0), ^uint32(0), allOnes16
			}},
		{name: "after ct(...) without a table the packet is untracked",
			flows: []string{"ip,actions=ct(zone=9),controller"},
			in:    tracked,
			want:  func(*PacketIn) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := NewTable()
			for _, s := range tt.flows {
				f, err := ParseFlow(s, CmdAdd)
				if err != nil {
					t.Fatal(err)
				}
				if err := tbl.Add(f); err != nil {
					t.Fatal(err)
				}
			}
			k := microflow(t, tt.in)
			tr := tbl.Snapshot().Translate(&k, false)
			var pi *PacketIn
			for i := range tr.Actions {
				if tr.Actions[i].Type == ActController {
					pi = tr.Actions[i].PacketIn
				}
			}
			if pi == nil {
				t.Fatalf("no controller datapath action in %s", FormatODPActions(tr.Actions))
			}
			want := *pi
			want.TunID, want.TunSrc, want.TunDst, want.TunFlags = 0, 0, 0, 0
			want.TunIPv6Src, want.TunIPv6Dst, want.TunMetadata = [16]byte{}, [16]byte{}, nil
			want.DlType, want.CtState, want.CtZone, want.CtMark, want.CtLabel = 0, 0, 0, 0, [16]byte{}
			want.CtNwSrc, want.CtNwDst, want.CtIPv6Src, want.CtIPv6Dst = 0, 0, [16]byte{}, [16]byte{}
			want.CtNwProto, want.CtTpSrc, want.CtTpDst = 0, 0, 0
			tt.want(&want)
			if !reflect.DeepEqual(*pi, want) {
				t.Errorf("packet in\n got %+v\nwant %+v", *pi, want)
			}
			// The mask's tunnel and ct fields are those the packet in
			// consulted (nothing else in these pipelines reads them).
			var got, wantMask Key
			got.TunID, got.TunSrc, got.TunDst, got.TunFlags = tr.Mask.TunID, tr.Mask.TunSrc, tr.Mask.TunDst, tr.Mask.TunFlags
			got.TunIPv6Src, got.TunIPv6Dst = tr.Mask.TunIPv6Src, tr.Mask.TunIPv6Dst
			got.TunMetaPresent, got.TunMeta = tr.Mask.TunMetaPresent, tr.Mask.TunMeta
			var ct ctSnapshot
			ct.save(&tr.Mask)
			ct.restore(&got)
			if tt.wantMask != nil {
				tt.wantMask(&wantMask)
			}
			if got != wantMask {
				t.Errorf("megaflow mask of the tunnel and ct fields\n got %+v\nwant %+v", got, wantMask)
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

		{"actions=controller(meter_id=0x100000000)", `invalid meter_id "0x100000000"`, false},
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
