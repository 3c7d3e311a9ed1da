package daemon

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"net"
	"strconv"
	"strings"

	"github.com/ovsxdp/ovsxdp/cmd/ovsxdp/internal/ovsdb"
	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// localMAC is a bridge's LOCAL device, the address it has and the one it
// is to have.
type localMAC struct {
	bridge string
	tap    *vport.TapPort
	have   net.HardwareAddr
	want   net.HardwareAddr
}

// localMACLocked works out the address b's LOCAL device is to have
// (bridgeMAC) from the bridge's row and its ports' devices, read once
// into *devs. ok is false when b has no LOCAL device. d.mu must be held.
func localMACLocked(b *bridge, row ovsdb.Row, uuid ovsdb.UUID, devs **devices) (l localMAC, ok bool) {
	if *devs == nil {
		*devs = readDevices()
	}
	var cands []net.HardwareAddr
	for _, p := range b.dp.Ports() {
		switch vp := p.VPort().(type) {
		case *vport.TapPort:
			if p.OFPort == flow.PortLocal {
				l.tap = vp
				if ifc := (*devs).of(vp); ifc != nil {
					l.have = ifc.HardwareAddr
				}
			}
		case vport.Linked:
			// Internal ports and tunnels take no part: Open vSwitch
			// skips the one, and the other's address is a random
			// local one.
			if ifc := (*devs).of(vp); ifc != nil {
				cands = append(cands, ifc.HardwareAddr)
			}
		}
	}
	l.bridge, l.want = b.name, bridgeMAC(row, uuid, cands)
	return l, l.tap != nil
}

// setDatapathIDLocked gives b the datapath ID Open vSwitch picks, from
// its row and address mac, and reports whether it changed. d.mu must be
// held.
func setDatapathIDLocked(b *bridge, row ovsdb.Row, mac net.HardwareAddr) bool {
	id := datapathIDOf(row, mac)
	return b.dpid.Swap(id) != id
}

// datapathIDOf is the datapath ID Open vSwitch gives a bridge:
// other_config:datapath-id when it is 16 hex digits, with or without
// 0x, and not zero; else the bridge's address, mac, as a number.
func datapathIDOf(row ovsdb.Row, mac net.HardwareAddr) uint64 {
	if v, ok := row.Map("other_config")["datapath-id"].(string); ok {
		if len(v) == 18 && (v[:2] == "0x" || v[:2] == "0X") {
			v = v[2:]
		}
		if len(v) == 16 && strings.Trim(v, "0123456789abcdefABCDEF") == "" {
			if id, err := strconv.ParseUint(v, 16, 64); err == nil && id != 0 {
				return id
			}
		}
	}
	var id uint64
	for _, c := range mac {
		id = id<<8 | uint64(c)
	}
	return id
}

// set gives the LOCAL device its address.
func (l localMAC) set(log *slog.Logger) {
	if err := l.tap.SetHardwareAddr(l.want); err != nil {
		log.Warn("ovsdb: cannot set the bridge's address on its LOCAL device", "bridge", l.bridge, "mac", l.want.String(), "err", err)
	}
}

// setCreatedLocalMACsLocked gives the LOCAL device of each bridge just
// created its address before the bridge's OpenFlow channel exists, as
// ovs-vswitchd chooses it in the same reconfiguration that creates the
// bridge: no connection ever sees the device's first address. d.mu must
// be held.
func (s *ovsdbSync) setCreatedLocalMACsLocked(created map[string]bool, bridges map[string]ovsdb.UUID, rows map[ovsdb.UUID]ovsdb.Row) {
	var devs *devices
	for name := range created {
		b, row := s.d.bridges[name], rows[bridges[name]]
		if b == nil || row == nil {
			continue
		}
		l, ok := localMACLocked(b, row, bridges[name], &devs)
		setDatapathIDLocked(b, row, l.want)
		if ok && !bytes.Equal(l.have, l.want) {
			l.set(s.log)
		}
	}
}

// setLocalMACs follows, after the bridges are created, what changes the
// address Open vSwitch gives a bridge: its ports coming and going and
// other_config:hwaddr. As ovs-vswitchd, which sets the address after
// adding and deleting the ports and then reports the LOCAL port's new
// address by port status, the connections are told of the ports' changes
// first, then of the address.
func (s *ovsdbSync) setLocalMACs(rows map[ovsdb.UUID]ovsdb.Row, bridges map[string]ovsdb.UUID, created map[string]bool) {
	type change struct {
		l  localMAC
		ob *ofBridge
	}
	var todo []change
	var redial []*ofBridge
	s.d.mu.Lock()
	var devs *devices
	for name, uuid := range bridges {
		b, row := s.d.bridges[name], rows[uuid]
		if b == nil || row == nil || created[name] {
			continue
		}
		l, ok := localMACLocked(b, row, uuid, &devs)
		if setDatapathIDLocked(b, row, l.want) {
			if ob := s.d.channels.ofBridge(b); ob != nil {
				redial = append(redial, ob)
			}
		}
		if !ok || bytes.Equal(l.have, l.want) {
			continue
		}
		todo = append(todo, change{l: l, ob: s.d.channels.ofBridge(b)})
	}
	s.d.mu.Unlock()
	// As ofproto_set_datapath_id: no message tells a controller of a new
	// datapath ID, so every connection is dropped, and the controllers
	// dial again and see it.
	for _, ob := range redial {
		ob.srv.Disconnect()
	}
	for _, c := range todo {
		if c.ob != nil {
			c.ob.Ports()
		}
		c.l.set(s.log)
		if c.ob != nil {
			c.ob.Ports()
		}
	}
}

// bridgeMAC is the address Open vSwitch gives a bridge: other_config:hwaddr
// when it is a unicast address other than zero; else the lowest of the
// ports' addresses (cands) that is unicast, universally administered and
// not zero; else one derived from the Bridge row's UUID, the first six
// bytes of the UUID as ovs-vswitchd holds it in memory (four 32-bit words
// in the host's order, little-endian here), made unicast and locally
// administered.
func bridgeMAC(row ovsdb.Row, uuid ovsdb.UUID, cands []net.HardwareAddr) net.HardwareAddr {
	if v, ok := row.Map("other_config")["hwaddr"].(string); ok {
		if mac, err := net.ParseMAC(v); err == nil && len(mac) == 6 && mac[0]&1 == 0 && !isZeroMAC(mac) {
			return mac
		}
	}
	var best net.HardwareAddr
	for _, mac := range cands {
		if len(mac) != 6 || mac[0]&3 != 0 || isZeroMAC(mac) {
			continue
		}
		if best == nil || bytes.Compare(mac, best) < 0 {
			best = mac
		}
	}
	if best != nil {
		return best
	}
	return uuidMAC(uuid)
}

func isZeroMAC(mac net.HardwareAddr) bool {
	return bytes.Equal(mac, make(net.HardwareAddr, len(mac)))
}

// uuidMAC derives a bridge's default address from its UUID as Open
// vSwitch does (bridgeMAC).
func uuidMAC(uuid ovsdb.UUID) net.HardwareAddr {
	var raw [16]byte
	b, _ := hex.DecodeString(strings.ReplaceAll(string(uuid), "-", "")) // a UUID the database gave is well formed
	copy(raw[:], b)
	var mem [8]byte
	binary.LittleEndian.PutUint32(mem[0:], binary.BigEndian.Uint32(raw[0:]))
	binary.LittleEndian.PutUint32(mem[4:], binary.BigEndian.Uint32(raw[4:]))
	mac := net.HardwareAddr(mem[:6:6])
	mac[0] = mac[0]&^1 | 2
	return mac
}
