package daemon

import (
	"maps"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/cmd/ovsxdp/internal/ovsdb"
)

func ifaceRow(name, typ string, opts map[string]string, extra ovsdb.Row) ovsdb.Row {
	m := ovsdb.Map{}
	for k, v := range opts {
		m[k] = v
	}
	r := ovsdb.Row{"_uuid": ovsdb.UUID("u-" + name), "name": name, "type": typ, "options": m,
		"ofport_request": ovsdb.Set{}, "ofport": ovsdb.Set{}}
	maps.Copy(r, extra)
	return r
}

func TestOVSDBWantIface(t *testing.T) {
	for _, tc := range []struct {
		name, typ string
		opts      map[string]string
		extra     ovsdb.Row
		wantOpts  map[string]string
		wantOF    uint32
		wantHint  uint32
		refuse    string
		wantType  string
	}{
		{name: "v0", typ: "afxdp", opts: map[string]string{"n_rxq": "2", "xdp-mode": "native-with-zerocopy", "use-need-wakeup": "true"},
			wantOpts: map[string]string{"rxq": "2", "xdp-mode": "native"}},
		{name: "v1", typ: "", extra: ovsdb.Row{"ofport_request": ovsdb.Set{int64(5)}, "ofport": ovsdb.Set{int64(3)}}, wantOF: 5, wantHint: 3},
		{name: "v2", typ: "system", opts: map[string]string{"frames": "4096"}, extra: ovsdb.Row{"ofport": ovsdb.Set{int64(-1)}},
			wantOpts: map[string]string{"frames": "4096"}},
		{name: "br0", typ: "internal", wantType: typeInternal, wantOF: 65534},
		{name: "br0", typ: "internal", extra: ovsdb.Row{"ofport_request": ovsdb.Set{int64(5)}, "ofport": ovsdb.Set{int64(65534)}}, wantType: typeInternal, wantOF: 65534},
		{name: "int0", typ: "internal", wantType: typeInternal},
		{name: "gre0", typ: "gre", refuse: `interface type "gre"`},
		{name: "bad name!", typ: "afxdp", refuse: "invalid port name"},
	} {
		w := wantIface("br0", ifaceRow(tc.name, tc.typ, tc.opts, tc.extra))
		if tc.refuse != "" {
			if !strings.Contains(w.refuse, tc.refuse) {
				t.Errorf("%s: refuse %q, want it to contain %q", tc.name, w.refuse, tc.refuse)
			}
			continue
		}
		if w.refuse != "" {
			t.Errorf("%s: refused: %s", tc.name, w.refuse)
		}
		if tc.wantType == "" {
			tc.wantType = typeAFXDP
		}
		if w.pc.Type != tc.wantType || w.pc.Name != tc.name || w.bridge != "br0" {
			t.Errorf("%s: %+v", tc.name, w.pc)
		}
		if !maps.Equal(w.pc.Options, tc.wantOpts) {
			t.Errorf("%s: options %v, want %v", tc.name, w.pc.Options, tc.wantOpts)
		}
		if w.pc.OFPort != tc.wantOF || w.hint != tc.wantHint {
			t.Errorf("%s: ofport %d hint %d, want %d and %d", tc.name, w.pc.OFPort, w.hint, tc.wantOF, tc.wantHint)
		}
	}
}

// The key decides whether a port is re-created: the same configuration
// (whatever the ofport the database records) keeps the key; a change of
// type, options or ofport_request changes it.
func TestOVSDBWantIfaceKey(t *testing.T) {
	base := wantIface("br0", ifaceRow("v0", "afxdp", map[string]string{"n_rxq": "2"}, nil)).key
	same := []ovsdb.Row{
		ifaceRow("v0", "afxdp", map[string]string{"n_rxq": "2"}, ovsdb.Row{"ofport": ovsdb.Set{int64(4)}}),
		ifaceRow("v0", "afxdp", map[string]string{"n_rxq": "2"}, ovsdb.Row{"statistics": ovsdb.Map{"rx_packets": int64(9)}}),
	}
	for _, r := range same {
		if k := wantIface("br0", r).key; k != base {
			t.Errorf("key %q, want %q", k, base)
		}
	}
	differ := []ovsdb.Row{
		ifaceRow("v0", "afxdp", map[string]string{"n_rxq": "1"}, nil),
		ifaceRow("v0", "afxdp", nil, nil),
		ifaceRow("v0", "", map[string]string{"n_rxq": "2"}, nil),
		ifaceRow("v0", "afxdp", map[string]string{"n_rxq": "2"}, ovsdb.Row{"ofport_request": ovsdb.Set{int64(2)}}),
	}
	for _, r := range differ {
		if k := wantIface("br0", r).key; k == base {
			t.Errorf("%v: same key %q", r, k)
		}
	}
}

func TestOVSDBSetOpt(t *testing.T) {
	row := ovsdb.Row{"error": ovsdb.Set{"old"}, "link_state": ovsdb.Set{"up"}, "mtu": ovsdb.Set{}, "ofport": ovsdb.Set{int64(3)}}
	up := ovsdb.Row{}
	setOptString(up, row, "error", "")         // cleared
	setOptString(up, row, "link_state", "up")  // unchanged
	setOptString(up, row, "admin_state", "up") // new
	setOptInt(up, row, "mtu", 0, false)        // unchanged (empty)
	setOptInt(up, row, "ofport", 3, true)      // unchanged
	setOptInt(up, row, "ifindex", 7, true)     // new
	want := ovsdb.Row{"error": ovsdb.Set{}, "admin_state": "up", "ifindex": int64(7)}
	if len(up) != len(want) {
		t.Fatalf("updates %v, want %v", up, want)
	}
	for k, v := range want {
		got, ok := up[k]
		if !ok {
			t.Errorf("no update of %s", k)
			continue
		}
		if s, isSet := v.(ovsdb.Set); isSet {
			if gs, ok := got.(ovsdb.Set); !ok || len(gs) != len(s) {
				t.Errorf("%s: %v, want %v", k, got, v)
			}
		} else if got != v {
			t.Errorf("%s: %v, want %v", k, got, v)
		}
	}
}

