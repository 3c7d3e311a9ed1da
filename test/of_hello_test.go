package test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow/openflow"
	"github.com/ovsxdp/ovsxdp/test/ovsref"
)

// TestFirstMessageNotHelloMatchesOVS opens connections whose first
// message is not a hello, short and longer than 64 bytes, and compares
// what each switch answers before it closes the connection.
func TestFirstMessageNotHelloMatchesOVS(t *testing.T) {
	ports := []ovsref.Port{{Name: "p1", OFPort: 1}, {Name: "p2", OFPort: 2}}
	ref := ovsref.StartShared(t, "br0", ports)
	s := startOFSwitchPorts(t, ports)
	for _, c := range []struct {
		name string
		v    uint8
		m    openflow.Message
	}{
		{"barrier-1.3", openflow.Version13, &openflow.BarrierRequest{}},
		{"echo-200-bytes-1.3", openflow.Version13, &openflow.EchoRequest{Data: make([]byte, 192)}},
		{"echo-200-bytes-1.0", openflow.Version10, &openflow.EchoRequest{Data: make([]byte, 192)}},
		{"packet-out-1.5", openflow.Version15, &openflow.PacketOut{BufferID: openflow.NoBuffer, InPort: 1, Data: errorFrame(t),
			Actions: []openflow.Action{&openflow.ActOutput{Port: 2}}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := openflow.Encode(c.v, 7, c.m)
			if err != nil {
				t.Fatal(err)
			}
			want := notHelloReplies(t, filepath.Join(ref.Dir, "br0.mgmt"), b)
			t.Logf("Open vSwitch answered:\n%s", want)
			if got := notHelloReplies(t, filepath.Join(s.runDir, "br0.mgmt"), b); got != want {
				t.Errorf("ovsxdp answered:\n%s\nOpen vSwitch:\n%s", got, want)
			}
		})
	}
}

// notHelloReplies sends first as the first message on a connection to
// sock and returns what the switch sends but its hello, until it closes
// the connection.
func notHelloReplies(t *testing.T, sock string, first []byte) string {
	t.Helper()
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := conn.Write(first); err != nil {
		t.Fatal(err)
	}
	r := openflow.NewReader(conn, 0)
	out := ""
	for {
		b, err := r.ReadMessage()
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
			return out + "closed\n"
		}
		if err != nil {
			t.Fatalf("%s: %v (so far:\n%s)", sock, err, out)
		}
		h, m, err := openflow.Decode(b)
		switch m := m.(type) {
		case *openflow.Hello:
		case *openflow.ErrorMsg:
			out += fmt.Sprintf("version 0x%02x xid %d: error type %d code %d, %d bytes of data: %x\n", h.Version, h.Xid, m.Type, m.Code, len(m.Data), m.Data)
		default:
			out += fmt.Sprintf("version 0x%02x xid %d: %T %v\n", h.Version, h.Xid, m, err)
		}
	}
}

// isReset reports a connection the peer reset rather than closed.
func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && errors.Is(op.Err, syscall.ECONNRESET)
}
