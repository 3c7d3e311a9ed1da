package conntrack

import (
	"fmt"
	"strings"
	"sync/atomic"
)

// Limits: a maximum number of connections in the table
// (dpctl/ct-set-maxconns) and per-zone limits (dpctl/ct-set-limits). A
// commit beyond either is refused (flow.VerdictCTFull) and counted;
// connections already in the table go on.

// zoneState is a zone's limit and count.
type zoneState struct {
	// limit is 0 when the zone has no limit of its own (the default
	// applies), else its limit + 1 (a limit of 0: none).
	limit atomic.Uint32
	count atomic.Int32
}

type zoneBlock [256]zoneState

// zone returns the state of a zone.
func (tr *Tracker) zone(z uint16) *zoneState {
	p := &tr.zones[z>>8]
	b := p.Load()
	if b == nil {
		p.CompareAndSwap(nil, new(zoneBlock))
		b = p.Load()
	}
	return &b[z&0xff]
}

// SetMaxConns sets the maximum number of connections. Lowering it below
// the current count removes nothing: new commits are refused until
// connections end.
func (tr *Tracker) SetMaxConns(n uint32) { tr.maxConns.Store(n) }

// MaxConns returns the maximum number of connections.
func (tr *Tracker) MaxConns() uint32 { return tr.maxConns.Load() }

// SetDefaultZoneLimit sets the limit of every zone that has none of its
// own; 0 means no limit (Open vSwitch's default).
func (tr *Tracker) SetDefaultZoneLimit(limit uint32) { tr.defaultLimit.Store(limit) }

// DefaultZoneLimit returns the default zone limit (0: none).
func (tr *Tracker) DefaultZoneLimit() uint32 { return tr.defaultLimit.Load() }

// SetZoneLimit gives a zone a limit of its own; 0 means no limit. A limit
// is a count of connections, at most 2^31-1.
func (tr *Tracker) SetZoneLimit(zone uint16, limit uint32) error {
	if limit >= 1<<31 {
		return fmt.Errorf("zone %d limit %d: %w", zone, limit, ErrBadConfig)
	}
	tr.zone(zone).limit.Store(limit + 1)
	return nil
}

// DeleteZoneLimit removes a zone's own limit: the default applies again.
func (tr *Tracker) DeleteZoneLimit(zone uint16) { tr.zone(zone).limit.Store(0) }

// zoneLimitOf returns the limit that applies to a zone (0: none).
func (tr *Tracker) zoneLimitOf(zone uint16) uint32 {
	if v := tr.zone(zone).limit.Load(); v != 0 {
		return v - 1
	}
	return tr.defaultLimit.Load()
}

// ZoneLimit is a zone's limit and its connection count.
type ZoneLimit struct {
	Zone  uint16
	Limit uint32 // 0: no limit
	Count uint32
}

// ZoneLimits returns the zones given, or when none are given every zone
// with a limit of its own, with the limit that applies and the count.
func (tr *Tracker) ZoneLimits(zones ...uint16) []ZoneLimit {
	var out []ZoneLimit
	add := func(z uint16) {
		out = append(out, ZoneLimit{Zone: z, Limit: tr.zoneLimitOf(z), Count: uint32(max(tr.zone(z).count.Load(), 0))})
	}
	if len(zones) > 0 {
		for _, z := range zones {
			add(z)
		}
		return out
	}
	for hi := range tr.zones {
		b := tr.zones[hi].Load()
		if b == nil {
			continue
		}
		for lo := range b {
			if b[lo].limit.Load() != 0 {
				add(uint16(hi<<8 | lo))
			}
		}
	}
	return out
}

// FormatZoneLimits formats limits as dpctl/ct-get-limits prints them:
// "default limit=N", then one "zone=Z,limit=L,count=C" line per zone.
func FormatZoneLimits(defaultLimit uint32, zones []ZoneLimit) string {
	var b strings.Builder
	fmt.Fprintf(&b, "default limit=%d", defaultLimit)
	for _, z := range zones {
		fmt.Fprintf(&b, "\nzone=%d,limit=%d,count=%d", z.Zone, z.Limit, z.Count)
	}
	return b.String()
}
