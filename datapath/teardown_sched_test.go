package datapath

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// A teardown schedule is a byte string that the deterministic driver runs
// against a bridge of four ports: packets, device state changes, the steps
// of unregister sequences, port additions and removals, rule changes and
// grace periods, interleaved as the bytes say. One goroutine drives the
// poll thread (one batch per packet), so every interleaving is exact and
// replayable, and lockups are found by the spin budget instead of the
// watchdog. Every byte string is a valid schedule.
//
// Layout: a header of three bytes, then operations of two bytes each.
//
//	header[0] % 5   policy: guarded, legacy, carrier, upstream; 4 = all
//	header[1] % 3   device kind: veth-like, dummy-like; 2 = both
//	header[2] % 3   order: kernel, free; 2 = both
//	op[0] % 12      operation (see opOf); op[1] its argument
//
// In kernel order, state changes arrive as the kernel makes them: the
// unregister steps run in sequence (a step operation runs the next one),
// nothing else changes a device once its unregistering has begun (the
// kernel holds the RTNL lock), a veth gains carrier only while up, and the
// tx queue count stays at 1 or more until the unregister sets it to 0. In
// free order the datapath learns of state changes in any order, as a
// userspace process does when link events are coalesced, reordered or
// lost: running, carrier and the tx queue count (0 included) are set
// directly, and a step operation runs the step it names, in any order.

const (
	schedHeaderLen = 3
	schedMaxOps    = 256
	schedSlots     = 4 // ports p1-p4, OpenFlow ports 1-4
	schedRxQueues  = 2
	schedTxQueues  = 4
	schedSizes     = 4
	schedFlows     = 2
)

// schedOrder is the order in which the datapath learns of state changes.
type schedOrder uint8

const (
	kernelOrder schedOrder = iota
	freeOrder
)

func (o schedOrder) String() string {
	if o == kernelOrder {
		return "kernel-order"
	}
	return "free-order"
}

// schedConfig is one run of a schedule.
type schedConfig struct {
	policy Policy
	kind   vport.DeviceKind
	order  schedOrder
}

func (c schedConfig) String() string { return fmt.Sprintf("%s/%s/%s", c.policy, c.kind, c.order) }

// schedOp is an operation kind.
type schedOp uint8

const (
	opPacket   schedOp = iota // arg: ingress slot (bits 0-1), rx queue (2-3), recorded (4), size (5-6), flow (7)
	opLink                    // arg: slot (0-1), up (2)
	opCarrier                 // arg: slot (0-1), on (2)
	opTxQueues                // arg: slot (0-1), count (2-4)
	opStep                    // arg: slot (0-1), step (2-4; free order only)
	opPort                    // arg: slot (0-1), add (2)
	opRules                   // arg: rule set (0-2)
	opGrace                   // arg: grace period (0) or an idle poll
)

// opOf maps an operation byte to its kind. Packets take a third of the
// byte values; unregister steps, which a teardown needs several of, two
// twelfths.
func opOf(b byte) schedOp {
	switch v := b % 12; {
	case v < 4:
		return opPacket
	case v < 7:
		return schedOp(v - 3) // link, carrier, tx queues
	case v < 9:
		return opStep
	default:
		return schedOp(v - 4) // port, rules, grace
	}
}

// opByte is the canonical byte of an operation kind (opOf(opByte(o)) == o).
func opByte(o schedOp) byte {
	switch o {
	case opPacket:
		return 0
	case opLink, opCarrier, opTxQueues:
		return byte(o) + 3
	case opStep:
		return 7
	}
	return byte(o) + 4
}

// decodeSchedule splits a schedule into the runs its header asks for and
// its operations (at most schedMaxOps; a trailing odd byte is ignored).
func decodeSchedule(in []byte) ([]schedConfig, []byte) {
	var h [schedHeaderLen]byte
	copy(h[:], in)
	ops := in[min(len(in), schedHeaderLen):]
	ops = ops[:min(len(ops)&^1, 2*schedMaxOps)]

	pols := Policies()
	if p := h[0] % 5; p < 4 {
		pols = pols[p : p+1]
	}
	kinds := []vport.DeviceKind{vport.VethLike, vport.DummyLike}
	if k := h[1] % 3; k < 2 {
		kinds = kinds[k : k+1]
	}
	orders := []schedOrder{kernelOrder, freeOrder}
	if o := h[2] % 3; o < 2 {
		orders = orders[o : o+1]
	}
	var cfgs []schedConfig
	for _, p := range pols {
		for _, k := range kinds {
			for _, o := range orders {
				cfgs = append(cfgs, schedConfig{policy: p, kind: k, order: o})
			}
		}
	}
	return cfgs, ops
}

