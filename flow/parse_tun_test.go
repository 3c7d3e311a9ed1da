package flow

import "testing"

// The tunnel corpus is differential-checked as the ct corpus is
// (parse_ct_test.go): in OpenFlow 1.0 and 1.3, against golden files and
// against a live ovs-ofctl.
const (
	tunCorpusPath   = "testdata/ofctl/tun_flows.txt"
	tunGoldenPath   = "testdata/ofctl/tun_golden.txt"
	tunGolden13Path = "testdata/ofctl/tun_golden13.txt"
)

func TestTunOfctlGolden(t *testing.T) {
	corpus := readCorpusFile(t, tunCorpusPath)
	if *updateGolden {
		bin := ofctlBinary(t)
		writeGoldenFile(t, bin, tunGoldenPath, "ovs-ofctl parse-flow FLOW", "tun_flows.txt", "TestTunOfctlGolden", corpus, runOfctlAll(t, bin, corpus))
		writeGoldenFile(t, bin, tunGolden13Path, "ovs-ofctl -O OpenFlow13 parse-flow FLOW", "tun_flows.txt", "TestTunOfctlGolden", corpus, runOfctlAll(t, bin, corpus, "-O", "OpenFlow13"))
	}
	golden, golden13 := readGoldenFile(t, tunGoldenPath), readGoldenFile(t, tunGolden13Path)
	var valid, invalid int
	for _, c := range corpus {
		want, ok := golden[c.flow]
		want13, ok13 := golden13[c.flow]
		if !ok || !ok13 {
			t.Errorf("line %d %q has no golden entry (regenerate: go test ./flow -run TestTunOfctlGolden -update-golden)", c.line, c.flow)
			continue
		}
		if c.kind == agree && want.ok {
			valid++
		} else {
			invalid++
		}
		compareCt(t, c, want, want13)
	}
	if valid < 40 || invalid < 10 {
		t.Errorf("tunnel corpus has %d valid and %d invalid lines; want at least 40 and 10", valid, invalid)
	}
}

func TestTunOfctlLive(t *testing.T) {
	bin := ofctlBinary(t)
	corpus := readCorpusFile(t, tunCorpusPath)
	res, res13 := runOfctlAll(t, bin, corpus), runOfctlAll(t, bin, corpus, "-O", "OpenFlow13")
	for i, c := range corpus {
		compareCt(t, c, res[i], res13[i])
	}
}
