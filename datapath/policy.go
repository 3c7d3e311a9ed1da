package datapath

import "fmt"

// Policy is how output checks a port's device state and picks its tx queue.
// The first three reproduce the kernel's do_output/skb_tx_hash of successive
// Linux releases, spin included; Guarded is ovsxdp's own and the default.
type Policy uint8

// The output policies (see the project's design notes).
const (
	// Guarded requires the port to exist, be registered, running, with
	// carrier and at least one tx queue, all read from one snapshot, and
	// picks the queue with a bounded O(1) reduction. The default.
	Guarded Policy = iota
	// Legacy is Linux 5.10: the port exists → transmit; the queue pick
	// subtracts the queue count in a loop, which never ends when the
	// count is 0.
	Legacy
	// Carrier is the 2023 fix: carrier is also required; same loop, with a
	// once-only warning when the count is 0.
	Carrier
	// Upstream is both fixes (2023, 2025): running and carrier required;
	// same loop and warning.
	Upstream
	numPolicies
)

var policyNames = [numPolicies]string{
	Guarded:  "guarded",
	Legacy:   "legacy",
	Carrier:  "carrier",
	Upstream: "upstream",
}

// Policies lists every policy, default first.
func Policies() []Policy { return []Policy{Guarded, Legacy, Carrier, Upstream} }

func (p Policy) String() string {
	if p < numPolicies {
		return policyNames[p]
	}
	return fmt.Sprintf("policy(%d)", uint8(p))
}

// ParsePolicy returns the policy with the given name.
func ParsePolicy(s string) (Policy, error) {
	for p, name := range policyNames {
		if s == name {
			return Policy(p), nil
		}
	}
	return 0, fmt.Errorf("unknown output policy %q (want guarded, legacy, carrier or upstream)", s)
}
