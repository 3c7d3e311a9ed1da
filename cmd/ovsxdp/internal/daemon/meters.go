package daemon

import (
	"fmt"
	"strings"
	"time"

	"github.com/ovsxdp/ovsxdp/cmd/ovsxdp/internal/ofconn"
	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/ofconv"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// Meters: the OpenFlow channel's meter mods and meter multiparts, and the
// meter commands, modelled on ovs-ofctl's (add-meter, mod-meter,
// del-meters, dump-meters, meter-stats, meter-features).

func init() {
	register(
		&verb{VerbInfo: VerbInfo{Name: "add-meter", Usage: "BR METER", Short: "Add a meter", Min: 2, Max: 2}, changes: true, run: (*Daemon).addMeter},
		&verb{VerbInfo: VerbInfo{Name: "mod-meter", Usage: "BR METER", Short: "Change a meter's flags and bands", Min: 2, Max: 2}, changes: true, run: (*Daemon).modMeter},
		&verb{VerbInfo: VerbInfo{Name: "del-meters", Usage: "BR [meter=ID]", Short: "Delete a meter (all without one) and the flows that use it", Min: 1, Max: 2}, changes: true, run: (*Daemon).delMeters},
		&verb{VerbInfo: VerbInfo{Name: "dump-meters", Usage: "BR [meter=ID]", Short: "Print the meters", Min: 1, Max: 2}, run: (*Daemon).dumpMeters},
		&verb{VerbInfo: VerbInfo{Name: "meter-stats", Usage: "BR [meter=ID]", Short: "Print the meters' counters", Min: 1, Max: 2}, run: (*Daemon).meterStats},
		&verb{VerbInfo: VerbInfo{Name: "meter-features", Usage: "BR", Short: "Print what the meters can do", Min: 1, Max: 1}, run: (*Daemon).meterFeatures},
	)
}

// MeterMod implements ofconn.MeterBridge.
func (o *ofBridge) MeterMod(mm *openflow.MeterMod) error {
	if err := o.lock(); err != nil {
		return err
	}
	defer o.unlock()
	t := o.b.dp.Table()
	var err error
	switch mm.Command {
	case openflow.MeterAdd:
		err = t.AddMeter(ofconv.MeterConfig(mm))
	case openflow.MeterModify:
		err = t.ModifyMeter(ofconv.MeterConfig(mm))
	default: // a delete: DecodeMeterMod took no other command
		o.reportFlowsLocked(ofconn.Origin{}, nil)
		_, gone := t.DeleteMeters(mm.MeterID)
		o.reportFlowsLocked(ofconn.Origin{}, reasonsFor(gone, ofconn.ReasonMeterDelete)) // ofmonitor.go
	}
	if err != nil {
		return ofconv.TableError(err)
	}
	o.changedLocked("meter mod")
	return nil
}

// MeterStats implements ofconn.MeterBridge.
func (o *ofBridge) MeterStats(id uint32) ([]openflow.MeterStats, error) {
	ms, snap, err := o.meters(id)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out := make([]openflow.MeterStats, len(ms))
	for i, m := range ms {
		out[i] = *ofconv.MeterStatsEntry(m, snap.MeterRefs(m.ID), now)
	}
	return out, nil
}

// MeterConfigs implements ofconn.MeterBridge.
func (o *ofBridge) MeterConfigs(id uint32) ([]openflow.MeterConfig, error) {
	ms, _, err := o.meters(id)
	if err != nil {
		return nil, err
	}
	out := make([]openflow.MeterConfig, len(ms))
	for i, m := range ms {
		out[i] = *ofconv.MeterConfigEntry(m)
	}
	return out, nil
}

// MeterFeatures implements ofconn.MeterBridge.
func (o *ofBridge) MeterFeatures() *openflow.MeterFeatures { return ofconv.MeterFeatures() }

var _ ofconn.MeterBridge = (*ofBridge)(nil)

// meters returns the meter with id id, or every meter for MeterAll, and
// the snapshot they are from; a meter that does not exist is
// OFPMMFC_UNKNOWN_METER, as Open vSwitch answers.
func (o *ofBridge) meters(id uint32) ([]*flow.InstalledMeter, *flow.TableSnapshot, error) {
	snap := o.b.dp.Table().Snapshot()
	if id == flow.MeterAll {
		return snap.Meters(), snap, nil
	}
	m := snap.Meter(id)
	if m == nil {
		return nil, nil, ofconv.TableError(fmt.Errorf("meter %d: %w", id, flow.ErrUnknownMeter))
	}
	return []*flow.InstalledMeter{m}, snap, nil
}

func (d *Daemon) addMeter(c *call) (string, error) {
	b, err := d.bridgeLocked(c.args[0])
	if err != nil {
		return "", err
	}
	m, err := flow.ParseMeter(c.args[1], flow.MeterCmdAdd)
	if err != nil {
		return "", err
	}
	return "", b.dp.Table().AddMeter(m)
}

func (d *Daemon) modMeter(c *call) (string, error) {
	b, err := d.bridgeLocked(c.args[0])
	if err != nil {
		return "", err
	}
	m, err := flow.ParseMeter(c.args[1], flow.MeterCmdModify)
	if err != nil {
		return "", err
	}
	return "", b.dp.Table().ModifyMeter(m)
}

// meterSelection parses the meter a del-meters or dump command selects:
// nothing or meter=all (every meter), or meter=ID.
func meterSelection(args []string) (uint32, error) {
	if len(args) < 2 {
		return flow.MeterAll, nil
	}
	m, err := flow.ParseMeter(args[1], flow.MeterCmdDelete)
	if err != nil {
		return 0, err
	}
	return m.ID, nil
}

func (d *Daemon) delMeters(c *call) (string, error) {
	b, err := d.bridgeLocked(c.args[0])
	if err != nil {
		return "", err
	}
	id, err := meterSelection(c.args)
	if err != nil {
		return "", err
	}
	b.dp.Table().DeleteMeters(id)
	return "", nil
}

// selectedMeters returns the meters a dump command selects, by meter id.
func (d *Daemon) selectedMeters(c *call) ([]*flow.InstalledMeter, *flow.TableSnapshot, error) {
	b, err := d.bridgeLocked(c.args[0])
	if err != nil {
		return nil, nil, err
	}
	id, err := meterSelection(c.args)
	if err != nil {
		return nil, nil, err
	}
	snap := b.dp.Table().Snapshot()
	var out []*flow.InstalledMeter
	for _, m := range snap.Meters() {
		if id == flow.MeterAll || m.ID == id {
			out = append(out, m)
		}
	}
	return out, snap, nil
}

// dumpMeters prints the meters as ovs-ofctl dump-meters does, after its
// reply header: each meter, its bands on lines of their own.
func (d *Daemon) dumpMeters(c *call) (string, error) {
	ms, _, err := d.selectedMeters(c)
	if err != nil {
		return "", err
	}
	var s strings.Builder
	for _, m := range ms {
		s.WriteString(flow.FormatMeter(&m.MeterConfig, "\n") + "\n")
	}
	return s.String(), nil
}

// meterStats prints the meters' counters as ovs-ofctl meter-stats does.
func (d *Daemon) meterStats(c *call) (string, error) {
	ms, snap, err := d.selectedMeters(c)
	if err != nil {
		return "", err
	}
	now := time.Now()
	var s strings.Builder
	for _, m := range ms {
		e := ofconv.MeterStatsEntry(m, snap.MeterRefs(m.ID), now)
		fmt.Fprintf(&s, "meter:%d flow_count:%d packet_in_count:%d byte_in_count:%d duration:%d.%03ds bands:\n",
			e.MeterID, e.FlowCount, e.PacketInCount, e.ByteInCount, e.DurationSec, e.DurationNsec/1e6)
		for i := range e.BandPackets {
			fmt.Fprintf(&s, "%d: packet_count:%d byte_count:%d\n", i, e.BandPackets[i], e.BandBytes[i])
		}
	}
	return s.String(), nil
}

// meterFeatures prints what the meters can do as ovs-ofctl
// meter-features does.
func (d *Daemon) meterFeatures(c *call) (string, error) {
	if _, err := d.bridgeLocked(c.args[0]); err != nil {
		return "", err
	}
	f := ofconv.MeterFeatures()
	return fmt.Sprintf("max_meter:%d max_bands:%d max_color:%d\nband_types: drop\ncapabilities: kbps pktps burst stats\n",
		f.MaxMeter, f.MaxBands, f.MaxColor), nil
}

// restoreMeters adds the meters of a state file to a bridge.
func restoreMeters(b *bridge, lines []string) error {
	for i, s := range lines {
		m, err := flow.ParseMeter(s, flow.MeterCmdAdd)
		if err == nil {
			err = b.dp.Table().AddMeter(m)
		}
		if err != nil {
			return fmt.Errorf("meter %d: %w", i+1, err)
		}
	}
	return nil
}
