package ofconv

import (
	"errors"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// meterCodes are the OFPMMFC_* codes of flow's meter errors.
var meterCodes = []errorCode{
	{flow.ErrMeterExists, openflow.CodeMeterExists},
	{flow.ErrInvalidMeter, openflow.CodeMeterInvalid},
	{flow.ErrUnknownMeter, openflow.CodeMeterUnknownMeter},
	{flow.ErrMeterBadFlags, openflow.CodeMeterBadFlags},
	{flow.ErrMeterBadBand, openflow.CodeMeterBadBand},
	{flow.ErrMeterBadRate, openflow.CodeMeterBadRate},
	{flow.ErrOutOfBands, openflow.CodeMeterOutOfBands},
	{flow.ErrOutOfMeters, openflow.CodeMeterOutOfMeters},
}

func meterCode(err error) (uint16, bool) { return codeOf(err, meterCodes) }

// errorCode pairs an error of flow with the code of the OpenFlow error
// that answers it.
type errorCode struct {
	err  error
	code uint16
}

// codeOf returns the code of the first of codes whose error err is.
func codeOf(err error, codes []errorCode) (uint16, bool) {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code, true
		}
	}
	return 0, false
}

// MeterConfig converts a meter mod's meter.
func MeterConfig(mm *openflow.MeterMod) *flow.MeterConfig {
	c := &flow.MeterConfig{ID: mm.MeterID, Flags: mm.Flags, Bands: make([]flow.MeterBand, len(mm.Bands))}
	for i, b := range mm.Bands {
		c.Bands[i] = flow.MeterBand{Type: b.Type, Rate: b.Rate, Burst: b.Burst, PrecLevel: b.PrecLevel}
	}
	return c
}

// MeterConfigEntry is a meter's entry in a meter config reply.
func MeterConfigEntry(m *flow.InstalledMeter) *openflow.MeterConfig {
	c := &openflow.MeterConfig{Flags: m.Flags, MeterID: m.ID, Bands: make([]openflow.MeterBand, len(m.Bands))}
	for i, b := range m.Bands {
		c.Bands[i] = openflow.MeterBand{Type: b.Type, Rate: b.Rate, Burst: b.Burst, PrecLevel: b.PrecLevel}
	}
	return c
}

// MeterStatsEntry is a meter's entry in a meter stats reply: flows is the
// number of flows that use it, now the time of the request.
func MeterStatsEntry(m *flow.InstalledMeter, flows int, now time.Time) *openflow.MeterStats {
	st := m.Run.Stats()
	d := now.Sub(m.Created)
	if d < 0 {
		d = 0
	}
	s := &openflow.MeterStats{MeterID: m.ID, FlowCount: uint32(flows), PacketInCount: st.Packets, ByteInCount: st.Bytes,
		DurationSec: uint32(d / time.Second), DurationNsec: uint32(d % time.Second)}
	for _, b := range st.Bands {
		s.BandPackets = append(s.BandPackets, b.Packets)
		s.BandBytes = append(s.BandBytes, b.Bytes)
	}
	return s
}

// MeterFeatures are the meter features of Open vSwitch's userspace
// datapath, which ovsxdp's meters are.
func MeterFeatures() *openflow.MeterFeatures {
	return &openflow.MeterFeatures{MaxMeter: flow.MaxMeters, BandTypes: 1 << flow.MeterBandDrop,
		Capabilities: uint32(flow.MeterFlagsSupported), MaxBands: flow.MaxMeterBands}
}
