package daemon

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/ovsxdp/ovsxdp/cmd/ovsxdp/internal/control"
	"github.com/ovsxdp/ovsxdp/cmd/ovsxdp/internal/ofconn"
	"github.com/ovsxdp/ovsxdp/datapath"
	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/ofconv"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// The OpenFlow channel: each bridge has a management socket,
// RUNDIR/BRIDGE.mgmt, that ovs-ofctl (and any OpenFlow client) connects
// to, as with Open vSwitch. Listeners follow the bridges: syncChannelsLocked
// runs whenever the bridge list is republished.

// channels are the bridges' OpenFlow listeners.
type channels struct {
	mu     sync.Mutex // protects the fields below
	byName map[string]*channel
	// cfgs are the bridges' controller configurations (controller.go),
	// by bridge name.
	cfgs   map[string]ctlConfig
	closed bool
}

// channel is one bridge's OpenFlow server: its management listener (with
// a run directory), its controllers, and the goroutine that feeds its
// connections packet ins and port status (controller.go).
type channel struct {
	b    *bridge
	ob   *ofBridge
	srv  *ofconn.Server
	log  *slog.Logger
	ctl  *controllers
	stop chan struct{}
	done chan struct{}
}

// ofBridge is the OpenFlow side of bridge b, nil while it has no channel.
func (cs *channels) ofBridge(b *bridge) *ofBridge {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if ch := cs.byName[b.name]; ch != nil && ch.b == b {
		return ch.ob
	}
	return nil
}

// close stops the channel without waiting for its connections (they may
// wait for the daemon's lock), and returns a function that waits.
func (ch *channel) close() (wait func()) {
	close(ch.stop)
	runs := ch.ctl.apply(ctlConfig{})
	ch.srv.Stop()
	return func() {
		waitRuns(runs)
		ch.srv.Wait()
		<-ch.done
	}
}

// mgmtPath is the management socket of bridge name.
func (d *Daemon) mgmtPath(name string) string {
	return filepath.Join(d.cfg.RunDir, name+".mgmt")
}

// syncChannelsLocked starts a listener for each bridge that has none and
// stops those of bridges that are gone. d.mu must be held. A bridge whose
// socket cannot be created is logged and keeps running without one.
func (d *Daemon) syncChannelsLocked() {
	cs := &d.channels
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closed {
		return
	}
	if cs.byName == nil {
		cs.byName = map[string]*channel{}
	}
	for name, ch := range cs.byName {
		if d.bridges[name] != ch.b {
			delete(cs.byName, name)
			if d.bridges[name] == nil {
				delete(cs.cfgs, name)
			}
			// The socket goes now, so that a new bridge of the same
			// name can listen; the connections may wait for d.mu.
			go ch.close()()
		}
	}
	for name, b := range d.bridges {
		if cs.byName[name] != nil {
			continue
		}
		ob := &ofBridge{d: d, b: b}
		log := d.log.With("bridge", name)
		ch := &channel{b: b, ob: ob, log: log, stop: make(chan struct{}), done: make(chan struct{})}
		ch.srv = ofconn.NewServer(ob, ofconn.Config{Logger: log, Desc: openflow.DescReply{
			MfrDesc: "ovsxdp", HWDesc: "ovsxdp userspace datapath", SWDesc: d.cfg.Version, SerialNum: "None", DPDesc: name,
		}, OnChange: func() { ch.asyncChanged() }})
		ob.srv = ch.srv
		ob.Ports() // what the first connections need not be told
		ch.ctl = &controllers{ch: ch}
		cs.byName[name] = ch
		removed := b.dp.Table().NotifyRemoved()
		go func() {
			defer close(ch.done)
			var wg sync.WaitGroup
			wg.Go(func() { ob.watchFlows(ch.stop) })           // ofmonitor.go
			wg.Go(func() { ob.sendRemoved(removed, ch.stop) }) // ofmonitor.go
			ch.watch(ch.stop)
			wg.Wait()
		}()
		if cfg, ok := cs.cfgs[name]; ok {
			ch.ctl.apply(cfg)
		}
		if d.cfg.RunDir == "" {
			continue
		}
		srv := ch.srv
		ln, err := control.Listen(d.mgmtPath(name))
		if err != nil {
			d.log.Error("openflow: cannot listen for the bridge", "bridge", name, "err", err)
			continue
		}
		go func() {
			if err := srv.Serve(ln); err != nil {
				d.log.Error("openflow: listener stopped", "bridge", name, "err", err)
			}
		}()
		d.log.Info("openflow: listening", "bridge", name, "socket", d.mgmtPath(name))
	}
}

