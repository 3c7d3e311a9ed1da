package flow

import (
	"testing"
	"time"
)

// TestFinTimeout checks that a fin_timeout action reduces the timeouts of
// the rule that ran it once a TCP packet with FIN or RST takes its
// megaflow, and only then: the megaflow is the same for packets with and
// without the flags, as in Open vSwitch.
func TestFinTimeout(t *testing.T) {
	tbl := pipeline(t,
		"idle_timeout=60,hard_timeout=600,tcp,tp_dst=80,actions=fin_timeout(idle_timeout=5,hard_timeout=30),output:2",
		"idle_timeout=60,udp,actions=fin_timeout(idle_timeout=5),output:2",
		"priority=1,actions=resubmit(,1)",
		"table=1,hard_timeout=20,actions=fin_timeout(idle_timeout=7,hard_timeout=50),output:3",
	)
	c, err := NewCache(tbl, DefaultEMCEntries, 0)
	if err != nil {
		t.Fatal(err)
	}
	rule := func(table uint8, m string) *Rule {
		t.Helper()
		for _, r := range tbl.Dump(nil) {
			if r.Table == table && FormatMatch(&r.Match, r.Priority) == m {
				return r
			}
		}
		t.Fatalf("no rule %s", m)
		return nil
	}
	tcp, udp, other := rule(0, "tcp,tp_dst=80"), rule(0, "udp"), rule(1, "")
	send := func(mf string, flags uint16) {
		t.Helper()
		k := microflow(t, mf)
		m, _ := c.Lookup(&k)
		c.Account(m, 1, 64, time.Now().UnixNano())
		c.AccountTCPFlags(m, flags)
		c.CreditRules()
	}
	timeouts := func(r *Rule, idle, hard uint16) {
		t.Helper()
		if i, h := r.Timeouts(); i != idle || h != hard {
			t.Fatalf("%s: timeouts idle %d, hard %d; want %d, %d", FormatMatch(&r.Match, r.Priority), i, h, idle, hard)
		}
	}

	send("in_port=1,tcp,tp_dst=80", 0x010) // ACK
	timeouts(tcp, 60, 600)
	send("in_port=1,tcp,tp_dst=80", TCPFlagFIN|0x010)
	timeouts(tcp, 5, 30)
	send("in_port=1,udp,tp_dst=53", TCPFlagRST) // not TCP: no effect
	timeouts(udp, 60, 0)
	// Not TCP, or no FIN nor RST: no effect.
	send("in_port=1,icmp", TCPFlagFIN)
	send("in_port=1,tcp,tp_dst=22", 0x002)
	timeouts(other, 0, 20)
	// Through a resubmit: a timeout already shorter stays, none at all
	// is set.
	send("in_port=1,tcp,tp_dst=22", TCPFlagRST)
	timeouts(other, 7, 20)
	if got := tbl.Expire(time.Now().Add(6 * time.Second)); len(got) != 1 || got[0] != tcp {
		t.Fatalf("expired 6s later: %d rules, want the tcp rule alone (idle timeout 5s, the others 7s and more)", len(got))
	}
}
