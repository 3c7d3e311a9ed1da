package ofconn

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/ofconv"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// meterTableBridge is a tableBridge with the meters of its table.
type meterTableBridge struct{ tableBridge }

func (b *meterTableBridge) MeterMod(mm *openflow.MeterMod) error {
	switch mm.Command {
	case openflow.MeterAdd:
		return ofconv.TableError(b.t.AddMeter(ofconv.MeterConfig(mm)))
	case openflow.MeterModify:
		return ofconv.TableError(b.t.ModifyMeter(ofconv.MeterConfig(mm)))
	}
	b.t.DeleteMeters(mm.MeterID)
	return nil
}

func (b *meterTableBridge) selected(id uint32) ([]*flow.InstalledMeter, *flow.TableSnapshot, error) {
	s := b.t.Snapshot()
	if id == openflow.MeterAllID {
		return s.Meters(), s, nil
	}
	if m := s.Meter(id); m != nil {
		return []*flow.InstalledMeter{m}, s, nil
	}
	return nil, nil, ofconv.TableError(fmt.Errorf("meter %d: %w", id, flow.ErrUnknownMeter))
}

func (b *meterTableBridge) MeterStats(id uint32) ([]openflow.MeterStats, error) {
	ms, s, err := b.selected(id)
	var out []openflow.MeterStats
	for _, m := range ms {
		out = append(out, *ofconv.MeterStatsEntry(m, s.MeterRefs(m.ID), time.Now()))
	}
	return out, err
}

func (b *meterTableBridge) MeterConfigs(id uint32) ([]openflow.MeterConfig, error) {
	ms, _, err := b.selected(id)
	var out []openflow.MeterConfig
	for _, m := range ms {
		out = append(out, *ofconv.MeterConfigEntry(m))
	}
	return out, err
}

func (b *meterTableBridge) MeterFeatures() *openflow.MeterFeatures { return ofconv.MeterFeatures() }

var _ MeterBridge = (*meterTableBridge)(nil)

func newMeterServer() *Server {
	return NewServer(&meterTableBridge{tableBridge{t: flow.NewTable()}}, Config{Logger: slog.New(slog.DiscardHandler)})
}

// TestMeters: meter mods and the meter multiparts over a connection, with
// Open vSwitch's errors, and a slave refused before its mod is read.
func TestMeters(t *testing.T) {
	s := newMeterServer()
	cl := dial(t, s, openflow.Version13)
	add := &openflow.MeterMod{Command: openflow.MeterAdd, Flags: 0x6, MeterID: 1, Bands: []openflow.MeterBand{{Type: 1, Rate: 10, Burst: 20}}}
	cl.send(add.Message())
	cl.barrier()
	xid := cl.send(add.Message())
	cl.expectError(xid, openflow.ErrTypeMeterModFailed, openflow.CodeMeterExists)
	xid = cl.send((&openflow.MeterMod{Command: openflow.MeterModify, Flags: 2, MeterID: 5, Bands: []openflow.MeterBand{{Type: 1, Rate: 1}}}).Message())
	cl.expectError(xid, openflow.ErrTypeMeterModFailed, openflow.CodeMeterUnknownMeter)
	xid = cl.send((&openflow.MeterMod{Command: openflow.MeterAdd, Flags: 2, MeterID: 6, Bands: []openflow.MeterBand{{Type: 2, Rate: 1, PrecLevel: 1}}}).Message())
	cl.expectError(xid, openflow.ErrTypeMeterModFailed, openflow.CodeMeterBadBand)
	xid = cl.send(&openflow.MultipartRaw{Type: openflow.MPMeter, Body: openflow.MeterRequest(9)})
	cl.expectError(xid, openflow.ErrTypeMeterModFailed, openflow.CodeMeterUnknownMeter)
	xid = cl.send(&openflow.MultipartRaw{Type: openflow.MPMeterConfig, Body: []byte{0, 0, 0, 1}})
	cl.expectError(xid, openflow.ErrTypeBadRequest, openflow.CodeBadRequestLen)

	xid = cl.send(&openflow.MultipartRaw{Type: openflow.MPMeterConfig, Body: openflow.MeterRequest(openflow.MeterAllID)})
	h, m := cl.recv()
	r, ok := m.(*openflow.MultipartRaw)
	if !ok || h.Xid != xid || r.Type != openflow.MPMeterConfig {
		t.Fatalf("meter config answered with %T %+v", m, m)
	}
	if cs, err := openflow.DecodeMeterConfigs(r.Body); err != nil || len(cs) != 1 || cs[0].MeterID != 1 || cs[0].Flags != 6 || cs[0].Bands[0].Burst != 20 {
		t.Errorf("meter configs %+v, %v", cs, err)
	}
	xid = cl.send(&openflow.MultipartRaw{Type: openflow.MPMeter, Body: openflow.MeterRequest(1)})
	h, m = cl.recv()
	if r, ok := m.(*openflow.MultipartRaw); !ok || h.Xid != xid || r.Type != openflow.MPMeter {
		t.Fatalf("meter stats answered with %T %+v", m, m)
	} else if ss, err := openflow.DecodeMeterStats(r.Body); err != nil || len(ss) != 1 || ss[0].MeterID != 1 || len(ss[0].BandPackets) != 1 {
		t.Errorf("meter stats %+v, %v", ss, err)
	}
	xid = cl.send(&openflow.MultipartRaw{Type: openflow.MPMeterFeatures})
	h, m = cl.recv()
	if r, ok := m.(*openflow.MultipartRaw); !ok || h.Xid != xid || string(r.Body) != string(ofconv.MeterFeatures().Body()) {
		t.Fatalf("meter features answered with %T %+v", m, m)
	}

	cl.send(&openflow.RoleRequest{Role: openflow.Role{Role: openflow.RoleSlave}})
	cl.recv()
	xid = cl.send(&openflow.Unknown{Type: openflow.TypeMeterMod, Body: []byte{0, 9}}) // malformed, but a slave's
	cl.expectError(xid, openflow.ErrTypeBadRequest, codeBadReqIsSlave)
}
