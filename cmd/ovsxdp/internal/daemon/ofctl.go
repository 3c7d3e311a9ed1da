package daemon

import (
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ovsxdp/ovsxdp/datapath"
	"github.com/ovsxdp/ovsxdp/flow"
)

// The commands modelled on ovs-ofctl.
func init() {
	strict := FlagInfo{Name: "strict", Bool: true, Usage: "match the flow's match and priority exactly"}
	addProtocols := FlagInfo{Name: "protocols", Shorthand: "O", Usage: "add as ovs-ofctl -O does: OpenFlow10 to OpenFlow15 (a comma-separated list: its latest); " +
		"an OpenFlow 1.0 or 1.1 add (the default) resets the counters of a flow it replaces (reset_counts), a later one does not"}
	register(
		&verb{VerbInfo: VerbInfo{Name: "add-flow", Usage: "BR FLOW", Short: "Add a flow", Min: 2, Max: 2, Flags: []FlagInfo{addProtocols}}, changes: true, run: (*Daemon).addFlow},
		&verb{VerbInfo: VerbInfo{Name: "add-flows", Usage: "BR FILE", Short: "Add the flows of FILE (one per line, # comments; - is stdin)", Min: 1, Max: 1, File: true,
			Flags: []FlagInfo{addProtocols}}, changes: true, run: (*Daemon).addFlows},
		&verb{VerbInfo: VerbInfo{Name: "mod-flows", Usage: "BR FLOW", Short: "Change the actions of matching flows", Min: 2, Max: 2, Flags: []FlagInfo{strict}}, changes: true, run: (*Daemon).modFlows},
		&verb{VerbInfo: VerbInfo{Name: "del-flows", Usage: "BR [FLOW]", Short: "Delete matching flows (all without FLOW)", Min: 1, Max: 2, Flags: []FlagInfo{strict}}, changes: true, run: (*Daemon).delFlows},
		&verb{VerbInfo: VerbInfo{Name: "dump-flows", Usage: "BR [FLOW]", Short: "Print matching flows", Min: 1, Max: 2, Flags: []FlagInfo{
			{Name: "no-stats", Bool: true, Usage: "leave out the statistics"},
			{Name: "protocols", Shorthand: "O", Usage: "spell the flows as ovs-ofctl -O does: OpenFlow10, or OpenFlow12 to OpenFlow14 (a comma-separated list: its latest); " +
				"without it, OpenFlow 1.3 if a flow wrote goto_table, else OpenFlow 1.0"},
		}}, run: (*Daemon).dumpFlows},
		&verb{VerbInfo: VerbInfo{Name: "dump-ports", Usage: "BR [PORT]", Short: "Print port statistics and drops by reason", Min: 1, Max: 2}, run: (*Daemon).dumpPorts},
	)
}

func (d *Daemon) addFlow(c *call) (string, error) {
	b, err := d.bridgeLocked(c.args[0])
	if err != nil {
		return "", err
	}
	flags, err := addFlags(c)
	if err != nil {
		return "", err
	}
	f, err := b.parser().ParseFlow(c.args[1], flow.CmdAdd)
	if err != nil {
		return "", err
	}
	f.Flags |= flags
	if err := b.dp.Table().Add(f); err != nil {
		return "", err
	}
	return "", nil
}

// addFlags are the flags every add of add-flow and add-flows has, from
// the OpenFlow version ovs-ofctl would send it in (--protocols, the
// latest of its list; OpenFlow 1.0 without): every OpenFlow 1.0 and 1.1
// add resets counters (reset_counts, as an OpenFlow 1.3 dump of the flow
// shows), a later one does not.
func addFlags(c *call) (flow.FlowFlags, error) {
	list, ok := c.flag("protocols")
	if !ok {
		return flow.FlagResetCounts, nil
	}
	latest := ""
	for _, v := range strings.Split(list, ",") {
		switch v = strings.TrimSpace(v); v {
		case "OpenFlow10", "OpenFlow11", "OpenFlow12", "OpenFlow13", "OpenFlow14", "OpenFlow15":
			latest = max(latest, v)
		default:
			return 0, fmt.Errorf("--protocols=%s: %w: %q (OpenFlow10 to OpenFlow15)", flow.Clipped(list), ErrProtocol, flow.Clipped(v))
		}
	}
	if latest <= "OpenFlow11" {
		return flow.FlagResetCounts, nil
	}
	return 0, nil
}

