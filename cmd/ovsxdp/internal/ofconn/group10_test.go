package ofconn

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

func (cl *client) recvRaw() []byte {
	cl.t.Helper()
	cl.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := cl.r.ReadMessage()
	if err != nil {
		cl.t.Fatal(err)
	}
	return b
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGroups10 runs OpenFlow 1.0's Nicira group messages, as ovs-ofctl
// -O OpenFlow10 sends them, and checks the answers byte for byte against
// what Open vSwitch 3.1 answers to the same bytes: the group desc reply
// and the group mod errors (NXET_VENDOR errors carrying the 1.1+ type and
// code).
func TestGroups10(t *testing.T) {
	tb := flow.NewTable()
	cl := dial(t, NewServer(&tableBridge{t: tb}, Config{Logger: slog.New(slog.DiscardHandler)}), openflow.Version10)

	// add-group group_id=2,type=all,bucket=output:1,bucket=output:2
	add := mustHex(t, "0104004000000006000023200000001f000000000000000200200000ffffffff0010000800000000000000080001000000100008000000010000000800020000")
	cl.sendRaw(add)
	cl.sendRaw(mustHex(t, "0112000800000007"))
	if h, m := cl.recv(); h.Xid != 7 {
		t.Fatalf("add-group answered with %+v %#v", h, m)
	}
	if g := tb.Snapshot().Group(2); g == nil || len(g.Buckets) != 2 {
		t.Fatalf("group 2 after NXT_GROUP_MOD: %+v", g)
	}

	// dump-groups: NXST_GROUP_DESC, answered as Open vSwitch answers it.
	cl.sendRaw(mustHex(t, "0110002000000002ffff0000000023200000000800000000fffffffc00000000"))
	if got, want := cl.recvRaw(), mustHex(t, "0111004800000002ffff0000000023200000000800000000003000000000000200200000000000000010000800000000000000080001000000100008000000010000000800020000"); !bytes.Equal(got, want) {
		t.Errorf("NXST_GROUP_DESC reply\n got %x\nwant %x", got, want)
	}

	// The same add again: OFPGMFC_GROUP_EXISTS as a Nicira vendor error,
	// with the whole request, as Open vSwitch sends it.
	cl.sendRaw(add)
	checkVendorError(t, cl.recvRaw(), fmt.Sprintf("0101%04x00000006b0c20000000023200006000", 20+len(add))+"0", add)

	// A flow naming a missing group (NXAST_GROUP 99): OFPBAC_BAD_OUT_GROUP,
	// also a vendor error, as Open vSwitch sends it.
	fm := mustHex(t, "010e005800000006003820fe00010000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000008000ffffffffffff0000ffff0010000023200028000000000063")
	cl.sendRaw(fm)
	checkVendorError(t, cl.recvRaw(), "0101006c00000006b0c20000000023200002000"+"9", fm)

	// NXST_GROUP_FEATURES: Open vSwitch's layout, 1.0 action bitmap.
	cl.sendRaw(mustHex(t, "0110001800000002ffff0000000023200000000900000000"))
	if got, want := cl.recvRaw(), mustHex(t, "0111004000000002ffff00000000232000000009000000000000000f00000007ffffff00ffffff00ffffff00ffffff00000007ff000007ff000007ff000007ff"); !bytes.Equal(got, want) {
		t.Errorf("NXST_GROUP_FEATURES reply\n got %x\nwant %x", got, want)
	}
}

// checkVendorError checks an OpenFlow 1.0 error: its header and Nicira
// vendor type and code are head (hex), its data req.
func checkVendorError(t *testing.T, got []byte, head string, req []byte) {
	t.Helper()
	want := append(mustHex(t, head), req...)
	if !bytes.Equal(got, want) {
		t.Errorf("error\n got %x\nwant %x", got, want)
	}
}
