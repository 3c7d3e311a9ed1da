package ovsdb

import (
	"bufio"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeServer is a unix listener in the test that runs handle for every
// connection the client makes.
type fakeServer struct {
	remote string
	ln     net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
}

func newFakeServer(t *testing.T, handle func(nc net.Conn)) *fakeServer {
	return newFakeServerOn(t, "unix", handle)
}

// newFakeServerOn listens on a unix socket in a new directory, or on a
// loopback TCP port.
func newFakeServerOn(t *testing.T, network string, handle func(nc net.Conn)) *fakeServer {
	t.Helper()
	dir, err := os.MkdirTemp("", "ovsdbfake-")
	if err != nil {
		t.Fatal(err)
	}
	addr := filepath.Join(dir, "s.sock")
	if network == "tcp" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{remote: network + ":" + ln.Addr().String(), ln: ln}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			nc.SetDeadline(time.Now().Add(60 * time.Second)) // nothing in a test hangs
			f.mu.Lock()
			f.conns = append(f.conns, nc)
			f.mu.Unlock()
			f.wg.Add(1)
			go func() { defer f.wg.Done(); handle(nc) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		for _, c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
		os.RemoveAll(dir)
	})
	return f
}

// readRequest reads one message the client sent.
func readRequest(br *bufio.Reader) (*Message, error) {
	fr := newFrameReader(br, 1<<20)
	raw, err := fr.next()
	if err != nil {
		return nil, err
	}
	return DecodeMessage(raw)
}

// fakeOptions keeps a client from reconnecting during a fake-server test.
func fakeOptions() Options {
	return Options{ReconnectMin: time.Hour, InactivityProbe: -1}
}

func dialFake(t *testing.T, f *fakeServer, o Options) *Client {
	t.Helper()
	c, err := Dial(testCtx(t), f.remote, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestFakeBadInput: whatever the server sends in reply to list_dbs, the
// call ends with an error naming the problem, the connection closes, the
// error is counted, and nothing panics or hangs.
func TestFakeBadInput(t *testing.T) {
	huge := `{"id":1,"error":null,"result":["` + strings.Repeat("x", 1<<20) + `"]}`
	for _, tc := range []struct {
		name     string
		inReply  func(id json.RawMessage) string
		wantErr  error
		wantText string
		// keepsConn: a well-formed message whose content does not fit the
		// call fails the call only.
		keepsConn bool
	}{
		{name: "malformed JSON", inReply: func(id json.RawMessage) string {
			return `{"id":` + string(id) + `,"error":null,"result":[tru]}`
		}, wantErr: ErrProtocol, wantText: "not a JSON object"},
		{name: "not an object", inReply: func(json.RawMessage) string { return `[1,2,3]` }, wantErr: ErrProtocol, wantText: "not '{'"},
		{name: "a bare string", inReply: func(json.RawMessage) string { return `"hello"` }, wantErr: ErrProtocol},
		{name: "huge message", inReply: func(json.RawMessage) string { return huge }, wantErr: ErrMessageTooLarge},
		{name: "wrong id", inReply: func(json.RawMessage) string { return `{"id":999,"error":null,"result":[]}` }, wantErr: ErrProtocol, wantText: "matches no request"},
		{name: "string id", inReply: func(json.RawMessage) string { return `{"id":"1","error":null,"result":[]}` }, wantErr: ErrProtocol, wantText: "matches no request"},
		{name: "response without id", inReply: func(json.RawMessage) string { return `{"error":null,"result":[]}` }, wantErr: ErrProtocol, wantText: "without an id"},
		{name: "neither method nor result", inReply: func(json.RawMessage) string { return `{"id":1}` }, wantErr: ErrProtocol},
		{name: "method not a string", inReply: func(json.RawMessage) string { return `{"id":1,"method":7,"params":[]}` }, wantErr: ErrProtocol},
		{name: "params not an array", inReply: func(json.RawMessage) string { return `{"id":null,"method":"update","params":{}}` }, wantErr: ErrProtocol},
		{name: "update with bad params", inReply: func(json.RawMessage) string { return `{"id":null,"method":"update","params":[1]}` }, wantErr: ErrProtocol},
		{name: "truncated then closed", inReply: func(id json.RawMessage) string { return `{"id":` + string(id) + `,"error":null,"res` }, wantErr: ErrProtocol, wantText: "middle of a message"},
		{name: "result not a list", inReply: func(id json.RawMessage) string { return `{"id":` + string(id) + `,"error":null,"result":{"a":1}}` }, wantErr: ErrProtocol, wantText: "list_dbs result", keepsConn: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeServer(t, func(nc net.Conn) {
				br := bufio.NewReader(nc)
				m, err := readRequest(br)
				if err != nil {
					return
				}
				nc.Write([]byte(tc.inReply(m.ID)))
				if tc.name == "truncated then closed" {
					nc.Close()
					return
				}
				// Hold the connection open until the client closes it.
				readRequest(br)
			})
			o := fakeOptions()
			o.MaxMessageSize = 64 << 10
			c := dialFake(t, f, o)
			_, err := c.ListDbs(testCtx(t))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("list_dbs: %v, want %v", err, tc.wantErr)
			}
			if tc.wantText != "" && !strings.Contains(err.Error(), tc.wantText) {
				t.Fatalf("list_dbs: %v, want it to say %q", err, tc.wantText)
			}
			if tc.keepsConn {
				if !c.Connected() || c.Stats().ProtocolErrors != 0 {
					t.Fatalf("connection dropped: %+v", c.Stats())
				}
			} else {
				waitFor(t, "the protocol error to be counted", func() bool { return c.Stats().ProtocolErrors == 1 })
				waitFor(t, "the connection to close", func() bool { return !c.Connected() })
			}
		})
	}
}

