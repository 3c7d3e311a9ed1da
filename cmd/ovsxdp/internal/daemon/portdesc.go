package daemon

import (
	"hash/fnv"
	"net"

	"github.com/ovsxdp/ovsxdp/cmd/ovsxdp/internal/ofconn"
	"github.com/ovsxdp/ovsxdp/datapath"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
	"github.com/ovsxdp/ovsxdp/vport"
	"github.com/ovsxdp/ovsxdp/vport/ethtool"
)

// Ports describes the bridge's ports as OpenFlow port descriptions, once
// the connections are told, by port status, of every change since the
// last look: as in Open vSwitch, whose port descriptions are the ones its
// port status reported, a controller never reads a change it was not
// told of, and sees changes in the order they were read. The first look
// only learns the ports.
func (o *ofBridge) Ports() []openflow.Port {
	o.portsMu.Lock()
	defer o.portsMu.Unlock()
	now := o.describePorts()
	if o.told != nil {
		o.tell(now)
	}
	o.told = make(map[uint32]openflow.Port, len(now))
	for _, p := range now {
		o.told[p.PortNo] = p
	}
	return now
}

// tell sends port status for the differences between what the
// connections were told and the ports now. o.portsMu must be held.
func (o *ofBridge) tell(now []openflow.Port) {
	seen := make(map[uint32]bool, len(now))
	for _, p := range now {
		seen[p.PortNo] = true
		old, ok := o.told[p.PortNo]
		from, modded := o.byPortMod(p.PortNo, p.Config)
		switch {
		case !ok:
			o.srv.PortStatus(openflow.PortReasonAdd, p)
		case old.Name != p.Name:
			o.srv.PortStatus(openflow.PortReasonDelete, old)
			o.srv.PortStatus(openflow.PortReasonAdd, p)
		case portDescChanged(old, p):
			// The status that shows a port mod's config is the port
			// mod's own (PortModifiedBy); a later one, the device's.
			if mid, ok := portDescBetween(old, p, modded); ok {
				if modded {
					o.srv.PortModifiedBy(old, mid, from)
				} else {
					o.srv.PortModified(old, mid)
				}
				o.srv.PortModified(mid, p)
			} else if modded {
				o.srv.PortModifiedBy(old, p, from)
			} else {
				o.srv.PortModified(old, p)
			}
		}
	}
	for n, p := range o.told {
		if !seen[n] {
			o.srv.PortStatus(openflow.PortReasonDelete, p)
		}
	}
}

// describePorts describes the bridge's ports as they are now.
func (o *ofBridge) describePorts() []openflow.Port {
	var out []openflow.Port
	var devs *devices       // read for the first port with a device
	var eth *ethtool.Handle // opened for the first internal port
	defer func() {
		if eth != nil {
			eth.Close()
		}
	}()
	for _, p := range o.b.dp.Ports() {
		_, tap := p.VPort().(*vport.TapPort)
		_, linked := p.VPort().(vport.Linked)
		if tap && eth == nil {
			eth, _ = ethtool.Open() // without it, no features: as a device that has none
		}
		if (tap || linked) && devs == nil {
			devs = readDevices()
		}
		out = append(out, ofPortDesc(p, devs, eth))
	}
	return out
}

// devices are the daemon's namespace's network devices, read once for a
// description of all the ports (one netlink dump instead of one a port).
type devices struct {
	byIndex map[int]*net.Interface
	byName  map[string]*net.Interface
}

// readDevices reads the devices; on an error there are none.
func readDevices() *devices {
	d := &devices{byIndex: map[int]*net.Interface{}, byName: map[string]*net.Interface{}}
	ifs, err := net.Interfaces()
	if err != nil {
		return d
	}
	for i := range ifs {
		d.byIndex[ifs[i].Index] = &ifs[i]
		d.byName[ifs[i].Name] = &ifs[i]
	}
	return d
}

