package openflow

import "encoding/binary"

// Meters (OpenFlow 1.3+): OFPT_METER_MOD and the bodies of the meter
// multiparts (OFPMP_METER, OFPMP_METER_CONFIG, OFPMP_METER_FEATURES).
// Decode leaves a meter mod as *Unknown (TypeMeterMod) and the meter
// multiparts as *MultipartRaw: these functions decode and encode their
// bodies, as Open vSwitch's ofp-meter does.

// Meter message and multipart types.
const (
	TypeMeterMod     uint8  = 29
	MPMeter          uint16 = 9
	MPMeterConfig    uint16 = 10
	MPMeterFeatures  uint16 = 11
	MeterFeaturesLen        = 16 // struct ofp13_meter_features
)

// Meter mod commands (OFPMC13_*).
const (
	MeterAdd    uint16 = 0
	MeterModify uint16 = 1
	MeterDelete uint16 = 2

	MeterAllID uint32 = 0xffffffff // OFPM13_ALL: every meter
)

// OFPET_METER_MOD_FAILED and its codes (OFPMMFC_*).
const (
	ErrTypeMeterModFailed uint16 = 12

	CodeMeterUnknown      uint16 = 0
	CodeMeterExists       uint16 = 1
	CodeMeterInvalid      uint16 = 2
	CodeMeterUnknownMeter uint16 = 3
	CodeMeterBadCommand   uint16 = 4
	CodeMeterBadFlags     uint16 = 5
	CodeMeterBadRate      uint16 = 6
	CodeMeterBadBand      uint16 = 8
	CodeMeterOutOfMeters  uint16 = 10
	CodeMeterOutOfBands   uint16 = 11
)

// Meter band types and flags, as the wire has them.
const (
	meterBandDrop       uint16 = 1
	meterBandDSCPRemark uint16 = 2
	meterFlagKbps       uint16 = 1 << 0
	meterFlagPktps      uint16 = 1 << 1
	meterBandLen               = 16 // every band type Open vSwitch knows
	meterModLen                = 8  // command, flags, meter_id
	meterRequestLen            = 8  // struct ofp13_meter_multipart_request
	meterStatsLen              = 40 // struct ofp13_meter_stats without bands
	meterBandStatsLen          = 16
	meterConfigLen             = 8 // struct ofp13_meter_config without bands
)

// MeterBand is one band of a meter mod or meter config.
type MeterBand struct {
	Type      uint16
	Rate      uint32
	Burst     uint32
	PrecLevel uint8 // dscp_remark
}

// MeterMod is OFPT_METER_MOD; a delete has no flags and no bands.
type MeterMod struct {
	Command uint16
	Flags   uint16
	MeterID uint32
	Bands   []MeterBand
}

func meterModError(code uint16, format string, args ...any) *Error {
	e := newErr(ErrBadMessage, ErrTypeMeterModFailed, code, format, args...)
	e.Item = "meter"
	return e
}

// DecodeMeterMod decodes a meter mod's body (after the header), with the
// errors Open vSwitch's decoder answers: OFPBRC_BAD_LEN for a short
// message or a band that is not 16 bytes, OFPMMFC_BAD_COMMAND,
// OFPMMFC_BAD_FLAGS for kbps with pktps, OFPMMFC_BAD_BAND for a band type
// other than drop and dscp_remark. A delete's bands are not read.
func DecodeMeterMod(body []byte) (*MeterMod, error) {
	if len(body) < meterModLen {
		return nil, badMessage("meter mod of %d bytes, want at least %d", len(body)+HeaderLen, meterModLen+HeaderLen)
	}
	mm := &MeterMod{Command: binary.BigEndian.Uint16(body), MeterID: binary.BigEndian.Uint32(body[4:])}
	switch mm.Command {
	case MeterAdd, MeterModify:
	case MeterDelete:
		return mm, nil
	default:
		return nil, meterModError(CodeMeterBadCommand, "meter mod command %d", mm.Command)
	}
	mm.Flags = binary.BigEndian.Uint16(body[2:])
	if mm.Flags&meterFlagKbps != 0 && mm.Flags&meterFlagPktps != 0 {
		return nil, meterModError(CodeMeterBadFlags, "meter %d is both kbps and pktps", mm.MeterID)
	}
	bands, err := decodeMeterBands(body[meterModLen:])
	if err != nil {
		return nil, err
	}
	mm.Bands = bands
	return mm, nil
}

