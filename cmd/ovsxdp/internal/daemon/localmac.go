package daemon

import (
	"bytes"
	"encoding/binary"
	"net"

	"github.com/ovsxdp/ovsxdp/cmd/ovsxdp/internal/ovsdb"
	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// localMAC is a bridge's LOCAL device and the address it is to have.
type localMAC struct {
	bridge string
	tap    *vport.TapPort
	mac    net.HardwareAddr
}

// setLocalMACs gives each bridge's LOCAL device the address ovs-vswitchd
// chooses for a bridge (bridgeMAC), at every sync, so that it follows the
// database and the ports as they come and go.
func (s *ovsdbSync) setLocalMACs(snap map[string]map[ovsdb.UUID]ovsdb.Row, bridges map[string]ovsdb.UUID) {
	var todo []localMAC
	s.d.mu.Lock()
	var devs *devices
	for name, uuid := range bridges {
		b := s.d.bridges[name]
		row, ok := snap["Bridge"][uuid]
		if b == nil || !ok {
			continue
		}
		var tap *vport.TapPort
		var cands []net.HardwareAddr
		for _, p := range b.dp.Ports() {
			switch vp := p.VPort().(type) {
			case *vport.TapPort:
				if p.OFPort == flow.PortLocal {
					tap = vp
				}
			case vport.Linked:
				// Internal ports and tunnels take no part: Open
				// vSwitch skips the one, and the other's address is
				// a random local one.
				if devs == nil {
					devs = readDevices()
				}
				if ifc := devs.of(vp); ifc != nil {
					cands = append(cands, ifc.HardwareAddr)
				}
			}
		}
		if tap != nil {
			todo = append(todo, localMAC{bridge: name, tap: tap, mac: bridgeMAC(row, uuid, cands)})
		}
	}
	s.d.mu.Unlock()
	for _, l := range todo {
		if err := l.tap.SetHardwareAddr(l.mac); err != nil {
			s.log.Warn("ovsdb: cannot set the bridge's address on its LOCAL device", "bridge", l.bridge, "mac", l.mac.String(), "err", err)
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
	var hexDigits []byte
	for _, c := range []byte(uuid) {
		if c != '-' {
			hexDigits = append(hexDigits, c)
		}
	}
	var raw [16]byte
	for i := range raw {
		if 2*i+1 >= len(hexDigits) {
			break
		}
		raw[i] = unhex(hexDigits[2*i])<<4 | unhex(hexDigits[2*i+1])
	}
	var mem [8]byte
	binary.LittleEndian.PutUint32(mem[0:], binary.BigEndian.Uint32(raw[0:]))
	binary.LittleEndian.PutUint32(mem[4:], binary.BigEndian.Uint32(raw[4:]))
	mac := net.HardwareAddr(mem[:6:6])
	mac[0] = mac[0]&^1 | 2
	return mac
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10
	}
	return 0
}
