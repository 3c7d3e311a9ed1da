package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/cmd/ovsxdp/internal/control"
	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/ofconv"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// ofClient is a minimal OpenFlow 1.3 peer for the channel's tests.
type ofClient struct {
	t   *testing.T
	c   net.Conn
	r   *openflow.Reader
	xid uint32
}

func dialOF(t *testing.T, path string) *ofClient {
	t.Helper()
	var c net.Conn
	var err error
	for i := 0; i < 500; i++ { // the listener follows add-br
		if c, err = net.Dial("unix", path); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cl := &ofClient{t: t, c: c, r: openflow.NewReader(c, 0)}
	cl.recv()
	h, _ := openflow.NewHello(openflow.Version13)
	cl.send(h)
	return cl
}

func (cl *ofClient) send(m openflow.Message) {
	cl.t.Helper()
	cl.xid++
	b, err := openflow.Encode(openflow.Version13, cl.xid, m)
	if err != nil {
		cl.t.Fatal(err)
	}
	cl.c.SetWriteDeadline(time.Now().Add(20 * time.Second))
	if _, err := cl.c.Write(b); err != nil {
		cl.t.Fatal(err)
	}
}

func (cl *ofClient) recv() openflow.Message {
	cl.t.Helper()
	cl.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	b, err := cl.r.ReadMessage()
	if err != nil {
		cl.t.Fatal(err)
	}
	_, m, err := openflow.Decode(b)
	if err != nil {
		cl.t.Fatal(err)
	}
	return m
}

// TestOpenFlowChannelConcurrent drives the channel from several
// connections while commands change the same bridge, and checks that the
// state the connections wrote is what dump-flows reports; a deleted
// bridge's socket goes away with it.
func TestOpenFlowChannelConcurrent(t *testing.T) {
	dir := t.TempDir()
	d, err := New(Config{NoLocalPort: true, RunDir: filepath.Join(dir, "run"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	do := func(verb string, args ...string) string {
		t.Helper()
		out, err := d.Handle(ctx, &control.Request{Verb: verb, Args: args})
		if err != nil {
			t.Fatalf("%s %v: %v", verb, args, err)
		}
		return out
	}
	do("add-br", "br0")
	do("add-port", "br0", "p1", "type=mem", "ofport=1")
	sock := filepath.Join(dir, "run", "br0.mgmt")

	const conns, perConn = 4, 25
	var wg sync.WaitGroup
	for i := range conns {
		cl := dialOF(t, sock)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perConn {
				f, err := flow.ParseFlow("priority="+strconv.Itoa(100+i*perConn+j)+",in_port=1,actions=output:1", flow.CmdAdd)
				if err != nil {
					t.Error(err)
					return
				}
				insts, err := ofconv.InstructionsFromActions(openflow.Version13, &f.Match, 0, f.Actions)
				if err != nil {
					t.Error(err)
					return
				}
				cl.send(&openflow.FlowMod{Command: openflow.FlowAdd, Priority: f.Priority, BufferID: openflow.NoBuffer,
					OutPort: openflow.PortAny, OutGroup: 0xffffffff, Match: ofconv.FieldsFromMatch(&f.Match, false), Instructions: insts})
			}
			cl.send(&openflow.BarrierRequest{})
			if m := cl.recv(); m == nil {
				t.Error("no barrier reply")
			} else if _, ok := m.(*openflow.BarrierReply); !ok {
				t.Errorf("got %T, want a barrier reply", m)
			}
		}()
	}
	for range 20 {
		do("dump-flows", "br0")
		do("add-flow", "br0", "priority=1,actions=drop")
	}
	wg.Wait()
	if n := strings.Count(do("dump-flows", "br0"), "\n"); n != conns*perConn+1 {
		t.Fatalf("dump-flows lists %d flows, want %d", n, conns*perConn+1)
	}

	do("del-br", "br0")
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("the socket of a deleted bridge: %v", err)
	}
	do("add-br", "br0")
	cl := dialOF(t, sock)
	cl.send(&openflow.EchoRequest{})
	if _, ok := cl.recv().(*openflow.EchoReply); !ok {
		t.Fatal("no echo reply from the new bridge")
	}
}

// TestPacketOutInPort checks a packet out's in_port as Open vSwitch 3.1
// does (test/TestPacketOutInPortMatchesOVS compares on the wire).
func TestPacketOutInPort(t *testing.T) {
	inMatch := func(p uint32) []openflow.Field {
		h, _ := openflow.FieldByName("in_port", false)
		return []openflow.Field{{Name: "in_port", Class: h.Class, Field: h.Field, Value: []byte{byte(p >> 24), byte(p >> 16), byte(p >> 8), byte(p)}}}
	}
	for _, tt := range []struct {
		name     string
		inPort   uint32
		inMatch  []openflow.Field
		want     uint32
		wantType uint16 // 0: no error
		wantCode uint16
	}{
		{name: "port", inPort: 5, want: 5},
		{name: "match", inPort: 5, inMatch: inMatch(7), want: 7},
		{name: "local", inPort: openflow.PortLocal, want: flow.PortLocal},
		{name: "controller", inPort: openflow.PortController, want: flow.PortController},
		{name: "none", inPort: openflow.PortAny, want: flow.PortNone},
		{name: "flood", inPort: openflow.PortFlood, wantType: openflow.ErrTypeBadRequest, wantCode: codeBadRequestBadPort},
		{name: "reserved range", inPort: 0xffffff14, wantType: openflow.ErrTypeBadRequest, wantCode: codeBadRequestBadPort},
		{name: "past 16 bits", inPort: 0xff14, wantType: openflow.ErrTypeBadAction, wantCode: codeBadActionOutPort},
		{name: "past 16 bits in the match", inMatch: inMatch(0xff14), wantType: openflow.ErrTypeBadMatch, wantCode: codeBadMatchValue},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := packetOutInPort(&openflow.PacketOut{BufferID: openflow.NoBuffer, InPort: tt.inPort, Match: tt.inMatch})
			var oe *openflow.Error
			switch {
			case tt.wantType == 0 && (err != nil || got != tt.want):
				t.Errorf("got %#x, %v; want %#x", got, err, tt.want)
			case tt.wantType != 0 && (!errors.As(err, &oe) || oe.Type != tt.wantType || oe.Code != tt.wantCode):
				t.Errorf("got %v, want error type %d code %d", err, tt.wantType, tt.wantCode)
			}
		})
	}
}