// ofPortDesc describes one port as ovs-vswitchd does: the address is the
// device's own (for a tunnel port, which has none, one derived from its
// name, as its Interface's mac_in_use); the port is down when the device
// is not running (administratively, as port mod sets it), its link down
// without carrier and live otherwise. An internal port (and LOCAL) has
// the features its device gives ethtool; an AF_XDP port has none, as Open
// vSwitch 3.1's afxdp netdev reports none (a veth that ethtool says runs
// at 10 Gb/s shows no rate in ovs-ofctl show), and neither has a tunnel.
// devs and eth may be nil.
func ofPortDesc(p *datapath.Port, devs *devices, eth *ethtool.Handle) openflow.Port {
	st := p.VPort().Device().Snapshot()
	op := openflow.Port{PortNo: wirePort(p.OFPort), Name: p.Name, HWAddr: portMAC(p.Name)}
	ifc := devs.of(p.VPort())
	if ifc != nil && len(ifc.HardwareAddr) == 6 {
		copy(op.HWAddr[:], ifc.HardwareAddr)
	}
	if !st.Running() {
		op.Config |= openflow.PortConfigDown
	}
	if !st.Carrier() || !st.Running() {
		op.State |= openflow.PortStateDown
	} else {
		op.State |= openflow.PortStateLive
	}
	if _, ok := p.VPort().(*vport.TapPort); ok && ifc != nil && eth != nil {
		if s, err := eth.Settings(ifc.Name); err == nil {
			op.Curr, op.Advertised, op.Supported = portFeatures(s)
			op.CurrSpeed, op.MaxSpeed = featuresKbps(op.Curr), featuresKbps(op.Supported)
		}
	}
	return op
}

// portDescChanged tells whether a port's description changed in a field
// whose change Open vSwitch reports with a port status (its address,
// config, state, features or speeds); a rename is a delete and an add.
func portDescChanged(a, b openflow.Port) bool {
	return a.HWAddr != b.HWAddr || a.Config != b.Config || a.State != b.State ||
		a.Curr != b.Curr || a.Advertised != b.Advertised || a.Supported != b.Supported || a.Peer != b.Peer ||
		a.CurrSpeed != b.CurrSpeed || a.MaxSpeed != b.MaxSpeed
}

// portMod is a port mod the port watcher has not seen the effect of yet:
// the config it sets and the request that sent it.
type portMod struct {
	config uint32
	from   ofconn.Origin
}

// portModded notes that a port mod from sets bridge port of's config to
// config. It is called before the change, so that the port watcher,
// which reads the ports without d.mu, never sees the change without it.
func (o *ofBridge) portModded(of, config uint32, from ofconn.Origin) {
	o.moddedMu.Lock()
	defer o.moddedMu.Unlock()
	if o.modded == nil {
		o.modded = map[uint32]portMod{}
	}
	o.modded[wirePort(of)] = portMod{config: config, from: from}
}

// byPortMod tells whether OpenFlow port no's config, now config, is the
// one a port mod set, and which request sent it, and then forgets the
// port mod: a look before the port mod's change leaves it for the look
// that sees the change (a port mod that changes nothing is forgotten at
// the next look).
func (o *ofBridge) byPortMod(no, config uint32) (ofconn.Origin, bool) {
	o.moddedMu.Lock()
	defer o.moddedMu.Unlock()
	m, ok := o.modded[no]
	if !ok || m.config != config {
		return ofconn.Origin{}, false
	}
	delete(o.modded, no)
	return m.from, true
}

// portDescBetween is the port status ovs-vswitchd sends before the one
// that reports a port's change from old to now, if any. It learns a
// port's liveness, and the config a port mod sets, before it reads the
// device again: a port that stops being live is first reported with its
// live bit cleared and no link-down bit, and with its config as a port
// mod (byPortMod) set it or as it was; a port mod that brings a port up
// is first reported with the port's old state. A port that becomes live
// on its own is reported once.
func portDescBetween(old, now openflow.Port, byPortMod bool) (openflow.Port, bool) {
	mid := old
	if byPortMod {
		mid.Config = now.Config
	}
	if old.State&openflow.PortStateLive != 0 && now.State&openflow.PortStateLive == 0 {
		mid.State &^= openflow.PortStateLive
	}
	if !portDescChanged(mid, old) || !portDescChanged(mid, now) {
		return openflow.Port{}, false
	}
	return mid, true
}

// of is the device of a port on a real link, or nil: an AF_XDP port's is
// the one it opened, found by index (a rename does not lose it), an
// internal port's is found by name; a device moved into another
// namespace is out of sight.
func (d *devices) of(vp vport.Port) *net.Interface {
	if d == nil {
		return nil
	}
	switch p := vp.(type) {
	case vport.Linked:
		if p.Netns() != "" {
			return nil
		}
		return d.byIndex[p.Ifindex()]
	case *vport.TapPort:
		return d.byName[p.Name()]
	}
	return nil
}

