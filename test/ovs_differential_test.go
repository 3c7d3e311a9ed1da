package test

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/ovsref"
)

// The differential test against Open vSwitch 3.1 loads each pipeline of
// testdata/ovsdiff into a sandboxed Open vSwitch (test/ovsref) and into
// an ovsxdp daemon (mem ports with the same names and OpenFlow port
// numbers), and traces each microflow through both.
//
// Open vSwitch must accept every pipeline and trace every microflow: the
// corpus is checked against it. A pipeline ovsxdp accepts is compared
// strictly:
//   - dump-flows --no-stats: the same flows (lines sorted on both sides,
//     the reply header dropped); and for a pipeline with groups,
//     dump-groups in OpenFlow 1.3 and 1.5: the same groups, and
//     dump-group-stats: the same counters and ref_counts;
//   - datapath actions: equal once port numbers are mapped to port names
//     (Open vSwitch's are datapath port numbers, read from dpif/show;
//     ovsxdp's are its OpenFlow port numbers) and each run of consecutive
//     outputs is sorted (copies of one packet to several ports may go in
//     any order; Open vSwitch floods in hash order);
//     A packet-in that no controller receives (Open vSwitch's TTL
//     exception without a controller: userspace(...dont_send=1...),
//     whose recirculation id changes run to run) is taken out, and a
//     list left with nothing that sends the packet anywhere is a drop;
//   - the final flow: equal ("unchanged" stands for the flow traced).
//
// The per-table steps of the trace are not compared (their text is not a
// contract). The megaflows are compared and the share that is equal is
// reported; it may not fall below the figure committed in
// testdata/ovsdiff/megaflow_equal_min.txt (a ratchet: raise the figure
// when the share rises).
//
// A pipeline ovsxdp rejects (a flow or group it refuses) is reported. The
// pipelines that are expected to be rejected are listed in
// testdata/ovsdiff/expected_unsupported.txt: a rejection of one not
// listed fails the test, and so does the acceptance of one listed, so
// that the list only ever shrinks. The same goes for
// expected_dump_differs.txt, the accepted pipelines whose dump-flows text
// still spells some actions otherwise than Open vSwitch (their datapath
// actions and final flows are compared strictly all the same): a dump that
// differs for one not listed fails, and so does an equal dump for one
// listed.

const ovsDiffDir = "testdata/ovsdiff"

// readUnsupported reads the list of pipelines ovsxdp is expected to
// reject: one name a line, "#" comments.
func readUnsupported(t *testing.T) map[string]bool {
	t.Helper()
	return readPipelineList(t, "expected_unsupported.txt")
}