// describeSchedule renders ops one per line, for failure messages.
func describeSchedule(ops []byte) string {
	var sb strings.Builder
	for i := 0; i+1 < len(ops); i += 2 {
		a := ops[i+1]
		slot := int(a&3) + 1
		switch opOf(ops[i]) {
		case opPacket:
			rec := "unrecorded"
			if a&0x10 != 0 {
				rec = "recorded"
			}
			fmt.Fprintf(&sb, "packet in p%d rxq %d %s size %d flow %d\n", slot, int(a>>2&3)%schedRxQueues, rec, a>>5&3, a>>7)
		case opLink:
			fmt.Fprintf(&sb, "link p%d up=%v\n", slot, a&4 != 0)
		case opCarrier:
			fmt.Fprintf(&sb, "carrier p%d on=%v\n", slot, a&4 != 0)
		case opTxQueues:
			fmt.Fprintf(&sb, "txqueues p%d n=%d\n", slot, a>>2&7)
		case opStep:
			fmt.Fprintf(&sb, "unregister p%d step %v (free order)\n", slot, UnregisterStep(a>>2&7)%NumUnregisterSteps)
		case opPort:
			fmt.Fprintf(&sb, "port p%d add=%v\n", slot, a&4 != 0)
		case opRules:
			fmt.Fprintf(&sb, "rules %d: %s\n", a&7, strings.Join(schedRuleSets[a&7], " ; "))
		case opGrace:
			if a&1 == 0 {
				sb.WriteString("grace period\n")
			} else {
				sb.WriteString("idle poll\n")
			}
		}
	}
	return sb.String()
}

// schedRuleSets are the rule sets a schedule switches between.
var schedRuleSets = [8][]string{
	{"in_port=1,actions=output:2", "in_port=2,actions=output:1"},
	{"in_port=1,actions=output:2,output:3", "priority=0,actions=output:1"},
	{"priority=0,actions=flood"},
	{"in_port=1,actions=output:4", "in_port=4,actions=in_port"},
	{"actions=drop"},
	{"actions=normal"},
	{"in_port=1,actions=output:2", "in_port=3,actions=output:2", "in_port=2,actions=output:3,output:4"},
	{"in_port=1,actions=output:2,output:2", "priority=0,actions=output:1"},
}

// schedFixtures are the parsed rule sets and the frames packets carry,
// built once.
var schedFixtures struct {
	once   sync.Once
	rules  [len(schedRuleSets)][]flow.Flow
	frames [schedSizes][schedFlows][]byte
	err    error
}

func loadSchedFixtures(tb testing.TB) {
	tb.Helper()
	fx := &schedFixtures
	fx.once.Do(func() {
		for i, set := range schedRuleSets {
			for _, s := range set {
				f, err := flow.ParseFlow(s, flow.CmdAdd)
				if err != nil {
					fx.err = fmt.Errorf("parse %q: %w", s, err)
					return
				}
				fx.rules[i] = append(fx.rules[i], *f)
			}
		}
		payloads := [schedSizes]int{18, 100, 500, 1400}
		for s, pay := range payloads {
			for fl := 0; fl < schedFlows; fl++ {
				fx.frames[s][fl] = buildFrame(tb, frameSpec{
					src: fmt.Sprintf("10.0.%d.1", fl), dst: "10.0.9.9",
					proto: "udp", sport: uint16(1000 + fl), dport: 53, payloadSz: pay,
				})
			}
		}
	})
	if fx.err != nil {
		tb.Fatal(fx.err)
	}
}

// schedOutcome is what one run of a schedule did.
type schedOutcome struct {
	cfg     schedConfig
	lockups []Lockup
	nlock   uint64
	// drops sums every port's ingress drops by reason; outputs counts the
	// copies output queued.
	drops   [NumDropReasons]uint64
	outputs uint64
	// maxSteps is the most steps any teardown ran.
	maxSteps int
}

// schedSlot is one of the bridge's four port positions.
type schedSlot struct {
	name string
	of   uint32
	port *Port // nil while the slot has no port
	sp   *schedPort
	dev  *vport.Device // the device of port, or of the port td tears down
	td   *Teardown     // the unregister sequence in progress, if any
}

// schedRun is one run of a schedule: the bridge, its only poll thread, and
// the driver's view of the slots.
type schedRun struct {
	cfg   schedConfig
	b     *Bridge
	p     *pmd
	ctx   context.Context
	slots [schedSlots]schedSlot
	all   []*Port // every port ever added, removed ones included
	out   schedOutcome
	// bad is the first invariant violation the output hook saw.
	bad error
}

var discardLog = slog.New(slog.DiscardHandler)