// TestFakeSplitAndBatchedMessages: a reply written one byte at a time, and
// several messages in one write (a server echo request, a reply), decode
// the same as whole ones; the client answers the echo with its params.
func TestFakeSplitAndBatchedMessages(t *testing.T) {
	echoReply := make(chan *Message, 1)
	f := newFakeServer(t, func(nc net.Conn) {
		br := bufio.NewReader(nc)
		m, err := readRequest(br)
		if err != nil {
			return
		}
		reply := `{"id":` + string(m.ID) + `,"error":null,"result":["Open_vSwitch","_Server"]}`
		for i := range len(reply) {
			if _, err := nc.Write([]byte{reply[i]}); err != nil {
				return
			}
			if i%7 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		m, err = readRequest(br)
		if err != nil {
			return
		}
		batch := `{"id":"echo","method":"echo","params":["ping",{"a":[1,"}"]}]}` + "\n" +
			`{"id":` + string(m.ID) + `,"error":null,"result":["a\"}]b"]}  `
		nc.Write([]byte(batch))
		if e, err := readRequest(br); err == nil {
			echoReply <- e
		}
		readRequest(br)
	})
	c := dialFake(t, f, fakeOptions())
	ctx := testCtx(t)
	dbs, err := c.ListDbs(ctx)
	if err != nil || strings.Join(dbs, ",") != "Open_vSwitch,_Server" {
		t.Fatalf("list_dbs split in bytes: %v %v", dbs, err)
	}
	dbs, err = c.ListDbs(ctx)
	if err != nil || len(dbs) != 1 || dbs[0] != `a"}]b` {
		t.Fatalf("list_dbs batched: %q %v", dbs, err)
	}
	select {
	case e := <-echoReply:
		if e.Kind != KindResponse || string(e.ID) != `"echo"` || string(e.Result) != `["ping",{"a":[1,"}"]}]` || !isNull(e.Error) {
			t.Fatalf("echo reply %+v", e)
		}
	case <-ctx.Done():
		t.Fatal("no echo reply")
	}
	if st := c.Stats(); st.EchoesAnswered != 1 || st.ProtocolErrors != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// silentServer reads what the client sends and never answers. The first
// request it reads, or nil when the connection ends before one, goes to
// first (buffered 1: the test's client makes one connection).
func silentServer(first chan<- *Message) func(nc net.Conn) {
	return func(nc net.Conn) {
		br := bufio.NewReader(nc)
		m, err := readRequest(br)
		first <- m
		for err == nil {
			_, err = readRequest(br)
		}
	}
}

// waitEchoProbe waits for the first request a silentServer read and checks
// that it is an echo.
func waitEchoProbe(t *testing.T, first <-chan *Message) {
	t.Helper()
	select {
	case m := <-first:
		if m == nil {
			t.Fatal("the connection was dropped before the client sent an echo probe")
		}
		if m.Kind != KindRequest || m.Method != "echo" {
			t.Fatalf("first request %+v is not an echo probe", m)
		}
	case <-testCtx(t).Done():
		t.Fatal("no echo probe")
	}
}

// TestFakeInactivityProbe: a server that never speaks gets an echo after
// the probe interval, and the connection is dropped after another.
func TestFakeInactivityProbe(t *testing.T) {
	first := make(chan *Message, 1)
	f := newFakeServer(t, silentServer(first))
	o := fakeOptions()
	o.InactivityProbe = 50 * time.Millisecond
	c := dialFake(t, f, o)
	waitEchoProbe(t, first)
	waitFor(t, "the silent connection to be dropped", func() bool { return c.Stats().Inactivity == 1 && !c.Connected() })
	if _, err := c.ListDbs(testCtx(t)); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("list_dbs after the drop: %v, want ErrNotConnected", err)
	}
}

// TestFakeLateProbe: a prober that finds the server silent for far more
// than twice the probe interval (it was not scheduled for that long, on a
// loaded machine) still sends an echo before it drops the connection, as
// Open vSwitch's reconnect state machine does.
func TestFakeLateProbe(t *testing.T) {
	first := make(chan *Message, 1)
	f := newFakeServer(t, silentServer(first))
	o := fakeOptions()
	o.InactivityProbe = 500 * time.Millisecond
	c := dialFake(t, f, o)
	// The last message an hour old is what a prober that ran an hour
	// late sees. Stored before the first probe (an interval away).
	c.mu.Lock()
	c.conn.lastRecv.Store(time.Now().Add(-time.Hour).UnixNano())
	c.mu.Unlock()
	waitEchoProbe(t, first)
	waitFor(t, "the silent connection to be dropped", func() bool { return c.Stats().Inactivity == 1 && !c.Connected() })
}

// TestFakeEchoKeepsAlive: a server that answers probes keeps the
// connection up through many probe intervals.
func TestFakeEchoKeepsAlive(t *testing.T) {
	f := newFakeServer(t, func(nc net.Conn) {
		br := bufio.NewReader(nc)
		for {
			m, err := readRequest(br)
			if err != nil {
				return
			}
			b, _ := (&Message{Kind: KindResponse, Result: m.Params, Error: json.RawMessage("null"), ID: m.ID}).Encode()
			nc.Write(b)
		}
	})
	o := fakeOptions()
	// Generous: a probe is answered within a second even on a loaded
	// machine, and the connection drops only after two silent seconds.
	o.InactivityProbe = time.Second
	c := dialFake(t, f, o)
	waitFor(t, "several probes", func() bool { return c.Stats().EchoesSent >= 3 })
	if !c.Connected() || c.Stats().Inactivity != 0 {
		t.Fatalf("connection dropped although the server answered: %+v", c.Stats())
	}
}

// TestFakeReconnectAndClose: the client redials after the server drops
// it, and Close sends monitor_cancel and leaves no goroutine behind.
func TestFakeReconnectAndClose(t *testing.T) {
	before := runtime.NumGoroutine()
	var mu sync.Mutex
	var methods []string
	accepted := make(chan int, 10)
	n := 0
	schema := `{"name":"D","version":"1.0.0","tables":{"T":{"columns":{"name":{"type":"string"},"tags":{"type":{"key":"string","min":0,"max":"unlimited"}}}}}}`
	f := newFakeServer(t, func(nc net.Conn) {
		mu.Lock()
		n++
		me := n
		mu.Unlock()
		accepted <- me
		br := bufio.NewReader(nc)
		for {
			m, err := readRequest(br)
			if err != nil {
				return
			}
			mu.Lock()
			methods = append(methods, m.Method)
			mu.Unlock()
			var result string
			switch m.Method {
			case "get_schema":
				result = schema
			case "monitor_cond":
				row := `{"name":"a","tags":["set",["x","y"]]}`
				if me > 1 {
					row = `{"name":"a","tags":"z"}`
				}
				result = `{"T":{"11111111-1111-1111-1111-111111111111":{"initial":` + row + `}}}`
			default:
				result = `{}`
			}
			nc.Write([]byte(`{"id":` + string(m.ID) + `,"error":null,"result":` + result + `}`))
			if m.Method == "monitor_cond" && me == 1 {
				// A diff: remove x, add w.
				nc.Write([]byte(`{"id":null,"method":"update2","params":[` + string(m.Params[len(`["D",`):strings.Index(string(m.Params), `,{`)]) +
					`,{"T":{"11111111-1111-1111-1111-111111111111":{"modify":{"tags":["set",["x","w"]]}}}}]}`))
				time.Sleep(20 * time.Millisecond)
				nc.Close() // the server goes away
				return
			}
		}
	})
	o := fakeOptions()
	o.ReconnectMin = 10 * time.Millisecond
	c, err := Dial(testCtx(t), f.remote, o)
	if err != nil {
		t.Fatal(err)
	}
	var log eventLog
	r, err := c.Monitor(testCtx(t), MonitorRequest{DB: "D", Tables: map[string][]string{"T": nil}, Cond: true, OnChange: log.add})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reconnection's resync", func() bool { return r.Syncs() == 2 })
	row, ok := r.Row("T", "11111111-1111-1111-1111-111111111111")
	if !ok || !datumEqual(row.Set("tags"), Set{"z"}) {
		t.Fatalf("row after resync: %v", row)
	}
	log.mu.Lock()
	var kinds []string
	for _, e := range log.events {
		kinds = append(kinds, e.Kind.String()+":"+strings.Join(setStrings(e.New.Set("tags")), "+"))
	}
	log.mu.Unlock()
	if got, want := strings.Join(kinds, " "), "insert:x+y modify:y+w modify:z"; got != want {
		t.Fatalf("events %q, want %q", got, want)
	}
	c.Close()
	mu.Lock()
	last := methods[len(methods)-1]
	mu.Unlock()
	if last != "monitor_cancel" {
		t.Fatalf("last method sent: %s, want monitor_cancel", last)
	}
	if _, err := c.ListDbs(testCtx(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("list_dbs after Close: %v, want ErrClosed", err)
	}
	waitFor(t, "the client's goroutines to exit", func() bool {
		// The fake server's own goroutines end when its connections close.
		return runtime.NumGoroutine() <= before+3
	})
}

func setStrings(s Set) []string {
	var out []string
	for _, a := range s {
		out = append(out, a.(string))
	}
	return out
}

// TestFakeTCPRemote: "tcp:HOST:PORT" remotes work like unix ones, and bad
// remotes are refused before dialing.
func TestFakeTCPRemote(t *testing.T) {
	f := newFakeServerOn(t, "tcp", func(nc net.Conn) {
		br := bufio.NewReader(nc)
		for {
			m, err := readRequest(br)
			if err != nil {
				return
			}
			nc.Write([]byte(`{"id":` + string(m.ID) + `,"error":null,"result":["Open_vSwitch"]}`))
		}
	})
	c := dialFake(t, f, fakeOptions())
	if dbs, err := c.ListDbs(testCtx(t)); err != nil || len(dbs) != 1 || dbs[0] != "Open_vSwitch" {
		t.Fatalf("list_dbs over %s: %v %v", f.remote, dbs, err)
	}
	for _, bad := range []string{"", "unix:", "tcp:nohostport", "ssl:1.2.3.4:6640", "/run/db.sock"} {
		if _, err := Dial(testCtx(t), bad, Options{}); err == nil {
			t.Errorf("Dial(%q) succeeded", bad)
		}
	}
}
