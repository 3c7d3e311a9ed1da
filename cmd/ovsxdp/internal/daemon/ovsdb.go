package daemon

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ovsxdp/ovsxdp/cmd/ovsxdp/internal/ovsdb"
	"github.com/ovsxdp/ovsxdp/datapath"
	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// Configuration from ovsdb-server: with Config.OVSDB the daemon is a
// client of ovsdb-server's Open_vSwitch database, as ovs-vswitchd is. The
// bridges whose datapath_type is "ovsxdp" are the daemon's; their Port
// and Interface rows are its ports. It writes back what ovs-vswitchd
// writes: each Interface's ofport, error, link_state, admin_state, mtu,
// mac_in_use and statistics, each Bridge's datapath_id, and the
// Open_vSwitch row's cur_cfg (which ovs-vsctl waits for), datapath_types
// and iface_types. The database is then the configuration: the bridge and
// port commands of the control socket are refused, and nothing but the
// bridges' flows and groups is kept, in the flows file (ovsdb_flows.go).

// DatapathType is the Bridge datapath_type of the bridges ovsxdp runs.
const DatapathType = "ovsxdp"

// ErrConfiguredByOVSDB is the error of a command that would change the
// bridges or ports of a daemon configured from ovsdb-server.
var ErrConfiguredByOVSDB = errors.New("the bridges and ports come from ovsdb-server (--ovsdb): change them with ovs-vsctl")

const (
	ovsDB = "Open_vSwitch"
	// ovsdbStatusInterval is how often the ports' state (link, error) is
	// compared with the database when nothing else wakes the loop.
	ovsdbStatusInterval = time.Second
	// ovsdbStatsInterval is how often the Interface statistics are
	// written, as ovs-vswitchd's default (and least)
	// other_config:stats-update-interval.
	ovsdbStatsInterval = 5 * time.Second
	// ovsdbTimeout bounds one transaction.
	ovsdbTimeout = 10 * time.Second
	// The bounds of the backoff between attempts to reach the server
	// before the first connection (the client reconnects by itself after
	// that).
	ovsdbRetryMin = 250 * time.Millisecond
	ovsdbRetryMax = 8 * time.Second
)

// ovsdbTables are the monitored tables and columns.
var ovsdbTables = map[string][]string{
	"Open_vSwitch": {"bridges", "next_cfg", "cur_cfg", "datapath_types", "iface_types", "other_config"},
	"Bridge":       {"name", "datapath_type", "ports", "datapath_id", "other_config"},
	"Port":         {"name", "interfaces"},
	"Interface": {"name", "type", "options", "ofport_request", "ofport", "error", "link_state",
		"admin_state", "mtu", "mac_in_use", "ifindex", "statistics"},
}

// ovsdbSync keeps the daemon's bridges and ports in step with the
// database.
type ovsdbSync struct {
	d      *Daemon
	remote string
	log    *slog.Logger
	kick   chan struct{} // the database changed (never blocks the sender)
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	// Owned by the loop goroutine.
	client  *ovsdb.Client
	rep     *ovsdb.Replica
	applied map[string]*appliedPort // by interface name
	// bridgeErr is why a wanted bridge could not be created, logged
	// once.
	bridgeErr map[string]string
	statsAt   time.Time // when statistics were last written
	// pmdMask is the other_config:pmd-cpu-mask last applied ("": none;
	// nil: nothing applied yet).
	pmdMask *string
}

// appliedPort is what was done with a wanted port: its key, and the error
// that kept it off its bridge ("" when it is configured).
type appliedPort struct {
	bridge string
	key    string
	refuse string // why the port was not even tried
	err    string
}

// wantPort is a port that the database asks for.
type wantPort struct {
	iface  ovsdb.UUID
	bridge string
	pc     portConfig // OFPort is ofport_request (0: none)
	key    string     // what re-creates the port when it changes
	hint   uint32     // the ofport the database last had for it
	refuse string     // why it cannot be added, or ""
}

