package datapath

import (
	"fmt"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
)

// Open vSwitch does not hand out a port's number again soon after the port
// went: flows and controllers may still name the old port by it, and the
// new port would take their traffic. Its numbers come from a cursor that
// only moves forward, skipping numbers in use and those released within
// the last hour; when every number was released within the hour, the one
// released longest ago is taken. Numbers given by the caller (ofport_request,
// or the number the database last had for the port) are taken whenever
// they are free. ovsxdp does the same, so that port numbers follow the same
// sequence as on Open vSwitch.

// autoOFPortMax is the highest number handed out automatically: the upper
// half of the range is left for numbers that controllers request, as in
// Open vSwitch.
const autoOFPortMax = min(MaxOFPort, 32767)

// ofportReuseAfter is how long a released number is passed over.
const ofportReuseAfter = time.Hour

// ofportAlloc is a bridge's record of the numbers it handed out.
type ofportAlloc struct {
	cursor   uint32               // the last number handed out automatically
	released map[uint32]time.Time // when each released number was released
}

// pickOFPortLocked checks the new port as checkNewPortLocked does and
// returns the OpenFlow port number it gets: ofport, or the next number
// from the cursor when ofport is 0. b.mu must be held.
func (b *Bridge) pickOFPortLocked(name string, ofport uint32) (uint32, error) {
	if err := b.checkNewPortLocked(name, ofport); err != nil {
		return 0, err
	}
	if ofport == 0 {
		if ofport = b.nextOFPortLocked(time.Now()); ofport == 0 {
			return 0, fmt.Errorf("add port %s to %s: every OpenFlow port number up to %d is taken", name, b.cfg.Name, autoOFPortMax)
		}
	}
	delete(b.ofports.released, ofport)
	return ofport, nil
}

// checkNewPortLocked checks that no port, attached or detached, has name,
// and that ofport, unless 0, is a number a new port may take (1 to
// MaxOFPort, or flow.PortLocal for the bridge's LOCAL port) and free. It
// hands out nothing. b.mu must be held.
func (b *Bridge) checkNewPortLocked(name string, ofport uint32) error {
	t := b.ports.Load()
	if t.byName(name) != nil || b.links.detached[name] != nil {
		return fmt.Errorf("add port %s to %s: %w", name, b.cfg.Name, ErrPortExists)
	}
	switch {
	case ofport == 0:
	case ofport == flow.PortLocal:
		if b.ofportUsedLocked(ofport) {
			return fmt.Errorf("add port %s to %s: LOCAL: %w", name, b.cfg.Name, ErrOFPortUsed)
		}
	case ofport > MaxOFPort:
		return fmt.Errorf("add port %s to %s: OpenFlow port %d out of range 1-%d", name, b.cfg.Name, ofport, MaxOFPort)
	case b.ofportUsedLocked(ofport):
		return fmt.Errorf("add port %s to %s: %d: %w", name, b.cfg.Name, ofport, ErrOFPortUsed)
	}
	return nil
}

// nextOFPortLocked moves the cursor to the next number free to hand out
// at now and returns it, or 0 when every number is in use. b.mu must be
// held.
func (b *Bridge) nextOFPortLocked(now time.Time) uint32 {
	a := &b.ofports
	var lru uint32
	var lruAt time.Time
	for range autoOFPortMax {
		if a.cursor++; a.cursor > autoOFPortMax {
			a.cursor = 1
		}
		n := a.cursor
		if b.ofportUsedLocked(n) {
			continue
		}
		at, was := a.released[n]
		if !was || now.Sub(at) >= ofportReuseAfter {
			return n
		}
		if lru == 0 || at.Before(lruAt) {
			lru, lruAt = n, at
		}
	}
	return lru // the cursor is back where it started, as in Open vSwitch
}

// releaseOFPortLocked notes that number n was released, unless a port
// (attached or detached) still has it. b.mu must be held.
func (b *Bridge) releaseOFPortLocked(n uint32) {
	if n == flow.PortLocal || b.ofportUsedLocked(n) {
		return
	}
	if b.ofports.released == nil {
		b.ofports.released = map[uint32]time.Time{}
	}
	b.ofports.released[n] = time.Now()
}

// ofportUsedLocked reports whether a port, attached or detached, has
// number n. b.mu must be held.
func (b *Bridge) ofportUsedLocked(n uint32) bool {
	if b.ports.Load().lookup(n) != nil {
		return true
	}
	for _, dp := range b.links.detached {
		if dp.ofport == n {
			return true
		}
	}
	return false
}
