package flow

import (
	"errors"
	"math"
	"math/bits"
	"sync/atomic"
)

// This file is the meter itself: what a meter is configured with
// (OpenFlow 1.3's meter mod) and the datapath meter that polices packets,
// one token bucket per band, as Open vSwitch's userspace datapath
// (dpif-netdev) runs it. The meter table of a Table is meter_table.go.

// Meter flags (OFPMF13_*).
const (
	MeterFlagKbps  uint16 = 1 << 0 // rates and bursts in kilobits
	MeterFlagPktps uint16 = 1 << 1 // rates and bursts in packets
	MeterFlagBurst uint16 = 1 << 2 // the bands' burst sizes apply
	MeterFlagStats uint16 = 1 << 3 // collect statistics

	// MeterFlagsSupported are the flags the datapath takes, as Open
	// vSwitch's userspace datapath.
	MeterFlagsSupported = MeterFlagKbps | MeterFlagPktps | MeterFlagBurst | MeterFlagStats
)

// Meter band types (OFPMBT13_*).
const (
	MeterBandDrop       uint16 = 1
	MeterBandDSCPRemark uint16 = 2
)

// Meter ids with a meaning (OFPM13_*), and the datapath's limits, as Open
// vSwitch's userspace datapath reports them in its meter features.
const (
	MeterMax        uint32 = 0xffff0000 // the largest ordinary meter id
	MeterSlowpath   uint32 = 0xfffffffd
	MeterController uint32 = 0xfffffffe
	MeterAll        uint32 = 0xffffffff // every meter, in a delete or a request

	MaxMeters     = 1 << 18 // datapath meters
	MaxMeterBands = 8       // bands of one meter
)

// Sentinel errors of meter changes and of flows that name meters, with the
// OpenFlow error Open vSwitch answers them with.
var (
	ErrMeterExists   = errors.New("meter already exists (OFPMMFC_METER_EXISTS)")
	ErrInvalidMeter  = errors.New("invalid meter (OFPMMFC_INVALID_METER)")
	ErrUnknownMeter  = errors.New("meter does not exist (OFPMMFC_UNKNOWN_METER)")
	ErrMeterBadFlags = errors.New("unsupported meter flags (OFPMMFC_BAD_FLAGS)")
	ErrMeterBadBand  = errors.New("unsupported meter band (OFPMMFC_BAD_BAND)")
	ErrMeterBadRate  = errors.New("meter band rate of 0 (OFPMMFC_BAD_RATE)")
	ErrOutOfBands    = errors.New("too many meter bands (OFPMMFC_OUT_OF_BANDS)")
	ErrOutOfMeters   = errors.New("no datapath meter left (OFPMMFC_OUT_OF_METERS)")
)

// MeterBand is one band of a meter: when the packets exceed Rate (in
// packets per second, or kilobits per second) by more than Burst (packets
// or kilobits), the band applies to the excess.
type MeterBand struct {
	Type      uint16
	Rate      uint32
	Burst     uint32
	PrecLevel uint8 // dscp_remark bands
}

// MeterConfig is a meter as a meter mod configures it.
type MeterConfig struct {
	ID    uint32
	Flags uint16
	Bands []MeterBand
}

// checkMod refuses what Open vSwitch refuses before it looks the meter up:
// both kbps and pktps (its decoder), an id no meter may have, more bands
// than the datapath has (ofproto).
func (c *MeterConfig) checkMod() error {
	switch {
	case c.Flags&MeterFlagKbps != 0 && c.Flags&MeterFlagPktps != 0:
		return ErrMeterBadFlags
	case c.ID == 0 || c.ID > MeterMax && c.ID != MeterSlowpath && c.ID != MeterController:
		return ErrInvalidMeter
	case len(c.Bands) > MaxMeterBands:
		return ErrOutOfBands
	}
	return nil
}

// checkDatapath refuses what the userspace datapath cannot run: flags it
// does not know, a band that does not drop (dscp_remark), a rate of 0.
func (c *MeterConfig) checkDatapath() error {
	if c.Flags&^MeterFlagsSupported != 0 {
		return ErrMeterBadFlags
	}
	for _, b := range c.Bands {
		if b.Type != MeterBandDrop {
			return ErrMeterBadBand
		}
	}
	for _, b := range c.Bands {
		if b.Rate == 0 {
			return ErrMeterBadRate
		}
	}
	return nil
}

// Meter is a datapath meter: the token bucket of each band and the
// counters. Admit runs on the poll threads concurrently, without a lock:
// each bucket is one atomic word, and the counters are atomic. A changed
// configuration is a new Meter (Open vSwitch's datapath also replaces the
// meter, with full buckets and zero counters).
type Meter struct {
	pktps   bool
	bands   []meterBand
	packets atomic.Uint64
	bytes   atomic.Uint64
}