// startOVSDB starts following the database at remote. It does not wait
// for the server: the daemon starts without it and configures itself when
// it answers.
func (d *Daemon) startOVSDB(remote string) {
	s := &ovsdbSync{d: d, remote: remote, log: d.log.With("ovsdb", remote), kick: make(chan struct{}, 1),
		done: make(chan struct{}), applied: map[string]*appliedPort{}, bridgeErr: map[string]string{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	d.ovsdb = s
	go s.run()
}

// stopOVSDB stops following the database. d.mu must not be held.
func (d *Daemon) stopOVSDB() {
	if d.ovsdb == nil {
		return
	}
	d.ovsdb.cancel()
	<-d.ovsdb.done
}

// refuseConfigVerb refuses the commands that change bridges or ports when
// the database is the configuration.
func (d *Daemon) refuseConfigVerb(name string) error {
	if d.ovsdb == nil {
		return nil
	}
	switch name {
	case "add-br", "del-br", "add-port", "del-port", "set-controller", "del-controller", "set-fail-mode", "del-fail-mode":
		return fmt.Errorf("%s: %w", name, ErrConfiguredByOVSDB)
	}
	return nil
}

func (s *ovsdbSync) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *ovsdbSync) run() {
	defer close(s.done)
	if !s.connect() {
		return
	}
	defer s.client.Close()
	tick := time.NewTicker(ovsdbStatusInterval)
	defer tick.Stop()
	for {
		s.sync()
		select {
		case <-s.ctx.Done():
			return
		case <-s.kick:
		case <-tick.C:
		}
	}
}

// connect dials the server and starts the monitor, retrying with backoff
// until it succeeds or the daemon stops.
func (s *ovsdbSync) connect() bool {
	backoff := ovsdbRetryMin
	for {
		err := s.dial()
		if err == nil {
			s.log.Info("ovsdb: connected; the database is the configuration")
			return true
		}
		s.log.Warn("ovsdb: cannot reach the database, retrying", "err", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		backoff = min(2*backoff, ovsdbRetryMax)
	}
}

func (s *ovsdbSync) dial() error {
	ctx, cancel := context.WithTimeout(s.ctx, ovsdbTimeout)
	defer cancel()
	c, err := ovsdb.Dial(ctx, s.remote, ovsdb.Options{Logger: s.log})
	if err != nil {
		return err
	}
	rep, err := c.Monitor(ctx, ovsdb.MonitorRequest{DB: ovsDB, Tables: ovsdbTables, Cond: true,
		OnChange: func([]ovsdb.Event) { s.wake() }})
	if err != nil {
		c.Close()
		return err
	}
	s.client, s.rep = c, rep
	return nil
}

// sync applies the database's configuration and writes back the state.
func (s *ovsdbSync) sync() {
	snap := s.rep.Snapshot()
	var root ovsdb.Row
	for _, r := range snap["Open_vSwitch"] {
		root = r
	}
	if root == nil {
		return // not initialised yet (ovs-vsctl init)
	}
	s.applyPMDMask(root)
	bridges, ports := s.wanted(snap, root)
	ctlCfgs, ctlRows := wantedControllers(snap, bridges)
	statuses, created := s.apply(bridges, snap["Bridge"], ports, ctlCfgs)
	s.applyControllers(ctlCfgs, created)
	s.setLocalMACs(snap["Bridge"], bridges, created)
	ops := s.writeBack(snap, root, bridges, ports, statuses)
	ops = append(ops, s.controllerWriteBack(ctlRows)...)
	if len(ops) == 0 || s.ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, ovsdbTimeout)
	defer cancel()
	_, err := s.client.Transact(ctx, ovsDB, ops...)
	switch {
	case err == nil, s.ctx.Err() != nil:
	case errors.Is(err, ovsdb.ErrNotConnected):
		// The client is reconnecting; the resync wakes the loop again.
		s.log.Debug("ovsdb: not connected; the state is written back after the resync")
	default:
		s.log.Warn("ovsdb: cannot write the state back (retried)", "err", err)
	}
}

// wanted reads the ovsxdp bridges and their ports from a snapshot:
// bridge name → Bridge uuid, and interface name → port.
func (s *ovsdbSync) wanted(snap map[string]map[ovsdb.UUID]ovsdb.Row, root ovsdb.Row) (map[string]ovsdb.UUID, map[string]*wantPort) {
	bridges := map[string]ovsdb.UUID{}
	ports := map[string]*wantPort{}
	for _, bu := range root.Set("bridges") {
		br, ok := snap["Bridge"][asUUID(bu)]
		if !ok || br.String("datapath_type") != DatapathType {
			continue
		}
		name := br.String("name")
		if checkName("bridge", name) != nil {
			s.log.Warn("ovsdb: bridge name not usable, ignored", "bridge", name)
			continue
		}
		bridges[name] = br.UUID()
		for _, pu := range br.Set("ports") {
			port, ok := snap["Port"][asUUID(pu)]
			if !ok {
				continue
			}
			ifaces := port.Set("interfaces")
			for _, iu := range ifaces {
				iface, ok := snap["Interface"][asUUID(iu)]
				if !ok {
					continue
				}
				w := wantIface(name, iface)
				if len(ifaces) > 1 {
					w.refuse = fmt.Sprintf("port %s has %d interfaces: ovsxdp does not support bonds", port.String("name"), len(ifaces))
				}
				if prev := ports[w.pc.Name]; prev != nil {
					// Two rows of one name: neither is added.
					prev.refuse = "interface name " + w.pc.Name + " is used twice"
					w.refuse = prev.refuse
				}
				ports[w.pc.Name] = w
			}
		}
	}
	return bridges, ports
}

// wantIface reads one Interface row.
func wantIface(bridge string, iface ovsdb.Row) *wantPort {
	w := &wantPort{iface: iface.UUID(), bridge: bridge, pc: portConfig{Name: iface.String("name"), Type: typeAFXDP}}
	typ := iface.String("type")
	opts := map[string]string{}
	for k, v := range iface.Map("options") {
		ks, _ := k.(string)
		vs, _ := v.(string)
		opts[ks] = vs
	}
	if n, ok := iface.Int("ofport_request"); ok && n > 0 && n <= int64(maxOFPort) {
		w.pc.OFPort = uint32(n)
	}
	if n, ok := iface.Int("ofport"); ok && n > 0 && n <= int64(maxOFPort) {
		w.hint = uint32(n)
	}
	var ks []string
	for _, k := range slices.Sorted(maps.Keys(opts)) {
		ks = append(ks, k+"="+opts[k])
	}
	w.key = fmt.Sprintf("type=%s ofport_request=%d options={%s}", typ, w.pc.OFPort, strings.Join(ks, ","))
	if err := checkName("port", w.pc.Name); err != nil {
		w.refuse = err.Error()
		return w
	}
	switch typ {
	case "", "system", typeAFXDP:
		w.pc.Options = afxdpOptions(opts)
	case typeInternal:
		w.pc.Type = typeInternal
		if w.pc.Name == bridge {
			w.pc.OFPort = flow.PortLocal // the bridge's LOCAL port
		}
		if len(opts) > 0 {
			w.pc.Options = opts // none known: each is the Interface's error
		}
	case typeVXLAN, typeGeneve:
		w.pc.Type = typ
		if len(opts) > 0 {
			w.pc.Options = opts // tunnel.ParseOptions refuses a bad one, as the Interface's error
		}
	default:
		w.refuse = fmt.Sprintf("ovsxdp does not support interface type %q (use type afxdp, internal, vxlan or geneve)", typ)
	}
	return w
}

// afxdpOptions maps an afxdp Interface's options to the afxdp port's:
// n_rxq is rxq; xdp-mode native-with-zerocopy is native (zero copy is
// the kernel's choice); use-need-wakeup has no counterpart and is
// ignored. The port's own options (rxq, frames, ring, force) pass as
// they are, and an unknown one is the Interface's error.
func afxdpOptions(in map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range in {
		switch k {
		case "n_rxq":
			out["rxq"] = v
		case "xdp-mode":
			if v == "native-with-zerocopy" {
				v = "native"
			}
			out[k] = v
		case "use-need-wakeup":
		default:
			out[k] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func asUUID(v any) ovsdb.UUID {
	u, _ := v.(ovsdb.UUID)
	return u
}

// portStatus is what is written back for one Interface.
type portStatus struct {
	ofport   int64 // -1 when the port is not on its bridge
	err      string
	attached bool
	link     string
	admin    string
	stats    datapath.PortStats
	// ifindex is the device an AF_XDP port opened, in the daemon's
	// namespace (0: none, or another namespace); tunnel is set for a
	// tunnel port, which has no device.
	ifindex int
	tunnel  bool
}

// apply makes the bridges and ports those wanted and returns each wanted
// port's status, and the bridges it created (rows are the Bridge rows,
// for a new bridge's address). A new bridge gets the flows saved for it,
// or else, in standalone mode without controllers (ctl), the normal flow
// that Open vSwitch gives such a bridge.
func (s *ovsdbSync) apply(bridges map[string]ovsdb.UUID, rows map[ovsdb.UUID]ovsdb.Row, ports map[string]*wantPort, ctl map[string]ctlConfig) (map[string]*portStatus, map[string]bool) {
	d := s.d
	d.mu.Lock()
	defer d.mu.Unlock()
	changed := false
	// Bridges that are gone, and ports that are gone or changed.
	for name, b := range d.bridges {
		if _, ok := bridges[name]; !ok {
			s.removeBridgeLocked(b)
			changed = true
			continue
		}
		for pname := range b.ports {
			w := ports[pname]
			ap := s.applied[pname]
			if w != nil && w.refuse == "" && w.bridge == name && ap != nil && ap.key == w.key && ap.bridge == name {
				if !renumber(b, pname, w, ports) {
					continue
				}
				delete(s.applied, pname) // added again below, with its new number
			}
			s.removePortLocked(b, pname)
			changed = true
		}
	}
	for name, ap := range s.applied {
		if w := ports[name]; w == nil || w.key != ap.key || w.bridge != ap.bridge || w.refuse != ap.refuse {
			delete(s.applied, name)
		}
	}
	for name := range s.bridgeErr {
		if _, ok := bridges[name]; !ok {
			delete(s.bridgeErr, name)
		}
	}
	if len(d.savedFlows) > 0 {
		wanted := make(map[string]bool, len(bridges))
		for name := range bridges {
			wanted[name] = true
		}
		d.dropSavedFlowsLocked(wanted)
	}
	created := map[string]bool{}
	for name := range bridges {
		if d.bridges[name] != nil {
			continue
		}
		b, err := d.addBridgeLocked(datapath.Config{Name: name, PMDs: 1})
		if err != nil {
			if s.bridgeErr[name] != err.Error() {
				s.bridgeErr[name] = err.Error()
				s.log.Error("ovsdb: cannot create the bridge", "bridge", name, "err", err)
			}
			continue
		}
		// The flows and groups it had before a restart, before its
		// ports are added below.
		created[name] = true
		if !d.restoreFlowsLocked(b) {
			s.initialFlowLocked(b, ctl[name])
		}
		delete(s.bridgeErr, name)
		changed = true
	}
	// New ports.
	for _, name := range slices.Sorted(maps.Keys(ports)) {
		w := ports[name]
		b := d.bridges[w.bridge]
		if b == nil || b.ports[name] != nil || s.applied[name] != nil {
			continue
		}
		ap := &appliedPort{bridge: w.bridge, key: w.key, refuse: w.refuse, err: w.refuse}
		s.applied[name] = ap
		if w.refuse != "" {
			s.log.Warn("ovsdb: interface not added", "bridge", w.bridge, "port", name, "err", w.refuse)
			continue
		}
		if err := s.addPortLocked(b, w, ports); err != nil {
			ap.err = err.Error()
			s.log.Warn("ovsdb: interface not added", "bridge", w.bridge, "port", name, "err", err)
			continue
		}
		changed = true
	}
	// Before publishLocked starts the new bridges' OpenFlow channels.
	s.setCreatedLocalMACsLocked(created, bridges, rows)
	if changed {
		d.publishLocked()
	}
	return s.statusLocked(ports), created
}

// addPortLocked adds w's port to b, with the number it asks for when that
// is free, else the one the database last had for it when that is free
// and no port of the bridge asks for it, else the next one the bridge
// hands out: as Open vSwitch, a port whose ofport_request another port
// holds takes a number of its own until it can have the one it asks for
// (renumber). A missing device leaves the port configured, waiting for
// it. d.mu must be held.
func (s *ovsdbSync) addPortLocked(b *bridge, w *wantPort, ports map[string]*wantPort) error {
	pc := w.pc
	pc.Options = maps.Clone(w.pc.Options)
	if pc.OFPort != 0 && pc.OFPort != flow.PortLocal && !s.ofportFreeLocked(b, pc.OFPort) {
		pc.OFPort = 0
	}
	if pc.OFPort == 0 && w.hint != 0 && s.ofportFreeLocked(b, w.hint) && requester(b.name, w.hint, w, ports) == nil {
		pc.OFPort = w.hint
	}
	return s.d.addPortLocked(b, &pc, true)
}

// renumber reports whether port name of b, which w wants as it is, must
// be added again to change its number, as Open vSwitch does: when it asks
// for a number other than its own and no port holding that number asks
// for it too, or when another port asks for the number it holds and it
// does not.
func renumber(b *bridge, name string, w *wantPort, ports map[string]*wantPort) bool {
	pc := b.ports[name]
	if pc == nil || pc.err != "" || pc.OFPort == 0 || pc.OFPort == flow.PortLocal {
		return false
	}
	if want := w.pc.OFPort; want != 0 && want != pc.OFPort {
		holder := ""
		for other, opc := range b.ports {
			if other != name && opc.OFPort == want {
				holder = other
			}
		}
		if holder == "" || ports[holder] == nil || ports[holder].pc.OFPort != want {
			return true
		}
	}
	return w.pc.OFPort != pc.OFPort && requester(b.name, pc.OFPort, w, ports) != nil
}

// requester returns a port other than w that the database puts on bridge
// and that asks for number n, or nil.
func requester(bridge string, n uint32, w *wantPort, ports map[string]*wantPort) *wantPort {
	for _, o := range ports {
		if o != w && o.refuse == "" && o.bridge == bridge && o.pc.OFPort == n {
			return o
		}
	}
	return nil
}

func (s *ovsdbSync) ofportFreeLocked(b *bridge, n uint32) bool {
	if _, taken := b.dp.PortByOF(n); taken {
		return false
	}
	for _, pc := range b.ports {
		if pc.OFPort == n {
			return false
		}
	}
	return true
}

func (s *ovsdbSync) removePortLocked(b *bridge, name string) {
	ctx, cancel := context.WithTimeout(s.ctx, removeTimeout)
	defer cancel()
	// A port kept with its error is not on the bridge (keepFailedLocked).
	if pc := b.ports[name]; pc == nil || pc.err == "" {
		if _, err := b.dp.RemovePort(ctx, name); err != nil {
			s.log.Error("ovsdb: removing the port", "bridge", b.name, "port", name, "err", err)
		}
	}
	s.d.forgetPortLocked(b, name)
	delete(s.applied, name)
	s.log.Info("port deleted", "bridge", b.name, "port", name)
}

func (s *ovsdbSync) removeBridgeLocked(b *bridge) {
	delete(s.d.bridges, b.name)
	for name := range b.ports {
		s.d.forgetPortLocked(b, name)
		delete(s.applied, name)
	}
	if err := b.dp.Close(); err != nil {
		s.log.Error("ovsdb: closing the bridge", "bridge", b.name, "err", err)
	}
	s.log.Info("bridge deleted", "bridge", b.name)
	s.d.markDirtyLocked() // its flows leave the flows file
}

// statusLocked reads each wanted port's state. d.mu must be held.
func (s *ovsdbSync) statusLocked(ports map[string]*wantPort) map[string]*portStatus {
	out := make(map[string]*portStatus, len(ports))
	detached := map[string]error{}
	for _, b := range s.d.bridges {
		for _, dp := range b.dp.Detached() {
			detached[dp.Name] = dp.Err
		}
	}
	for name, w := range ports {
		st := &portStatus{ofport: -1}
		out[name] = st
		if ap := s.applied[name]; ap != nil && ap.err != "" {
			st.err = ap.err
			continue
		}
		b := s.d.bridges[w.bridge]
		if b == nil || b.ports[name] == nil {
			st.err = "not configured"
			continue
		}
		if err, ok := detached[name]; ok {
			st.err = err.Error()
			continue
		}
		p, ok := b.dp.Port(name)
		if !ok {
			st.err = "not configured"
			continue
		}
		dev := p.VPort().Device().Snapshot()
		st.ofport, st.attached = int64(p.OFPort), true
		st.admin, st.link = "down", "down"
		if dev.Running() {
			st.admin = "up"
			if dev.Carrier() {
				st.link = "up"
			}
		}
		st.stats = p.Stats()
		if lk, ok := p.VPort().(vport.Linked); ok && lk.Netns() == "" {
			st.ifindex = lk.Ifindex()
		}
		st.tunnel = b.ports[name].Type == typeVXLAN || b.ports[name].Type == typeGeneve
	}
	return out
}

// deviceColumns reads the Interface columns that ovs-vswitchd reads from
// a port's netdev: mtu, mac_in_use and ifindex. An AF_XDP port's device
// is the one it opened, found by index, so that a rename does not lose it
// (ovs-vswitchd keeps the netdev it opened too); any other's is found by
// name in the daemon's namespace. A tunnel port has no device: its MAC is
// the one its OpenFlow port description gives, and it has no MTU, as
// Open vSwitch's tunnel netdevs. A device the daemon cannot see (moved
// into another namespace) gives neither, and ifindex 0: ovs-vswitchd
// writes 0 for a netdev without an ifindex rather than leave the column
// empty.
func (st *portStatus) deviceColumns(name string) (mtu int64, mac string, ifindex int64) {
	if st.tunnel {
		m := portMAC(name)
		return 0, net.HardwareAddr(m[:]).String(), 0
	}
	var ifc *net.Interface
	var err error
	if st.ifindex > 0 {
		ifc, err = net.InterfaceByIndex(st.ifindex)
	} else {
		ifc, err = net.InterfaceByName(name)
	}
	if err != nil {
		return 0, "", 0
	}
	return int64(ifc.MTU), ifc.HardwareAddr.String(), int64(ifc.Index)
}

// writeBack returns the updates that make the database tell the truth.
func (s *ovsdbSync) writeBack(snap map[string]map[ovsdb.UUID]ovsdb.Row, root ovsdb.Row,
	bridges map[string]ovsdb.UUID, ports map[string]*wantPort, statuses map[string]*portStatus) []ovsdb.Operation {
	var ops []ovsdb.Operation
	update := func(table string, uuid ovsdb.UUID, row ovsdb.Row) {
		if len(row) > 0 {
			ops = append(ops, ovsdb.Update(table, []ovsdb.Condition{ovsdb.Cond("_uuid", "==", uuid)}, row))
		}
	}
	statsDue := time.Since(s.statsAt) >= statsInterval(root)
	if statsDue {
		s.statsAt = time.Now()
	}
	for _, name := range slices.Sorted(maps.Keys(ports)) {
		w, st := ports[name], statuses[name]
		row := snap["Interface"][w.iface]
		if row == nil || st == nil {
			continue
		}
		up := ovsdb.Row{}
		setOptInt(up, row, "ofport", st.ofport, true)
		setOptString(up, row, "error", st.err)
		setOptString(up, row, "link_state", st.link)
		setOptString(up, row, "admin_state", st.admin)
		var mtu, ifindex int64
		var mac string
		if st.attached {
			mtu, mac, ifindex = st.deviceColumns(name)
		}
		setOptInt(up, row, "mtu", mtu, mtu > 0)
		setOptInt(up, row, "ifindex", ifindex, st.attached)
		setOptString(up, row, "mac_in_use", mac)
		// A port's first statistics are written at once; later ones
		// every ovsdbStatsInterval.
		if st.attached && (statsDue || len(row.Map("statistics")) == 0) {
			m := ovsdb.Map{
				"rx_packets": int64(st.stats.RxPackets), "rx_bytes": int64(st.stats.RxBytes),
				"tx_packets": int64(st.stats.TxPackets), "tx_bytes": int64(st.stats.TxBytes),
				"rx_dropped": int64(st.stats.RxDropped()), "tx_dropped": int64(st.stats.TxDropped()),
			}
			if !mapEqual(row.Map("statistics"), m) {
				up["statistics"] = m
			}
		}
		update("Interface", w.iface, up)
	}
	for name, uuid := range bridges {
		row := snap["Bridge"][uuid]
		dpid, ok := s.datapathID(name)
		if row == nil || !ok {
			continue
		}
		if id := fmt.Sprintf("%016x", dpid); row.String("datapath_id") != id {
			update("Bridge", uuid, ovsdb.Row{"datapath_id": id})
		}
	}
	up := ovsdb.Row{}
	if next, ok := root.Int("next_cfg"); ok {
		if cur, _ := root.Int("cur_cfg"); cur != next {
			up["cur_cfg"] = next
		}
	}
	if !setHas(root.Set("datapath_types"), DatapathType) {
		up["datapath_types"] = ovsdb.Set{DatapathType}
	}
	if types := root.Set("iface_types"); !setHas(types, typeAFXDP) || !setHas(types, typeInternal) || !setHas(types, typeVXLAN) || !setHas(types, typeGeneve) {
		up["iface_types"] = ovsdb.Set{typeAFXDP, typeInternal, typeVXLAN, typeGeneve}
	}
	update("Open_vSwitch", root.UUID(), up)
	return ops
}

// statsInterval is the Open_vSwitch row's
// other_config:stats-update-interval (milliseconds), at least
// ovsdbStatsInterval, as ovs-vswitchd reads it.
func statsInterval(root ovsdb.Row) time.Duration {
	v, ok := root.Map("other_config")["stats-update-interval"].(string)
	if !ok {
		return ovsdbStatsInterval
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms > int64(time.Hour/time.Millisecond) {
		return ovsdbStatsInterval
	}
	return max(time.Duration(ms)*time.Millisecond, ovsdbStatsInterval)
}

// datapathID is bridge name's datapath ID; ok is false when there is no
// such bridge.
func (s *ovsdbSync) datapathID(name string) (id uint64, ok bool) {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	b := s.d.bridges[name]
	if b == nil {
		return 0, false
	}
	return b.datapathID(), true
}

// datapathID is the bridge's datapath ID: the one set under --ovsdb, else
// one derived from its name, so that it is stable across restarts.
func (b *bridge) datapathID() uint64 {
	if id := b.dpid.Load(); id != 0 {
		return id
	}
	return datapathID(b.name)
}

// datapathID is a datapath ID derived from a bridge's name.
func datapathID(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64() & (1<<48 - 1)
}

// setOptString sets an optional string column in up when row's value
// differs: v, or no value when v is "".
func setOptString(up, row ovsdb.Row, col, v string) {
	cur := row.Set(col)
	if v == "" {
		if len(cur) != 0 {
			up[col] = ovsdb.Set{}
		}
		return
	}
	if len(cur) != 1 || cur[0] != v {
		up[col] = v
	}
}

// setOptInt sets an optional integer column in up when row's value
// differs: v when has, else no value.
func setOptInt(up, row ovsdb.Row, col string, v int64, has bool) {
	cur, ok := row.Int(col)
	switch {
	case !has && len(row.Set(col)) != 0:
		up[col] = ovsdb.Set{}
	case has && (!ok || cur != v):
		up[col] = v
	}
}

func setHas(s ovsdb.Set, v any) bool { return slices.Contains(s, v) }

func mapEqual(a, b ovsdb.Map) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
