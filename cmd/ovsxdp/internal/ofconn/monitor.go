package ofconn

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/ofconv"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// This file is the flow monitor (ovs-ofctl monitor BR watch:): a
// connection asks for the flows that some monitors select, gets them at
// once, and then an update whenever a flow they select is added, modified
// or deleted, by whatever changed it. Updates go through the connection's
// bounded asynchronous queue (async.go), so a monitor that does not read
// never blocks a flow change: when its queue backs up, the connection is
// told that updates are paused (NXT_FLOW_MONITOR_PAUSED, or OFPFME_PAUSED
// from OpenFlow 1.4 on), gets none, and once its writer has caught up it
// gets every flow its monitors select again and is told they resumed, as
// Open vSwitch does.

// FlowWatcher is a Bridge that reports its flow changes to monitors: its
// owner calls Server.FlowsChanged after every change, with the lock that
// orders the changes held.
type FlowWatcher interface {
	// WatchFlows calls fn with the bridge's port names and its rules,
	// with the lock that orders flow changes held: no change is reported
	// between the rules fn sees and the changes reported after.
	WatchFlows(fn func(p *flow.Parser, rules []*flow.Rule) error) error
}

// Origin is where a flow change came from: a connection's request, or
// (the zero Origin) anything else.
type Origin struct {
	c   *conn
	xid uint32
}

// FlowEvent is what happened to a flow.
type FlowEvent uint8

// Flow events.
const (
	FlowAdded FlowEvent = iota
	FlowDeleted
	FlowModified
)

// Reasons a flow was deleted (OFPRR_*), in a FlowDeleted change.
const (
	ReasonIdleTimeout uint8 = 0
	ReasonHardTimeout uint8 = 1
	ReasonDelete      uint8 = 2
	ReasonGroupDelete uint8 = 3
	ReasonMeterDelete uint8 = 4
)

// FlowChange is one change to a bridge's flows. Rule is the flow as it
// is after an add or modify, as it was before a delete.
type FlowChange struct {
	Event  FlowEvent
	Reason uint8 // for FlowDeleted
	Rule   *flow.Rule
}

// Flow monitor flags (NXFMF_*; OpenFlow 1.4's OFPFMF_* are mapped onto
// them).
const (
	monInitial uint16 = 1 << 0
	monAdd     uint16 = 1 << 1
	monDelete  uint16 = 1 << 2
	monModify  uint16 = 1 << 3
	monActions uint16 = 1 << 4
	monOwn     uint16 = 1 << 5
	// OFPFMF_NO_ABBREV and OFPFMF_ONLY_OWN (OpenFlow 1.4+), in the place
	// of the Nicira own flag.
	monNoAbbrev14 uint16 = 1 << 5
	monOnlyOwn14  uint16 = 1 << 6
)

// OpenFlow 1.4 flow monitor commands (OFPFMC_*).
const (
	monCmdAdd    = 0
	monCmdModify = 1
	monCmdDelete = 2
)

// pauseAt is how many messages may wait in a connection's queue before
// its monitors' updates pause.
const pauseAt = asyncQueueLen * 3 / 4

// maxHeld bounds the updates held for a connection while its initial
// reply is being sent; more pause its updates.
const maxHeld = 64

// monitor is one monitor of a connection.
type monitor struct {
	id    uint32
	flags uint16
	table uint8 // flow.TableAll: every table
	match flow.Match
}

// monitorState is a connection's monitors.
type monitorState struct {
	mu     sync.Mutex // protects the fields below
	list   []monitor
	format openflow.MonitorFormat
	// holding is set while the reply to a monitor request is being sent:
	// updates wait in held until it is out.
	holding bool
	held    [][]byte
	// paused is set while updates are paused; resuming is set while the
	// writer sends the flows again.
	paused, resuming bool
}

// monitoring counts the server's connections with monitors, and the
// times a connection's updates paused.
type monitoring struct {
	n      atomic.Int32
	paused atomic.Uint64
}

// Monitoring reports whether some connection has flow monitors: only then
// must the bridge report its flow changes.
func (s *Server) Monitoring() bool { return s.mons.n.Load() > 0 }

