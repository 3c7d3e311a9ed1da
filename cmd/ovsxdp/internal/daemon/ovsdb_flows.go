package daemon

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"

	"github.com/ovsxdp/ovsxdp/flow"
)

// The flows file: with the database as the configuration, the bridges and
// ports come back from ovsdb-server after a restart, but the OpenFlow
// flows and groups (ovs-ofctl's, a controller's) live only in the daemon.
// Open vSwitch's restart (ovs-ctl restart) saves them with ovs-save and
// restores them once the bridges are up again; ovsxdp keeps them itself,
// in Config.FlowsPath, saved as the state file is (coalesced, atomic,
// locked), and restores a bridge's groups and flows when the database
// brings the bridge up, before its ports are added. A bridge that the
// database no longer has drops its saved flows.

// flowsVersion is the version of the flows file's format.
const flowsVersion = 1

// flowsFile is the flows file.
type flowsFile struct {
	Version int            `json:"version"`
	Bridges []*savedBridge `json:"bridges"`
}

// savedBridge is one bridge's flows and groups, in ovs-ofctl syntax.
type savedBridge struct {
	Name string `json:"name"`
	// Groups are restored before the flows, which may name them.
	Groups []string `json:"groups,omitempty"`
	// Flows are in dump-flows order.
	Flows []string `json:"flows"`
}

// loadFlows reads the flows file at path, by bridge name. A missing file
// is none; a file that is not a valid flows file is an error naming the
// file, the place and the problem.
func loadFlows(path string) (map[string]*savedBridge, error) {
	out := map[string]*savedBridge{}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("flows file %s: %w", path, err)
	}
	var ff flowsFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	err = dec.Decode(&ff)
	if err == nil && dec.More() {
		err = errors.New("data after the flows object")
	}
	if err != nil {
		return nil, fmt.Errorf("flows file %s is corrupt: %s (the daemon does not start over it; fix it or move it away)", path, jsonErrorPlace(b, err))
	}
	if ff.Version != flowsVersion {
		return nil, fmt.Errorf("flows file %s: version %d, this daemon reads version %d", path, ff.Version, flowsVersion)
	}
	for i, sb := range ff.Bridges {
		if sb == nil || sb.Name == "" {
			return nil, fmt.Errorf("flows file %s is corrupt: bridge %d has no name (fix it or move it away)", path, i+1)
		}
		out[sb.Name] = sb
	}
	return out, nil
}

// flowsEntry is a bridge of the flows file: a running bridge's rules
// (immutable, formatted as they are written) or a saved bridge's flows.
type flowsEntry struct {
	name   string
	groups []string
	rules  []*flow.Rule // a running bridge's
	flows  []string     // a saved bridge's
}

// saveFlowsLocked writes each bridge's flows and groups to the flows file
// atomically, with those of the saved bridges that the database has not
// brought up yet. d.mu must be held.
func (d *Daemon) saveFlowsLocked() error {
	return d.saver.write(d.takeFlowsLocked(), 1)
}

// takeFlowsLocked takes what saveFlowsLocked writes, to be written with
// d.mu held or not (stateSaver). d.mu must be held.
func (d *Daemon) takeFlowsLocked() pendingSave {
	var es []flowsEntry
	for _, b := range d.sortedLocked() {
		e := flowsEntry{name: b.name, rules: b.dp.Table().Dump(nil)}
		for _, g := range b.dp.Table().Groups() {
			e.groups = append(e.groups, flow.FormatGroup(&g.Group, flow.GroupOF15))
		}
		es = append(es, e)
	}
	for _, name := range slices.Sorted(maps.Keys(d.savedFlows)) {
		if d.bridges[name] != nil {
			continue
		}
		sb := d.savedFlows[name]
		es = append(es, flowsEntry{name: name, groups: sb.Groups, flows: sb.Flows})
	}
	path := d.cfg.FlowsPath
	return d.saver.takeLocked(func(int) error { return writeFlowsFile(path, es) })
}

