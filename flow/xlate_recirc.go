package flow

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// This file holds the recirculation ids of a bridge, as Open vSwitch's
// recirc_id_node: ct(table=T) freezes the pipeline's state (the table to
// resume at, in_port as translation sees it, metadata, registers, the
// stack) under an id, the datapath action recirc(id) sends the packet
// back to the lookup with Key.RecircID = id, and the translation of that
// second pass thaws the state and goes on at T.
//
// The same frozen state always gets the same id while it lives, so the
// megaflows of every packet that freezes it agree. A state lives while a
// megaflow in a poll thread's cache recirculates to it or matches its id
// (each holds a reference, as Open vSwitch's datapath flows hold their
// recirc_id_node), and for RecircIdle after its last use (a translation
// that froze or thawed it, a packet that took such a megaflow); then it
// is forgotten. Ids are not reused until the 32-bit counter wraps, so a
// megaflow left over from a forgotten state never meets a packet of
// another.

// RecircIdle is how long a frozen state that nothing uses is kept.
const RecircIdle = 60 * time.Second

// recircSweep is how often allocations look for idle states.
const recircSweep = 10 * time.Second

// Recircs is a bridge's recirculation ids. It is safe for concurrent use:
// translations on every poll thread allocate and look ids up (on cache
// misses only).
type Recircs struct {
	now func() time.Time

	mu        sync.Mutex // guards the fields below
	byState   map[string]*recircNode
	byID      map[uint32]*recircNode
	next      uint32
	lastSweep time.Time
}

// recircNode is one frozen state and its id.
type recircNode struct {
	id    uint32
	key   string // the state's encoding (byState's key)
	state frozenState
	used  atomic.Int64 // unix nanoseconds of the last use
	refs  atomic.Int64 // megaflows that hold the node
}

// frozenState is what a ct(table=T) freezes of the pipeline.
type frozenState struct {
	table    uint8
	inPort   uint32
	metadata uint64
	regs     [NumRegs]uint32
	stack    []u128
	// conntracked: the packet went through the tracker before it
	// recirculated, so ct_clear in the next pass has something to clear.
	conntracked bool
	// acts are the actions still to run when a dp_hash group froze the
	// pipeline (the group's own first), in the lists they belong to,
	// innermost first; none for ct(table=T), which resumes at T.
	acts [][]Action
	// actset is the action set (actionset.go), which runs when the
	// resumed pipeline ends.
	actset []Action
}

// NewRecircs returns an empty set of recirculation ids; now is the
// clock (time.Now when nil).
func NewRecircs(now func() time.Time) *Recircs {
	if now == nil {
		now = time.Now
	}
	return &Recircs{now: now, byState: make(map[string]*recircNode), byID: make(map[uint32]*recircNode), next: 1}
}

// encode returns a string that is equal for equal states only.
func (st *frozenState) encode() string {
	b := make([]byte, 0, 2+4+8+4*NumRegs+16*len(st.stack))
	b = append(b, st.table)
	if st.conntracked {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.LittleEndian.AppendUint32(b, st.inPort)
	b = binary.LittleEndian.AppendUint64(b, st.metadata)
	for _, r := range st.regs {
		b = binary.LittleEndian.AppendUint32(b, r)
	}
	for _, v := range st.stack {
		b = binary.LittleEndian.AppendUint64(b, v.hi)
		b = binary.LittleEndian.AppendUint64(b, v.lo)
	}
	// The action lists by identity: they are rules' lists, which never
	// change, and the node holds them, so an address names one list for
	// as long as the node lives.
	b = binary.LittleEndian.AppendUint32(b, uint32(len(st.acts)))
	for _, acts := range st.acts {
		b = binary.LittleEndian.AppendUint64(b, uint64(uintptr(unsafe.Pointer(unsafe.SliceData(acts)))))
		b = binary.LittleEndian.AppendUint64(b, uint64(len(acts)))
	}
	// The action set by value: its actions are copies, and none of the
	// kinds it holds points anywhere.
	b = fmt.Appendf(b, "%v", st.actset)
	return string(b)
}

// alloc returns the node of st, creating it (with a new id) when st is
// not frozen yet. It returns nil when every id is taken.
func (r *Recircs) alloc(st *frozenState) *recircNode {
	key := st.encode()
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := r.byState[key]; n != nil {
		n.touch(now.UnixNano())
		return n
	}
	if now.Sub(r.lastSweep) >= recircSweep {
		r.lastSweep = now
		r.expireLocked(now)
	}
	// Find a free id: the counter skips 0 and ids still in use, and
	// gives up after a full turn (4 billion live states).
	id := r.next
	for range 1<<32 - 1 {
		if id != 0 && r.byID[id] == nil {
			break
		}
		id++
	}
	if id == 0 || r.byID[id] != nil {
		return nil
	}
	r.next = id + 1
	n := &recircNode{id: id, key: key, state: *st}
	n.state.stack = append([]u128(nil), st.stack...)
	n.state.acts = append([][]Action(nil), st.acts...)
	n.state.actset = append([]Action(nil), st.actset...)
	n.touch(now.UnixNano())
	r.byState[key] = n
	r.byID[id] = n
	return n
}

// lookup returns the node of id, or nil.
func (r *Recircs) lookup(id uint32) *recircNode {
	r.mu.Lock()
	n := r.byID[id]
	r.mu.Unlock()
	if n != nil {
		n.touch(r.now().UnixNano())
	}
	return n
}

// touch records a use at now.
func (n *recircNode) touch(now int64) {
	if n.used.Load() < now {
		n.used.Store(now)
	}
}

// Expire forgets the frozen states that no megaflow holds and nothing
// used for RecircIdle before now, and returns how many it forgot. Allocations call it every
// recircSweep; the owner may call it too.
func (r *Recircs) Expire(now time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.expireLocked(now)
}

func (r *Recircs) expireLocked(now time.Time) int {
	idle := now.Add(-RecircIdle).UnixNano()
	n := 0
	for id, node := range r.byID {
		if node.refs.Load() == 0 && node.used.Load() < idle {
			delete(r.byID, id)
			delete(r.byState, node.key)
			n++
		}
	}
	return n
}

// Len returns how many frozen states are kept.
func (r *Recircs) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.byID)
}

// Table returns the table the frozen state of id resumes at, and whether
// id is known.
func (r *Recircs) Table(id uint32) (uint8, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.byID[id]
	if n == nil {
		return 0, false
	}
	return n.state.table, true
}

// Thaw writes the pipeline state frozen under k.RecircID into k (in_port,
// metadata and registers), as the translation of a recirculated packet
// starts from it, and reports whether the id is known. ofproto/trace
// shows a recirculated pass's flow this way.
func (r *Recircs) Thaw(k *Key) bool {
	r.mu.Lock()
	n := r.byID[k.RecircID]
	r.mu.Unlock()
	if n == nil {
		return false
	}
	k.InPort, k.Metadata, k.Regs = n.state.inPort, n.state.metadata, n.state.regs
	return true
}