// closeChannels stops every listener and connection. d.mu must not be
// held: connections may be waiting for it.
func (d *Daemon) closeChannels() {
	cs := &d.channels
	cs.mu.Lock()
	cs.closed = true
	list := make([]*channel, 0, len(cs.byName))
	for _, ch := range cs.byName {
		list = append(list, ch)
	}
	clear(cs.byName)
	cs.mu.Unlock()
	for _, ch := range list {
		ch.close()()
	}
}

// ofBridge is a bridge as an OpenFlow connection sees it.
type ofBridge struct {
	d   *Daemon
	b   *bridge
	srv *ofconn.Server
	mon flowTracker // flow monitors (ofmonitor.go)
	// conv converts bundled flow adds (CheckFlowMod); guarded by d.mu.
	conv ofconv.Converter

	// moddedMu protects modded: the bridge ports whose config a port mod
	// set since the port watcher last looked, and which request set it
	// (portdesc.go).
	moddedMu sync.Mutex
	modded   map[uint32]portMod

	// portsMu serialises the looks at the ports (Ports) and protects
	// told, the ports as the connections were last told of them.
	portsMu sync.Mutex
	told    map[uint32]openflow.Port
}

var _ ofconn.Bridge = (*ofBridge)(nil)

// errBridgeGone answers messages that arrive after del-br.
var errBridgeGone = &openflow.Error{Type: openflow.ErrTypeBadRequest, Code: 5, Sentinel: ErrNoBridge, Detail: "the bridge was deleted"}

// lock takes the daemon's lock and checks that the bridge still exists.
func (o *ofBridge) lock() error {
	o.d.mu.Lock()
	if o.d.bridges[o.b.name] != o.b {
		o.d.mu.Unlock()
		return errBridgeGone
	}
	return nil
}

func (o *ofBridge) unlock() { o.d.mu.Unlock() }

// changedLocked has the state saved after a change, within saveInterval
// (state.go): a controller's thousands of flow mods are not a state file
// each.
func (o *ofBridge) changedLocked(string) {
	o.d.markDirtyLocked()
}

// DatapathID is the one Open vSwitch would give the bridge under --ovsdb
// (localmac.go), else derived from the bridge's name, so that it is
// stable across restarts.
func (o *ofBridge) DatapathID() uint64 { return o.b.datapathID() }

// wirePort is the 32-bit OpenFlow number of bridge port of: the LOCAL
// port (flow.PortLocal) is OFPP_LOCAL. The openflow package writes it
// back as 16 bits for OpenFlow 1.0.
func wirePort(of uint32) uint32 {
	if of == flow.PortLocal {
		return openflow.PortLocal
	}
	return of
}

// bridgePort is the bridge port number of 32-bit OpenFlow port p: OFPP_LOCAL
// is the LOCAL port (flow.PortLocal), other reserved numbers are left as
// they are.
func bridgePort(p uint32) uint32 {
	if p == openflow.PortLocal {
		return flow.PortLocal
	}
	return p
}

// FlowMod runs a flow mod as add-flow, mod-flows or del-flows do.
func (o *ofBridge) FlowMod(v uint8, fm *openflow.FlowMod, from ofconn.Origin) error {
	if err := o.lock(); err != nil {
		return err
	}
	defer o.unlock()
	// Changes made elsewhere are reported before this one, whose
	// monitors' updates name its connection.
	o.reportFlowsLocked(ofconn.Origin{}, nil)
	var err error
	o.b.dp.Table().Update(func(tx *flow.TableTxn) { err = o.flowModLocked(tx, v, fm) })
	if err != nil {
		return err
	}
	o.reportFlowsLocked(from, nil)
	o.changedLocked("flow mod")
	return nil
}

var _ ofconn.FlowModBatcher = (*ofBridge)(nil)

// FlowMods runs consecutive flow mods of one connection, in order, as
// FlowMod runs each, and publishes the table once for all of them: the
// cost of a publication, and of the caches' invalidation that follows,
// is paid once per batch instead of once per flow mod. While flow
// monitors watch the bridge, each flow mod is published and reported on
// its own, so that every update names the flow mod that made it.
func (o *ofBridge) FlowMods(v uint8, fms []*openflow.FlowMod, from []ofconn.Origin) []error {
	errs := make([]error, len(fms))
	if err := o.lock(); err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	defer o.unlock()
	o.reportFlowsLocked(ofconn.Origin{}, nil)
	t := o.b.dp.Table()
	changed := false
	if o.srv != nil && o.srv.Monitoring() {
		for i, fm := range fms {
			t.Update(func(tx *flow.TableTxn) { errs[i] = o.flowModLocked(tx, v, fm) })
			if errs[i] == nil {
				o.reportFlowsLocked(from[i], nil)
				changed = true
			}
		}
	} else {
		t.Update(func(tx *flow.TableTxn) {
			for i, fm := range fms {
				errs[i] = o.flowModLocked(tx, v, fm)
				changed = changed || errs[i] == nil
			}
		})
		if changed {
			o.reportFlowsLocked(from[len(from)-1], nil)
		}
	}
	if changed {
		o.changedLocked("flow mods")
	}
	return errs
}