// addFlows adds the flows of a file, one per line, skipping blank lines and
// comments (#). Every line is parsed before any flow is added, so a file
// with an error adds nothing; the error names the line.
func (d *Daemon) addFlows(c *call) (string, error) {
	b, err := d.bridgeLocked(c.args[0])
	if err != nil {
		return "", err
	}
	flags, err := addFlags(c)
	if err != nil {
		return "", err
	}
	batch, lines, err := parseFlowLines(b.parser(), b.dp.Table(), c.input, flags)
	if err != nil {
		return "", err
	}
	if err := b.dp.Table().AddBatch(batch); err != nil {
		var ae *flow.AddError
		if errors.As(err, &ae) {
			return "", fmt.Errorf("line %d: %w", lines[ae.Index], err)
		}
		return "", err
	}
	return "", nil
}

// parseLinesPerWorker is the fewest lines of a file worth a goroutine of
// their own.
const parseLinesPerWorker = 4096

// parseFlowLines parses the flows of input, one per line, skipping blank
// lines and comments, into a batch for t, each with flags added to its
// own, and returns the line of each flow of the batch. The flows go straight into the form the table keeps
// them in: 100,000 of them are never held as Flows, which carry two whole
// keys each. A long file is parsed in parts, one per CPU, each into a
// batch of its own, and the batches are joined in order. The error is the
// first line's (by line number) that does not parse or names a group that
// does not exist.
func parseFlowLines(p *flow.Parser, t *flow.Table, input []string, flags flow.FlowFlags) (*flow.FlowBatch, []int32, error) {
	workers := min(runtime.GOMAXPROCS(0), max(1, len(input)/parseLinesPerWorker))
	type part struct {
		batch flow.FlowBatch
		lines []int32
		err   error
	}
	parts := make([]part, workers)
	var wg sync.WaitGroup
	for w := range parts {
		lo, hi := w*len(input)/workers, (w+1)*len(input)/workers
		pt := &parts[w]
		wg.Go(func() {
			pt.batch.Grow(hi - lo)
			pt.lines = make([]int32, 0, hi-lo)
			f := new(flow.Flow) // the batch copies it (all but the actions)
			for i := lo; i < hi; i++ {
				s := strings.TrimSpace(input[i])
				if s == "" || strings.HasPrefix(s, "#") {
					continue
				}
				err := p.ParseFlowTo(f, s, flow.CmdAdd)
				if err == nil {
					f.Flags |= flags
					err = t.CheckGroups(f)
				}
				if err != nil {
					pt.err = fmt.Errorf("line %d: %w", i+1, err)
					return
				}
				pt.batch.Add(f)
				pt.lines = append(pt.lines, int32(i+1))
			}
		})
	}
	wg.Wait()
	for i := range parts {
		if parts[i].err != nil {
			return nil, nil, parts[i].err
		}
	}
	batch, lines := &parts[0].batch, parts[0].lines
	for i := range parts[1:] {
		batch.Append(&parts[1+i].batch)
		lines = append(lines, parts[1+i].lines...)
	}
	return batch, lines, nil
}

func (d *Daemon) modFlows(c *call) (string, error) {
	b, err := d.bridgeLocked(c.args[0])
	if err != nil {
		return "", err
	}
	f, err := b.parser().ParseFlow(c.args[1], flow.CmdModify)
	if err != nil {
		return "", err
	}
	if err := b.dp.Table().CheckGroups(f); err != nil {
		return "", err
	}
	b.dp.Table().Modify(f, c.boolFlag("strict"))
	return "", nil
}

func (d *Daemon) delFlows(c *call) (string, error) {
	b, err := d.bridgeLocked(c.args[0])
	if err != nil {
		return "", err
	}
	s := ""
	if len(c.args) > 1 {
		s = c.args[1]
	}
	f, err := parseSelection(b.parser(), s, c.boolFlag("strict"))
	if err != nil {
		return "", err
	}
	b.dp.Table().Delete(f, c.boolFlag("strict"))
	return "", nil
}