// portMAC is a locally administered address derived from the port's
// name, stable across restarts: a tunnel port's (Open vSwitch gives its
// tunnel netdevs a random one) and that of a port whose device is out of
// sight.
func portMAC(name string) [6]byte {
	h := fnv.New64a()
	h.Write([]byte(name))
	s := h.Sum64()
	m := [6]byte{byte(s>>40)&^1 | 2, byte(s >> 32), byte(s >> 24), byte(s >> 16), byte(s >> 8), byte(s)}
	return m
}

// Link mode bits of struct ethtool_cmd's supported and advertising words
// (SUPPORTED_* and ADVERTISED_* of linux/ethtool.h share them), and the
// OpenFlow feature each stands for.
var linkModeFeatures = []struct {
	mode    uint32
	feature uint32
}{
	{1 << 0, openflow.PortFeature10MBHD},
	{1 << 1, openflow.PortFeature10MBFD},
	{1 << 2, openflow.PortFeature100MBHD},
	{1 << 3, openflow.PortFeature100MBFD},
	{1 << 4, openflow.PortFeature1GBHD},
	{1 << 5, openflow.PortFeature1GBFD},
	{1 << 6, openflow.PortFeatureAutoneg},
	{1 << 7, openflow.PortFeatureCopper},  // TP
	{1 << 10, openflow.PortFeatureFiber},  // FIBRE
	{1 << 12, openflow.PortFeature10GBFD}, // 10000baseT_Full
	{1 << 13, openflow.PortFeaturePause},
	{1 << 14, openflow.PortFeaturePauseAsym},
}

// portFeatures turns a device's link settings into OpenFlow's current,
// advertised and supported features as ovs-vswitchd does: the current
// rate from the speed and duplex (none for a speed OpenFlow has no bit
// for), the medium from the port, autonegotiation if it is on.
func portFeatures(s ethtool.Settings) (curr, advertised, supported uint32) {
	for _, m := range linkModeFeatures {
		if s.Supported&m.mode != 0 {
			supported |= m.feature
		}
		if s.Advertising&m.mode != 0 {
			advertised |= m.feature
		}
	}
	full := s.Duplex == ethtool.DuplexFull
	switch {
	case s.Speed == 10 && full:
		curr = openflow.PortFeature10MBFD
	case s.Speed == 10:
		curr = openflow.PortFeature10MBHD
	case s.Speed == 100 && full:
		curr = openflow.PortFeature100MBFD
	case s.Speed == 100:
		curr = openflow.PortFeature100MBHD
	case s.Speed == 1000 && full:
		curr = openflow.PortFeature1GBFD
	case s.Speed == 1000:
		curr = openflow.PortFeature1GBHD
	case s.Speed == 10000:
		curr = openflow.PortFeature10GBFD
	case s.Speed == 40000:
		curr = openflow.PortFeature40GBFD
	case s.Speed == 100000:
		curr = openflow.PortFeature100GBFD
	case s.Speed == 1000000:
		curr = openflow.PortFeature1TBFD
	}
	switch s.Port {
	case ethtool.PortTP:
		curr |= openflow.PortFeatureCopper
	case ethtool.PortFibre:
		curr |= openflow.PortFeatureFiber
	}
	if s.Autoneg {
		curr |= openflow.PortFeatureAutoneg
	}
	return curr, advertised, supported
}

// featuresKbps is the highest rate among features f in kb/s, the speed
// OpenFlow 1.3+ reports beside them (0 for none).
func featuresKbps(f uint32) uint32 {
	for _, r := range []struct {
		feature uint32
		kbps    uint32
	}{
		{openflow.PortFeature1TBFD, 1000000000},
		{openflow.PortFeature100GBFD, 100000000},
		{openflow.PortFeature40GBFD, 40000000},
		{openflow.PortFeature10GBFD, 10000000},
		{openflow.PortFeature1GBFD | openflow.PortFeature1GBHD, 1000000},
		{openflow.PortFeature100MBFD | openflow.PortFeature100MBHD, 100000},
		{openflow.PortFeature10MBFD | openflow.PortFeature10MBHD, 10000},
	} {
		if f&r.feature != 0 {
			return r.kbps
		}
	}
	return 0
}
