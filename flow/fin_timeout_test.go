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
			if r.Table == table && ruleMatchText(r) == m {
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
			t.Fatalf("%s: timeouts idle %d, hard %d; want %d, %d", ruleMatchText(r), i, h, idle, hard)
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

// TestFinTimeoutExpiresRuleWithoutTimeouts checks that a rule added
// without timeouts expires once a fin_timeout action gave it one, both in
// the first Expire after the reduction and in later ones: Expire passes
// over the groups of rules without timeouts otherwise.
func TestFinTimeoutExpiresRuleWithoutTimeouts(t *testing.T) {
	tbl := pipeline(t,
		"tcp,tp_dst=80,actions=fin_timeout(idle_timeout=5),output:2",
		"priority=1,actions=output:3",
	)
	c, err := NewCache(tbl, DefaultEMCEntries, 0)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if got := tbl.Expire(start.Add(time.Hour)); len(got) != 0 {
		t.Fatalf("an hour on, before any FIN: %d rules expired, want none", len(got))
	}
	k := microflow(t, "in_port=1,tcp,tp_dst=80")
	m, _ := c.Lookup(&k)
	c.Account(m, 1, 64, start.UnixNano())
	c.AccountTCPFlags(m, TCPFlagFIN)
	c.CreditRules()
	if got := tbl.Expire(start.Add(time.Second)); len(got) != 0 {
		t.Fatalf("1s after the FIN: %d rules expired, want none", len(got))
	}
	got := tbl.Expire(start.Add(6 * time.Second))
	if len(got) != 1 || ruleMatchText(got[0]) != "tcp,tp_dst=80" {
		t.Fatalf("6s after the FIN: %d rules expired, want the tcp rule (idle timeout 5s from fin_timeout)", len(got))
	}
	if tbl.Len() != 1 {
		t.Fatalf("%d rules left, want the priority=1 rule", tbl.Len())
	}
}

// TestRuleSetCountsTimedRules checks the count of rules with timeouts
// that lets Expire pass over a group, through add, replace, mod-flows
// (which keeps timeouts) and delete.
func TestRuleSetCountsTimedRules(t *testing.T) {
	tbl := NewTable()
	var p Parser
	add := func(s string) {
		t.Helper()
		f, err := p.ParseFlow(s, CmdAdd)
		if err != nil {
			t.Fatal(err)
		}
		if err := tbl.Add(f); err != nil {
			t.Fatal(err)
		}
	}
	timed := func(want int) {
		t.Helper()
		n := 0
		for _, g := range tbl.groups {
			n += g.rules.timed
		}
		if n != want {
			t.Fatalf("%d rules counted with timeouts, want %d", n, want)
		}
	}
	add("in_port=1,idle_timeout=10,actions=drop")
	add("in_port=2,actions=drop")
	add("in_port=3,hard_timeout=10,actions=drop")
	timed(2)
	add("in_port=1,actions=drop") // replaces the idle_timeout=10 rule
	timed(1)
	add("in_port=2,idle_timeout=5,actions=drop")
	timed(2)
	mod := mkFlow(0, out(4), inPort(3))
	mod.Table = TableAll
	if n, _ := tbl.Modify(&mod, false); n != 1 {
		t.Fatalf("mod-flows changed %d rules, want 1", n)
	}
	timed(2)
	del := mkFlow(0, nil, inPort(2))
	del.Table = TableAll
	tbl.Delete(&del, false)
	timed(1)
}
