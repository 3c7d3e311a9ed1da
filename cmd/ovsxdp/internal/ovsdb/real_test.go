package ovsdb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const vswitchDB = "Open_vSwitch"

// vswitchTables are the tables ovs-vswitchd reads for bridges and ports.
var vswitchTables = map[string][]string{"Open_vSwitch": nil, "Bridge": nil, "Port": nil, "Interface": nil}

// eventLog collects a replica's change events.
type eventLog struct {
	mu     sync.Mutex
	events []Event
}

func (l *eventLog) add(ev []Event) {
	l.mu.Lock()
	l.events = append(l.events, ev...)
	l.mu.Unlock()
}

// has reports whether an event of kind on the row of table named name
// was seen.
func (l *eventLog) has(kind EventKind, table, name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.events {
		row := e.New
		if kind == EventDelete {
			row = e.Old
		}
		if e.Kind == kind && e.Table == table && row.String("name") == name {
			return true
		}
	}
	return false
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// captureTrace returns an Options.Trace that writes each received message
// as a fuzz corpus file into $OVSXDP_OVSDB_CAPTURE, when that is set.
func captureTrace(t *testing.T) func(bool, []byte) {
	dir := os.Getenv("OVSXDP_OVSDB_CAPTURE")
	if dir == "" {
		return nil
	}
	var mu sync.Mutex
	n := 0
	return func(received bool, raw []byte) {
		if !received {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		n++
		name := filepath.Join(dir, fmt.Sprintf("%s-%03d", strings.ReplaceAll(t.Name(), "/", "-"), n))
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", raw)
		if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
			t.Errorf("capture: %v", err)
		}
	}
}

func dialReal(t *testing.T, s *ovsdbServer, o Options) *Client {
	t.Helper()
	if o.Trace == nil {
		o.Trace = captureTrace(t)
	}
	c, err := Dial(testCtx(t), s.remote, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRealListDbsAndSchema(t *testing.T) {
	s := startOvsdbServer(t)
	c := dialReal(t, s, Options{})
	ctx := testCtx(t)

	dbs, err := c.ListDbs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(dbs, vswitchDB) {
		t.Fatalf("list_dbs = %v, want it to include %s", dbs, vswitchDB)
	}

	schema, err := c.GetSchema(ctx, vswitchDB)
	if err != nil {
		t.Fatal(err)
	}
	if schema.Name != vswitchDB || schema.Version == "" {
		t.Fatalf("schema name %q version %q", schema.Name, schema.Version)
	}
	for _, tc := range []struct {
		table, column string
		wantKey       string
		wantValue     string // "" for no value type
		wantMin       int
		wantMax       int
		wantRef       string
	}{
		{table: "Interface", column: "ofport", wantKey: "integer", wantMin: 0, wantMax: 1},
		{table: "Interface", column: "name", wantKey: "string", wantMin: 1, wantMax: 1},
		{table: "Interface", column: "options", wantKey: "string", wantValue: "string", wantMin: 0, wantMax: Unlimited},
		{table: "Interface", column: "statistics", wantKey: "string", wantValue: "integer", wantMin: 0, wantMax: Unlimited},
		{table: "Interface", column: "link_state", wantKey: "string", wantMin: 0, wantMax: 1},
		{table: "Interface", column: "_uuid", wantKey: "uuid", wantMin: 1, wantMax: 1},
		{table: "Bridge", column: "ports", wantKey: "uuid", wantMin: 0, wantMax: Unlimited, wantRef: "Port"},
		{table: "Port", column: "interfaces", wantKey: "uuid", wantMin: 1, wantMax: Unlimited, wantRef: "Interface"},
		{table: "Open_vSwitch", column: "bridges", wantKey: "uuid", wantMin: 0, wantMax: Unlimited, wantRef: "Bridge"},
	} {
		t.Run(tc.table+"."+tc.column, func(t *testing.T) {
			ts, ok := schema.Tables[tc.table]
			if !ok {
				t.Fatalf("no table %s", tc.table)
			}
			cs, ok := ts.Columns[tc.column]
			if !ok {
				t.Fatalf("no column %s", tc.column)
			}
			ty := cs.Type
			gotValue := ""
			if ty.Value != nil {
				gotValue = ty.Value.Type
			}
			if ty.Key.Type != tc.wantKey || gotValue != tc.wantValue || ty.Min != tc.wantMin || ty.Max != tc.wantMax || ty.Key.RefTable != tc.wantRef {
				t.Fatalf("type key %s value %q min %d max %d ref %q, want %s %q %d %d %q",
					ty.Key.Type, gotValue, ty.Min, ty.Max, ty.Key.RefTable,
					tc.wantKey, tc.wantValue, tc.wantMin, tc.wantMax, tc.wantRef)
			}
		})
	}
	if !schema.Tables["Open_vSwitch"].IsRoot || schema.Tables["Interface"].IsRoot {
		t.Fatal("isRoot: want Open_vSwitch root and Interface not")
	}
	server, err := c.GetSchema(ctx, "_Server")
	if err != nil {
		t.Fatal(err)
	}
	if cs, ok := server.Tables["Database"].Columns["connected"]; !ok || cs.Type.Key.Type != "boolean" {
		t.Fatalf("_Server schema: Database.connected missing or not a boolean")
	}
	if _, err := c.GetSchema(ctx, "No_Such_DB"); err == nil {
		t.Fatal("get_schema of a missing database succeeded")
	} else if rerr := (*RPCError)(nil); !errors.As(err, &rerr) || rerr.Err != "unknown database" {
		t.Fatalf("get_schema of a missing database: %v, want the server's \"unknown database\"", err)
	}
}

// oneRow returns the only row of table whose name is name.
func oneRow(t *testing.T, r *Replica, table, name string) Row {
	t.Helper()
	rows := r.Find(table, "name", name)
	if len(rows) != 1 {
		t.Fatalf("%s rows named %s: %d, want 1", table, name, len(rows))
	}
	return rows[0]
}

func TestRealMonitorAndWriteBack(t *testing.T) {
	for _, cond := range []bool{false, true} {
		name := "monitor"
		if cond {
			name = "monitor_cond"
		}
		t.Run(name, func(t *testing.T) { testMonitorAndWriteBack(t, cond) })
	}
}

func testMonitorAndWriteBack(t *testing.T, cond bool) {
	s := startOvsdbServer(t)
	c := dialReal(t, s, Options{})
	ctx := testCtx(t)
	var log eventLog
	r, err := c.Monitor(ctx, MonitorRequest{DB: vswitchDB, Tables: vswitchTables, Cond: cond, OnChange: log.add})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(r.Table("Open_vSwitch")); n != 1 {
		t.Fatalf("Open_vSwitch has %d rows after init, want 1", n)
	}
	if n := len(r.Table("Bridge")); n != 0 {
		t.Fatalf("Bridge has %d rows before add-br, want 0", n)
	}

	s.vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=ovsxdp")
	s.vsctl("add-port", "br0", "p1", "--", "set", "interface", "p1", "type=afxdp", "options:n_rxq=2", "ofport_request=5")
	waitFor(t, "the replica to see p1", func() bool { return len(r.Find("Interface", "name", "p1")) == 1 })

	snap := r.Snapshot()
	if len(snap["Bridge"]) != 1 || len(snap["Port"]) != 2 || len(snap["Interface"]) != 2 {
		t.Fatalf("replica has %d bridges, %d ports, %d interfaces; want 1, 2, 2",
			len(snap["Bridge"]), len(snap["Port"]), len(snap["Interface"]))
	}
	br := oneRow(t, r, "Bridge", "br0")
	if got := br.String("datapath_type"); got != "ovsxdp" {
		t.Fatalf("br0 datapath_type = %q, want ovsxdp", got)
	}
	p1Port := oneRow(t, r, "Port", "p1")
	br0Port := oneRow(t, r, "Port", "br0")
	if !datumEqual(br.Set("ports"), Set{p1Port.UUID(), br0Port.UUID()}) {
		t.Fatalf("br0 ports = %v, want {%s, %s}", br.Set("ports"), p1Port.UUID(), br0Port.UUID())
	}
	p1 := oneRow(t, r, "Interface", "p1")
	if !datumEqual(p1Port.Set("interfaces"), Set{p1.UUID()}) {
		t.Fatalf("port p1 interfaces = %v, want {%s}", p1Port.Set("interfaces"), p1.UUID())
	}
	if got := p1.String("type"); got != "afxdp" {
		t.Fatalf("p1 type = %q", got)
	}
	if got := p1.Map("options"); !datumEqual(got, Map{"n_rxq": "2"}) {
		t.Fatalf("p1 options = %v, want {n_rxq: 2}", got)
	}
	if got, ok := p1.Int("ofport_request"); !ok || got != 5 {
		t.Fatalf("p1 ofport_request = %v, want 5", p1["ofport_request"])
	}
	if got := p1.Set("ofport"); len(got) != 0 {
		t.Fatalf("p1 ofport = %v before any write-back, want empty", got)
	}
	ovs := r.Table("Open_vSwitch")
	for _, row := range ovs {
		if !datumEqual(row.Set("bridges"), Set{br.UUID()}) {
			t.Fatalf("Open_vSwitch bridges = %v, want {%s}", row.Set("bridges"), br.UUID())
		}
	}
	for _, want := range []struct{ table, name string }{{"Bridge", "br0"}, {"Port", "p1"}, {"Interface", "p1"}, {"Interface", "br0"}} {
		if !log.has(EventInsert, want.table, want.name) {
			t.Errorf("no insert event for %s %s", want.table, want.name)
		}
	}

	// Write back what ovs-vswitchd writes for a port it opened.
	stats := Map{"rx_packets": int64(10), "tx_packets": int64(7), "rx_dropped": int64(0)}
	const errText = "could not open network device p1 (No such device)"
	res, err := c.Transact(ctx, vswitchDB, Update("Interface", []Condition{Cond("name", "==", "p1")}, Row{
		"ofport": int64(5), "link_state": "up", "admin_state": "up", "mtu": int64(1500),
		"error": errText, "statistics": stats,
	}))
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Count != 1 {
		t.Fatalf("update count = %d, want 1", res[0].Count)
	}
	if got := strings.TrimSpace(s.vsctl("get", "interface", "p1", "ofport")); got != "5" {
		t.Fatalf("ovs-vsctl get interface p1 ofport = %q, want 5", got)
	}
	list := s.vsctl("list", "interface", "p1")
	for _, want := range []string{
		"ofport              : 5", "link_state          : up", "admin_state         : up",
		"mtu                 : 1500", `error               : "` + errText + `"`,
		"statistics          : {rx_dropped=0, rx_packets=10, tx_packets=7}",
	} {
		if !strings.Contains(list, want) {
			t.Errorf("ovs-vsctl list interface p1 lacks %q:\n%s", want, list)
		}
	}
	waitFor(t, "the replica to see the write-back", func() bool {
		row := oneRow(t, r, "Interface", "p1")
		ofport, _ := row.Int("ofport")
		return ofport == 5 && datumEqual(row.Map("statistics"), stats) && datumEqual(row.Set("error"), Set{errText})
	})

	// Statistics move on: a mutate, then a select reads it back.
	if _, err := c.Transact(ctx, vswitchDB,
		Mutate("Interface", []Condition{Cond("name", "==", "p1")}, Mut("statistics", "insert", Map{"collisions": int64(0)})),
		Comment("ovsxdp: statistics"),
	); err != nil {
		t.Fatal(err)
	}
	res, err = c.Transact(ctx, vswitchDB, Select("Interface", []Condition{Cond("name", "==", "p1")}, "ofport", "statistics"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res[0].Rows) != 1 {
		t.Fatalf("select returned %d rows", len(res[0].Rows))
	}
	if got := res[0].Rows[0]["ofport"]; got != int64(5) {
		t.Fatalf("select ofport = %#v, want 5", got)
	}
	waitFor(t, "the replica to see the mutation", func() bool {
		_, ok := oneRow(t, r, "Interface", "p1").Map("statistics")["collisions"]
		return ok
	})

	// Clearing the error: an empty set.
	if _, err := c.Transact(ctx, vswitchDB, Update("Interface", []Condition{Cond("name", "==", "p1")}, Row{"error": Set{}})); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(s.vsctl("get", "interface", "p1", "error")); got != "[]" {
		t.Fatalf("error after clearing = %q, want []", got)
	}

	// Insert a bridge with a named uuid, then delete it, in the way
	// ovs-vsctl does it.
	ovsUUID := func() UUID {
		for id := range r.Table("Open_vSwitch") {
			return id
		}
		return ""
	}()
	res, err = c.Transact(ctx, vswitchDB,
		Insert("Bridge", Row{"name": "br9", "datapath_type": "ovsxdp"}, "newbr"),
		Mutate("Open_vSwitch", []Condition{Cond("_uuid", "==", ovsUUID)}, Mut("bridges", "insert", Set{NamedUUID("newbr")})),
	)
	if err != nil {
		t.Fatal(err)
	}
	br9 := res[0].UUID
	if br9 == "" {
		t.Fatal("insert returned no uuid")
	}
	waitFor(t, "the replica to see br9", func() bool { _, ok := r.Row("Bridge", br9); return ok })
	if !strings.Contains(s.vsctl("list-br"), "br9") {
		t.Fatal("ovs-vsctl list-br lacks br9")
	}
	if _, err := c.Transact(ctx, vswitchDB,
		Mutate("Open_vSwitch", []Condition{Cond("_uuid", "==", ovsUUID)}, Mut("bridges", "delete", Set{br9})),
		Delete("Bridge", Cond("_uuid", "==", br9)),
	); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replica to drop br9", func() bool { _, ok := r.Row("Bridge", br9); return !ok })
	if !log.has(EventDelete, "Bridge", "br9") {
		t.Fatal("no delete event for br9")
	}

	// Failing operations: an unmet wait, and an assert of a lock we do not
	// hold; each is a *TransactError naming the operation.
	_, err = c.Transact(ctx, vswitchDB, Wait("Interface", []Condition{Cond("name", "==", "p1")}, []string{"mtu"}, "==", []Row{{"mtu": int64(9000)}}, 0))
	var terr *TransactError
	if !errors.As(err, &terr) || !errors.Is(err, ErrTransaction) || terr.Op != "wait" || terr.Reason != "timed out" {
		t.Fatalf("unmet wait: %v, want a TransactError from the wait, \"timed out\"", err)
	}
	if _, err := c.Transact(ctx, vswitchDB, Wait("Interface", []Condition{Cond("name", "==", "p1")}, []string{"mtu"}, "==", []Row{{"mtu": int64(1500)}}, 0)); err != nil {
		t.Fatalf("met wait: %v", err)
	}
	_, err = c.Transact(ctx, vswitchDB, Assert("ovsxdp_lock"))
	if !errors.As(err, &terr) || terr.Op != "assert" || terr.Reason != "not owner" {
		t.Fatalf("assert without the lock: %v, want \"not owner\"", err)
	}
	// A bad datum never reaches the server.
	if _, err := c.Transact(ctx, vswitchDB, Update("Interface", nil, Row{"mtu": []int{1}})); !errors.Is(err, ErrBadDatum) {
		t.Fatalf("update with a Go slice: %v, want ErrBadDatum", err)
	}
	if st := c.Stats(); st.ProtocolErrors != 0 || st.Connects != 1 {
		t.Fatalf("stats %+v: want no protocol error, one connection", st)
	}
}

// TestRealServerRestart kills ovsdb-server under a monitoring client,
// changes the database while the client cannot reach it (through a second
// server on another socket, with ovs-vsctl), and starts the server again:
// the client reconnects and resyncs, reporting what changed meanwhile.
func TestRealServerRestart(t *testing.T) {
	for _, cond := range []bool{false, true} {
		name := "monitor"
		if cond {
			name = "monitor_cond"
		}
		t.Run(name, func(t *testing.T) { testServerRestart(t, cond) })
	}
}

func testServerRestart(t *testing.T, cond bool) {
	s := startOvsdbServer(t)
	s.vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=ovsxdp")
	s.vsctl("add-port", "br0", "p1", "--", "set", "interface", "p1", "type=afxdp", "options:n_rxq=2", "ofport_request=5")
	s.vsctl("add-port", "br0", "p2", "--", "set", "interface", "p2", "type=afxdp")
	c := dialReal(t, s, Options{ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond})
	ctx := testCtx(t)
	var log eventLog
	r, err := c.Monitor(ctx, MonitorRequest{DB: vswitchDB, Tables: vswitchTables, Cond: cond, OnChange: log.add})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Find("Interface", "name", "p1")) != 1 || len(r.Find("Interface", "name", "p2")) != 1 {
		t.Fatal("initial contents lack p1 or p2")
	}
	p1Before := oneRow(t, r, "Interface", "p1")
	p2Before := oneRow(t, r, "Interface", "p2")

	s.stop()
	waitFor(t, "the client to notice the server is gone", func() bool { return !c.Connected() })
	if _, err := c.Transact(ctx, vswitchDB, Comment("x")); !errors.Is(err, ErrNotConnected) && !errors.Is(err, ErrClosed) {
		t.Fatalf("transact while the server is down: %v, want ErrNotConnected", err)
	}
	// The replica keeps its last contents while disconnected.
	if row, ok := r.Row("Interface", p1Before.UUID()); !ok || row.String("name") != "p1" {
		t.Fatal("replica lost p1 while disconnected")
	}

	// Change the database where the client cannot see it: a server on
	// another socket, then ovs-vsctl against it.
	s.start(filepath.Join(s.dir, "side.sock"))
	s.vsctl("del-port", "br0", "p2")
	s.vsctl("add-port", "br0", "p3", "--", "set", "interface", "p3", "type=afxdp", "ofport_request=7")
	s.vsctl("set", "interface", "p1", "options:n_rxq=4")
	s.stop()
	if c.Connected() {
		t.Fatal("the client connected to the side socket")
	}

	s.start(s.sock())
	waitFor(t, "the client to reconnect and resync", func() bool { return c.Connected() && r.Syncs() == 2 })

	if rows := r.Find("Interface", "name", "p2"); len(rows) != 0 {
		t.Fatalf("p2 still in the replica after resync")
	}
	if _, ok := r.Row("Interface", p2Before.UUID()); ok {
		t.Fatal("p2's row still in the replica")
	}
	p3 := oneRow(t, r, "Interface", "p3")
	if got, _ := p3.Int("ofport_request"); got != 7 {
		t.Fatalf("p3 ofport_request = %v", p3["ofport_request"])
	}
	p1 := oneRow(t, r, "Interface", "p1")
	if p1.UUID() != p1Before.UUID() || !datumEqual(p1.Map("options"), Map{"n_rxq": "4"}) {
		t.Fatalf("p1 after resync: uuid %s options %v, want uuid %s options {n_rxq: 4}", p1.UUID(), p1.Map("options"), p1Before.UUID())
	}
	snap := r.Snapshot()
	if len(snap["Bridge"]) != 1 || len(snap["Port"]) != 3 || len(snap["Interface"]) != 3 {
		t.Fatalf("after resync: %d bridges, %d ports, %d interfaces; want 1, 3, 3",
			len(snap["Bridge"]), len(snap["Port"]), len(snap["Interface"]))
	}
	for _, want := range []struct {
		kind        EventKind
		table, name string
	}{
		{EventDelete, "Interface", "p2"}, {EventDelete, "Port", "p2"},
		{EventInsert, "Interface", "p3"}, {EventInsert, "Port", "p3"},
		{EventModify, "Interface", "p1"}, {EventModify, "Bridge", "br0"},
	} {
		if !log.has(want.kind, want.table, want.name) {
			t.Errorf("no %s event for %s %s after resync", want.kind, want.table, want.name)
		}
	}

	// The monitor is live again: a change now arrives as an update, and
	// writes work.
	s.vsctl("set", "interface", "p3", "mtu_request=9000")
	waitFor(t, "the update after the resync", func() bool {
		v, _ := oneRow(t, r, "Interface", "p3").Int("mtu_request")
		return v == 9000
	})
	if _, err := c.Transact(ctx, vswitchDB, Update("Interface", []Condition{Cond("name", "==", "p3")}, Row{"ofport": int64(7)})); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(s.vsctl("get", "interface", "p3", "ofport")); got != "7" {
		t.Fatalf("p3 ofport = %q after write-back, want 7", got)
	}
	if st := c.Stats(); st.Connects < 2 || st.ProtocolErrors != 0 {
		t.Fatalf("stats %+v: want at least two connections, no protocol error", st)
	}
}

// TestRealMonitorFormsAgree: a monitor (update, whole rows) and a
// monitor_cond (update2, defaults left out, column diffs) of the same
// tables hold the same replica after the same changes.
func TestRealMonitorFormsAgree(t *testing.T) {
	s := startOvsdbServer(t)
	c := dialReal(t, s, Options{})
	ctx := testCtx(t)
	r1, err := c.Monitor(ctx, MonitorRequest{DB: vswitchDB, Tables: vswitchTables})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := c.Monitor(ctx, MonitorRequest{DB: vswitchDB, Tables: vswitchTables, Cond: true})
	if err != nil {
		t.Fatal(err)
	}
	s.vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=ovsxdp", "other_config:hwaddr=02:00:00:00:00:01")
	s.vsctl("add-port", "br0", "p1", "--", "set", "interface", "p1", "type=afxdp", "options:n_rxq=2", "ofport_request=5")
	s.vsctl("add-port", "br0", "p2", "--", "set", "interface", "p2", "type=afxdp", "options:n_rxq=1", "options:xdp-mode=native")
	s.vsctl("set", "interface", "p2", "options:n_rxq=3", "--", "remove", "interface", "p2", "options", "xdp-mode")
	s.vsctl("set", "bridge", "br0", "other_config:hwaddr=02:00:00:00:00:02", "--", "del-port", "p1")
	if _, err := c.Transact(ctx, vswitchDB, Update("Interface", []Condition{Cond("name", "==", "p2")},
		Row{"ofport": int64(2), "link_state": "down", "statistics": Map{"rx_packets": int64(1)}})); err != nil {
		t.Fatal(err)
	}
	s.vsctl("set", "interface", "p2", "mtu_request=1400", "--", "clear", "interface", "p2", "statistics")
	waitFor(t, "both replicas to see the last change", func() bool {
		for _, r := range []*Replica{r1, r2} {
			rows := r.Find("Interface", "name", "p2")
			if len(rows) != 1 || len(rows[0].Map("statistics")) != 0 {
				return false
			}
			if v, _ := rows[0].Int("mtu_request"); v != 1400 {
				return false
			}
		}
		return true
	})
	s1, s2 := r1.Snapshot(), r2.Snapshot()
	for table := range vswitchTables {
		if len(s1[table]) != len(s2[table]) {
			t.Fatalf("%s: %d rows through monitor, %d through monitor_cond", table, len(s1[table]), len(s2[table]))
		}
		for id, row := range s1[table] {
			if !rowEqual(row, s2[table][id]) {
				t.Errorf("%s row %s differs:\nmonitor:      %v\nmonitor_cond: %v", table, id, row, s2[table][id])
			}
		}
	}
	p2 := oneRow(t, r2, "Interface", "p2")
	if !datumEqual(p2.Map("options"), Map{"n_rxq": "3"}) || p2.String("link_state") != "down" {
		t.Fatalf("p2 through monitor_cond: options %v link_state %v", p2.Map("options"), p2["link_state"])
	}
	if err := c.Cancel(ctx, r1); err != nil {
		t.Fatalf("monitor_cancel: %v", err)
	}
	s.vsctl("set", "interface", "p2", "mtu_request=1300")
	waitFor(t, "the remaining monitor to see the change", func() bool {
		v, _ := oneRow(t, r2, "Interface", "p2").Int("mtu_request")
		return v == 1300
	})
	if v, _ := oneRow(t, r1, "Interface", "p2").Int("mtu_request"); v != 1400 {
		t.Fatalf("a cancelled monitor's replica changed: mtu_request %d", v)
	}
	if st := c.Stats(); st.ProtocolErrors != 0 || st.Ignored != 0 {
		t.Fatalf("stats %+v: want no protocol error and nothing ignored", st)
	}
}