// readPipelineList reads a list of pipeline names of ovsDiffDir: one name
// a line, "#" comments.
func readPipelineList(t *testing.T, name string) map[string]bool {
	t.Helper()
	f, err := os.Open(filepath.Join(ovsDiffDir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	set := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if line = strings.TrimSpace(line); line != "" {
			set[line] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return set
}

func loadOVSDiffCorpus(t *testing.T) []*ovsref.Pipeline {
	t.Helper()
	ps, err := ovsref.LoadCorpus(ovsDiffDir)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// TestOVSDiffCorpus checks the corpus's shape without running anything:
// at least 8 multi-table pipelines and 400 microflows, at least 100
// microflows in pipelines ovsxdp runs today, an unsupported list that
// names only pipelines that exist, and a readable megaflow ratchet.
func TestOVSDiffCorpus(t *testing.T) {
	ps := loadOVSDiffCorpus(t)
	unsupported := readUnsupported(t)
	readMegaflowRatchet(t)
	var multi, traces, supportedTraces int
	names := map[string]bool{}
	for _, p := range ps {
		names[p.Name] = true
		traces += len(p.Traces)
		if p.Tables() > 1 {
			multi++
		}
		if !unsupported[p.Name] {
			supportedTraces += len(p.Traces)
		}
	}
	if multi < 8 {
		t.Errorf("%d multi-table pipelines, want at least 8", multi)
	}
	if traces < 400 {
		t.Errorf("%d microflows, want at least 400", traces)
	}
	if supportedTraces < 100 {
		t.Errorf("%d microflows in pipelines expected to be supported, want at least 100", supportedTraces)
	}
	for n := range unsupported {
		if !names[n] {
			t.Errorf("expected_unsupported.txt names %q, which is not a pipeline of %s", n, ovsDiffDir)
		}
	}
	t.Logf("%d pipelines (%d multi-table), %d microflows", len(ps), multi, traces)
}

// megaflowTally counts equal megaflows over the compared microflows.
type megaflowTally struct{ equal, total int }

func TestOVSDifferential(t *testing.T) {
	ovsref.Require(t)
	ps := loadOVSDiffCorpus(t)
	unsupported := readUnsupported(t)
	dumpDiffers := readPipelineList(t, "expected_dump_differs.txt")
	bin := buildCLI(t)
	dir := t.TempDir()
	d := startCLIDaemon(t, bin, filepath.Join(dir, "ovsxdp.sock"), filepath.Join(dir, "state.json"))

	minRate := readMegaflowRatchet(t)
	var all megaflowTally
	ran := 0
	for _, p := range ps {
		t.Run(p.Name, func(t *testing.T) {
			ran++
			tally, rejected := runOVSDiff(t, d, dir, p, dumpDiffers[p.Name])
			switch {
			case rejected != "" && !unsupported[p.Name]:
				t.Errorf("ovsxdp rejects %s, which is not in expected_unsupported.txt: %s", p.Name, rejected)
			case rejected != "":
				t.Logf("ovsxdp rejects %s (expected): %s", p.Name, rejected)
			case unsupported[p.Name]:
				t.Errorf("ovsxdp accepts %s, which expected_unsupported.txt lists: remove it from the list", p.Name)
			}
			all.equal += tally.equal
			all.total += tally.total
		})
	}
	if all.total == 0 {
		return
	}
	rate := 100 * float64(all.equal) / float64(all.total)
	t.Logf("megaflow masks equal to Open vSwitch's: %d of %d compared microflows (%.1f%%; %s holds %.1f%%)",
		all.equal, all.total, rate, megaflowRatchetFile, minRate)
	switch {
	case ran < len(ps):
		// Some pipelines were not run (-run): the share is not the
		// corpus's.
	case rate < minRate:
		t.Errorf("megaflow masks equal to Open vSwitch's for %.1f%% of microflows (%d of %d), below the %.1f%% of %s",
			rate, all.equal, all.total, minRate, megaflowRatchetFile)
	case math.Floor(rate*10)/10 > minRate:
		t.Logf("the share rose: raise %s to %.1f", megaflowRatchetFile, math.Floor(rate*10)/10)
	}
}

// megaflowRatchetFile holds the lowest share (percent) of compared
// microflows whose megaflow must equal Open vSwitch's.
const megaflowRatchetFile = "megaflow_equal_min.txt"

// readMegaflowRatchet reads megaflowRatchetFile: one number, "#"
// comments.
func readMegaflowRatchet(t *testing.T) float64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(ovsDiffDir, megaflowRatchetFile))
	if err != nil {
		t.Fatal(err)
	}
	var fields []string
	for _, line := range strings.Split(string(b), "\n") {
		line, _, _ = strings.Cut(line, "#")
		fields = append(fields, strings.Fields(line)...)
	}
	if len(fields) != 1 {
		t.Fatalf("%s: want one number, have %q", megaflowRatchetFile, fields)
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil || v < 0 || v > 100 {
		t.Fatalf("%s: %q is not a percentage", megaflowRatchetFile, fields[0])
	}
	return v
}

// runOVSDiff runs one pipeline through both switches. It returns the
// megaflow tally and, if ovsxdp refused the pipeline, why.
// dumpDiffers says the pipeline's dump-flows text is expected to differ.
func runOVSDiff(t *testing.T, d *cliDaemon, dir string, p *ovsref.Pipeline, dumpDiffers bool) (megaflowTally, string) {
	const br = "br0"
	var tally megaflowTally
	ovs := ovsref.StartShared(t, br, p.Ports)
	if len(p.Groups) > 0 {
		if err := ovs.AddGroups(p.Proto, strings.Join(p.Groups, "\n")+"\n"); err != nil {
			t.Fatalf("Open vSwitch refuses the groups of %s: %v", p.Path, err)
		}
	}
	if err := ovs.AddFlows(p.Proto, strings.Join(p.Flows, "\n")+"\n"); err != nil {
		t.Fatalf("Open vSwitch refuses the flows of %s: %v", p.Path, err)
	}

	d.run(t, "add-br", br)
	t.Cleanup(func() { d.try("del-br", br) })
	names := map[int]string{}
	for _, port := range p.Ports {
		d.run(t, "add-port", br, port.Name, "type=mem", "ofport="+strconv.Itoa(port.OFPort))
		names[port.OFPort] = port.Name
	}
	xdpPortName := func(n int) (string, bool) { s, ok := names[n]; return s, ok }
	rejected := ""
	if len(p.Groups) > 0 {
		file := filepath.Join(dir, p.Name+".groups")
		writeFile(t, file, strings.Join(p.Groups, "\n")+"\n")
		if _, errOut, err := d.try("add-groups", br, file); err != nil {
			rejected = fmt.Sprintf("add-groups: %v: %s", err, strings.TrimSpace(errOut))
		}
	}
	if rejected == "" {
		file := filepath.Join(dir, p.Name+".flows")
		writeFile(t, file, strings.Join(p.Flows, "\n")+"\n")
		args := []string{"add-flows", br, file}
		if p.Proto != "" {
			args = append(args, "-O", p.Proto) // its adds' flags are the version's
		}
		if _, errOut, err := d.try(args...); err != nil {
			rejected = fmt.Sprintf("add-flows: %v: %s", err, strings.TrimSpace(errOut))
		}
	}
	compareDumps := func(when string) {
		if rejected != "" {
			return
		}
		ovsDump, err := ovs.DumpFlows(p.Proto)
		if err != nil {
			t.Fatal(err)
		}
		// Through the OpenFlow channel, ovs-ofctl prints ovsxdp's flows as
		// it prints Open vSwitch's, in the pipeline's OpenFlow version:
		// always the same text.
		if chDump := ofctlChannelDump(t, d, br, p.Proto); chDump != ovsDump {
			t.Errorf("ovs-ofctl %s dump-flows --no-stats%s through the OpenFlow channel differ\n%s", p.Proto, when, lineDiff(ovsDump, chDump))
		}
		// ovsxdp's own dump-flows spells as ovs-ofctl does in the version
		// it is given with -O: the pipeline's.
		xdpDump := ovsref.NormaliseDump(d.run(t, xdpDumpArgs(br, p.Proto)...))
		switch {
		case xdpDump != ovsDump && dumpDiffers:
			t.Logf("dump-flows --no-stats%s differ (expected)\n%s", when, lineDiff(ovsDump, xdpDump))
		case xdpDump != ovsDump:
			t.Errorf("dump-flows --no-stats%s differ\n%s", when, lineDiff(ovsDump, xdpDump))
		case dumpDiffers && when == "":
			t.Errorf("dump-flows --no-stats of %s equal Open vSwitch's, which expected_dump_differs.txt lists: remove it from the list", p.Name)
		}
	}
	compareDumps("")
	if rejected == "" && len(p.Groups) > 0 {
		// dump-groups as ovs-ofctl prints it in OpenFlow 1.3 (no bucket
		// ids, no selection method) and 1.5.
		for _, proto := range []string{"OpenFlow13", "OpenFlow15"} {
			ovsGroups, err := ovs.DumpGroups(proto)
			if err != nil {
				t.Fatal(err)
			}
			xdpGroups := ovsref.NormaliseDump(d.run(t, "dump-groups", br, "--protocols="+proto))
			if xdpGroups != ovsGroups {
				t.Errorf("dump-groups (%s) differ\n%s", proto, lineDiff(ovsGroups, xdpGroups))
			}
		}
	}

	distinct := map[string]bool{}
	mismatches := 0
	// compare traces mf through both switches; as a packet (with its side
	// effects, such as learning) when generate is set.
	compare := func(mf string, generate bool) {
		ovsTrace, xdpFlags := ovs.Trace, map[string]string(nil)
		if generate {
			ovsTrace, xdpFlags = ovs.TraceGenerate, map[string]string{"generate": "true"}
		}
		ot, err := ovsTrace(mf)
		if err != nil {
			t.Fatalf("Open vSwitch cannot trace %q of %s: %v", mf, p.Path, err)
		}
		ovsActions := ovsref.MapActions(ot.Actions, ovs.PortName)
		distinct[ovsActions] = true
		if rejected != "" {
			return
		}
		// Over the control socket, as Open vSwitch's traces go over
		// its unixctl socket: a CLI process per microflow would cost
		// more than the traces.
		out := d.call(t, "ofproto/trace", xdpFlags, br, mf)
		xt, err := ovsref.ParseTrace(out)
		if err != nil {
			t.Fatalf("ovsxdp ofproto/trace %s: %v\n%s", mf, err, out)
		}
		xdpActions := ovsref.MapActions(xt.Actions, xdpPortName)
		var diffs []string
		if ovsActions != xdpActions {
			diffs = append(diffs, fmt.Sprintf("datapath actions:\n  ovs:    %s\n  ovsxdp: %s", ovsActions, xdpActions))
		}
		if ot.FinalFlow != xt.FinalFlow {
			diffs = append(diffs, fmt.Sprintf("final flow:\n  ovs:    %s\n  ovsxdp: %s", ot.FinalFlow, xt.FinalFlow))
		}
		tally.total++
		if sameMegaflow(withoutFields(ot.Megaflow, p.MegaflowIgnore), xt.Megaflow) {
			tally.equal++
		} else if tally.total-tally.equal <= 5 {
			t.Logf("%s: megaflows differ\n  ovs:    %s\n  ovsxdp: %s", mf, ot.Megaflow, xt.Megaflow)
		}
		if len(diffs) > 0 {
			mismatches++
			switch {
			case mismatches <= 3:
				t.Errorf("%s: %s\nOpen vSwitch's trace:\n%s\novsxdp's trace:\n%s", mf, strings.Join(diffs, "\n"), ot.Text, xt.Text)
			case mismatches <= 20:
				t.Errorf("%s: %s", mf, strings.Join(diffs, "\n"))
			}
		}
	}
	// The packets go first, in order: what they learn is in the dump and
	// decides the traces after them.
	for _, mf := range p.Packets {
		compare(mf, true)
	}
	if len(p.Packets) > 0 {
		compareDumps(" after the packets")
	}
	for _, mf := range p.Traces {
		compare(mf, false)
	}
	if mismatches > 20 {
		t.Errorf("%d of %d microflows differ (the first 20 are shown)", mismatches, len(p.Packets)+len(p.Traces))
	}
	if rejected == "" && len(p.Groups) > 0 {
		// Traces count nothing: the counters are zero, and ref_count is
		// the flows that name each group.
		ovsStats, err := ovs.DumpGroupStats()
		if err != nil {
			t.Fatal(err)
		}
		if xdpStats := ovsref.NormaliseGroupStats(d.run(t, "dump-group-stats", br)); xdpStats != ovsStats {
			t.Errorf("dump-group-stats differ\n%s", lineDiff(ovsStats, xdpStats))
		}
	}
	// A pipeline whose microflows all get the same actions from Open
	// vSwitch tests little.
	if len(distinct) < 2 {
		t.Errorf("every microflow of %s gets the same datapath actions from Open vSwitch (%v): the corpus does not exercise the pipeline", p.Path, distinct)
	}
	if tally.total > 0 {
		t.Logf("%d microflows compared; megaflow masks equal to Open vSwitch's: %d (%.1f%%)",
			tally.total, tally.equal, 100*float64(tally.equal)/float64(tally.total))
	}
	return tally, rejected
}

// xdpDumpArgs returns the arguments of ovsxdp's dump-flows --no-stats of
// bridge br in the spelling of OpenFlow version proto ("": ovs-ofctl's
// default). ovsxdp spells OpenFlow 1.0 and 1.2 to 1.4; OpenFlow 1.5
// (where every load is a set_field) it does not, and a pipeline written
// in 1.5 is dumped in ovsxdp's default spelling, which must then print its
// flows as Open vSwitch's 1.5 dump does.
func xdpDumpArgs(br, proto string) []string {
	args := []string{"dump-flows", br, "--no-stats"}
	if proto != "" && proto != "OpenFlow15" {
		args = append(args, "-O", proto)
	}
	return args
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// lineDiff lists the lines only in a (-) and only in b (+), a and b being
// sorted line lists.
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for _, l := range al {
		if !slices.Contains(bl, l) {
			out = append(out, "- ovs:    "+l)
		}
	}
	for _, l := range bl {
		if !slices.Contains(al, l) {
			out = append(out, "+ ovsxdp: "+l)
		}
	}
	return strings.Join(out, "\n")
}

// ofctlChannelDump runs the real ovs-ofctl dump-flows --no-stats (with -O
// proto unless empty) against bridge br's OpenFlow socket of daemon d, and
// returns its output normalised as ovsref.NormaliseDump does.
func ofctlChannelDump(t *testing.T, d *cliDaemon, br, proto string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var args []string
	if proto != "" {
		args = append(args, "-O", proto)
	}
	sock := filepath.Join(d.runDir, br+".mgmt")
	args = append(args, "dump-flows", "--no-stats", "unix:"+sock)
	out, err := exec.CommandContext(ctx, "ovs-ofctl", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ovs-ofctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return ovsref.NormaliseDump(string(out))
}

// sameMegaflow reports whether Open vSwitch's and ovsxdp's megaflows (as
// ofproto/trace prints them) are the same. One difference of form is not
// one of substance: for a packet without a VLAN tag, Open vSwitch's
// megaflow says "no tag" implicitly (its datapath key has no 802.1Q
// header, and translation clears the VLAN mask of an untagged packet),
// where ovsxdp's says it with vlan_tci=0x0000 (masked or not).
func sameMegaflow(ovs, xdp string) bool {
	if ovs == xdp {
		return true
	}
	if strings.Contains(ovs, "vlan") {
		return false
	}
	return untaggedVLAN.ReplaceAllString(xdp, "") == ovs
}

// withoutFields returns megaflow (comma-separated name=value matches)
// without the matches on the named fields.
func withoutFields(megaflow string, fields []string) string {
	if len(fields) == 0 {
		return megaflow
	}
	var kept []string
	for _, m := range strings.Split(megaflow, ",") {
		name, _, _ := strings.Cut(m, "=")
		if !slices.Contains(fields, name) {
			kept = append(kept, m)
		}
	}
	return strings.Join(kept, ",")
}

var untaggedVLAN = regexp.MustCompile(`,vlan_tci=0x0000(/0x[0-9a-f]+)?\b`)
