package daemon

import (
	"cmp"
	"maps"
	"slices"
	"time"

	"github.com/ovsxdp/ovsxdp/cmd/ovsxdp/internal/ovsdb"
	"github.com/ovsxdp/ovsxdp/flow"
)

// Controllers from ovsdb-server: each ovsxdp bridge's controller column
// (Controller rows: target, inactivity_probe, max_backoff) and fail_mode,
// as ovs-vsctl set-controller and set-fail-mode write them; the daemon
// writes back each Controller's is_connected, role and status as
// ovs-vswitchd does.

// controllerColumns are the monitored Controller columns.
var controllerColumns = []string{"target", "inactivity_probe", "max_backoff", "is_connected", "status", "role"}

func init() {
	ovsdbTables["Bridge"] = append(ovsdbTables["Bridge"], "controller", "fail_mode")
	ovsdbTables["Controller"] = controllerColumns
}

// wantedControllers reads each ovsxdp bridge's controller configuration
// and the Controller rows it names.
func wantedControllers(snap map[string]map[ovsdb.UUID]ovsdb.Row, bridges map[string]ovsdb.UUID) (map[string]ctlConfig, map[string][]ovsdb.Row) {
	cfgs := map[string]ctlConfig{}
	rows := map[string][]ovsdb.Row{}
	for name, bu := range bridges {
		br := snap["Bridge"][bu]
		if br == nil {
			continue
		}
		var cfg ctlConfig
		if m := br.String("fail_mode"); m == failSecure || m == failStandalone {
			cfg.FailMode = m
		}
		for _, cu := range br.Set("controller") {
			row := snap["Controller"][asUUID(cu)]
			if row == nil {
				continue
			}
			spec := ctlSpec{Target: row.String("target"), Probe: defaultProbe, MaxBackoff: defaultMaxBackoff}
			if ms, ok := row.Int("inactivity_probe"); ok {
				spec.Probe = 0
				if ms > 0 {
					spec.Probe = max(time.Duration(ms)*time.Millisecond, minProbe)
				}
			}
			if ms, ok := row.Int("max_backoff"); ok {
				spec.MaxBackoff = max(time.Duration(ms)*time.Millisecond, minBackoff)
			}
			cfg.Specs = append(cfg.Specs, spec)
			rows[name] = append(rows[name], row)
		}
		slices.SortFunc(cfg.Specs, func(a, b ctlSpec) int {
			if a.Target < b.Target {
				return -1
			}
			if a.Target > b.Target {
				return 1
			}
			return 0
		})
		cfgs[name] = cfg
	}
	return cfgs, rows
}

// applyControllers gives the bridges the controllers the database names,
// and flushes a bridge's tables where Open vSwitch's would: when it goes
// from no controllers to some or back, or when its fail mode changes
// while it has none. The bridges apply has just created (created) got
// their first flows there.
func (s *ovsdbSync) applyControllers(cfgs map[string]ctlConfig, created map[string]bool) {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	for _, name := range slices.Sorted(maps.Keys(cfgs)) {
		b := s.d.bridges[name]
		if b == nil {
			continue
		}
		cfg := cfgs[name]
		old := s.d.controllersLocked(name)
		s.d.setControllersLocked(name, cfg)
		if !created[name] && flushes(old, cfg) {
			s.flushLocked(b, cfg)
		}
	}
}

// flushes reports whether Open vSwitch flushes a bridge's tables when its
// controller configuration goes from old to cfg (connmgr_set_controllers
// and connmgr_set_fail_mode): when it gets its first controller or loses
// its last, or when its fail mode changes while it has none.
func flushes(old, cfg ctlConfig) bool {
	had, has := len(old.Specs) > 0, len(cfg.Specs) > 0
	return had != has || (!has && (old.FailMode == failSecure) != (cfg.FailMode == failSecure))
}

// flushLocked deletes every flow and group of b, and then gives it the
// flow initialFlowLocked does, as Open vSwitch's ofproto_flush_flows and
// connmgr_flushed do. d.mu must be held.
func (s *ovsdbSync) flushLocked(b *bridge, cfg ctlConfig) {
	t := b.dp.Table()
	all, err := b.parser().ParseFlow("", flow.CmdDelete)
	if err != nil {
		s.log.Error("ovsdb: cannot flush the bridge's flows", "bridge", b.name, "err", err)
		return
	}
	t.Delete(all, false)
	t.DeleteGroups(flow.GroupAllID)
	s.log.Info("ovsdb: flows and groups flushed", "bridge", b.name, "controllers", len(cfg.Specs), "fail_mode", cmp.Or(cfg.FailMode, failStandalone))
	s.initialFlowLocked(b, cfg)
	s.d.markDirtyLocked() // the flows file follows
}

// initialFlowLocked gives b, when it has no controller and is in
// standalone mode, the flow priority=0,actions=NORMAL, as Open vSwitch
// does when it creates such a bridge (ovs-vsctl add-br) or flushes its
// tables; a bridge in secure mode (as ovn-controller makes br-int) or with
// a controller gets none. d.mu must be held.
func (s *ovsdbSync) initialFlowLocked(b *bridge, cfg ctlConfig) {
	if len(cfg.Specs) > 0 || cfg.FailMode == failSecure {
		return
	}
	f, err := b.parser().ParseFlow("priority=0,actions=NORMAL", flow.CmdAdd)
	if err == nil {
		err = b.dp.Table().Add(f)
	}
	if err != nil {
		s.log.Error("ovsdb: cannot add the normal flow", "bridge", b.name, "err", err)
		return
	}
	s.d.markDirtyLocked() // the flows file follows
}

// controllerWriteBack returns the updates of the Controller rows'
// is_connected, role and status.
func (s *ovsdbSync) controllerWriteBack(rows map[string][]ovsdb.Row) []ovsdb.Operation {
	var ops []ovsdb.Operation
	for _, name := range slices.Sorted(maps.Keys(rows)) {
		sts := s.d.controllerStatuses(name)
		for _, row := range rows[name] {
			st, ok := sts[row.String("target")]
			if !ok {
				continue
			}
			up := ovsdb.Row{}
			if cur, ok := row["is_connected"].(bool); !ok || cur != st.Connected {
				up["is_connected"] = st.Connected
			}
			setOptString(up, row, "role", st.Role)
			status := ovsdb.Map{"state": st.State}
			if st.LastError != "" {
				status["last_error"] = st.LastError
			}
			if !mapEqual(row.Map("status"), status) {
				up["status"] = status
			}
			if len(up) > 0 {
				ops = append(ops, ovsdb.Update("Controller", []ovsdb.Condition{ovsdb.Cond("_uuid", "==", row.UUID())}, up))
			}
		}
	}
	return ops
}
