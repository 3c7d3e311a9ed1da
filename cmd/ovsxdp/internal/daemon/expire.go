package daemon

import "time"

// expireInterval is how often the daemon removes the flows whose idle or
// hard timeout has passed.
const expireInterval = time.Second

// expireLoop removes expired flows from every bridge's table each
// expireInterval, and saves the state when it removed any, until Close.
func (d *Daemon) expireLoop() {
	defer close(d.done)
	t := time.NewTicker(expireInterval)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case now := <-t.C:
			d.expire(now)
			releaseMemory()
		}
	}
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
