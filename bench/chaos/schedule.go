package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
)

// Op names one kind of step.
type Op string

// The operations a schedule is made of. Each acts on one slot (a
// namespace with its veth pair) unless it acts on the datapath itself.
const (
	OpHostDown     Op = "host-down"     // ip link set HOST down
	OpHostUp       Op = "host-up"       // ip link set HOST up
	OpPeerDown     Op = "peer-down"     // ip link set PEER down in the slot's namespace: carrier loss on HOST
	OpPeerUp       Op = "peer-up"       // ip link set PEER up
	OpTxQueues     Op = "tx-queues"     // ethtool -L HOST tx N: HOST's real_num_tx_queues
	OpMTU          Op = "mtu"           // ip link set HOST mtu N
	OpNetnsDelete  Op = "netns-delete"  // delete the slot's namespace under traffic: the veth pair goes with it
	OpNetnsCreate  Op = "netns-create"  // create it again with its veth pair (new ifindex)
	OpVethRecreate Op = "veth-recreate" // delete the veth pair and add it again with the same names (new ifindex)
	OpPortDelete   Op = "port-delete"   // remove HOST from the datapath
	OpPortAdd      Op = "port-add"      // add it again, same name and port number
	OpRename       Op = "rename"        // rename HOST away and back
	OpXDPOff       Op = "xdp-off"       // ip link set dev HOST xdp off: remove the XDP program from under the port
	OpSigterm      Op = "sigterm"       // stop the datapath with SIGTERM and start it again
	OpSigkill      Op = "sigkill"       // kill the datapath with SIGKILL and start it again
)

// Step is one operation of a schedule.
type Step struct {
	Op   Op  `json:"op"`
	Slot int `json:"slot"`        // the slot acted on (0 for datapath-wide operations)
	N    int `json:"n,omitempty"` // tx queues or MTU
}

func (s Step) String() string {
	switch s.Op {
	case OpSigterm, OpSigkill:
		return string(s.Op)
	case OpTxQueues, OpMTU:
		return fmt.Sprintf("%s slot=%d n=%d", s.Op, s.Slot, s.N)
	}
	return fmt.Sprintf("%s slot=%d", s.Op, s.Slot)
}

// Schedule is what a run does, reproducibly: the same schedule replays
// the same steps. It is also the format of the regression corpus.
type Schedule struct {
	Seed   uint64 `json:"seed"`
	Slots  int    `json:"slots"`
	Driver string `json:"driver,omitempty"` // the driver it failed on, for the corpus
	Steps  []Step `json:"steps"`
	// Failure is what the shrunk schedule still violates, and Note what it
	// found (corpus only).
	Failure string `json:"failure,omitempty"`
	Note    string `json:"note,omitempty"`
}

func (s *Schedule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d, %d slots, %d steps:", s.Seed, s.Slots, len(s.Steps))
	for i, st := range s.Steps {
		fmt.Fprintf(&b, "\n  %2d %s", i, st)
	}
	return b.String()
}

// Initial values of a slot, which the final heal restores.
const (
	initQueues = 2 // rx and tx channels in use on each end (of maxQueues allocated)
	maxQueues  = 4
	initMTU    = 1500
)

var mtus = []int{1280, 1500, 2000, 3000}

// slotState is what a schedule has done to one slot so far.
type slotState struct {
	NS     bool // the namespace and the veth pair exist
	Port   bool // HOST is a port of the datapath
	HostUp bool
	PeerUp bool
	TxQ    int
	MTU    int
}

// healthy reports whether traffic to and from the slot must flow.
func (s slotState) healthy() bool { return s.NS && s.Port && s.HostUp && s.PeerUp }

func initialState(slots int) []slotState {
	st := make([]slotState, slots)
	for i := range st {
		st[i] = slotState{NS: true, Port: true, HostUp: true, PeerUp: true, TxQ: initQueues, MTU: initMTU}
	}
	return st
}