func decodeMeterBands(b []byte) ([]MeterBand, error) {
	bands := []MeterBand{}
	for len(b) >= meterBandLen {
		if l := binary.BigEndian.Uint16(b[2:]); l != meterBandLen {
			return nil, badMessage("meter band of %d bytes, want %d", l, meterBandLen)
		}
		mb := MeterBand{Type: binary.BigEndian.Uint16(b), Rate: binary.BigEndian.Uint32(b[4:]), Burst: binary.BigEndian.Uint32(b[8:])}
		switch mb.Type {
		case meterBandDrop:
		case meterBandDSCPRemark:
			mb.PrecLevel = b[12]
		default:
			return nil, meterModError(CodeMeterBadBand, "meter band type %d", mb.Type)
		}
		bands = append(bands, mb)
		b = b[meterBandLen:]
	}
	if len(b) != 0 {
		return nil, badMessage("%d trailing bytes after the meter bands", len(b))
	}
	return bands, nil
}

func appendMeterBands(b []byte, bands []MeterBand) []byte {
	for _, mb := range bands {
		b = binary.BigEndian.AppendUint16(b, mb.Type)
		b = binary.BigEndian.AppendUint16(b, meterBandLen)
		b = binary.BigEndian.AppendUint32(b, mb.Rate)
		b = binary.BigEndian.AppendUint32(b, mb.Burst)
		var tail [4]byte
		if mb.Type == meterBandDSCPRemark {
			tail[0] = mb.PrecLevel
		}
		b = append(b, tail[:]...)
	}
	return b
}

// Message returns the meter mod as a message to encode.
func (mm *MeterMod) Message() *Unknown {
	b := binary.BigEndian.AppendUint16(nil, mm.Command)
	b = binary.BigEndian.AppendUint16(b, mm.Flags)
	b = binary.BigEndian.AppendUint32(b, mm.MeterID)
	return &Unknown{Type: TypeMeterMod, Body: appendMeterBands(b, mm.Bands)}
}

// DecodeMeterRequest decodes the body of a meter stats or meter config
// request: the meter id (OFPM13_ALL: every meter).
func DecodeMeterRequest(body []byte) (uint32, error) {
	if len(body) != meterRequestLen {
		return 0, badMessage("meter request body of %d bytes, want %d", len(body), meterRequestLen)
	}
	return binary.BigEndian.Uint32(body), nil
}

// MeterRequest is the body of a meter stats or meter config request.
func MeterRequest(id uint32) []byte {
	return append(binary.BigEndian.AppendUint32(nil, id), 0, 0, 0, 0)
}

// MeterConfig is one entry of a meter config reply.
type MeterConfig struct {
	Flags   uint16
	MeterID uint32
	Bands   []MeterBand
}

// AppendMeterConfig appends c to a meter config reply's body.
func AppendMeterConfig(b []byte, c *MeterConfig) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(meterConfigLen+len(c.Bands)*meterBandLen))
	b = binary.BigEndian.AppendUint16(b, c.Flags)
	b = binary.BigEndian.AppendUint32(b, c.MeterID)
	return appendMeterBands(b, c.Bands)
}

