package test

import (
	"encoding/binary"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow/openflow"
	"github.com/ovsxdp/ovsxdp/test/ovsref"
)

// Asynchronous message configuration against Open vSwitch 3.1:
// OFPT_SET_ASYNC, NXT_SET_ASYNC_CONFIG(2) and OFPT_GET_ASYNC_REQUEST, and
// what the configuration lets through.

// asyncProp is an OpenFlow 1.4 async config property of type typ with a
// 32-bit mask.
func asyncProp(typ uint16, mask uint32) openflow.AsyncProp {
	return openflow.AsyncProp{Type: typ, Payload: binary.BigEndian.AppendUint32(nil, mask)}
}

func asyncMsgs(ms ...openflow.Message) func(*testing.T) []openflow.Message {
	return func(*testing.T) []openflow.Message { return ms }
}

// TestAsyncConfigMatchesOVS sends each version's ways of setting the
// asynchronous configuration, well formed or not, each followed by a
// read back where the version has one, to Open vSwitch 3.1 and to
// ovsxdp: both answer the same bytes, errors and replies.
func TestAsyncConfigMatchesOVS(t *testing.T) {
	v10, v13, v14, v15 := openflow.Version10, openflow.Version13, openflow.Version14, openflow.Version15
	get := &openflow.GetAsyncRequest{}
	masks := func(m openflow.AsyncMasks) openflow.AsyncBody { return openflow.AsyncBody{Masks: m} }
	props := func(ps ...openflow.AsyncProp) openflow.AsyncBody {
		return openflow.AsyncBody{Props: true, Properties: ps}
	}
	set := func(b openflow.AsyncBody) *openflow.SetAsync { return &openflow.SetAsync{AsyncBody: b} }
	nx := func(b openflow.AsyncBody) *openflow.SetAsync { return &openflow.SetAsync{Nicira: true, AsyncBody: b} }
	some := openflow.AsyncMasks{{0x2, 0x1}, {0x5, 0}, {0x4, 0x1}}
	every := openflow.AsyncMasks{{^uint32(0), ^uint32(0)}, {^uint32(0), ^uint32(0)}, {^uint32(0), ^uint32(0)}}
	cases := []errorCase{
		{"default-1.3", v13, asyncMsgs(get)},
		{"default-1.4", v14, asyncMsgs(get)},
		{"default-1.5", v15, asyncMsgs(get)},
		{"masks-1.3", v13, asyncMsgs(set(masks(some)), get)},
		{"masks-cut-1.3", v13, asyncMsgs(set(masks(every)), get)},
		{"nx-masks-1.3", v13, asyncMsgs(nx(masks(some)), get)},
		{"nx-masks-1.0", v10, asyncMsgs(nx(masks(some)))},
		{"nx-masks-1.4", v14, asyncMsgs(nx(masks(every)), get)},
		{"props-1.4", v14, asyncMsgs(set(props(asyncProp(5, 0x4), asyncProp(0, 0x3f), asyncProp(9, 0x8))), get)},
		{"props-1.5", v15, asyncMsgs(set(props(asyncProp(1, 0x20), asyncProp(10, 0x3))), get)},
		{"props-unknown-type-1.4", v14, asyncMsgs(set(props(asyncProp(12, 1))), get)},
		{"props-bad-len-1.4", v14, asyncMsgs(set(props(openflow.AsyncProp{Type: 5, Payload: make([]byte, 8)})), get)},
		{"props-invalid-mask-1.4", v14, asyncMsgs(set(props(asyncProp(5, 0x40))), get)},
		{"props-experimenter-1.4", v14, asyncMsgs(set(props(openflow.AsyncProp{Type: 0xffff, Payload: []byte{0, 0, 0x23, 0x20, 0, 0, 0, 1, 0, 0, 0, 1}})), get)},
		{"nx2-1.3", v13, asyncMsgs(nx(props(asyncProp(5, 0x4), asyncProp(0, 0x7))), get)},
		{"nx2-unknown-type-1.3", v13, asyncMsgs(nx(props(asyncProp(12, 1))))},
		{"nx2-invalid-mask-1.3", v13, asyncMsgs(nx(props(asyncProp(1, 0x8))))},
		{"nx2-bad-len-1.3", v13, asyncMsgs(nx(props(openflow.AsyncProp{Type: 5, Payload: make([]byte, 8)})))},
		{"nx2-unknown-type-1.0", v10, asyncMsgs(nx(props(asyncProp(12, 1))))},
		{"nx2-invalid-mask-1.0", v10, asyncMsgs(nx(props(asyncProp(1, 0x8))))},
		{"nx2-bad-len-1.0", v10, asyncMsgs(nx(props(openflow.AsyncProp{Type: 5, Payload: make([]byte, 8)})))},
		{"nx2-1.4", v14, asyncMsgs(nx(props(asyncProp(5, 0x4))), get)},
		{"set-short-1.3", v13, asyncMsgs(&openflow.Unknown{Type: 28, Body: make([]byte, 20)}, get)},
	}
	answered := 0
	for _, a := range compareCases(t, cases, nil) {
		if a != "" {
			answered++
		}
	}
	if answered < len(cases)/2 {
		t.Errorf("Open vSwitch answered %d of the %d cases, want most", answered, len(cases))
	}
}