// monitorRequest answers a flow monitor request.
func (c *conn) monitorRequest(h openflow.Header, req *openflow.FlowMonitorRequest) error {
	fw, ok := c.s.br.(FlowWatcher)
	if !ok {
		return badRequest(openflow.CodeBadRequestMultipart, "flow monitors are not supported by this bridge")
	}
	var updates []openflow.FlowUpdate
	err := fw.WatchFlows(func(p *flow.Parser, rules []*flow.Rule) error {
		ms := &c.mon
		ms.mu.Lock()
		defer ms.mu.Unlock()
		list := append([]monitor(nil), ms.list...)
		for _, fm := range req.Monitors {
			m, err := c.compileMonitor(p, req.Format, &fm)
			if err != nil {
				return err
			}
			list = slicesDeleteID(list, m.id)
			if req.Format == openflow.MonitorOpenFlow14 && fm.Command == monCmdDelete {
				continue
			}
			list = append(list, m)
			if m.flags&monInitial == 0 {
				continue
			}
			for _, r := range rules {
				if m.selects(r) {
					u, err := c.flowUpdate(req.Format, m.flags, FlowAdded, 0, r, true)
					if err != nil {
						return err
					}
					updates = append(updates, u)
				}
			}
		}
		if len(ms.list) == 0 && len(list) > 0 {
			c.s.mons.n.Add(1)
		} else if len(ms.list) > 0 && len(list) == 0 {
			c.s.mons.n.Add(-1)
		}
		ms.list, ms.format, ms.holding = list, req.Format, true
		return nil
	})
	if err != nil {
		return err
	}
	format := req.Format
	err = c.sendParts(h.Xid, len(updates), func(i, j int) openflow.Message {
		return &openflow.FlowMonitorReply{Format: format, Updates: updates[i:j]}
	})
	c.releaseHeld()
	return err
}

// releaseHeld queues the updates that waited for a monitor reply.
func (c *conn) releaseHeld() {
	ms := &c.mon
	ms.mu.Lock()
	defer ms.mu.Unlock()
	held := ms.held
	ms.holding, ms.held = false, nil
	for _, b := range held {
		c.queueUpdateLocked(b)
	}
}

// cancelMonitor removes monitor id (NXT_FLOW_MONITOR_CANCEL).
func (c *conn) cancelMonitor(id uint32) error {
	ms := &c.mon
	ms.mu.Lock()
	defer ms.mu.Unlock()
	n := len(ms.list)
	ms.list = slicesDeleteID(ms.list, id)
	if len(ms.list) == n {
		// OFPMOFC_UNKNOWN_MONITOR, an Open vSwitch extension error before
		// OpenFlow 1.4.
		return &openflow.Error{Type: errTypeMonitorFailed, Code: codeUnknownMonitor, Sentinel: openflow.ErrBadMessage,
			Detail: fmt.Sprintf("no flow monitor %d", id)}
	}
	if len(ms.list) == 0 {
		c.s.mons.n.Add(-1)
	}
	return nil
}

// OFPET_FLOW_MONITOR_FAILED and its codes.
const (
	errTypeMonitorFailed uint16 = 16
	codeUnknownMonitor   uint16 = 3
	codeMonitorBadFlags  uint16 = 5
	codeMonitorBadOut    uint16 = 7
)

// dropMonitors forgets the connection's monitors when it ends.
func (c *conn) dropMonitors() {
	ms := &c.mon
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if len(ms.list) > 0 {
		c.s.mons.n.Add(-1)
	}
	ms.list, ms.held = nil, nil
}

func slicesDeleteID(list []monitor, id uint32) []monitor {
	out := list[:0]
	for _, m := range list {
		if m.id != id {
			out = append(out, m)
		}
	}
	return out
}

// compileMonitor turns a requested monitor into one the bridge's rules
// can be checked against.
func (c *conn) compileMonitor(p *flow.Parser, f openflow.MonitorFormat, fm *openflow.FlowMonitor) (monitor, error) {
	flags := fm.Flags
	if f == openflow.MonitorOpenFlow14 {
		if fm.Command > monCmdDelete {
			return monitor{}, &openflow.Error{Type: errTypeMonitorFailed, Code: codeMonitorBadFlags, Sentinel: openflow.ErrBadMessage,
				Detail: fmt.Sprintf("flow monitor command %d", fm.Command)}
		}
		// Open vSwitch sends and reads its own flag (report this
		// connection's changes in full) as OFPFMF_ONLY_OWN, and takes
		// OFPFMF_NO_ABBREV as the same.
		if flags&(monOnlyOwn14|monNoAbbrev14) != 0 {
			flags = flags&^(monOnlyOwn14|monNoAbbrev14) | monOwn
		}
		if fm.OutGroup != openflow.GroupAny {
			return monitor{}, &openflow.Error{Type: errTypeMonitorFailed, Code: codeMonitorBadOut, Sentinel: openflow.ErrBadMessage,
				Detail: "flow monitor out_group is not supported by ovsxdp"}
		}
	}
	if flags&(monAdd|monDelete|monModify) == 0 || flags&^(monInitial|monAdd|monDelete|monModify|monActions|monOwn) != 0 {
		return monitor{}, &openflow.Error{Type: errTypeMonitorFailed, Code: codeMonitorBadFlags, Sentinel: openflow.ErrBadMessage,
			Detail: fmt.Sprintf("flow monitor flags 0x%x", flags)}
	}
	if fm.OutPort != openflow.PortAny && fm.OutPort != 0xffff {
		return monitor{}, &openflow.Error{Type: errTypeMonitorFailed, Code: codeMonitorBadOut, Sentinel: openflow.ErrBadMessage,
			Detail: "flow monitor out_port is not supported by ovsxdp"}
	}
	m, err := ofconv.MatchFromFields(p, fm.Match)
	if err != nil {
		return monitor{}, err
	}
	m.Normalize()
	return monitor{id: fm.ID, flags: flags, table: fm.TableID, match: *m}, nil
}