// DecodeMeterConfigs decodes a meter config reply's body.
func DecodeMeterConfigs(b []byte) ([]MeterConfig, error) {
	var out []MeterConfig
	for len(b) > 0 {
		if len(b) < meterConfigLen {
			return nil, badMessage("meter config of %d bytes", len(b))
		}
		l := int(binary.BigEndian.Uint16(b))
		if l < meterConfigLen || l > len(b) {
			return nil, badMessage("meter config length %d of %d bytes", l, len(b))
		}
		bands, err := decodeMeterBands(b[meterConfigLen:l])
		if err != nil {
			return nil, err
		}
		out = append(out, MeterConfig{Flags: binary.BigEndian.Uint16(b[2:]), MeterID: binary.BigEndian.Uint32(b[4:]), Bands: bands})
		b = b[l:]
	}
	return out, nil
}

// MeterStats is one entry of a meter stats reply.
type MeterStats struct {
	MeterID                    uint32
	FlowCount                  uint32
	PacketInCount, ByteInCount uint64
	DurationSec, DurationNsec  uint32
	BandPackets, BandBytes     []uint64 // per band, in the bands' order
}

// AppendMeterStats appends s to a meter stats reply's body.
func AppendMeterStats(b []byte, s *MeterStats) []byte {
	b = binary.BigEndian.AppendUint32(b, s.MeterID)
	b = binary.BigEndian.AppendUint16(b, uint16(meterStatsLen+len(s.BandPackets)*meterBandStatsLen))
	b = append(b, 0, 0, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint32(b, s.FlowCount)
	b = binary.BigEndian.AppendUint64(b, s.PacketInCount)
	b = binary.BigEndian.AppendUint64(b, s.ByteInCount)
	b = binary.BigEndian.AppendUint32(b, s.DurationSec)
	b = binary.BigEndian.AppendUint32(b, s.DurationNsec)
	for i := range s.BandPackets {
		b = binary.BigEndian.AppendUint64(b, s.BandPackets[i])
		b = binary.BigEndian.AppendUint64(b, s.BandBytes[i])
	}
	return b
}

// DecodeMeterStats decodes a meter stats reply's body.
func DecodeMeterStats(b []byte) ([]MeterStats, error) {
	var out []MeterStats
	for len(b) > 0 {
		if len(b) < meterStatsLen {
			return nil, badMessage("meter stats of %d bytes", len(b))
		}
		l := int(binary.BigEndian.Uint16(b[4:]))
		if l < meterStatsLen || l > len(b) || (l-meterStatsLen)%meterBandStatsLen != 0 {
			return nil, badMessage("meter stats length %d of %d bytes", l, len(b))
		}
		s := MeterStats{MeterID: binary.BigEndian.Uint32(b), FlowCount: binary.BigEndian.Uint32(b[12:]),
			PacketInCount: binary.BigEndian.Uint64(b[16:]), ByteInCount: binary.BigEndian.Uint64(b[24:]),
			DurationSec: binary.BigEndian.Uint32(b[32:]), DurationNsec: binary.BigEndian.Uint32(b[36:])}
		for o := meterStatsLen; o < l; o += meterBandStatsLen {
			s.BandPackets = append(s.BandPackets, binary.BigEndian.Uint64(b[o:]))
			s.BandBytes = append(s.BandBytes, binary.BigEndian.Uint64(b[o+8:]))
		}
		out = append(out, s)
		b = b[l:]
	}
	return out, nil
}

// MeterFeatures is the body of a meter features reply.
type MeterFeatures struct {
	MaxMeter     uint32
	BandTypes    uint32 // bit 1<<type per band type
	Capabilities uint32 // meter flags
	MaxBands     uint8
	MaxColor     uint8
}

// Body encodes the features.
func (f *MeterFeatures) Body() []byte {
	b := binary.BigEndian.AppendUint32(nil, f.MaxMeter)
	b = binary.BigEndian.AppendUint32(b, f.BandTypes)
	b = binary.BigEndian.AppendUint32(b, f.Capabilities)
	return append(b, f.MaxBands, f.MaxColor, 0, 0)
}
