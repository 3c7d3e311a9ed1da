package flow

import "sync/atomic"

// This file is what fin_timeout actions do to the rules that run them: a
// megaflow records them (Translation.FinTimeouts), the datapath tells the
// megaflow the TCP flags of its packets (Cache.AccountTCPFlags), and a FIN
// or RST among them reduces the rules' timeouts when the megaflow credits
// its rules, as Open vSwitch's xlate cache does.

// TCP flags that end a connection, for fin_timeout.
const (
	TCPFlagFIN = 0x001
	TCPFlagRST = 0x004
)

// reduceTimeouts lowers the rule's idle and hard timeouts to idle and hard
// (seconds; 0 leaves one alone) where they are longer or none, as a
// fin_timeout action does once a TCP packet with FIN or RST takes the
// rule. It is safe for concurrent use.
func (r *Rule) reduceTimeouts(idle, hard uint16) {
	reduce := func(v *atomic.Uint32, max, configured uint16) {
		if max == 0 {
			return
		}
		for {
			old := v.Load()
			cur := configured
			if old != 0 {
				cur = uint16(old)
			}
			if cur != 0 && cur <= max {
				return
			}
			if v.CompareAndSwap(old, uint32(max)) {
				finReductions.Add(1)
				return
			}
		}
	}
	reduce(&r.stats.finIdle, idle, r.IdleTimeout)
	reduce(&r.stats.finHard, hard, r.HardTimeout)
}

// finReductions counts the reductions of rules' timeouts by fin_timeout
// actions, so that Table.Expire knows when to look at rules that had no
// timeouts.
var finReductions atomic.Uint64

// Timeouts returns the rule's idle and hard timeouts in seconds (0: none):
// those it was added with, unless a fin_timeout action reduced them.
func (r *Rule) Timeouts() (idle, hard uint16) {
	idle, hard = r.IdleTimeout, r.HardTimeout
	if v := r.stats.finIdle.Load(); v != 0 {
		idle = uint16(v)
	}
	if v := r.stats.finHard.Load(); v != 0 {
		hard = uint16(v)
	}
	return idle, hard
}
