package test

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestOFTLVMap maps Geneve options with the real ovs-ofctl add-tlv-map
// over the bridge's OpenFlow channel (NXT_TLV_TABLE_MOD, which used to be
// refused) and reads them back with dump-tlv-map (NXT_TLV_TABLE_REQUEST)
// and the CLI: what OVN does at start. Mistakes get Open vSwitch's errors
// and change nothing; the map survives a restart.
func TestOFTLVMap(t *testing.T) {
	s := startOFSwitch(t)
	s.run(t, "OpenFlow13", "add-tlv-map", "{class=0x102,type=0x80,len=4}->tun_metadata0")
	want := " max option space=16 max fields=64\n" +
		" allocated option space=4\n\n" +
		" mapping table:\n" +
		"  class  type  length  match field\n" +
		" ------  ----  ------  --------------\n" +
		"  0x102  0x80       4  tun_metadata0\n"
	for _, v := range []string{"OpenFlow10", "OpenFlow13", "OpenFlow15"} {
		out := s.run(t, v, "dump-tlv-map")
		if _, body, ok := strings.Cut(out, "\n"); !ok || !strings.HasPrefix(out, "NXT_TLV_TABLE_REPLY") || body != want {
			t.Errorf("ovs-ofctl -O %s dump-tlv-map:\n%s\nwant NXT_TLV_TABLE_REPLY and\n%s", v, out, want)
		}
	}
	if got := s.d.run(t, "dump-tlv-map", "br0"); got != want {
		t.Errorf("dump-tlv-map:\n%s\nwant\n%s", got, want)
	}

	// Each refusal names Open vSwitch's error and changes nothing: the
	// second mapping of a pair that fails is not added either.
	for _, tc := range []struct {
		name, mapping, wantErr string
	}{
		{"index mapped", "{class=0x102,type=0x81,len=4}->tun_metadata0", "NXTTMFC_ALREADY_MAPPED"},
		{"option mapped", "{class=0x102,type=0x80,len=4}->tun_metadata1", "NXTTMFC_DUP_ENTRY"},
		{"bad length", "{class=0x102,type=0x81,len=6}->tun_metadata1", "NXTTMFC_BAD_OPT_LEN"},
		{"too long", "{class=0x102,type=0x81,len=128}->tun_metadata1", "NXTTMFC_BAD_OPT_LEN"},
		{"bad index", "{class=0x102,type=0x81,len=4}->tun_metadata64", "NXTTMFC_BAD_FIELD_IDX"},
		{"no space", "{class=0x102,type=0x81,len=8}->tun_metadata1,{class=0x102,type=0x82,len=8}->tun_metadata2", "NXTTMFC_TABLE_FULL"},
	} {
		_, errOut, err := s.try("OpenFlow13", nil, "add-tlv-map", tc.mapping)
		if err == nil || !strings.Contains(errOut, tc.wantErr) {
			t.Errorf("%s: add-tlv-map %s: %v %q, want %s", tc.name, tc.mapping, err, errOut, tc.wantErr)
		}
		stdout, stderr, err := s.d.try("add-tlv-map", "br0", tc.mapping)
		if err == nil || stdout != "" || stderr == "" {
			t.Errorf("%s: ovsxdp add-tlv-map %s: %v %q %q, want an error", tc.name, tc.mapping, err, stdout, stderr)
		}
	}
	if got := s.d.run(t, "dump-tlv-map", "br0"); got != want {
		t.Errorf("dump-tlv-map after the refusals:\n%s\nwant\n%s", got, want)
	}

	// Flows match the mapped field, over OpenFlow and the CLI, and dump as
	// ovs-ofctl prints them; an unmapped field is refused as Open vSwitch
	// refuses it, and so is deleting a mapping a flow uses.
	s.run(t, "OpenFlow13", "add-flow", "priority=10,tun_metadata0=0x1234/0xff00,actions=output:2")
	s.d.run(t, "add-flow", "br0", "priority=20,tun_id=5,tun_metadata0=0xabcdef01,actions=output:3")
	s.d.run(t, "add-flow", "br0", "priority=30,tun_metadata0,actions=output:1")
	for _, v := range []string{"OpenFlow10", "OpenFlow13", "OpenFlow15"} {
		out := s.run(t, v, "dump-flows", "--no-stats")
		for _, want := range []string{"priority=10,tun_metadata0=0x1200/0xff00 actions=output:2", "priority=20,tun_id=0x5,tun_metadata0=0xabcdef01 actions=output:3", "priority=30,tun_metadata0 actions=output:1"} {
			if !strings.Contains(out, want) {
				t.Errorf("ovs-ofctl -O %s dump-flows lacks %q:\n%s", v, want, out)
			}
		}
	}
	if out := s.d.run(t, "dump-flows", "br0", "--no-stats"); !strings.Contains(out, "tun_metadata0=0x1200/0xff00") || !strings.Contains(out, "tun_id=0x5,tun_metadata0=0xabcdef01") {
		t.Errorf("dump-flows:\n%s", out)
	}
	if _, errOut, err := s.try("OpenFlow13", nil, "add-flow", "tun_metadata1=1,actions=drop"); err == nil || !strings.Contains(errOut, "NXFMFC_INVALID_TLV_FIELD") {
		t.Errorf("add-flow on an unmapped tun_metadata1: %v %q, want NXFMFC_INVALID_TLV_FIELD", err, errOut)
	}
	if stdout, stderr, err := s.d.try("add-flow", "br0", "tun_metadata1=1,actions=drop"); err == nil || !strings.Contains(stderr, "not mapped") {
		t.Errorf("ovsxdp add-flow on an unmapped tun_metadata1: %v %q %q, want an error", err, stdout, stderr)
	}
	if _, errOut, err := s.try("OpenFlow13", nil, "del-tlv-map", "{class=0x102,type=0x80,len=4}->tun_metadata0"); err == nil || !strings.Contains(errOut, "NXTTMFC_INVALID_TLV_DEL") {
		t.Errorf("del-tlv-map of a mapping in use: %v %q, want NXTTMFC_INVALID_TLV_DEL", err, errOut)
	}
	s.run(t, "OpenFlow13", "del-flows")

	// Two more that fit (4+8+4 = 16 bytes), then a delete of one and a
	// clear.
	s.d.run(t, "add-tlv-map", "br0", "{class=0xffff,type=0,len=8}->tun_metadata7,{class=0xffff,type=1,len=4}->tun_metadata63")
	out := s.run(t, "OpenFlow15", "dump-tlv-map")
	for _, line := range []string{"allocated option space=16", " 0xffff     0       8  tun_metadata7", " 0xffff   0x1       4  tun_metadata63"} {
		if !strings.Contains(out, line+"\n") {
			t.Errorf("dump-tlv-map lacks %q:\n%s", line, out)
		}
	}
	s.run(t, "OpenFlow13", "del-tlv-map", "{class=0xffff,type=0,len=8}->tun_metadata7")
	out = s.d.run(t, "dump-tlv-map", "br0")
	if strings.Contains(out, "tun_metadata7") || !strings.Contains(out, "allocated option space=8\n") {
		t.Errorf("dump-tlv-map after del-tlv-map of tun_metadata7:\n%s", out)
	}
	s.run(t, "OpenFlow13", "del-tlv-map")
	out = s.run(t, "OpenFlow13", "dump-tlv-map")
	if !strings.HasSuffix(out, " allocated option space=0\n\n mapping table:\n  class  type  length  match field\n ------  ----  ------  --------------\n") {
		t.Errorf("dump-tlv-map after a clear:\n%s", out)
	}
}