// parseSelection parses the flow that del-flows selects with. A strict
// selection names the exact match and priority; the flow parser refuses
// priority for del-flows, so a strict one is parsed as a mod-flows flow
// with a placeholder action list (a flow with actions is refused first).
func parseSelection(p *flow.Parser, s string, strict bool) (*flow.Flow, error) {
	if !strict || strings.Contains(s, "action") {
		return p.ParseFlow(s, flow.CmdDelete)
	}
	sep := ","
	if strings.TrimSpace(s) == "" {
		sep = ""
	}
	return p.ParseFlow(s+sep+"actions=drop", flow.CmdModify)
}

func (d *Daemon) dumpFlows(c *call) (string, error) {
	b, err := d.bridgeLocked(c.args[0])
	if err != nil {
		return "", err
	}
	var sel *flow.Flow
	if len(c.args) > 1 && strings.TrimSpace(c.args[1]) != "" {
		if sel, err = b.parser().ParseFlow(c.args[1], flow.CmdDelete); err != nil {
			return "", err
		}
	}
	stats := !c.boolFlag("no-stats")
	now := time.Now()
	var s strings.Builder
	dialect := flow.DumpDialect(b.dp.Table().Dump(nil))
	if v, ok := c.flag("protocols"); ok {
		if dialect, err = flowDialect(v); err != nil {
			return "", err
		}
	}
	for _, r := range b.dp.Table().Dump(sel) {
		s.WriteString(formatRuleIn(dialect, r, now, stats))
		s.WriteByte('\n')
	}
	return s.String(), nil
}

// ErrProtocol is the error for an OpenFlow version that a dump cannot be
// spelled in.
var ErrProtocol = errors.New("unsupported OpenFlow version")

// flowDialect returns the spelling of flows in the OpenFlow versions
// named as ovs-ofctl's -O names them: a comma-separated list, of which
// the latest is the one a connection would agree on. OpenFlow 1.1 (no
// set_field) and 1.5 (every load a set_field) spell otherwise and are
// refused.
func flowDialect(list string) (flow.Dialect, error) {
	latest := ""
	for _, v := range strings.Split(list, ",") {
		switch v = strings.TrimSpace(v); v {
		case "OpenFlow10", "OpenFlow12", "OpenFlow13", "OpenFlow14":
			latest = max(latest, v)
		case "OpenFlow11", "OpenFlow15":
			return 0, fmt.Errorf("--protocols=%s: %w: dump-flows spells flows in OpenFlow10 or OpenFlow12 to OpenFlow14, not %s", flow.Clipped(list), ErrProtocol, v)
		default:
			return 0, fmt.Errorf("--protocols=%s: %w: %q (OpenFlow10, OpenFlow12, OpenFlow13 or OpenFlow14)", flow.Clipped(list), ErrProtocol, flow.Clipped(v))
		}
	}
	if latest == "OpenFlow10" {
		return flow.OpenFlow10, nil
	}
	return flow.OpenFlow13, nil
}

func (d *Daemon) dumpPorts(c *call) (string, error) {
	b, err := d.bridgeLocked(c.args[0])
	if err != nil {
		return "", err
	}
	ports := b.dp.Ports()
	if len(c.args) > 1 {
		p, err := b.lookupPort(c.args[1])
		if err != nil {
			return "", err
		}
		ports = []*datapath.Port{p}
	}
	var s strings.Builder
	for _, p := range ports {
		s.WriteString(formatPortStats(p.Stats(), p.VPort().Stats()))
	}
	// The ports removed so far keep their place in the bridge's ledger.
	if r := b.dp.RemovedStats(); len(c.args) == 1 && r.Ports > 0 {
		s.WriteString(formatRemovedStats(r))
	}
	return s.String(), nil
}

// lookupPort finds a port by name, OpenFlow number or LOCAL.
func (b *bridge) lookupPort(s string) (*datapath.Port, error) {
	if p, ok := b.dp.Port(s); ok {
		return p, nil
	}
	if strings.EqualFold(s, "LOCAL") {
		s = strconv.Itoa(flow.PortLocal)
	}
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		if p, ok := b.dp.PortByOF(uint32(n)); ok {
			return p, nil
		}
	}
	return nil, fmt.Errorf("bridge %s: no port %q", b.name, s)
}
