package daemon

import (
	"runtime"
	"time"
)

// expireInterval is how often the daemon removes the flows whose idle or
// hard timeout has passed.
const expireInterval = time.Second

// expireLoop removes expired flows from every bridge's table each
// expireInterval (and saves the state when it removed any), and saves the
// state at most each saveInterval after changes mark it dirty (state.go),
// until Close, for which it saves a dirty state last.
func (d *Daemon) expireLoop() {
	defer close(d.done)
	t := time.NewTicker(expireInterval)
	defer t.Stop()
	save := time.NewTimer(saveInterval)
	save.Stop()
	var saveAt time.Time // when the next save may start
	var changes uint64   // d.saver.changes at the last tick
	var release releasePacer
	for {
		select {
		case <-d.stop:
			d.saveIfDirty(runtime.GOMAXPROCS(0))
			return
		case now := <-t.C:
			d.expire(now)
			d.threads.SampleUsage(now)
			d.mu.Lock()
			quiet := d.saver.changes == changes
			changes = d.saver.changes
			dirty := d.saver.dirty
			d.mu.Unlock()
			if release.tick(quiet, dirty) {
				releaseMemory()
			}
		case <-d.saver.kick:
			save.Reset(time.Until(saveAt))
		case <-save.C:
			start := time.Now()
			// A save formats every flow (without the daemon's
			// lock): with many flows, it waits for four times as
			// long as the last one took, so that saving takes at
			// most a fifth of the time. It formats on one
			// goroutine: it takes as much CPU as on all of them,
			// and so at most a fifth of one CPU, not of every CPU
			// the changes that keep coming need.
			d.saveIfDirty(1)
			saveAt = time.Now().Add(max(saveInterval, 4*time.Since(start)))
			if release.saved() {
				releaseMemory()
			}
		}
	}
}

// releasePacer decides when the expiry loop releases memory
// (releaseMemory): at a tick that follows a second without changes, or,
// when the changes stopped with their save still pending, once that save
// is done. A save formats every flow: its garbage, made after a release,
// would stay resident.
type releasePacer struct {
	due bool // the changes stopped; their save is pending
}

// tick is a tick of the loop: quiet says that no change came since the
// last one, dirty that a save is pending. It reports whether to release
// now.
func (p *releasePacer) tick(quiet, dirty bool) bool {
	p.due = quiet && dirty
	return quiet && !dirty
}

// saved is the end of a save. It reports whether to release now.
func (p *releasePacer) saved() bool {
	due := p.due
	p.due = false
	return due
}

// expire removes the flows expired at now.
func (d *Daemon) expire(now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, b := range d.sortedLocked() {
		expired := b.dp.Table().Expire(now)
		for _, r := range expired {
			n++
			d.log.Debug("flow expired", "bridge", b.name, "priority", r.Priority, "cookie", r.Cookie)
		}
		if len(expired) > 0 {
			d.reportExpiredLocked(b, expired, now) // ofmonitor.go
		}
	}
	if n == 0 {
		return
	}
	if err := d.saveLocked(); err != nil {
		d.log.Error("saving the state after flows expired", "err", err)
	}
}
