package ovsref

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Pipeline is one file of a differential corpus: an OpenFlow pipeline
// (groups and flows) and the microflows to trace through it.
//
// The file format, line by line ("#" starts a comment line, blank lines
// are ignored):
//
//	proto: OpenFlow15         the version ovs-ofctl speaks (optional)
//	ports: p1=1 p2=2 p3=3     the ports and their OpenFlow numbers
//	                          (optional; p1=1 p2=2 p3=3 p4=4)
//	megaflow-ignore: dl_src   fields taken out of Open vSwitch's megaflow
//	                          before it is compared with ovsxdp's
//	                          (optional; the file says why)
//	groups:                   the lines that follow are groups
//	flows:                    the lines that follow are flows
//	packets:                  the lines that follow are microflows sent
//	                          as packets, in order, before the traces
//	                          (ofproto/trace -generate: their side
//	                          effects, such as learned flows, stay)
//	traces:                   the lines that follow are microflows
//
// A microflow may hold alternatives in braces, {a|b|c}; the line stands
// for every combination (the cross product of its brace groups), in
// order.
type Pipeline struct {
	Name  string // the file name without its extension
	Path  string
	Proto string
	Ports []Port
	// MegaflowIgnore are fields that Open vSwitch's megaflows match on
	// and ovsxdp's need not (megaflow-ignore:).
	MegaflowIgnore []string
	Groups         []string
	Flows          []string
	Packets        []string
	Traces         []string
}

// Tables returns how many different tables the pipeline's flows use.
func (p *Pipeline) Tables() int {
	seen := map[string]bool{}
	for _, f := range p.Flows {
		t := "0"
		match, _, _ := strings.Cut(f, "actions=")
		for _, kv := range splitTop(match) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(kv), "table="); ok {
				t = v
			}
		}
		seen[t] = true
	}
	return len(seen)
}

// DefaultPorts are the ports of a pipeline that does not name its own.
var DefaultPorts = []Port{{"p1", 1}, {"p2", 2}, {"p3", 3}, {"p4", 4}}

// LoadCorpus reads every *.pipeline file of dir, sorted by name.
func LoadCorpus(dir string) ([]*Pipeline, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.pipeline"))
	if err != nil {
		return nil, err
	}
	var ps []*Pipeline
	for _, f := range files {
		p, err := ParsePipeline(f)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// ParsePipeline reads one corpus file.
func ParsePipeline(path string) (*Pipeline, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p := &Pipeline{Name: strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)), Path: path, Ports: DefaultPorts}
	var section *[]string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%s:%d: %s", path, n, fmt.Sprintf(format, args...))
		}
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case line == "groups:":
			section = &p.Groups
		case line == "flows:":
			section = &p.Flows
		case line == "traces:":
			section = &p.Traces
		case line == "packets:":
			section = &p.Packets
		case strings.HasPrefix(line, "proto:") && section == nil:
			p.Proto = strings.TrimSpace(strings.TrimPrefix(line, "proto:"))
		case strings.HasPrefix(line, "megaflow-ignore:") && section == nil:
			p.MegaflowIgnore = strings.Fields(strings.TrimPrefix(line, "megaflow-ignore:"))
		case strings.HasPrefix(line, "ports:") && section == nil:
			p.Ports = nil
			for _, f := range strings.Fields(strings.TrimPrefix(line, "ports:")) {
				name, num, ok := strings.Cut(f, "=")
				ofport, err := strconv.Atoi(num)
				if !ok || err != nil || ofport < 1 || ofport > 0xfeff {
					return nil, bad("port %q is not NAME=OFPORT", f)
				}
				p.Ports = append(p.Ports, Port{name, ofport})
			}
		case section == nil:
			return nil, bad("%q before a groups:, flows: or traces: line", line)
		case section == &p.Traces || section == &p.Packets:
			exp, err := Expand(line)
			if err != nil {
				return nil, bad("%v", err)
			}
			*section = append(*section, exp...)
		default:
			*section = append(*section, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(p.Flows) == 0 || len(p.Traces) == 0 {
		return nil, fmt.Errorf("%s: no flows or no traces", path)
	}
	return p, nil
}

// Expand returns every string that the brace alternatives of s stand
// for: "a{1|2}b{x|y}" is a1bx, a1by, a2bx, a2by.
func Expand(s string) ([]string, error) {
	i := strings.IndexByte(s, '{')
	if i < 0 {
		if strings.ContainsAny(s, "|}") {
			return nil, fmt.Errorf("%q: | or } outside braces", s)
		}
		return []string{s}, nil
	}
	j := strings.IndexByte(s[i:], '}')
	if j < 0 {
		return nil, fmt.Errorf("%q: { without }", s)
	}
	rest, err := Expand(s[i+j+1:])
	if err != nil {
		return nil, err
	}
	var out []string
	for _, alt := range strings.Split(s[i+1:i+j], "|") {
		if strings.ContainsAny(alt, "{") {
			return nil, fmt.Errorf("%q: nested braces", s)
		}
		for _, r := range rest {
			out = append(out, s[:i]+alt+r)
		}
	}
	return out, nil
}
