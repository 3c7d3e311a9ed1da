package vport

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// MaxQueues is the most rx or tx queues a device or port may have.
const MaxQueues = 4096

// DeviceKind says how a device's carrier follows its up/down state.
type DeviceKind uint8

const (
	// VethLike devices come in pairs: bringing one end down drops carrier
	// on both ends, and carrier comes back when both ends are up. A
	// VethLike device without a peer in the model treats its far end as up.
	VethLike DeviceKind = iota
	// DummyLike devices keep their carrier when they are brought down,
	// even while they are being unregistered.
	DummyLike
)

func (k DeviceKind) String() string {
	switch k {
	case VethLike:
		return "veth"
	case DummyLike:
		return "dummy"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Registration is a device's registration state (the kernel's reg_state).
type Registration uint8

const (
	// Uninitialized is the zero value: a device not yet registered.
	Uninitialized Registration = iota
	// Registered devices are live.
	Registered
	// Unregistering devices are being torn down: unregister_netdevice has
	// closed them and they go on to lose their tx queues.
	Unregistering
	// Unregistered devices are gone.
	Unregistered
)

func (r Registration) String() string {
	switch r {
	case Uninitialized:
		return "uninitialized"
	case Registered:
		return "registered"
	case Unregistering:
		return "unregistering"
	case Unregistered:
		return "unregistered"
	}
	return "registration(" + strconv.Itoa(int(r)) + ")"
}

// DeviceState is one consistent snapshot of a device's state, packed in a
// word so that the packet path reads all of it with one atomic load:
//
//	bits  0-1  registration
//	bit   2    running (IFF_UP / __LINK_STATE_START)
//	bit   3    carrier (IFF_LOWER_UP)
//	bit   4    kind
//	bits 16-31 tx queues in use (real_num_tx_queues)
//	bits 32-63 generation: bumped by every change
type DeviceState uint64

const (
	stateRegMask    = 0x3
	stateRunning    = 1 << 2
	stateCarrier    = 1 << 3
	stateKindShift  = 4
	stateTxqShift   = 16
	stateTxqMask    = 0xffff << stateTxqShift
	stateGenShift   = 32
	stateFieldsMask = 1<<stateGenShift - 1
)

// DeviceFields is the unpacked form of a DeviceState (without its
// generation), convenient for building states in tests and in the link
// monitor.
type DeviceFields struct {
	Kind         DeviceKind
	Registration Registration
	Running      bool
	Carrier      bool
	TxQueues     int // clamped to [0, MaxQueues]
}

// State packs f into a DeviceState of generation 0.
func (f DeviceFields) State() DeviceState {
	s := DeviceState(f.Registration&stateRegMask) | DeviceState(f.Kind&1)<<stateKindShift
	if f.Running {
		s |= stateRunning
	}
	if f.Carrier {
		s |= stateCarrier
	}
	return s.withTxQueues(f.TxQueues)
}

// Fields unpacks s.
func (s DeviceState) Fields() DeviceFields {
	return DeviceFields{
		Kind:         s.Kind(),
		Registration: s.Registration(),
		Running:      s.Running(),
		Carrier:      s.Carrier(),
		TxQueues:     s.TxQueues(),
	}
}

// Registration is the device's registration state.
func (s DeviceState) Registration() Registration { return Registration(s & stateRegMask) }

// Running reports whether the device is up (netif_running).
func (s DeviceState) Running() bool { return s&stateRunning != 0 }

// Carrier reports whether the device has carrier (netif_carrier_ok).
func (s DeviceState) Carrier() bool { return s&stateCarrier != 0 }

// Kind is the kind of device.
func (s DeviceState) Kind() DeviceKind { return DeviceKind(s>>stateKindShift) & 1 }

// TxQueues is the number of tx queues in use (real_num_tx_queues).
func (s DeviceState) TxQueues() int { return int(s&stateTxqMask) >> stateTxqShift }

// Gen is the state's generation: it grows by one with every change, so two
// snapshots with the same generation are the same state.
func (s DeviceState) Gen() uint32 { return uint32(s >> stateGenShift) }

func (s DeviceState) withTxQueues(n int) DeviceState {
	n = min(max(n, 0), MaxQueues)
	return s&^stateTxqMask | DeviceState(n)<<stateTxqShift
}

func (s DeviceState) with(bit DeviceState, on bool) DeviceState {
	if on {
		return s | bit
	}
	return s &^ bit
}

// String renders s as, for example, "registered,running,carrier,txq=4" or
// "unregistering,down,no-carrier,txq=0".
func (s DeviceState) String() string {
	b := make([]byte, 0, 48)
	b = append(b, s.Registration().String()...)
	if s.Running() {
		b = append(b, ",running"...)
	} else {
		b = append(b, ",down"...)
	}
	if s.Carrier() {
		b = append(b, ",carrier"...)
	} else {
		b = append(b, ",no-carrier"...)
	}
	b = append(b, ",txq="...)
	b = strconv.AppendInt(b, int64(s.TxQueues()), 10)
	return string(b)
}

// Change names the control operation behind an Event.
type Change uint8

const (
	ChangeUp           Change = iota + 1 // SetUp
	ChangeClose                          // Close (ifdown)
	ChangePeer                           // the veth peer went up or down
	ChangeRunning                        // SetRunning
	ChangeCarrier                        // SetCarrier
	ChangeRegistration                   // SetRegistration
	ChangeTxQueues                       // SetTxQueues
)

func (c Change) String() string {
	switch c {
	case ChangeUp:
		return "up"
	case ChangeClose:
		return "close"
	case ChangePeer:
		return "peer"
	case ChangeRunning:
		return "running"
	case ChangeCarrier:
		return "carrier"
	case ChangeRegistration:
		return "registration"
	case ChangeTxQueues:
		return "txqueues"
	}
	return "change(" + strconv.Itoa(int(c)) + ")"
}

// Event records one change of a device's state.
type Event struct {
	Time     time.Time
	Device   string
	Change   Change
	Old, New DeviceState
}

func (e Event) String() string {
	return fmt.Sprintf("%s %s %s: %s -> %s", e.Time.Format("15:04:05.000000"), e.Device, e.Change, e.Old, e.New)
}

// Device models the fields of a kernel net_device that output depends on.
// The packet path reads them with Snapshot, one atomic load; the control
// path changes them with the Set methods and Close, which are serialized.
type Device struct {
	name        string
	kind        DeviceKind
	maxTxQueues int
	peer        *Device // the other end of a veth pair; set at creation
	// mirror is set on the model of a real link (NewMirrorDevice): its
	// state follows the kernel's through a LinkMonitor, and nothing else
	// may run the simulated teardown on it.
	mirror bool

	state atomic.Uint64 // a DeviceState; written only with *mu held

	// mu serializes every change to state, here and on the peer (both ends
	// of a pair share one mutex, so that a change that touches both is one
	// step), and protects subs and nextSub.
	mu      *sync.Mutex
	subs    []subscriber
	nextSub int
}

type subscriber struct {
	id int
	fn func(Event)
}

// NewDevice returns a registered device that is down, with txQueues tx
// queues in use. A dummy device starts with carrier, a veth without.
func NewDevice(name string, kind DeviceKind, txQueues int) (*Device, error) {
	if err := checkDeviceArgs(name, kind, txQueues); err != nil {
		return nil, err
	}
	return newDevice(name, kind, txQueues, new(sync.Mutex)), nil
}

// NewMirrorDevice returns the model of a real link: a device like
// NewDevice's whose state only a LinkMonitor should change, from what the
// kernel reports. Mirrored reports it, so that the simulated unregister
// sequence can refuse to run on it: the link's life belongs to the kernel.
func NewMirrorDevice(name string, kind DeviceKind, txQueues int) (*Device, error) {
	d, err := NewDevice(name, kind, txQueues)
	if err != nil {
		return nil, err
	}
	d.mirror = true
	return d, nil
}

// NewVethPair returns the two ends of a veth pair, registered and down.
func NewVethPair(nameA, nameB string, txQueuesA, txQueuesB int) (a, b *Device, err error) {
	if err := checkDeviceArgs(nameA, VethLike, txQueuesA); err != nil {
		return nil, nil, err
	}
	if err := checkDeviceArgs(nameB, VethLike, txQueuesB); err != nil {
		return nil, nil, err
	}
	mu := new(sync.Mutex)
	a = newDevice(nameA, VethLike, txQueuesA, mu)
	b = newDevice(nameB, VethLike, txQueuesB, mu)
	a.peer, b.peer = b, a
	return a, b, nil
}

func checkDeviceArgs(name string, kind DeviceKind, txQueues int) error {
	if name == "" {
		return fmt.Errorf("new device: empty name")
	}
	if kind != VethLike && kind != DummyLike {
		return fmt.Errorf("new device %s: unknown kind %d", name, kind)
	}
	if txQueues < 1 || txQueues > MaxQueues {
		return fmt.Errorf("new device %s: %d tx queues, want 1 to %d", name, txQueues, MaxQueues)
	}
	return nil
}

func newDevice(name string, kind DeviceKind, txQueues int, mu *sync.Mutex) *Device {
	d := &Device{name: name, kind: kind, maxTxQueues: txQueues, mu: mu}
	d.state.Store(uint64(DeviceFields{
		Kind:         kind,
		Registration: Registered,
		Carrier:      kind == DummyLike,
		TxQueues:     txQueues,
	}.State()))
	return d
}

// Name is the device's name.
func (d *Device) Name() string { return d.name }

// Mirrored reports whether d models a real link (NewMirrorDevice).
func (d *Device) Mirrored() bool { return d.mirror }

// Kind is the device's kind.
func (d *Device) Kind() DeviceKind { return d.kind }

// Peer is the other end of a veth pair, or nil.
func (d *Device) Peer() *Device { return d.peer }

// MaxTxQueues is the number of tx queues the device was created with
// (num_tx_queues); SetTxQueues cannot go above it.
func (d *Device) MaxTxQueues() int { return d.maxTxQueues }

// Snapshot returns the device's current state in one atomic load.
func (d *Device) Snapshot() DeviceState { return DeviceState(d.state.Load()) }

// Subscribe calls fn with every later change of the device's state, in
// order. fn runs with the device's mutex held: it must be quick and must not
// change this device or its peer. The returned function cancels.
func (d *Device) Subscribe(fn func(Event)) (cancel func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.nextSub++
	id := d.nextSub
	d.subs = append(d.subs, subscriber{id: id, fn: fn})
	return func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		for i, s := range d.subs {
			if s.id == id {
				d.subs = append(d.subs[:i:i], d.subs[i+1:]...)
				return
			}
		}
	}
}

