package test

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow/openflow"
	"github.com/ovsxdp/ovsxdp/test/ovsref"
)

// How much of an offending request an OFPT_ERROR echoes, against Open
// vSwitch 3.1: requests longer than 64 bytes that each switch refuses
// for a different reason (an unknown message, a flow mod or a packet
// out naming a missing group, an unknown multipart request, a bundled
// message refused when added or when committed) get the same error with
// the same data.

// errorCase is a run of messages on one connection of version v, the
// last of which is refused.
type errorCase struct {
	name string
	v    uint8
	msgs func(t *testing.T) []openflow.Message
}

// bundleMsg is an OFPT_BUNDLE_ADD_MESSAGE (OpenFlow 1.4) to bundle 1,
// atomic and ordered, of m with xid xid.
func bundleMsg(t *testing.T, xid uint32, m openflow.Message) openflow.Message {
	t.Helper()
	inner, err := openflow.Encode(openflow.Version14, xid, m)
	if err != nil {
		t.Fatal(err)
	}
	body := binary.BigEndian.AppendUint32(nil, 1)
	body = binary.BigEndian.AppendUint16(body, 0)
	body = binary.BigEndian.AppendUint16(body, 3)
	return &openflow.Unknown{Type: 34, Body: append(body, inner...)}
}

// bundleCommit is the OFPT_BUNDLE_CONTROL that commits bundle 1.
func bundleCommit() openflow.Message {
	return &openflow.Unknown{Type: 33, Body: []byte{0, 0, 0, 1, 0, 4, 0, 3}}
}

func missingGroupFlowMod() *openflow.FlowMod {
	return &openflow.FlowMod{Command: openflow.FlowAdd, Priority: 7, BufferID: openflow.NoBuffer, OutPort: openflow.PortAny, OutGroup: 0xffffffff,
		Match: []openflow.Field{pinField("in_port", []byte{0, 0, 0, 1}), pinField("eth_dst", []byte{0, 0, 0, 0, 0, 9})},
		Instructions: []openflow.Instruction{{Type: openflow.InstApplyActions, Actions: []openflow.Action{
			&openflow.ActOutput{Port: 2, MaxLen: 0xffff}, &openflow.ActU32{Type: openflow.ActTypeGroup, Value: 99}}}}}
}

func nxField(name string, value []byte) openflow.Field {
	fh, _ := openflow.FieldByName(name, true)
	return openflow.Field{Name: name, Class: fh.Class, Field: fh.Field, Value: value}
}

