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
	checkDualGolden(t, dualCorpus{
		corpus: tunCorpusPath, golden: tunGoldenPath, golden13: tunGolden13Path,
		test: "TestTunOfctlGolden", name: "tunnel", minValid: 40, minInvalid: 10,
	})
}

func TestTunOfctlLive(t *testing.T) { checkDualLive(t, tunCorpusPath) }