// SetUp brings the device up (ifup). A veth gains carrier on both ends
// when its peer is up too; a dummy's carrier does not change. Only a
// registered device can be brought up.
func (d *Device) SetUp() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.Snapshot()
	if r := s.Registration(); r != Registered {
		return fmt.Errorf("set %s up: device is %s: %w", d.name, r, ErrPortDown)
	}
	s = s.with(stateRunning, true)
	if d.kind == VethLike && (d.peer == nil || d.peer.Snapshot().Running()) {
		s = s.with(stateCarrier, true)
		if d.peer != nil {
			d.peer.storeLocked(ChangePeer, d.peer.Snapshot().with(stateCarrier, true))
		}
	}
	d.storeLocked(ChangeUp, s)
	return nil
}

// Close brings the device down (ifdown), as unregistering does first. A
// veth loses carrier on both ends; a dummy keeps its carrier.
func (d *Device) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.Snapshot()
	if !s.Running() {
		return // dev_close on a device that is down does nothing
	}
	s = s.with(stateRunning, false)
	if d.kind == VethLike {
		s = s.with(stateCarrier, false)
		if d.peer != nil {
			d.peer.storeLocked(ChangePeer, d.peer.Snapshot().with(stateCarrier, false))
		}
	}
	d.storeLocked(ChangeClose, s)
}

