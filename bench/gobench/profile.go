package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// profileTime is how long a missed target's benchmark runs under the CPU
// profiler: long enough that its loop outweighs its setup.
const profileTime = "2s"

// profileNodes is how many functions a profile's summary lists.
const profileNodes = 12

// modulePrefix is left out of the function names a summary lists.
const modulePrefix = "github.com/ovsxdp/ovsxdp/"

// profile is where one benchmark's time went: go tool pprof -top's table.
type profile struct {
	name string
	// header is pprof's line with the total it sampled, top its table.
	header string
	top    []string
}

// missedProfiled lists the benchmarks behind the targets the run missed
// whose profiles say where their time goes: the time targets that are
// profiled (nsTarget.profiled) and the frames extraction is not the
// target's times faster on than gopacket.
func missedProfiled(samples map[string][]sample) []string {
	var names []string
	for _, t := range lookupTargets {
		if ss := samples[t.name]; t.profiled && len(ss) > 0 && median(ss) > t.limit {
			names = append(names, t.name)
		}
	}
	for _, t := range packetTargets {
		if ss := samples[t.name]; t.profiled && len(ss) > 0 && perPacketNs(ss) > t.limit {
			names = append(names, t.name)
		}
	}
	for _, f := range extractFrames {
		name := "Extract/" + f
		if r, ok := pairRatio(samples["GopacketDecodingLayerParser/"+f], samples[name]); ok && r < extractTarget {
			names = append(names, name)
		}
	}
	return names
}

// benchPattern is the go test -bench pattern that runs the benchmark
// named name (a sub-benchmark's name with its parent's) alone.
func benchPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	parts[0] = "^Benchmark" + parts[0][1:]
	return strings.Join(parts, "/")
}

// profileBench runs the benchmark name of package pkg once more, alone,
// with the CPU profiler, and returns pprof's summary of it.
func profileBench(name, pkg string) (profile, error) {
	dir, err := os.MkdirTemp("", "gobench-profile")
	if err != nil {
		return profile{}, err
	}
	defer os.RemoveAll(dir)
	bin, prof := filepath.Join(dir, "bench.test"), filepath.Join(dir, "cpu.prof")
	test := exec.Command("go", "test", "-run", "^$", "-bench", benchPattern(name), "-benchtime", profileTime,
		"-count", "1", "-cpuprofile", prof, "-o", bin, pkg)
	if out, err := test.CombinedOutput(); err != nil {
		return profile{}, fmt.Errorf("profile %s: go test: %w\n%s", name, err, out)
	}
	top := exec.Command("go", "tool", "pprof", "-top", "-nodecount", fmt.Sprint(profileNodes), bin, prof)
	var stderr bytes.Buffer
	top.Stderr = &stderr
	out, err := top.Output()
	if err != nil {
		return profile{}, fmt.Errorf("profile %s: pprof: %w\n%s", name, err, stderr.Bytes())
	}
	return parseTop(name, string(out)), nil
}

// parseTop reads go tool pprof -top's output: the line with the samples'
// total, and the table from its column heads on.
func parseTop(name, out string) profile {
	p := profile{name: name}
	inTable := false
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "Duration:"):
			p.header = strings.TrimSpace(line)
		case strings.Contains(line, "flat%") && strings.Contains(line, "cum%"):
			inTable = true
			p.top = append(p.top, line)
		case inTable && strings.TrimSpace(line) != "":
			p.top = append(p.top, strings.ReplaceAll(line, modulePrefix, ""))
		}
	}
	return p
}

// profileSection is the report's section on the missed targets' profiles,
// with, for a missed million-megaflow target, the floor its benchmark
// measures beside it; empty when nothing missed was profiled or has a
// floor.
func profileSection(samples map[string][]sample, profiles []profile) string {
	var b strings.Builder
	for _, p := range profiles {
		fmt.Fprintf(&b, "\n### %s\n\n%s\n\n```\n%s\n```\n", p.name, p.header, strings.Join(p.top, "\n"))
	}
	for _, t := range packetTargets {
		floor := strings.Replace(t.name, "MegaflowLookup1M/", "MegaflowLookup1M/floor/", 1)
		ss, fs := samples[t.name], samples[floor]
		if floor == t.name || len(ss) == 0 || len(fs) == 0 {
			continue
		}
		ns, fns := perPacketNs(ss), perPacketNs(fs)
		if ns <= t.limit {
			continue
		}
		fmt.Fprintf(&b, "\n### %s\n\nNot profiled: installing the million megaflows would fill the profile. Its floor, the same lookups reduced to one read of each key's record from memory (%s), took %.1f ns per packet, %.0f%% of the lookup's %.1f ns", t.name, floor, fns, 100*fns/ns, ns)
		if fns > t.limit {
			fmt.Fprintf(&b, " and %.0f%% of the %.0f ns target: on this host one read from memory misses the target by itself", 100*fns/t.limit, t.limit)
		}
		b.WriteString(".\n")
	}
	if b.Len() == 0 {
		return ""
	}
	return fmt.Sprintf("\n## Where the missed targets' time goes\n\nEach benchmark behind a missed time target ran once more after the rounds, alone, for %s under Go's CPU profiler (`go test -bench PATTERN -benchtime %s -cpuprofile`); its profile includes the benchmark's setup. The functions by their own (flat) time, `go tool pprof -top -nodecount %d`, with the module path left out:\n%s",
		profileTime, profileTime, profileNodes, b.String())
}