// writeBack sets cur_cfg to next_cfg and announces the datapath and
// interface types, and writes nothing once the database agrees.
func TestOVSDBWriteBackRoot(t *testing.T) {
	d, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	s := &ovsdbSync{d: d, applied: map[string]*appliedPort{}}
	root := ovsdb.Row{"_uuid": ovsdb.UUID("root"), "next_cfg": int64(4), "cur_cfg": int64(3),
		"datapath_types": ovsdb.Set{}, "iface_types": ovsdb.Set{}}
	ops := s.writeBack(nil, root, nil, nil, nil)
	if len(ops) != 1 || ops[0].Table != "Open_vSwitch" || ops[0].Row["cur_cfg"] != int64(4) ||
		ops[0].Row["datapath_types"] == nil || ops[0].Row["iface_types"] == nil {
		t.Fatalf("ops %+v", ops)
	}
	root = ovsdb.Row{"_uuid": ovsdb.UUID("root"), "next_cfg": int64(4), "cur_cfg": int64(4),
		"datapath_types": ovsdb.Set{DatapathType}, "iface_types": ovsdb.Set{typeAFXDP, typeInternal, typeVXLAN, typeGeneve}}
	if ops := s.writeBack(nil, root, nil, nil, nil); len(ops) != 0 {
		t.Fatalf("in step, yet ops %+v", ops)
	}
}

func TestOVSDBRefusesConfigVerbs(t *testing.T) {
	d := &Daemon{ovsdb: &ovsdbSync{}}
	for _, v := range []string{"add-br", "del-br", "add-port", "del-port"} {
		if err := d.refuseConfigVerb(v); err == nil {
			t.Errorf("%s accepted", v)
		}
	}
	for _, v := range []string{"add-flow", "dump-flows", "show"} {
		if err := d.refuseConfigVerb(v); err != nil {
			t.Errorf("%s refused: %v", v, err)
		}
	}
	if err := (&Daemon{}).refuseConfigVerb("add-br"); err != nil {
		t.Errorf("without --ovsdb add-br refused: %v", err)
	}
}

func TestOVSDBStatsInterval(t *testing.T) {
	for v, want := range map[string]time.Duration{"": 5 * time.Second, "1000": 5 * time.Second,
		"30000": 30 * time.Second, "junk": 5 * time.Second, "-4": 5 * time.Second} {
		root := ovsdb.Row{"other_config": ovsdb.Map{}}
		if v != "" {
			root["other_config"] = ovsdb.Map{"stats-update-interval": v}
		}
		if got := statsInterval(root); got != want {
			t.Errorf("stats-update-interval=%q: %v, want %v", v, got, want)
		}
	}
}

// A daemon whose ovsdb-server is not there starts, keeps trying, and
// closes promptly.
func TestOVSDBServerAbsent(t *testing.T) {
	d, err := New(Config{OVSDB: "unix:" + filepath.Join(t.TempDir(), "no.sock")})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // a retry or two
	done := make(chan struct{})
	go func() { d.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Close does not return while the daemon waits for ovsdb-server")
	}
	if _, err := New(Config{OVSDB: "unix:/x", StatePath: filepath.Join(t.TempDir(), "s.json")}); err == nil {
		t.Error("a state file and --ovsdb together were accepted")
	}
}

// TestFlushes checks when a bridge's tables are flushed, as Open
// vSwitch's connmgr_set_controllers and connmgr_set_fail_mode decide.
func TestFlushes(t *testing.T) {
	ctl := []ctlSpec{{Target: "tcp:127.0.0.1:6653"}}
	other := []ctlSpec{{Target: "tcp:127.0.0.1:6654"}}
	for _, tc := range []struct {
		name     string
		old, cfg ctlConfig
		want     bool
	}{
		{name: "nothing changes", want: false},
		{name: "standalone named", cfg: ctlConfig{FailMode: failStandalone}, want: false},
		{name: "secure without controllers", cfg: ctlConfig{FailMode: failSecure}, want: true},
		{name: "back to standalone", old: ctlConfig{FailMode: failSecure}, want: true},
		{name: "first controller", cfg: ctlConfig{Specs: ctl}, want: true},
		{name: "last controller gone", old: ctlConfig{Specs: ctl}, want: true},
		{name: "another controller", old: ctlConfig{Specs: ctl}, cfg: ctlConfig{Specs: other}, want: false},
		{name: "fail mode with a controller", old: ctlConfig{Specs: ctl}, cfg: ctlConfig{Specs: ctl, FailMode: failSecure}, want: false},
		{name: "last controller gone in secure mode", old: ctlConfig{Specs: ctl, FailMode: failSecure}, cfg: ctlConfig{FailMode: failSecure}, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := flushes(tc.old, tc.cfg); got != tc.want {
				t.Errorf("flushes(%+v, %+v) = %v, want %v", tc.old, tc.cfg, got, tc.want)
			}
		})
	}
}