// meterBand is a band's token bucket, kept as the time at which the bucket
// would be full again (the "theoretical arrival time" of the generic cell
// rate algorithm, which is the token bucket written as one number). Time
// is in ticks of 1/16 ns, so that the cost of a packet keeps its fraction
// at high rates; a poll thread's clock (nanoseconds since it started) then
// lasts 18 years.
type meterBand struct {
	rate  uint32
	burst uint64 // the bucket's size, in ticks
	cost  uint64 // pktps: the ticks of one packet; kbps: of one kilobit/1000 (a bit), ×1e6
	tat   atomic.Int64
	// Counted when the band is the one a packet exceeded.
	packets atomic.Uint64
	bytes   atomic.Uint64
}

// Ticks per second.
const (
	meterTicksPerSec = 16e9
	meterTickShift   = 4
)

// NewMeter builds the datapath meter of c, with full buckets. A band
// without a burst size gets its rate as burst size, as Open vSwitch's
// userspace datapath gives it ("a workable value").
func NewMeter(c *MeterConfig) *Meter {
	m := &Meter{pktps: c.Flags&MeterFlagPktps != 0, bands: make([]meterBand, len(c.Bands))}
	for i, cb := range c.Bands {
		b := &m.bands[i]
		rate := max(uint64(cb.Rate), 1)
		burst := uint64(cb.Burst)
		if burst == 0 {
			burst = rate
		}
		b.rate = uint32(rate)
		// Both units give the same bucket: burst packets × (1/rate) s,
		// or burst×1000 bits × (1/(rate×1000)) s.
		b.burst = mulDivSat(burst, meterTicksPerSec, rate)
		if m.pktps {
			b.cost = meterTicksPerSec / rate
		} else {
			b.cost = meterTicksPerSec / 1000 // per bit, times rate in kbps: divided per packet
		}
	}
	return m
}

// mulDivSat returns a×b/c, saturated to what an int64 of ticks can hold.
func mulDivSat(a, b, c uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	if hi >= c {
		return math.MaxInt64 >> 1
	}
	q, _ := bits.Div64(hi, lo, c)
	return min(q, math.MaxInt64>>1)
}

// Admit polices one packet of size bytes that arrives at now (nanoseconds
// on the caller's monotonic clock, never negative; tests inject it). It
// reports whether the packet passes: a packet that exceeds any band is
// dropped (every band is a drop band), and counted on the band of the
// highest rate among those it exceeded, as Open vSwitch counts it. Every
// packet is counted on the meter.
func (m *Meter) Admit(now int64, size int) bool {
	m.packets.Add(1)
	m.bytes.Add(uint64(size))
	t := now << meterTickShift
	fired := -1
	for i := range m.bands {
		b := &m.bands[i]
		cost := b.cost
		if !m.pktps {
			cost = uint64(size) * 8 * b.cost / uint64(b.rate)
		}
		if b.take(t, int64(min(cost, b.burst+1))) {
			continue
		}
		if fired < 0 || b.rate > m.bands[fired].rate {
			fired = i
		}
	}
	if fired < 0 {
		return true
	}
	m.bands[fired].packets.Add(1)
	m.bands[fired].bytes.Add(uint64(size))
	return false
}

// take takes cost ticks from the bucket at time t, if it holds them, and
// reports whether it did. The answer is exact whatever other threads do:
// a packet is refused only when the bucket, as last read, lacks its
// tokens, never because another thread changed the bucket meanwhile. A
// failed compare-and-swap means another thread's succeeded (it took
// tokens), so the retries are lock-free: the threads together make
// progress on every attempt, and a thread retries at most once per packet
// another thread admits.
func (b *meterBand) take(t, cost int64) bool {
	for {
		tat := b.tat.Load()
		next := max(tat, t) + cost
		if next-t > int64(b.burst) {
			return false
		}
		if b.tat.CompareAndSwap(tat, next) {
			return true
		}
	}
}

// MeterStats are a meter's counters: the packets and bytes that reached
// it, and per band those that exceeded it.
type MeterStats struct {
	Packets, Bytes uint64
	Bands          []MeterBandStats
}

// MeterBandStats are the counters of one band.
type MeterBandStats struct {
	Packets, Bytes uint64
}

// Stats reads the meter's counters.
func (m *Meter) Stats() MeterStats {
	s := MeterStats{Packets: m.packets.Load(), Bytes: m.bytes.Load(), Bands: make([]MeterBandStats, len(m.bands))}
	for i := range m.bands {
		s.Bands[i] = MeterBandStats{Packets: m.bands[i].packets.Load(), Bytes: m.bands[i].bytes.Load()}
	}
	return s
}

// Meterer is an Outputter that runs meters: Execute asks it whether a
// packet of size bytes passes the meter m (the datapath action meter(id)),
// and stops the packet's actions with VerdictMeterDrop when it does not.
// Without one, every packet passes.
type Meterer interface {
	Meter(id uint32, m *Meter, size int) bool
}