// runSchedule runs ops under cfg and returns what happened, or the first
// invariant that did not hold. loadSchedFixtures must have been called.
func runSchedule(cfg schedConfig, ops []byte) (schedOutcome, error) {
	b, err := New(Config{
		Name: "fz", Policy: cfg.policy, EMCEntries: 16, MACTableSize: 64,
		Watchdog: WatchdogConfig{SpinBudget: MinSpinBudget, Disabled: true, Log: discardLog},
	})
	if err != nil {
		return schedOutcome{}, err
	}
	defer b.Close()
	r := &schedRun{cfg: cfg, b: b, p: b.pmds[0], ctx: context.Background(), out: schedOutcome{cfg: cfg}}
	b.outputHook = r.checkOutput
	for i := range r.slots {
		r.slots[i] = schedSlot{name: fmt.Sprintf("p%d", i+1), of: uint32(i + 1)}
		if err := r.addPort(&r.slots[i]); err != nil {
			return r.out, err
		}
	}
	b.Table().AddFlows(schedFixtures.rules[0])
	for i := 0; i+1 < len(ops); i += 2 {
		if err := r.do(opOf(ops[i]), ops[i+1]); err != nil {
			return r.out, fmt.Errorf("op %d: %w", i/2, err)
		}
		if r.bad != nil {
			return r.out, fmt.Errorf("op %d: %w", i/2, r.bad)
		}
		if err := r.checkAccounting(); err != nil {
			return r.out, fmt.Errorf("op %d: %w", i/2, err)
		}
	}
	return r.out, r.finish()
}

// checkOutput is the bridge's output hook: the invariants of output under
// every policy, and under guarded what the snapshot must have shown.
func (r *schedRun) checkOutput(tbl *portTable, dst *Port, st vport.DeviceState, q int) {
	r.out.outputs++
	if r.bad != nil {
		return
	}
	switch {
	case tbl.lookup(dst.OFPort) != dst:
		r.bad = fmt.Errorf("output to %s, which is not in the port table the thread holds", dst.Name)
	case q < 0 || q >= dst.vp.TxQueues():
		r.bad = fmt.Errorf("output to %s on tx queue %d of %d", dst.Name, q, dst.vp.TxQueues())
	case r.cfg.policy != Guarded:
	case st.Registration() != vport.Registered || !st.Running() || !st.Carrier() || st.TxQueues() == 0:
		r.bad = fmt.Errorf("guarded output to %s in state %s", dst.Name, st)
	case q >= st.TxQueues():
		r.bad = fmt.Errorf("guarded output to %s on tx queue %d, snapshot has %d", dst.Name, q, st.TxQueues())
	}
}

// poll runs one batch of the poll thread, as its loop does.
func (r *schedRun) poll() {
	r.p.rd.enter()
	r.p.poll(time.Now())
	r.p.rd.leave()
}

func (r *schedRun) addPort(s *schedSlot) error {
	dev, err := vport.NewDevice(s.name, r.cfg.kind, schedTxQueues)
	if err != nil {
		return err
	}
	if err := dev.SetUp(); err != nil {
		return err
	}
	sp := newSchedPort(dev, schedRxQueues)
	p, err := r.b.AddPort(sp, s.of)
	if err != nil {
		return err
	}
	s.port, s.sp, s.dev = p, sp, dev
	r.all = append(r.all, p)
	return nil
}

// do runs one operation.
func (r *schedRun) do(op schedOp, a byte) error {
	s := &r.slots[a&3]
	kernel := r.cfg.order == kernelOrder
	// In kernel order nothing changes a device while it is unregistering.
	frozen := kernel && s.td != nil
	switch op {
	case opPacket:
		if s.port != nil {
			q := int(a>>2&3) % schedRxQueues
			var info vport.RxInfo
			if a&0x10 != 0 {
				info.RxQueue = vport.RecordRxQueue(q)
			}
			s.sp.inject(q, schedFixtures.frames[a>>5&3][a>>7], info)
		}
		r.poll()
	case opLink:
		switch up := a&4 != 0; {
		case s.dev == nil || frozen:
		case !kernel:
			s.dev.SetRunning(up)
		case up:
			return s.dev.SetUp()
		default:
			s.dev.Close()
		}
	case opCarrier:
		on := a&4 != 0
		switch {
		case s.dev == nil || frozen:
		case kernel && on && r.cfg.kind == vport.VethLike && !s.dev.Snapshot().Running():
			// A veth has carrier only while both ends are up.
		default:
			s.dev.SetCarrier(on)
		}
	case opTxQueues:
		n := int(a >> 2 & 7)
		switch {
		case s.dev == nil || frozen:
		case kernel:
			return s.dev.SetTxQueues(1 + n%schedTxQueues)
		default:
			return s.dev.SetTxQueues(n % (schedTxQueues + 1))
		}
	case opStep:
		return r.step(s, UnregisterStep(a>>2&7)%NumUnregisterSteps)
	case opPort:
		switch add := a&4 != 0; {
		case add && s.port == nil && s.td == nil:
			return r.addPort(s)
		case !add && s.port != nil && !frozen:
			if _, err := r.b.RemovePort(r.ctx, s.name); err != nil {
				return err
			}
			s.port, s.sp = nil, nil
			if s.td == nil {
				s.dev = nil
			}
		}
	case opRules:
		r.b.Table().Delete(&flow.Flow{}, false)
		r.b.Table().AddFlows(schedFixtures.rules[a&7])
	case opGrace:
		if a&1 == 0 {
			return r.b.Synchronize(r.ctx)
		}
		r.poll()
	}
	return nil
}

