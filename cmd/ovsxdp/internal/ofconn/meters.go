package ofconn

import (
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// Meters (OpenFlow 1.3+): OFPT_METER_MOD and the meter stats, config and
// features multiparts, answered as Open vSwitch answers them. A Bridge
// that is not a MeterBridge has no meters: its meter features say
// max_meter 0 and meter mods are refused (meterModNoMeters).

// MeterBridge is a Bridge with meters.
type MeterBridge interface {
	// MeterMod runs a decoded meter mod; an error is the
	// *openflow.Error Open vSwitch replies with (OFPMMFC_*).
	MeterMod(mm *openflow.MeterMod) error
	// MeterStats reports the counters of the meter with id id, or of
	// every meter when id is openflow.MeterAllID; an unknown meter is
	// OFPMMFC_UNKNOWN_METER.
	MeterStats(id uint32) ([]openflow.MeterStats, error)
	// MeterConfigs describes the meter with id id, or every meter.
	MeterConfigs(id uint32) ([]openflow.MeterConfig, error)
	// MeterFeatures describes what the bridge's meters can do.
	MeterFeatures() *openflow.MeterFeatures
}

// meterMod answers a meter mod: from a slave it is refused before it is
// decoded, as Open vSwitch does.
func (c *conn) meterMod(body []byte) error {
	mb, ok := c.s.br.(MeterBridge)
	if !ok {
		return meterModNoMeters(body)
	}
	if c.role == openflow.RoleSlave {
		return badRequest(codeBadReqIsSlave, "meter mod from a slave")
	}
	mm, err := openflow.DecodeMeterMod(body)
	if err != nil {
		return err
	}
	return mb.MeterMod(mm)
}

// meterMultipart answers a meter stats, config or features request, with
// fail for an error reply; ok is false for any other multipart.
func (c *conn) meterMultipart(xid uint32, m *openflow.MultipartRaw, fail func(error) error) (ok bool, err error) {
	if m.Reply || c.version == openflow.Version10 {
		return false, nil
	}
	mb, hasMeters := c.s.br.(MeterBridge)
	switch m.Type {
	case openflow.MPMeterFeatures:
		body := make([]byte, openflow.MeterFeaturesLen)
		if hasMeters {
			body = mb.MeterFeatures().Body()
		}
		return true, c.send(c.version, xid, &openflow.MultipartRaw{Reply: true, Type: m.Type, Body: body})
	case openflow.MPMeter, openflow.MPMeterConfig:
	default:
		return false, nil
	}
	id, err := openflow.DecodeMeterRequest(m.Body)
	if err != nil {
		return true, fail(err)
	}
	var entries [][]byte
	switch {
	case !hasMeters && id == openflow.MeterAllID:
	case !hasMeters:
		err = &openflow.Error{Type: openflow.ErrTypeMeterModFailed, Code: openflow.CodeMeterUnknownMeter, Sentinel: openflow.ErrBadMessage, Detail: "no meters"}
	case m.Type == openflow.MPMeter:
		var ss []openflow.MeterStats
		ss, err = mb.MeterStats(id)
		for i := range ss {
			entries = append(entries, openflow.AppendMeterStats(nil, &ss[i]))
		}
	default:
		var cs []openflow.MeterConfig
		cs, err = mb.MeterConfigs(id)
		for i := range cs {
			entries = append(entries, openflow.AppendMeterConfig(nil, &cs[i]))
		}
	}
	if err != nil {
		return true, fail(err)
	}
	return true, c.sendParts(xid, len(entries), func(i, j int) openflow.Message {
		var body []byte
		for _, e := range entries[i:j] {
			body = append(body, e...)
		}
		return &openflow.MultipartRaw{Reply: true, Type: m.Type, Body: body}
	})
}
