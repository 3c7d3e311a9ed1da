package main

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSplitJobs(t *testing.T) {
	tests := []struct {
		name      string
		inDrivers []string
		inProcs   int
		inCount   int
		wantJobs  []job
	}{
		{
			name: "one driver, three processes", inDrivers: []string{"ovs"}, inProcs: 3, inCount: 10,
			wantJobs: []job{{"ovs", 1, 3, 4}, {"ovs", 2, 3, 3}, {"ovs", 3, 3, 3}},
		},
		{
			name: "four drivers, four processes", inDrivers: []string{"a", "b", "c", "d"}, inProcs: 4, inCount: 5,
			wantJobs: []job{{"a", 1, 1, 5}, {"b", 1, 1, 5}, {"c", 1, 1, 5}, {"d", 1, 1, 5}},
		},
		{
			name: "two drivers, five processes: the first gets the odd one", inDrivers: []string{"a", "b"}, inProcs: 5, inCount: 6,
			wantJobs: []job{{"a", 1, 3, 2}, {"a", 2, 3, 2}, {"a", 3, 3, 2}, {"b", 1, 2, 3}, {"b", 2, 2, 3}},
		},
		{
			name: "fewer processes than drivers: a job each", inDrivers: []string{"a", "b", "c"}, inProcs: 2, inCount: 7,
			wantJobs: []job{{"a", 1, 1, 7}, {"b", 1, 1, 7}, {"c", 1, 1, 7}},
		},
		{
			name: "more processes than schedules", inDrivers: []string{"a"}, inProcs: 4, inCount: 2,
			wantJobs: []job{{"a", 1, 4, 1}, {"a", 2, 4, 1}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := splitJobs(tc.inDrivers, tc.inProcs, 1, 1, tc.inCount)
			if !slices.Equal(got, tc.wantJobs) {
				t.Fatalf("got %v, want %v", got, tc.wantJobs)
			}
			// Every seed of every driver exactly once.
			for _, d := range tc.inDrivers {
				var seeds []uint64
				for _, j := range got {
					if j.Driver != d {
						continue
					}
					for i := range j.Count {
						seeds = append(seeds, j.Seed+uint64(i)*j.Stride)
					}
				}
				slices.Sort(seeds)
				for i, s := range seeds {
					if s != uint64(i+1) || len(seeds) != tc.inCount {
						t.Fatalf("driver %s runs seeds %v, want 1..%d", d, seeds, tc.inCount)
					}
				}
			}
		})
	}
}

// childStats is what a child that ran seeds of driver found.
func childStats(driver string, seeds []uint64, violations map[string]int, firstSeeds map[string]uint64, recovery ...time.Duration) *DriverStats {
	d := (&Report{}).driver(driver)
	d.Seeds = seeds
	d.Schedules = len(seeds)
	d.Steps, d.Done, d.Checks = 8*len(seeds), 7*len(seeds), 40*len(seeds)
	d.Refused = len(seeds)
	d.RefusedOps[OpTxQueues] = len(seeds)
	for k, v := range violations {
		d.Violations[k] = v
		d.Failing++
	}
	d.FirstSeeds = firstSeeds
	d.Recovery = recovery
	d.Elapsed = time.Duration(len(seeds)) * 10 * time.Second
	d.Phases[PhaseRecovery] = time.Duration(len(seeds)) * 6 * time.Second
	return d
}

