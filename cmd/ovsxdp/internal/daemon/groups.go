package daemon

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
)

// The group commands, modelled on ovs-ofctl's.
func init() {
	protocols := FlagInfo{Name: "protocols", Usage: "print as ovs-ofctl -O does: OpenFlow15 (the default: bucket ids and selection methods) or OpenFlow11 to OpenFlow14"}
	register(
		&verb{VerbInfo: VerbInfo{Name: "add-group", Usage: "BR GROUP", Short: "Add a group", Min: 2, Max: 2}, changes: true, run: (*Daemon).addGroup},
		&verb{VerbInfo: VerbInfo{Name: "add-groups", Usage: "BR FILE", Short: "Add the groups of FILE (one per line, # comments; - is stdin)", Min: 1, Max: 1, File: true}, changes: true, run: (*Daemon).addGroups},
		&verb{VerbInfo: VerbInfo{Name: "mod-group", Usage: "BR GROUP", Short: "Change a group's type and buckets", Min: 2, Max: 2, Flags: []FlagInfo{
			{Name: "may-create", Bool: true, Usage: "add the group if it does not exist"},
		}}, changes: true, run: (*Daemon).modGroup},
		&verb{VerbInfo: VerbInfo{Name: "del-groups", Usage: "BR [group_id=ID]", Short: "Delete a group (all without one) and the flows that use it", Min: 1, Max: 2}, changes: true, run: (*Daemon).delGroups},
		&verb{VerbInfo: VerbInfo{Name: "dump-groups", Usage: "BR [ID]", Short: "Print the groups", Min: 1, Max: 2, Flags: []FlagInfo{protocols}}, run: (*Daemon).dumpGroups},
		&verb{VerbInfo: VerbInfo{Name: "dump-group-stats", Usage: "BR [group_id=ID]", Short: "Print the groups' counters", Min: 1, Max: 2}, run: (*Daemon).dumpGroupStats},
	)
}

func (d *Daemon) addGroup(c *call) (string, error) {
	b, err := d.bridgeLocked(c.args[0])
	if err != nil {
		return "", err
	}
	g, err := b.parser().ParseGroup(c.args[1], flow.GroupCmdAdd)
	if err != nil {
		return "", err
	}
	return "", b.dp.Table().AddGroups([]*flow.Group{g})
}

// addGroups adds the groups of a file, one per line, skipping blank lines
// and comments (#). Every line is parsed before any group is added, and a
// group id in use refuses the whole file, so a file with an error adds
// nothing; a parse error names the line.
func (d *Daemon) addGroups(c *call) (string, error) {
	b, err := d.bridgeLocked(c.args[0])
	if err != nil {
		return "", err
	}
	gs, err := parseGroupLines(b.parser(), c.input)
	if err != nil {
		return "", err
	}
	return "", b.dp.Table().AddGroups(gs)
}

// parseGroupLines parses add-groups input: one group a line, "#" comments.
func parseGroupLines(p *flow.Parser, lines []string) ([]*flow.Group, error) {
	var gs []*flow.Group
	for i, line := range lines {
		s := strings.TrimSpace(line)
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		g, err := p.ParseGroup(s, flow.GroupCmdAdd)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		gs = append(gs, g)
	}
	return gs, nil
}

func (d *Daemon) modGroup(c *call) (string, error) {
	b, err := d.bridgeLocked(c.args[0])
	if err != nil {
		return "", err
	}
	g, err := b.parser().ParseGroup(c.args[1], flow.GroupCmdModify)
	if err != nil {
		return "", err
	}
	return "", b.dp.Table().ModifyGroup(g, c.boolFlag("may-create"))
}

// groupSelection parses the group a del-groups or dump command selects:
// nothing (every group), group_id=ID or group_id=all, or (as ovs-ofctl's
// dump-groups takes it) a bare ID.
func groupSelection(p *flow.Parser, args []string) (uint32, error) {
	if len(args) < 2 {
		return flow.GroupAllID, nil
	}
	s := strings.TrimSpace(args[1])
	if s == "all" {
		return flow.GroupAllID, nil
	}
	if n, err := strconv.ParseUint(s, 0, 32); err == nil {
		if n > flow.GroupMax {
			return 0, fmt.Errorf("invalid group id %d (0 to %d)", n, uint32(flow.GroupMax))
		}
		return uint32(n), nil
	}
	g, err := p.ParseGroup(s, flow.GroupCmdDelete)
	if err != nil {
		return 0, err
	}
	return g.ID, nil
}

func (d *Daemon) delGroups(c *call) (string, error) {
	b, err := d.bridgeLocked(c.args[0])
	if err != nil {
		return "", err
	}
	id, err := groupSelection(b.parser(), c.args)
	if err != nil {
		return "", err
	}
	b.dp.Table().DeleteGroups(id)
	return "", nil
}

func (d *Daemon) dumpGroups(c *call) (string, error) {
	b, err := d.bridgeLocked(c.args[0])
	if err != nil {
		return "", err
	}
	dialect := flow.GroupOF15
	if v, ok := c.flag("protocols"); ok {
		switch v {
		case "OpenFlow15":
		case "OpenFlow11", "OpenFlow12", "OpenFlow13", "OpenFlow14":
			dialect = flow.GroupOF13
		default:
			return "", fmt.Errorf("--protocols=%s: groups need OpenFlow11 to OpenFlow15", v)
		}
	}
	id, err := groupSelection(b.parser(), c.args)
	if err != nil {
		return "", err
	}
	var s strings.Builder
	for _, g := range b.dp.Table().Groups() {
		if id == flow.GroupAllID || g.ID == id {
			s.WriteString(" " + flow.FormatGroup(&g.Group, dialect) + "\n")
		}
	}
	return s.String(), nil
}

func (d *Daemon) dumpGroupStats(c *call) (string, error) {
	b, err := d.bridgeLocked(c.args[0])
	if err != nil {
		return "", err
	}
	id, err := groupSelection(b.parser(), c.args)
	if err != nil {
		return "", err
	}
	snap := b.dp.Table().Snapshot()
	now := time.Now()
	var s strings.Builder
	for _, g := range snap.Groups() {
		if id == flow.GroupAllID || g.ID == id {
			s.WriteString(" " + flow.FormatGroupStats(g, snap.GroupRefs(g.ID), now) + "\n")
		}
	}
	return s.String(), nil
}

// restoreGroups adds the groups of a state file to a bridge.
func restoreGroups(b *bridge, lines []string) error {
	gs, err := parseGroupLines(b.parser(), lines)
	if err != nil {
		return fmt.Errorf("groups: %w", err)
	}
	if len(gs) == 0 {
		return nil
	}
	return b.dp.Table().AddGroups(gs)
}
