package flow

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"
)

// This file is the meter table of a Table: add-meter, mod-meter,
// del-meters and the checks that keep flows and meters consistent, as
// Open vSwitch's ofproto does. Meters are published in the table's
// snapshots, so that a meter change, like a group change, takes a new
// generation before it returns and every megaflow translated before it is
// revalidated: a megaflow never runs a meter that was replaced or
// deleted once the change has returned.

// InstalledMeter is a meter of the table.
type InstalledMeter struct {
	MeterConfig
	// DpID is the datapath meter's id (meter(N) in datapath actions):
	// the lowest id free when the meter was added, from 0, as Open
	// vSwitch's userspace datapath allocates them.
	DpID    uint32
	Created time.Time // when the meter was added (duration in meter stats)
	Run     *Meter    // the datapath meter
}

// meterTable is the meters of a table: immutable once published.
type meterTable struct {
	byID map[uint32]*InstalledMeter
}

// AddMeter adds a meter, as add-meter does. A meter id in use is refused
// with ErrMeterExists; a configuration the datapath cannot run with the
// error Open vSwitch answers (see MeterConfig's checks).
func (t *Table) AddMeter(c *MeterConfig) error {
	if err := c.checkMod(); err != nil {
		return fmt.Errorf("meter %d: %w", c.ID, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.meters.get(c.ID) != nil {
		return fmt.Errorf("meter %d: %w", c.ID, ErrMeterExists)
	}
	if err := c.checkDatapath(); err != nil {
		return fmt.Errorf("meter %d: %w", c.ID, err)
	}
	dp, ok := t.meters.freeDpID()
	if !ok {
		return fmt.Errorf("meter %d: %w", c.ID, ErrOutOfMeters)
	}
	t.setMeterLocked(&InstalledMeter{MeterConfig: cloneMeterConfig(c), DpID: dp, Created: t.now(), Run: NewMeter(c)})
	return nil
}

// ModifyMeter replaces the flags and bands of the meter with c's id, as
// mod-meter does: its datapath meter starts again with full buckets and
// zero counters (Open vSwitch's datapath replaces it too); the flows that
// use it stay. A meter that does not exist is refused with
// ErrUnknownMeter.
func (t *Table) ModifyMeter(c *MeterConfig) error {
	if err := c.checkMod(); err != nil {
		return fmt.Errorf("meter %d: %w", c.ID, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.meters.get(c.ID)
	if old == nil {
		return fmt.Errorf("meter %d: %w", c.ID, ErrUnknownMeter)
	}
	if err := c.checkDatapath(); err != nil {
		return fmt.Errorf("meter %d: %w", c.ID, err)
	}
	t.setMeterLocked(&InstalledMeter{MeterConfig: cloneMeterConfig(c), DpID: old.DpID, Created: old.Created, Run: NewMeter(c)})
	return nil
}

func cloneMeterConfig(c *MeterConfig) MeterConfig {
	d := *c
	d.Bands = slices.Clone(c.Bands)
	return d
}

// setMeterLocked installs m in place of the meter with its id, if any,
// and publishes the table.
func (t *Table) setMeterLocked(m *InstalledMeter) {
	next := &meterTable{byID: maps.Clone(t.meters.all())}
	if next.byID == nil {
		next.byID = map[uint32]*InstalledMeter{}
	}
	next.byID[m.ID] = m
	t.meters = next
	t.publishLocked()
}

// DeleteMeters deletes the meter with id id (MeterAll: every meter), as
// del-meters does, and with them every flow whose actions name one of
// them (Open vSwitch does the same), and what their delete_learned learn
// actions learned. It returns the number of meters deleted and the flows
// deleted. Deleting a meter that does not exist, or meter 0, is not an
// error.
func (t *Table) DeleteMeters(id uint32) (int, []*Rule) {
	t.mu.Lock()
	defer t.mu.Unlock()
	gone := map[uint32]bool{}
	for mid := range t.meters.all() {
		if id == MeterAll || mid == id {
			gone[mid] = true
		}
	}
	if len(gone) == 0 {
		return 0, nil
	}
	next := &meterTable{byID: maps.Clone(t.meters.all())}
	for mid := range gone {
		delete(next.byID, mid)
	}
	t.meters = next
	removed := t.removeRulesLocked(RemovedMeterDelete, func(acts []Action) bool { return usesMeters(acts, gone) })
	t.publishLocked()
	return len(gone), removed
}

// usesMeters reports whether an action list names one of the meters.
func usesMeters(acts []Action, ids map[uint32]bool) bool {
	for i := range acts {
		if acts[i].Type == ActMeter && ids[uint32(acts[i].Value)] {
			return true
		}
	}
	return false
}

// checkMetersLocked refuses an action list that names a meter the table
// does not have (ErrInvalidMeter, as Open vSwitch). A controller action's
// meter_id may name one that does not exist: Open vSwitch takes the flow
// and sends its packet ins unmetered.
func (t *Table) checkMetersLocked(acts []Action) error {
	for i := range acts {
		if acts[i].Type == ActMeter && t.meters.get(uint32(acts[i].Value)) == nil {
			return fmt.Errorf("action %d (meter:%d): %w", i+1, acts[i].Value, ErrInvalidMeter)
		}
	}
	return nil
}

func (mt *meterTable) all() map[uint32]*InstalledMeter {
	if mt == nil {
		return nil
	}
	return mt.byID
}

func (mt *meterTable) get(id uint32) *InstalledMeter {
	if mt == nil {
		return nil
	}
	return mt.byID[id]
}

// freeDpID returns the lowest datapath meter id no meter has.
func (mt *meterTable) freeDpID() (uint32, bool) {
	used := make(map[uint32]bool, len(mt.all()))
	for _, m := range mt.all() {
		used[m.DpID] = true
	}
	for id := uint32(0); id < MaxMeters; id++ {
		if !used[id] {
			return id, true
		}
	}
	return 0, false
}

// Meters returns the snapshot's meters, by meter id.
func (s *TableSnapshot) Meters() []*InstalledMeter {
	out := slices.Collect(maps.Values(s.meters.all()))
	slices.SortFunc(out, func(a, b *InstalledMeter) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Meter returns the meter with id id, or nil.
func (s *TableSnapshot) Meter(id uint32) *InstalledMeter { return s.meters.get(id) }

// MeterRefs returns how many flows name the meter with id id in their
// actions (meter stats' flow_count).
func (s *TableSnapshot) MeterRefs(id uint32) int {
	ids := map[uint32]bool{id: true}
	return s.countRules(func(acts []Action) bool { return usesMeters(acts, ids) })
}

// meter translates meter:id: the datapath action meter(N) of the meter's
// datapath meter, or nothing when the meter does not exist.
func (x *xlate) meter(id uint32) {
	m := x.s.meters.get(id)
	if m == nil {
		return
	}
	x.emit(Action{Type: ActMeter, Value: uint64(m.DpID), Meter: m.Run})
}