// TestAsyncConfigFiltersMatchOVS: a controller connection of OpenFlow
// 1.3 that asks for flow removals for hard timeouts only, on Open
// vSwitch 3.1 and on ovsxdp, adds a flow with a hard timeout and one it
// deletes, both with send_flow_rem: both switches send it the hard
// timeout's removal, and not the delete's, which came first.
func TestAsyncConfigFiltersMatchOVS(t *testing.T) {
	ports := []ovsref.Port{{Name: "p1", OFPort: 1}, {Name: "p2", OFPort: 2}}
	ref := ovsref.StartShared(t, "br0", ports)
	s := startOFSwitchPorts(t, ports)
	got := map[string]string{}
	for name, dir := range map[string]string{"Open vSwitch": ref.Dir, "ovsxdp": s.runDir} {
		got[name] = firstFlowRemoved(t, filepath.Join(dir, "br0.mgmt"))
	}
	if got["Open vSwitch"] != got["ovsxdp"] || !strings.Contains(got["ovsxdp"], "reason 1 priority 7") {
		t.Errorf("the first flow removal, after SET_ASYNC for hard timeouts only:\nOpen vSwitch %s\novsxdp       %s", got["Open vSwitch"], got["ovsxdp"])
	}
}

// firstFlowRemoved sets a 1.3 connection to sock to hear flow removals
// for hard timeouts only (with a miss_send_len, as a management
// connection needs), adds a flow with a hard timeout of 1 s and one it
// then deletes, and returns the first flow removal it hears.
func firstFlowRemoved(t *testing.T, sock string) string {
	t.Helper()
	v := openflow.Version13
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	hello, _ := openflow.NewHello(v)
	flowMod := func(cmd uint8, priority, hard uint16) *openflow.FlowMod {
		return &openflow.FlowMod{Command: cmd, Priority: priority, HardTimeout: hard, Flags: 1, BufferID: openflow.NoBuffer,
			OutPort: openflow.PortAny, OutGroup: 0xffffffff,
			Match: []openflow.Field{pinField("eth_type", []byte{8, 0}), pinField("nw_proto", []byte{byte(priority)})}}
	}
	msgs := []openflow.Message{hello,
		&openflow.SetConfig{SwitchConfig: openflow.SwitchConfig{MissSendLen: 0xffff}},
		&openflow.SetAsync{AsyncBody: openflow.AsyncBody{Masks: openflow.AsyncMasks{{}, {}, {1 << 1, 0}}}},
		flowMod(openflow.FlowAdd, 9, 0), flowMod(openflow.FlowDeleteStrict, 9, 0), flowMod(openflow.FlowAdd, 7, 1),
	}
	for i, m := range msgs {
		b, err := openflow.Encode(v, uint32(i), m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	r := openflow.NewReader(conn, 0)
	for {
		b, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("%s: no flow removal: %v", sock, err)
		}
		_, m, err := openflow.Decode(b)
		if err != nil {
			t.Fatalf("%x: %v", b, err)
		}
		switch m := m.(type) {
		case *openflow.ErrorMsg:
			t.Fatalf("%s: error type %d code %d", sock, m.Type, m.Code)
		case *openflow.FlowRemoved:
			return fmt.Sprintf("reason %d priority %d", m.Reason, m.Priority)
		}
	}
}