// TestMergeChildren: the results of the child processes, through their
// JSON files, make one report whose totals add up, with a row per
// process and the first seed of each kind the lowest of them.
func TestMergeChildren(t *testing.T) {
	dir := t.TempDir()
	children := []*childReport{
		{Drivers: []*DriverStats{childStats("ovs", []uint64{1, 3, 5}, map[string]int{KindRecovery: 4, KindXSKLeak: 1},
			map[string]uint64{KindRecovery: 3, KindXSKLeak: 5}, 10*time.Millisecond, 30*time.Millisecond)}},
		{Drivers: []*DriverStats{childStats("ovs", []uint64{2, 4}, map[string]int{KindRecovery: 2},
			map[string]uint64{KindRecovery: 2}, 20*time.Millisecond)}, Failed: []string{"ovs seed 2: recovery"}},
		{Drivers: []*DriverStats{childStats("bridge", []uint64{1, 2, 3, 4, 5}, nil, map[string]uint64{}, time.Millisecond)}},
	}
	var read []*childReport
	for i, c := range children {
		path := filepath.Join(dir, "child.json")
		if err := writeChild(path, c); err != nil {
			t.Fatal(err)
		}
		got, err := readChild(path)
		if err != nil {
			t.Fatalf("child %d: %v", i, err)
		}
		read = append(read, got)
	}
	read = append(read, nil) // a child that handed nothing over
	rep := &Report{Command: "go run ./bench/chaos -procs 3", Started: time.Now(), Steps: 8, Procs: 3}
	rep.merge(read)

	if len(rep.Drivers) != 2 || rep.Drivers[0].Name != "ovs" || rep.Drivers[1].Name != "bridge" {
		t.Fatalf("drivers %v, want ovs and bridge", rep.Drivers)
	}
	ovs := rep.Drivers[0]
	if ovs.Schedules != 5 || ovs.Failing != 3 || ovs.Steps != 40 || ovs.Checks != 200 || ovs.RefusedOps[OpTxQueues] != 5 {
		t.Errorf("ovs totals: %d schedules, %d failing, %d steps, %d checks, refused %v", ovs.Schedules, ovs.Failing, ovs.Steps, ovs.Checks, ovs.RefusedOps)
	}
	if ovs.Violations[KindRecovery] != 6 || ovs.Violations[KindXSKLeak] != 1 || ovs.violations() != 7 {
		t.Errorf("ovs violations %v, want recovery 6, xsk-leak 1", ovs.Violations)
	}
	if ovs.FirstSeeds[KindRecovery] != 2 || ovs.FirstSeeds[KindXSKLeak] != 5 {
		t.Errorf("first seeds %v, want recovery 2, xsk-leak 5", ovs.FirstSeeds)
	}
	if med, mx := ovs.recovery(); med != 20*time.Millisecond || mx != 30*time.Millisecond {
		t.Errorf("recovery median %v, max %v; want 20ms, 30ms", med, mx)
	}
	if got := seedsText(ovs.Seeds); got != "1–5" {
		t.Errorf("ovs seeds %q, want 1–5", got)
	}
	if ovs.Phases[PhaseRecovery] != 30*time.Second || ovs.Elapsed != 50*time.Second {
		t.Errorf("ovs phases %v, elapsed %v", ovs.Phases, ovs.Elapsed)
	}

	if err := rep.Write(dir, "chaos"); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, "chaos.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| ovs (seeds 1, 3, 5) | 3 | 2 |",
		"| ovs (seeds 2, 4) | 2 | 1 |",
		"| ovs, all 2 processes | 5 | 3 | 40 | 35 | 5 | 0 | 200 | 7 | 20 / 30 |",
		"| bridge | 5 | 0 |",
		"violations by kind: recovery 6 (first seed 2), xsk-leak 1 (first seed 5)",
		"- seeds run: 1–5",
		"- process 2: seeds 2, 4, 2 schedules in 0s; time per schedule 10.00 s",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("chaos.md lacks %q:\n%s", want, md)
		}
	}
	f, err := os.Open(filepath.Join(dir, "chaos.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := func(name string) int { return slices.Index(recs[0], name) }
	var rows []string
	for _, r := range recs[1:] {
		rows = append(rows, strings.Join([]string{r[0], r[col("schedules")], r[col("violations")], r[col("processes")], r[col("seeds")]}, " "))
	}
	want := []string{"ovs 3 5 1 1, 3, 5", "ovs 2 2 1 2, 4", "ovs 5 7 2 1–5", "bridge 5 0 1 1–5"}
	if !slices.Equal(rows, want) {
		t.Errorf("csv rows (driver schedules violations processes seeds):\n%q\nwant\n%q", rows, want)
	}
}

func TestSeedsText(t *testing.T) {
	tests := []struct {
		in   []uint64
		want string
	}{
		{nil, "none"},
		{[]uint64{7}, "7"},
		{[]uint64{3, 1, 2, 5, 6, 9}, "1–3, 5–6, 9"},
		{[]uint64{1, 7, 13, 19}, "1, 7, … 19 (every 6th)"},
		{[]uint64{1, 3, 5}, "1, 3, 5"},
		{[]uint64{2, 4}, "2, 4"},
	}
	for _, tc := range tests {
		if got := seedsText(tc.in); got != tc.want {
			t.Errorf("seedsText(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