// SetRunning sets the running flag alone, without the carrier rules of
// SetUp and Close: the link monitor uses it to apply what it observed.
func (d *Device) SetRunning(on bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.storeLocked(ChangeRunning, d.Snapshot().with(stateRunning, on))
}

// SetCarrier sets the carrier (netif_carrier_on/off).
func (d *Device) SetCarrier(on bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.storeLocked(ChangeCarrier, d.Snapshot().with(stateCarrier, on))
}

// SetRegistration moves the registration state one step forward, as the
// kernel does: registered, then unregistering, then unregistered. Setting
// the current state again does nothing.
func (d *Device) SetRegistration(r Registration) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.Snapshot()
	cur := s.Registration()
	if r == cur {
		return nil
	}
	if r > Unregistered || r != cur+1 {
		return fmt.Errorf("device %s: registration cannot go from %s to %s", d.name, cur, r)
	}
	d.storeLocked(ChangeRegistration, s&^stateRegMask|DeviceState(r))
	return nil
}

// SetTxQueues sets the number of tx queues in use, from 0 (as the kernel's
// remove_queue_kobjects leaves an unregistering device) to MaxTxQueues.
func (d *Device) SetTxQueues(n int) error {
	if n < 0 || n > d.maxTxQueues {
		return fmt.Errorf("device %s: %d tx queues, want 0 to %d", d.name, n, d.maxTxQueues)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.storeLocked(ChangeTxQueues, d.Snapshot().withTxQueues(n))
	return nil
}

// storeLocked publishes s as the new state, with the next generation, and
// tells the subscribers. It does nothing if s changes no field. d.mu must be
// held.
func (d *Device) storeLocked(c Change, s DeviceState) {
	old := d.Snapshot()
	if s&stateFieldsMask == old&stateFieldsMask {
		return
	}
	s = s&stateFieldsMask | DeviceState(old.Gen()+1)<<stateGenShift
	d.state.Store(uint64(s))
	if len(d.subs) == 0 {
		return
	}
	ev := Event{Time: time.Now(), Device: d.name, Change: c, Old: old, New: s}
	for _, sub := range d.subs {
		sub.fn(ev)
	}
}

func (d *Device) String() string { return d.name + "(" + d.Snapshot().String() + ")" }