// selects reports whether the monitor covers r: r is in its table and
// r's match implies the monitor's.
func (m *monitor) selects(r *flow.Rule) bool {
	if m.table != flow.TableAll && m.table != r.Table {
		return false
	}
	match := r.Match()
	rm, mm := match.Mask.Words(), m.match.Mask.Words()
	rk, mk := match.Key.Words(), m.match.Key.Words()
	for i := range mm {
		if rm[i]&mm[i] != mm[i] || rk[i]&mm[i] != mk[i] {
			return false
		}
	}
	return true
}

// flowUpdate is the update that tells a monitor of format f about r.
func (c *conn) flowUpdate(f openflow.MonitorFormat, flags uint16, ev FlowEvent, reason uint8, r *flow.Rule, initial bool) (openflow.FlowUpdate, error) {
	v := c.version
	idle, hard := r.Timeouts()
	u := openflow.FlowUpdate{Priority: r.Priority, IdleTimeout: idle, HardTimeout: hard, TableID: r.Table, Cookie: r.Cookie}
	if ev == FlowDeleted {
		u.Reason = uint16(reason)
	}
	var err error
	m := r.Match()
	switch f {
	case openflow.MonitorOpenFlow14:
		u.Event = map[FlowEvent]uint16{FlowAdded: openflow.UpdateAdded, FlowDeleted: openflow.UpdateRemoved, FlowModified: openflow.UpdateModified}[ev]
		if initial {
			u.Event = openflow.UpdateInitial
		}
		u.Match = ofconv.FieldsFromMatch(&m, false)
		if flags&monActions != 0 {
			u.Instructions, err = ofconv.InstructionsFromActions(v, &m, r.Table, r.Actions)
		}
	case openflow.MonitorONF:
		u.Event = map[FlowEvent]uint16{FlowAdded: openflow.NXUpdateAdded, FlowDeleted: openflow.NXUpdateDeleted, FlowModified: openflow.NXUpdateModified}[ev]
		u.Match = ofconv.FieldsFromMatch(&m, false)
		if flags&monActions != 0 {
			u.Instructions, err = ofconv.InstructionsFromActions(v, &m, r.Table, r.Actions)
		}
	default:
		u.Event = map[FlowEvent]uint16{FlowAdded: openflow.NXUpdateAdded, FlowDeleted: openflow.NXUpdateDeleted, FlowModified: openflow.NXUpdateModified}[ev]
		u.Match = ofconv.FieldsFromMatch(&m, true)
		if flags&monActions != 0 {
			u.Actions, err = ofconv.ActionsToOF(v, &m, r.Actions)
		}
	}
	return u, err
}

// eventFlag is the monitor flag that asks for event ev.
func eventFlag(ev FlowEvent) uint16 {
	switch ev {
	case FlowAdded:
		return monAdd
	case FlowDeleted:
		return monDelete
	}
	return monModify
}

// FlowsChanged reports a batch of flow changes (one request's, or one
// expiry round's) to the connections whose monitors cover them. from is
// where they came from: its connection gets, for monitors without the own
// flag, one abbreviated update naming its request instead. The caller
// holds the lock that orders the bridge's flow changes; FlowsChanged never
// blocks on a connection.
func (s *Server) FlowsChanged(from Origin, changes []FlowChange) {
	if len(changes) == 0 || !s.Monitoring() {
		return
	}
	for _, c := range s.liveConns() {
		c.flowsChanged(from, changes)
	}
}

func (c *conn) flowsChanged(from Origin, changes []FlowChange) {
	ms := &c.mon
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if len(ms.list) == 0 || ms.paused {
		return
	}
	own := from.c == c
	var updates []openflow.FlowUpdate
	abbrev := false
	for _, ch := range changes {
		var flags uint16
		for i := range ms.list {
			m := &ms.list[i]
			if m.flags&eventFlag(ch.Event) != 0 && m.selects(ch.Rule) {
				flags |= m.flags
			}
		}
		if flags == 0 {
			continue
		}
		if own && flags&monOwn == 0 {
			if !abbrev {
				abbrev = true
				u := openflow.FlowUpdate{Event: openflow.NXUpdateAbbrev, Xid: from.xid}
				if ms.format == openflow.MonitorOpenFlow14 {
					u.Event = openflow.UpdateAbbrev
				}
				updates = append(updates, u)
			}
			continue
		}
		u, err := c.flowUpdate(ms.format, flags, ch.Event, ch.Reason, ch.Rule, false)
		if err != nil {
			c.log.Error("openflow: cannot encode a flow update", "err", err)
			continue
		}
		updates = append(updates, u)
	}
	if len(updates) == 0 {
		return
	}
	msgs, err := encodeUpdates(c.version, ms.format, updates)
	if err != nil {
		c.log.Error("openflow: cannot encode a flow update", "err", err)
		return
	}
	for _, b := range msgs {
		c.queueUpdateLocked(b)
	}
}