var _ ofconn.BundleCommitter = (*ofBridge)(nil)

// CommitBundle runs an OpenFlow bundle's flow mods and group mods in one
// atomic table change: they are published together, or, when one fails,
// the change is undone and nothing is published, so that no packet and
// no dump ever sees a part of the bundle. Port mods are checked in their
// turn and applied after the table change, as Open vSwitch applies them
// once the rest of the bundle has taken effect. Packet outs are
// translated in their turn, through the tables as the changes before
// them leave them, and sent, in order, once the whole bundle has taken
// effect, as Open vSwitch does; a failed bundle sends none.
func (o *ofBridge) CommitBundle(v uint8, mods []ofconn.BundledMod) (int, error) {
	outs, failed, err := o.commitBundle(v, mods)
	if err != nil {
		return failed, err
	}
	// Sent without the daemon's lock, as a packet out outside a bundle.
	ctx, cancel := context.WithTimeout(context.Background(), packetOutTimeout)
	defer cancel()
	for _, po := range outs {
		if err := o.b.dp.SendPacketOut(ctx, po); err != nil {
			// The bundle has taken effect: as Open vSwitch, a packet
			// out that cannot be sent then fails on its own.
			o.d.log.Warn("openflow: a bundled packet out was not sent", "bridge", o.b.name, "err", err)
		}
	}
	return -1, nil
}