// step runs an unregister step on slot s's port, beginning its sequence if
// none is in progress: the next step in kernel order, the step st in free
// order (if it has not run).
func (r *schedRun) step(s *schedSlot, st UnregisterStep) error {
	if s.td == nil {
		if s.port == nil {
			return nil
		}
		td, err := r.b.BeginUnregister(s.name, UnregisterConfig{})
		if err != nil {
			return err
		}
		s.td = td
	}
	var err error
	switch {
	case r.cfg.order == kernelOrder:
		err = s.td.Step(r.ctx)
	case s.td.Ran(st):
		return nil
	default:
		err = s.td.Do(r.ctx, st)
	}
	if err != nil {
		return err
	}
	r.out.maxSteps = max(r.out.maxSteps, len(s.td.Events))
	if s.td.Ran(StepDelete) && s.port != nil {
		if !s.td.Stats.Balanced() {
			return fmt.Errorf("teardown of %s: final stats do not balance: %+v", s.name, s.td.Stats)
		}
		s.port, s.sp = nil, nil
	}
	if s.td.Done() {
		s.td, s.dev = nil, nil
	}
	return nil
}

// kernelOrderSafe reports whether the kernel's fixes hold for cfg because
// of the kernel's order: running (and a veth's carrier) is cleared before
// the tx queue count goes to 0, so upstream never transmits to a device
// without tx queues, nor carrier to a veth.
func kernelOrderSafe(cfg schedConfig) bool {
	return cfg.order == kernelOrder && (cfg.policy == Upstream || cfg.policy == Carrier && cfg.kind == vport.VethLike)
}

// checkAccounting checks the ledgers of every port ever added: each port's
// ingress ledger balances, and what the ports sent is what they transmitted.
func (r *schedRun) checkAccounting() error {
	var sent, tx, lockIn, lockOut uint64
	for _, p := range r.all {
		s := p.Stats()
		if !s.Balanced() {
			return fmt.Errorf("port %s: rx %d + copies %d != sent %d + drops %d (%v)", s.Name, s.RxPackets, s.Copies, s.Sent, s.RxDropped(), s.Drops)
		}
		sent += s.Sent
		tx += s.TxPackets
		lockIn += s.Drops[DropLockup]
		lockOut += s.TxDrops[DropLockup]
	}
	if sent != tx {
		return fmt.Errorf("ports sent %d copies but transmitted %d", sent, tx)
	}
	if lockIn != lockOut {
		return fmt.Errorf("lockup drops: %d counted at ingress, %d at egress", lockIn, lockOut)
	}
	return nil
}

// finish checks the lockups against the drops and fills in the outcome.
func (r *schedRun) finish() error {
	r.out.lockups, r.out.nlock = r.b.Lockups()
	for _, p := range r.all {
		s := p.Stats()
		for i, n := range s.Drops {
			r.out.drops[i] += n
		}
	}
	lockDrops := r.out.drops[DropLockup]
	switch {
	case r.cfg.policy == Guarded && r.out.nlock > 0:
		return fmt.Errorf("%d lockups under guarded: %s", r.out.nlock, r.out.lockups[0])
	case r.out.nlock > 0 && kernelOrderSafe(r.cfg):
		return fmt.Errorf("%d lockups under %s, which the kernel's order rules out: %s", r.out.nlock, r.cfg, r.out.lockups[0])
	case (r.out.nlock > 0) != (lockDrops > 0) || lockDrops < r.out.nlock:
		return fmt.Errorf("%d lockups but %d packets dropped as lockups", r.out.nlock, lockDrops)
	}
	for _, l := range r.out.lockups {
		if l.Port == "" || l.TxQueues != 0 || l.Policy != r.cfg.policy || !strings.Contains(l.Stack, "kernelQueueLoop") {
			return fmt.Errorf("lockup record: %s\n%s", l, l.Stack)
		}
	}
	return nil
}