// TestCLITLVMapRestart: the TLV map is kept in the state file and
// restored before the flows that match its fields.
func TestCLITLVMapRestart(t *testing.T) {
	bin := buildCLI(t)
	dir := t.TempDir()
	sock, state := filepath.Join(dir, "ovsxdp.sock"), filepath.Join(dir, "state.json")
	d := startCLIDaemon(t, bin, sock, state)
	d.run(t, "add-br", "br0")
	d.run(t, "add-tlv-map", "br0", "{class=0x102,type=0x80,len=4}->tun_metadata0,{class=0xffff,type=0x3,len=8}->tun_metadata12")
	d.run(t, "add-flow", "br0", "tun_metadata0=0x10002/0xffff7fff,tun_metadata12=0x5,actions=drop")
	tlv, flows := d.run(t, "dump-tlv-map", "br0"), d.run(t, "dump-flows", "br0", "--no-stats")
	if !strings.Contains(flows, "tun_metadata0=0x10002/0xffff7fff,tun_metadata12=0x5") {
		t.Fatalf("dump-flows:\n%s", flows)
	}
	d.crash(t)
	d = startCLIDaemon(t, bin, sock, state)
	if got := d.run(t, "dump-tlv-map", "br0"); got != tlv {
		t.Errorf("TLV map after a restart:\n%s\nwant\n%s", got, tlv)
	}
	if got := d.run(t, "dump-flows", "br0", "--no-stats"); got != flows {
		t.Errorf("flows after a restart:\n%s\nwant\n%s", got, flows)
	}
}