// commitBundle runs CommitBundle's table change and returns the packet
// outs to send.
func (o *ofBridge) commitBundle(v uint8, mods []ofconn.BundledMod) ([]*datapath.PreparedPacketOut, int, error) {
	if err := o.lock(); err != nil {
		return nil, -1, err
	}
	defer o.unlock()
	o.reportFlowsLocked(ofconn.Origin{}, nil)
	failed := -1
	var ports []func()
	var outs []*datapath.PreparedPacketOut
	var gone []*flow.Rule // the flows deleted with their groups
	// snap is the tables as the messages so far leave them, for the
	// packet outs; packet outs in a row share it.
	var snap *flow.TableSnapshot
	err := o.b.dp.Table().UpdateAtomic(func(tx *flow.TableTxn) error {
		for i := 0; i < len(mods); i++ {
			m := &mods[i]
			if _, ok := m.Msg.(*openflow.PacketOut); !ok {
				snap = nil
			}
			err := m.Refuse
			if err == nil && m.Adds != nil {
				// A run of adds is installed from the bundle's
				// batch in one call, as the adds one by one.
				j := i + 1
				for j < len(mods) && mods[j].Adds == m.Adds && mods[j].Refuse == nil {
					j++
				}
				if err = tx.AddBatch(m.Adds, j-i); err != nil {
					var ae *flow.AddError
					if errors.As(err, &ae) {
						failed = i + ae.Index
					} else {
						failed = i
					}
					return ofconv.AddError(v, err)
				}
				i = j - 1
				continue
			}
			if err == nil && m.Flow != nil {
				// Converted when it was added. The table keeps
				// what it needs of it: the rest is free as the
				// commit goes on, not only once it ends.
				err = o.modLocked(tx, v, m.Flow)
				m.Flow = nil
			} else if err == nil {
				switch msg := m.Msg.(type) {
				case *openflow.FlowMod:
					err = o.flowModLocked(tx, v, msg)
				case *openflow.GroupMod:
					var rs []*flow.Rule
					rs, err = o.groupModLocked(tx, v, msg)
					gone = append(gone, rs...)
				case *openflow.PortMod:
					var apply func()
					apply, err = o.portModLocked(msg, m.From)
					if apply != nil {
						ports = append(ports, apply)
					}
				case *openflow.PacketOut:
					if snap == nil {
						snap = tx.Snapshot()
					}
					var po *datapath.PreparedPacketOut
					po, err = o.bundledPacketOutLocked(tx, snap, v, msg)
					if po != nil {
						outs = append(outs, po)
					}
				default:
					err = fmt.Errorf("%T cannot be bundled", msg)
				}
			}
			if err != nil {
				failed = i
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, failed, err
	}
	for _, apply := range ports {
		apply()
	}
	if len(mods) > 0 {
		o.reportFlowsLocked(mods[len(mods)-1].From, reasonsFor(gone, ofconn.ReasonGroupDelete))
		o.changedLocked("bundle")
	}
	return outs, -1, nil
}

// flowModLocked runs one flow mod in tx. d.mu must be held.
func (o *ofBridge) flowModLocked(tx *flow.TableTxn, v uint8, fm *openflow.FlowMod) error {
	mod, err := ofconv.FlowFromMod(o.b.parser(), v, fm)
	if err != nil {
		return err
	}
	return o.modLocked(tx, v, mod)
}

// modLocked runs converted flow mod mod (of version v) in tx. d.mu must
// be held.
func (o *ofBridge) modLocked(tx *flow.TableTxn, v uint8, mod *ofconv.Mod) error {
	f := mod.Flow
	if mod.Cmd != flow.CmdDelete {
		// A flow that names a missing group is refused, as add-flow
		// refuses it (OFPBAC_BAD_OUT_GROUP).
		if err := tx.CheckGroups(f); err != nil {
			return ofconv.TableError(err)
		}
	}
	switch mod.Cmd {
	case flow.CmdAdd:
		if err := tx.Add(f); err != nil {
			return ofconv.AddError(v, err)
		}
	case flow.CmdModify:
		// OpenFlow 1.1 and later never add from a modify; 1.0 does.
		tx.Modify(f, mod.Strict, v == openflow.Version10)
	case flow.CmdDelete:
		tx.Delete(f, mod.Strict)
	}
	return nil
}

var _ ofconn.Checker = (*ofBridge)(nil)

// CheckFlowMod tells whether FlowMod would take fm, without running it
// (a bundled flow mod), and returns its conversion for the commit; the
// groups it names are checked at commit, as a bundle may add them first.
func (o *ofBridge) CheckFlowMod(v uint8, fm *openflow.FlowMod, adds *flow.FlowBatch) (*ofconv.Mod, bool, error) {
	if err := o.lock(); err != nil {
		return nil, false, err
	}
	defer o.unlock()
	o.d.busyLocked()
	if adds == nil || fm.Command != openflow.FlowAdd {
		mod, err := ofconv.FlowFromMod(o.b.parser(), v, fm)
		return mod, false, err
	}
	// An add is kept as the table keeps it (a rule that holds only the
	// words of its key under its mask, cut from the batch's chunks),
	// not as a flow of two whole keys: the conversion's flow is reused.
	mod, err := o.conv.FlowFromMod(o.b.parser(), v, fm)
	if err != nil {
		return nil, false, err
	}
	adds.Add(mod.Flow)
	return nil, true, nil
}

// CheckGroupMod tells whether GroupMod could take gm, without running it:
// the group an add or modify describes is checked; the other commands
// depend on the groups at commit.
func (o *ofBridge) CheckGroupMod(v uint8, gm *openflow.GroupMod) error {
	switch gm.Command {
	case openflow.GroupAdd, openflow.GroupModify, ofconv.GroupAddOrModify:
	default:
		return nil
	}
	if err := o.lock(); err != nil {
		return err
	}
	defer o.unlock()
	o.d.busyLocked()
	_, err := ofconv.GroupFromMod(o.b.parser(), v, gm)
	return err
}

// Flows answers a flow stats request as dump-flows does.
func (o *ofBridge) Flows(v uint8, req *openflow.FlowStatsRequest) ([]openflow.FlowStats, error) {
	rules, err := o.selectRules(v, req)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out := make([]openflow.FlowStats, 0, len(rules))
	for _, r := range rules {
		e, err := ofconv.FlowStats(v, req.Nicira, r, now)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func (o *ofBridge) selectRules(v uint8, req *openflow.FlowStatsRequest) ([]*flow.Rule, error) {
	if err := o.lock(); err != nil {
		return nil, err
	}
	defer o.unlock()
	sel, err := ofconv.SelectionFromStats(o.b.parser(), v, req)
	if err != nil {
		return nil, err
	}
	return o.b.dp.Table().Dump(sel), nil
}

// Aggregate sums the counters of the rules a request selects.
func (o *ofBridge) Aggregate(v uint8, req *openflow.FlowStatsRequest) (*openflow.AggregateReply, error) {
	rules, err := o.selectRules(v, req)
	if err != nil {
		return nil, err
	}
	r := &openflow.AggregateReply{FlowCount: uint32(len(rules))}
	if v >= openflow.Version15 {
		r.Stats15 = openflow.OXSFlowCount | openflow.OXSPacketCount | openflow.OXSByteCount
	}
	for _, rule := range rules {
		p, b := rule.Stats()
		r.PacketCount += p
		r.ByteCount += b
	}
	return r, nil
}

// Tables reports the tables that hold rules, and table 0 always, as Open
// vSwitch lists its tables (ovsxdp counts no lookups per table).
func (o *ofBridge) Tables(v uint8) []openflow.TableStats {
	counts := map[uint8]uint32{}
	for _, r := range o.b.dp.Table().Dump(nil) {
		counts[r.Table]++
	}
	out := make([]openflow.TableStats, 0, flow.MaxTable)
	for t := 0; t < 254; t++ {
		out = append(out, openflow.TableStats{TableID: uint8(t), Name: fmt.Sprintf("table%d", t), Wildcards: 0x3fffff,
			MaxEntries: 1000000, ActiveCount: counts[uint8(t)]})
	}
	return out
}

// PortStats reports the ports' counters: rx and tx as dump-ports counts
// them, drops summed over their reasons.
func (o *ofBridge) PortStats(v uint8, port uint32) ([]openflow.PortStats, error) {
	var out []openflow.PortStats
	for _, p := range o.b.dp.Ports() {
		if port != openflow.PortAny && p.OFPort != bridgePort(port) {
			continue
		}
		s, vs := p.Stats(), p.VPort().Stats()
		out = append(out, openflow.PortStats{PortNo: wirePort(p.OFPort),
			RxPackets: s.RxPackets, TxPackets: s.TxPackets, RxBytes: s.RxBytes, TxBytes: s.TxBytes,
			RxDropped: s.RxDropped() + vs.RxDropped, TxDropped: s.TxDropped(),
		})
	}
	if port != openflow.PortAny && len(out) == 0 {
		return nil, &openflow.Error{Type: openflow.ErrTypeBadRequest, Code: 5, Sentinel: openflow.ErrBadMessage, Detail: fmt.Sprintf("no port %d", port)}
	}
	return out, nil
}

// OFPET_PORT_MOD_FAILED codes.
const codePortModBadPort uint16 = 0

// PortMod brings a port administratively up or down (OFPPC_PORT_DOWN), as
// ovs-ofctl mod-port PORT up|down does; other bits are refused.
func (o *ofBridge) PortMod(v uint8, pm *openflow.PortMod, from ofconn.Origin) error {
	if err := o.lock(); err != nil {
		return err
	}
	defer o.unlock()
	apply, err := o.portModLocked(pm, from)
	if err != nil {
		return err
	}
	if apply != nil {
		apply()
	}
	return nil
}

// portModLocked checks a port mod and returns what applies it (nil when
// it changes nothing). d.mu must be held.
func (o *ofBridge) portModLocked(pm *openflow.PortMod, from ofconn.Origin) (apply func(), err error) {
	p, ok := o.b.dp.PortByOF(bridgePort(pm.PortNo))
	if !ok {
		return nil, &openflow.Error{Type: openflow.ErrTypePortModFailed, Code: codePortModBadPort, Sentinel: openflow.ErrBadMessage, Detail: fmt.Sprintf("no port %d", pm.PortNo)}
	}
	if pm.Mask&^openflow.PortConfigDown != 0 {
		return nil, &openflow.Error{Type: openflow.ErrTypePortModFailed, Code: 2, Sentinel: openflow.ErrBadMessage, Detail: "only the port-down bit can be changed"} // OFPPMFC_BAD_CONFIG
	}
	if pm.Mask&openflow.PortConfigDown == 0 {
		return nil, nil
	}
	if _, ok := p.VPort().(*datapath.TunnelPort); ok {
		// A tunnel port has no device to take down: ovs-vswitchd's
		// attempt fails ("Operation not supported", logged), the port
		// mod is not refused and the port stays up.
		o.d.log.Warn("port mod: a tunnel port cannot be taken down or up", "bridge", o.b.name, "port", p.Name)
		return nil, nil
	}
	up := pm.Config&openflow.PortConfigDown == 0
	return func() {
		o.portModded(p.OFPort, pm.Config&openflow.PortConfigDown, from)
		if err := datapath.SetPortAdminUp(p, up); err != nil {
			o.d.log.Warn("port mod: the device keeps its state", "bridge", o.b.name, "port", p.Name, "err", err)
		}
	}, nil
}

// packetOutTimeout bounds the wait for a poll thread to send a packet out.
const packetOutTimeout = 5 * time.Second

// PacketOut runs the actions on the packet through the pipeline's
// translation and sends it from a poll thread.
func (o *ofBridge) PacketOut(v uint8, po *openflow.PacketOut) error {
	inPort, err := packetOutInPort(po)
	if err != nil {
		return err
	}
	if err := o.lock(); err != nil {
		return err
	}
	acts, err := o.packetOutActionsLocked(v, po.Data, inPort, po.Actions)
	if err == nil {
		// As Open vSwitch: a packet out naming a missing group is
		// refused (OFPBAC_BAD_OUT_GROUP), not sent.
		err = ofconv.TableError(o.b.dp.Table().CheckGroups(&flow.Flow{Actions: acts}))
	}
	o.unlock()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), packetOutTimeout)
	defer cancel()
	return packetOutError(o.b.dp.PacketOut(ctx, po.Data, inPort, acts))
}

// OpenFlow error codes of a packet out's in_port.
const (
	codeBadRequestBadPort uint16 = 11 // OFPBRC_BAD_PORT
	codeBadActionOutPort  uint16 = 4  // OFPBAC_BAD_OUT_PORT
	codeBadMatchValue     uint16 = 7  // OFPBMC_BAD_VALUE
)

// packetOutInPort checks what a packet out carries besides its actions
// and returns its in_port, refused as Open vSwitch 3.1 refuses it: a
// 32-bit number between the 16-bit ports and the reserved ones cannot be
// converted (OFPBAC_BAD_OUT_PORT in the packet out's in_port, a bad value
// in OpenFlow 1.5's match), and of the reserved ports only LOCAL,
// CONTROLLER and NONE (ANY) may have sent the packet (OFPBRC_BAD_PORT).
func packetOutInPort(po *openflow.PacketOut) (uint32, error) {
	if po.BufferID != openflow.NoBuffer {
		return 0, &openflow.Error{Type: openflow.ErrTypeBadRequest, Code: 8, Sentinel: openflow.ErrBadMessage, Detail: "ovsxdp buffers no packets"} // OFPBRC_BUFFER_UNKNOWN
	}
	inPort, inMatch := po.InPort, false
	for _, f := range po.Match {
		if f.Name == "in_port" && len(f.Value) == 4 {
			inPort, inMatch = binary.BigEndian.Uint32(f.Value), true
		}
	}
	switch {
	case inPort > 0xfeff && inPort < openflow.PortMax && inMatch:
		return 0, &openflow.Error{Type: openflow.ErrTypeBadMatch, Code: codeBadMatchValue, Sentinel: openflow.ErrBadMatch, Detail: fmt.Sprintf("in_port %#x is outside the port range", inPort)}
	case inPort > 0xfeff && inPort < openflow.PortMax:
		return 0, &openflow.Error{Type: openflow.ErrTypeBadAction, Code: codeBadActionOutPort, Sentinel: openflow.ErrBadAction, Detail: fmt.Sprintf("in_port %#x is outside the port range", inPort)}
	case inPort >= openflow.PortMax && inPort != openflow.PortLocal && inPort != openflow.PortController && inPort != openflow.PortAny:
		return 0, &openflow.Error{Type: openflow.ErrTypeBadRequest, Code: codeBadRequestBadPort, Sentinel: openflow.ErrBadMessage, Detail: fmt.Sprintf("packet out from port %#x", inPort)}
	}
	if inPort >= openflow.PortMax {
		inPort -= 0xffff0000
	}
	return inPort, nil
}

// packetOutError is the OpenFlow error of a packet out the datapath
// refused.
func packetOutError(err error) error {
	if errors.Is(err, datapath.ErrMalformedPacket) {
		return &openflow.Error{Type: openflow.ErrTypeBadRequest, Code: 6, Sentinel: openflow.ErrBadMessage, Detail: err.Error()}
	}
	return err
}

var _ ofconn.PacketOutChecker = (*ofBridge)(nil)

// CheckPacketOut tells whether PacketOut would take po, without running
// it (a bundled packet out); the groups it names are checked at commit,
// as a bundle may add them first.
func (o *ofBridge) CheckPacketOut(v uint8, po *openflow.PacketOut) error {
	inPort, err := packetOutInPort(po)
	if err != nil {
		return err
	}
	if err := o.lock(); err != nil {
		return err
	}
	defer o.unlock()
	o.d.busyLocked()
	_, err = o.packetOutActionsLocked(v, po.Data, inPort, po.Actions)
	return err
}

// bundledPacketOutLocked translates a bundled packet out in its turn,
// through snap, the tables as the bundle's changes before it leave them
// (tx.Snapshot), for CommitBundle to send once the bundle has taken
// effect. d.mu must be held.
func (o *ofBridge) bundledPacketOutLocked(tx *flow.TableTxn, snap *flow.TableSnapshot, v uint8, po *openflow.PacketOut) (*datapath.PreparedPacketOut, error) {
	inPort, err := packetOutInPort(po)
	if err != nil {
		return nil, err
	}
	acts, err := o.packetOutActionsLocked(v, po.Data, inPort, po.Actions)
	if err != nil {
		return nil, err
	}
	if err := tx.CheckGroups(&flow.Flow{Actions: acts}); err != nil {
		return nil, ofconv.TableError(err)
	}
	p, err := datapath.PreparePacketOut(snap, po.Data, inPort, acts)
	return p, packetOutError(err)
}

// packetOutActionsLocked converts the packet out's actions through the
// flow language, checked as Open vSwitch checks them against the packet
// (ofconv.PacketOutActions). d.mu must be held.
func (o *ofBridge) packetOutActionsLocked(v uint8, frame []byte, inPort uint32, acts []openflow.Action) ([]flow.Action, error) {
	var k flow.Key
	var off flow.Offsets
	if flow.Extract(&k, &off, frame, inPort) != flow.MalformedNone {
		// Refused as malformed when sent; its actions are checked
		// against nothing meanwhile.
		k = flow.Key{}
	}
	return ofconv.PacketOutActions(o.b.parser(), v, &k, acts)
}

// GroupMod runs a group mod through the table's group changes, as
// add-group, mod-group and del-groups do: a flow that names a missing
// group is refused, del-groups takes the flows that use the groups with
// it, and the state is saved.
func (o *ofBridge) GroupMod(v uint8, gm *openflow.GroupMod) error {
	if err := o.lock(); err != nil {
		return err
	}
	defer o.unlock()
	if gm.Command == openflow.GroupDelete {
		o.reportFlowsLocked(ofconn.Origin{}, nil)
	}
	var gone []*flow.Rule
	err := o.b.dp.Table().UpdateAtomic(func(tx *flow.TableTxn) error {
		var err error
		gone, err = o.groupModLocked(tx, v, gm)
		return err
	})
	if err != nil {
		return err
	}
	if gm.Command == openflow.GroupDelete {
		o.reportFlowsLocked(ofconn.Origin{}, reasonsFor(gone, ofconn.ReasonGroupDelete)) // ofmonitor.go
	}
	o.changedLocked("group mod")
	return nil
}

// groupModLocked runs one group mod in tx and returns the flows that
// went with deleted groups. d.mu must be held.
func (o *ofBridge) groupModLocked(tx *flow.TableTxn, v uint8, gm *openflow.GroupMod) ([]*flow.Rule, error) {
	switch gm.Command {
	case openflow.GroupAdd, openflow.GroupModify, ofconv.GroupAddOrModify:
		g, err := ofconv.GroupFromMod(o.b.parser(), v, gm)
		if err != nil {
			return nil, err
		}
		if gm.Command == openflow.GroupAdd {
			err = tx.AddGroups([]*flow.Group{g})
		} else {
			err = tx.ModifyGroup(g, gm.Command == ofconv.GroupAddOrModify)
		}
		if err != nil {
			return nil, ofconv.TableError(err)
		}
	case openflow.GroupDelete:
		_, gone := tx.DeleteGroups(gm.GroupID)
		return gone, nil
	case ofconv.GroupInsertBucket, ofconv.GroupRemoveBucket:
		if !openflow.GroupBodies15(v) {
			return nil, ofconv.GroupModError(ofconv.CodeGroupBadCommand, "group mod command %d needs OpenFlow 1.5 or NXT_GROUP_MOD", gm.Command)
		}
		return nil, o.bucketCommandLocked(tx, v, gm)
	default:
		return nil, ofconv.GroupModError(ofconv.CodeGroupBadCommand, "group mod command %d", gm.Command)
	}
	return nil, nil
}

// bucketCommandLocked runs OpenFlow 1.5's insert-buckets or
// remove-buckets in tx: the group keeps its type and selection method
// and takes the changed bucket list, as a mod-group would give it.
func (o *ofBridge) bucketCommandLocked(tx *flow.TableTxn, v uint8, gm *openflow.GroupMod) error {
	old := tx.Group(gm.GroupID)
	if old == nil {
		return ofconv.GroupModError(ofconv.CodeUnknownGroup, "group %d does not exist", gm.GroupID)
	}
	g := old.Group
	at := -1 // the index of command_bucket_id's bucket
	switch gm.CommandBucketID {
	case ofconv.BucketFirst, ofconv.BucketLast, ofconv.BucketAll:
	default:
		for i := range g.Buckets {
			if g.Buckets[i].ID == gm.CommandBucketID {
				at = i
			}
		}
		if at < 0 {
			return ofconv.GroupModError(ofconv.CodeUnknownBucket, "group %d has no bucket %d", g.ID, gm.CommandBucketID)
		}
	}
	var buckets []flow.Bucket
	if gm.Command == ofconv.GroupRemoveBucket {
		switch {
		case gm.CommandBucketID == ofconv.BucketAll:
		case len(g.Buckets) == 0:
		case gm.CommandBucketID == ofconv.BucketFirst:
			buckets = append(buckets, g.Buckets[1:]...)
		case gm.CommandBucketID == ofconv.BucketLast:
			buckets = append(buckets, g.Buckets[:len(g.Buckets)-1]...)
		default:
			buckets = append(append(buckets, g.Buckets[:at]...), g.Buckets[at+1:]...)
		}
	} else {
		if gm.CommandBucketID == ofconv.BucketAll {
			return ofconv.GroupModError(ofconv.CodeGroupBadCommand, "insert-buckets needs a bucket id, first or last")
		}
		in := *gm
		in.Type, in.Props = uint8(g.Type), nil
		ng, err := ofconv.GroupFromMod(o.b.parser(), v, &in)
		if err != nil {
			return err
		}
		for _, nb := range ng.Buckets {
			for _, ob := range g.Buckets {
				if ob.ID == nb.ID {
					return ofconv.GroupModError(ofconv.CodeBucketExists, "group %d already has bucket %d", g.ID, nb.ID)
				}
			}
		}
		switch gm.CommandBucketID {
		case ofconv.BucketFirst:
			at = -1
		case ofconv.BucketLast:
			at = len(g.Buckets) - 1
		}
		// The new buckets go after command_bucket_id's.
		buckets = append(append(append(buckets, g.Buckets[:at+1]...), ng.Buckets...), g.Buckets[at+1:]...)
	}
	g.Buckets = buckets
	return ofconv.TableError(tx.ModifyGroup(&g, false))
}

// GroupDesc describes the bridge's groups (id GroupAll: every one).
func (o *ofBridge) GroupDesc(v uint8, id uint32) ([]openflow.GroupDesc, error) {
	var out []openflow.GroupDesc
	for _, g := range o.b.dp.Table().Groups() {
		if id != ofconn.GroupAll && g.ID != id {
			continue
		}
		d, err := ofconv.GroupDesc(v, &g.Group)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// GroupStats reports the bridge's groups' counters (id GroupAll: every
// one), with the number of flows that name each.
func (o *ofBridge) GroupStats(v uint8, id uint32) ([]openflow.GroupStats, error) {
	snap := o.b.dp.Table().Snapshot()
	now := time.Now()
	var out []openflow.GroupStats
	for _, g := range snap.Groups() {
		if id != ofconn.GroupAll && g.ID != id {
			continue
		}
		out = append(out, ofconv.GroupStats(g, snap.GroupRefs(g.ID), now))
	}
	return out, nil
}

var _ ofconn.Resumer = (*ofBridge)(nil)

// Resume resumes the pipeline that NXT_RESUME m's continuation froze
// (flow/continuation.go), as Open vSwitch does: the continuation must be
// this bridge's (id; else OFPERR_NXR_STALE), the packet's key takes the
// pipeline fields m reports, the rest of the pipeline is translated on
// it, and the packet leaves as a packet out does.
func (o *ofBridge) Resume(v uint8, m *openflow.Resume, id [16]byte) error {
	if err := o.lock(); err != nil {
		return err
	}
	c, bridge, err := ofconv.DecodeContinuation(o.b.parser(), v, m.Continuation)
	var meta *flow.Match
	if err == nil && bridge != id {
		err = ofconn.ResumeError(ofconn.CodeResumeStale, "the continuation is not this bridge's")
	}
	if err == nil {
		meta, err = ofconv.MatchFromFields(o.b.parser(), m.Metadata)
	}
	var po *datapath.PreparedPacketOut
	if err == nil {
		po, err = datapath.PrepareResume(o.b.dp.Table().Snapshot(), m.Packet, meta.Key.InPort, func(k *flow.Key) {
			k.SetFields(meta)
		}, c)
	}
	o.unlock()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), packetOutTimeout)
	defer cancel()
	return packetOutError(o.b.dp.SendPacketOut(ctx, po))
}
