package daemon

import (
	"maps"
	"slices"
	"time"

	"github.com/ovsxdp/ovsxdp/cmd/ovsxdp/internal/ovsdb"
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

// applyControllers gives the bridges the controllers the database names.
func (s *ovsdbSync) applyControllers(cfgs map[string]ctlConfig) {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	for _, name := range slices.Sorted(maps.Keys(cfgs)) {
		if s.d.bridges[name] != nil {
			s.d.setControllersLocked(name, cfgs[name])
		}
	}
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