func errorFrame(t *testing.T) []byte {
	b, err := hex.DecodeString(pinFrameSum)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var errorCases = []errorCase{
	{"unknown-type-1.0", openflow.Version10, func(t *testing.T) []openflow.Message {
		return []openflow.Message{&openflow.Unknown{Type: 200, Body: make([]byte, 120)}}
	}},
	{"unknown-type", openflow.Version14, func(t *testing.T) []openflow.Message {
		return []openflow.Message{&openflow.Unknown{Type: 200, Body: make([]byte, 120)}}
	}},
	{"unknown-type-longest", openflow.Version14, func(t *testing.T) []openflow.Message {
		return []openflow.Message{&openflow.Unknown{Type: 200, Body: make([]byte, 0xffff-openflow.HeaderLen)}}
	}},
	{"unknown-experimenter-longest-1.0", openflow.Version10, func(t *testing.T) []openflow.Message {
		return []openflow.Message{&openflow.Unknown{Type: 4, Body: append([]byte{0, 0, 0x23, 0x20, 0, 0, 0xff, 0}, make([]byte, 0xffff-openflow.HeaderLen-8)...)}}
	}},
	{"vendor-error-longest-1.0", openflow.Version10, func(t *testing.T) []openflow.Message {
		fm := missingGroupFlowMod()
		fm.Nicira, fm.Instructions = true, nil
		fm.Match = []openflow.Field{nxField("in_port", []byte{0, 1})}
		fm.Actions = []openflow.Action{&openflow.ActNote{Data: make([]byte, 65440)}, &openflow.ActU32{Type: openflow.ActTypeGroup, Value: 99}}
		return []openflow.Message{fm}
	}},
	{"flow-mod-missing-group", openflow.Version14, func(t *testing.T) []openflow.Message {
		return []openflow.Message{missingGroupFlowMod()}
	}},
	{"packet-out-missing-group", openflow.Version14, func(t *testing.T) []openflow.Message {
		return []openflow.Message{&openflow.PacketOut{BufferID: openflow.NoBuffer, InPort: 1, Data: errorFrame(t),
			Actions: []openflow.Action{&openflow.ActU32{Type: openflow.ActTypeGroup, Value: 99}}}}
	}},
	{"unknown-multipart", openflow.Version14, func(t *testing.T) []openflow.Message {
		return []openflow.Message{&openflow.Unknown{Type: 18, Body: append([]byte{0, 200, 0, 0, 0, 0, 0, 0}, make([]byte, 100)...)}}
	}},
	{"bundle-add-refused", openflow.Version14, func(t *testing.T) []openflow.Message {
		return []openflow.Message{bundleMsg(t, 1, &openflow.PacketOut{BufferID: openflow.NoBuffer, InPort: 1, Data: errorFrame(t),
			Actions: []openflow.Action{&openflow.ActSetField{Field: pinField("arp_op", []byte{0, 1})}}})}
	}},
	{"bundle-commit-fails", openflow.Version14, func(t *testing.T) []openflow.Message {
		return []openflow.Message{bundleMsg(t, 1, missingGroupFlowMod()), bundleCommit()}
	}},
}

// TestErrorDataMatchesOVS sends each case to both switches and compares
// the errors they answer with, data included.
func TestErrorDataMatchesOVS(t *testing.T) {
	compareCases(t, errorCases, nil)
}

// compareCases sends each case, in a subtest of its own, to Open vSwitch
// 3.1 and to ovsxdp (each a bridge br0 with ports p1 and p2), fails the
// subtest when they answer differently (errorReplies), and returns Open
// vSwitch's answers, in order. before, when not nil, runs before each
// case with the two switches' run directories.
func compareCases(t *testing.T, cases []errorCase, before func(t *testing.T, dirs ...string)) []string {
	t.Helper()
	ports := []ovsref.Port{{Name: "p1", OFPort: 1}, {Name: "p2", OFPort: 2}}
	ref := ovsref.StartShared(t, "br0", ports)
	s := startOFSwitchPorts(t, ports)
	answers := make([]string, len(cases))
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if before != nil {
				before(t, ref.Dir, s.runDir)
			}
			want := errorReplies(t, filepath.Join(ref.Dir, "br0.mgmt"), c)
			got := errorReplies(t, filepath.Join(s.runDir, "br0.mgmt"), c)
			t.Logf("Open vSwitch answered:\n%s", want)
			if got != want {
				t.Errorf("ovsxdp answered:\n%s\nOpen vSwitch:\n%s", got, want)
			}
			answers[i] = want
		})
	}
	return answers
}

// refusals counts the answers that hold an error.
func refusals(answers []string) int {
	n := 0
	for _, a := range answers {
		if strings.Contains(a, ": error type") {
			n++
		}
	}
	return n
}

// errorReplies sends the case's messages (xids 1, 2, ...) then a barrier
// on a connection to sock, and returns the errors it got before the
// barrier's reply (xid, type, code, and data in hex) and the replies
// this package has no type of its own for, with the async config
// replies (xid, type and body in hex).
func errorReplies(t *testing.T, sock string, c errorCase) string {
	t.Helper()
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	hello, _ := openflow.NewHello(c.v)
	msgs := append([]openflow.Message{hello}, c.msgs(t)...)
	msgs = append(msgs, &openflow.BarrierRequest{})
	for i, m := range msgs {
		b, err := openflow.Encode(c.v, uint32(i), m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	barrier := uint32(len(msgs) - 1)
	r := openflow.NewReader(conn, 0)
	var out string
	for {
		b, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("no barrier reply from %s: %v\n%s", sock, err, out)
		}
		h, m, err := openflow.Decode(b)
		if err != nil {
			t.Fatalf("%x: %v", b, err)
		}
		switch m := m.(type) {
		case *openflow.ErrorMsg:
			data := fmt.Sprintf("%x", m.Data)
			if len(data) > 600 {
				data = data[:200] + "..." + data[len(data)-200:]
			}
			out += fmt.Sprintf("xid %d: error type %d code %d, %d bytes of data: %s\n", h.Xid, m.Type, m.Code, len(m.Data), data)
		case *openflow.GetAsyncReply, *openflow.MultipartRaw, *openflow.Unknown:
			out += fmt.Sprintf("xid %d: type %d reply %x\n", h.Xid, b[1], b[openflow.HeaderLen:])
		case *openflow.BarrierReply:
			if h.Xid == barrier {
				return out
			}
		}
	}
}