// writeFlowsFile writes the flows file at path with the bridges es.
func writeFlowsFile(path string, es []flowsEntry) error {
	return writeFileAtomic(path, func(w *bufio.Writer) error {
		fmt.Fprintf(w, "{\n  \"version\": %d,\n  \"bridges\": [", flowsVersion)
		str := func(s string) {
			b, _ := json.Marshal(s)
			w.Write(b)
		}
		for i, e := range es {
			if i > 0 {
				w.WriteByte(',')
			}
			w.WriteString("\n    {\n      \"name\": ")
			str(e.name)
			if len(e.groups) > 0 {
				w.WriteString(",\n      \"groups\": [")
				for j, g := range e.groups {
					if j > 0 {
						w.WriteByte(',')
					}
					w.WriteString("\n        ")
					str(g)
				}
				w.WriteString("\n      ]")
			}
			w.WriteString(",\n      \"flows\": [")
			n := 0
			line := func(s string) {
				if n > 0 {
					w.WriteByte(',')
				}
				n++
				w.WriteString("\n        ")
				str(s)
			}
			// Formatted one at a time as they are written: 100,000
			// flows are never held whole as strings.
			f := new(flow.Flow) // one for every flow: it is 700 bytes
			for _, r := range e.rules {
				*f = r.Flow()
				line(flow.FormatFlowAsWritten(f))
			}
			for _, s := range e.flows {
				line(s)
			}
			if n > 0 {
				w.WriteString("\n      ")
			}
			w.WriteString("]\n    }")
		}
		if len(es) > 0 {
			w.WriteString("\n  ")
		}
		w.WriteString("]\n}\n")
		return nil
	})
}

// restoreFlowsLocked gives b, just brought up from the database, the
// groups and flows saved for it, if any, and reports whether it did. A
// saved bridge that cannot be restored is logged and its saved flows are
// written aside, to FLOWSPATH.BRIDGE.unrestored. d.mu must be held.
func (d *Daemon) restoreFlowsLocked(b *bridge) bool {
	sb := d.savedFlows[b.name]
	if sb == nil {
		return false
	}
	delete(d.savedFlows, b.name)
	err := restoreGroups(b, sb.Groups)
	if err == nil {
		fs := make([]flow.Flow, 0, len(sb.Flows))
		for j, s := range sb.Flows {
			f, perr := b.parser().ParseFlow(s, flow.CmdAdd)
			if perr != nil {
				err = fmt.Errorf("flow %d: %w", j+1, perr)
				break
			}
			fs = append(fs, *f)
		}
		if err == nil {
			err = b.dp.Table().AddFlows(fs)
		}
	}
	if err != nil {
		// The next save no longer has them: they are kept aside.
		kept := d.cfg.FlowsPath + "." + b.name + ".unrestored"
		if werr := writeFileAtomic(kept, func(w *bufio.Writer) error {
			return json.NewEncoder(w).Encode(sb)
		}); werr != nil {
			kept = "(not kept: " + werr.Error() + ")"
		}
		d.log.Error("ovsdb: cannot restore the bridge's saved flows", "bridge", b.name, "file", d.cfg.FlowsPath, "err", err, "kept_in", kept)
		return false
	}
	d.log.Info("ovsdb: saved flows restored", "bridge", b.name, "groups", len(sb.Groups), "flows", len(sb.Flows))
	return true
}

// dropSavedFlowsLocked forgets the saved flows of the bridges that the
// database does not have. d.mu must be held.
func (d *Daemon) dropSavedFlowsLocked(wanted map[string]bool) {
	for name := range d.savedFlows {
		if !wanted[name] {
			delete(d.savedFlows, name)
			d.log.Info("ovsdb: saved flows dropped: the bridge is not in the database", "bridge", name)
			d.markDirtyLocked()
		}
	}
}