// encodeUpdates encodes updates as unsolicited flow monitor replies (xid
// 0), as many as they need.
func encodeUpdates(v uint8, f openflow.MonitorFormat, updates []openflow.FlowUpdate) ([][]byte, error) {
	var out [][]byte
	for start := 0; start < len(updates); {
		end := len(updates)
		for {
			b, err := openflow.Encode(v, 0, &openflow.FlowMonitorReply{Format: f, Updates: updates[start:end]})
			if err == nil {
				out = append(out, b)
				break
			}
			if !errors.Is(err, openflow.ErrTooLong) || end-start == 1 {
				return out, err
			}
			end = start + (end-start)/2
		}
		start = end
	}
	return out, nil
}

// queueUpdateLocked queues one encoded update message, or holds it while
// a monitor reply is being sent; a queue that backs up pauses the
// connection's updates. c.mon.mu is held.
func (c *conn) queueUpdateLocked(b []byte) {
	ms := &c.mon
	if ms.paused {
		return
	}
	if ms.holding {
		if len(ms.held) < maxHeld {
			ms.held = append(ms.held, b)
			return
		}
		c.pauseLocked()
		return
	}
	if len(c.async.q) >= pauseAt {
		c.pauseLocked()
		return
	}
	c.s.enqueue(c, b)
}

// pauseLocked pauses the connection's updates and tells it so.
func (c *conn) pauseLocked() {
	ms := &c.mon
	ms.paused, ms.held = true, nil
	b, err := c.pauseMessage(true)
	if err != nil {
		c.log.Error("openflow: cannot encode a flow monitor pause", "err", err)
		return
	}
	c.s.mons.paused.Add(1)
	c.s.enqueue(c, b)
}

// pauseMessage is NXT_FLOW_MONITOR_PAUSED or RESUMED, or from OpenFlow
// 1.4 on the update that says so.
func (c *conn) pauseMessage(paused bool) ([]byte, error) {
	if c.mon.format == openflow.MonitorOpenFlow14 {
		ev := openflow.UpdateResumed
		if paused {
			ev = openflow.UpdatePaused
		}
		return openflow.Encode(c.version, 0, &openflow.FlowMonitorReply{Format: openflow.MonitorOpenFlow14,
			Updates: []openflow.FlowUpdate{{Event: ev}}})
	}
	if paused {
		return openflow.Encode(c.version, 0, &openflow.FlowMonitorPaused{})
	}
	return openflow.Encode(c.version, 0, &openflow.FlowMonitorResumed{})
}

// maybeResume is called by the connection's writer when its queue is
// empty: paused updates resume with every flow the monitors select, then
// the resumed message.
func (c *conn) maybeResume() {
	ms := &c.mon
	ms.mu.Lock()
	if !ms.paused || ms.resuming {
		ms.mu.Unlock()
		return
	}
	ms.resuming = true
	ms.mu.Unlock()
	fw := c.s.br.(FlowWatcher)
	err := fw.WatchFlows(func(_ *flow.Parser, rules []*flow.Rule) error {
		ms.mu.Lock()
		defer ms.mu.Unlock()
		ms.resuming = false
		var updates []openflow.FlowUpdate
		for _, r := range rules {
			var flags uint16
			for i := range ms.list {
				if ms.list[i].selects(r) {
					flags |= ms.list[i].flags
				}
			}
			if flags == 0 {
				continue
			}
			u, err := c.flowUpdate(ms.format, flags, FlowAdded, 0, r, false)
			if err != nil {
				return err
			}
			updates = append(updates, u)
		}
		msgs, err := encodeUpdates(c.version, ms.format, updates)
		if err != nil {
			return err
		}
		resumed, err := c.pauseMessage(false)
		if err != nil {
			return err
		}
		msgs = append(msgs, resumed)
		if len(msgs) > asyncQueueLen-len(c.async.q) {
			return nil // still paused: try again when the queue drains
		}
		ms.paused = false
		for _, b := range msgs {
			c.s.enqueue(c, b)
		}
		return nil
	})
	if err != nil {
		c.log.Error("openflow: cannot resume flow monitor updates", "err", err)
		ms.mu.Lock()
		ms.resuming = false
		ms.mu.Unlock()
	}
}