// applicable reports whether step can act in state st.
func applicable(st []slotState, s Step) bool {
	if s.Slot < 0 || s.Slot >= len(st) {
		return false
	}
	c := st[s.Slot]
	switch s.Op {
	case OpHostDown:
		return c.NS && c.HostUp
	case OpHostUp:
		return c.NS && !c.HostUp
	case OpPeerDown:
		return c.NS && c.PeerUp
	case OpPeerUp:
		return c.NS && !c.PeerUp
	case OpTxQueues:
		return c.NS && s.N >= 1 && s.N <= maxQueues && s.N != c.TxQ
	case OpMTU:
		return c.NS && s.N != c.MTU && s.N >= 1280
	case OpNetnsDelete, OpVethRecreate, OpRename, OpXDPOff:
		return c.NS
	case OpNetnsCreate:
		return !c.NS
	case OpPortDelete:
		return c.Port
	case OpPortAdd:
		return !c.Port && c.NS
	case OpSigterm, OpSigkill:
		return true
	}
	return false
}

// apply records step's effect on st (step must be applicable).
func apply(st []slotState, s Step) {
	c := &st[s.Slot]
	switch s.Op {
	case OpHostDown:
		c.HostUp = false
	case OpHostUp:
		c.HostUp = true
	case OpPeerDown:
		c.PeerUp = false
	case OpPeerUp:
		c.PeerUp = true
	case OpTxQueues:
		c.TxQ = s.N
	case OpMTU:
		c.MTU = s.N
	case OpNetnsDelete:
		port := c.Port
		*c = slotState{Port: port}
	case OpNetnsCreate, OpVethRecreate:
		port := c.Port
		*c = initialState(1)[0]
		c.Port = port
	case OpPortDelete:
		c.Port = false
	case OpPortAdd:
		c.Port = true
	}
}

// weights make some operations likelier than others: the teardown paths
// (namespace deletion, veth re-creation, port delete) come up often.
var weights = []struct {
	op Op
	w  int
}{
	{OpHostDown, 3}, {OpHostUp, 4}, {OpPeerDown, 3}, {OpPeerUp, 4},
	{OpTxQueues, 4}, {OpMTU, 2}, {OpNetnsDelete, 3}, {OpNetnsCreate, 4},
	{OpVethRecreate, 3}, {OpPortDelete, 2}, {OpPortAdd, 3}, {OpRename, 2},
	{OpXDPOff, 2}, {OpSigterm, 1}, {OpSigkill, 1},
}

// Generate builds the schedule of seed: 3 or 4 slots and steps steps,
// each applicable in the state the ones before it leave.
func Generate(seed uint64, steps int) *Schedule {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	s := &Schedule{Seed: seed, Slots: 3 + r.IntN(2)}
	st := initialState(s.Slots)
	total := 0
	for _, w := range weights {
		total += w.w
	}
	for len(s.Steps) < steps {
		pick := r.IntN(total)
		var op Op
		for _, w := range weights {
			if pick < w.w {
				op = w.op
				break
			}
			pick -= w.w
		}
		step := Step{Op: op, Slot: r.IntN(s.Slots)}
		switch op {
		case OpTxQueues:
			step.N = 1 + r.IntN(maxQueues)
		case OpMTU:
			step.N = mtus[r.IntN(len(mtus))]
		case OpSigterm, OpSigkill:
			step.Slot = 0
		}
		if !applicable(st, step) {
			continue
		}
		apply(st, step)
		s.Steps = append(s.Steps, step)
	}
	return s
}

// LoadSchedule reads a schedule saved as JSON.
func LoadSchedule(path string) (*Schedule, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s Schedule
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("schedule %s: %w", path, err)
	}
	if s.Slots < 2 || s.Slots > 8 {
		return nil, fmt.Errorf("schedule %s: %d slots, want 2 to 8", path, s.Slots)
	}
	for i, st := range s.Steps {
		if _, ok := opWeight(st.Op); !ok {
			return nil, fmt.Errorf("schedule %s: step %d: unknown operation %q", path, i, st.Op)
		}
	}
	return &s, nil
}

func opWeight(op Op) (int, bool) {
	for _, w := range weights {
		if w.op == op {
			return w.w, true
		}
	}
	return 0, false
}

// Save writes s as indented JSON.
func (s *Schedule) Save(path string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
