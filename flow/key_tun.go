package flow

// Tunnel flags (Key.TunFlags), as Open vSwitch's FLOW_TNL_F_*. Only
// TunFlagOAM is visible to OpenFlow (tun_flags); the others describe the
// outer packet a tunnel port received (datapath flows print them).
const (
	TunFlagOAM  = 1 << 0 // Geneve O bit: an OAM frame
	TunFlagDF   = 1 << 1 // the outer IPv4 header had don't-fragment set
	TunFlagCsum = 1 << 2 // the outer UDP checksum was present (and right)
	TunFlagKey  = 1 << 3 // the tunnel header carried a key (VNI)

	// TunFlagsOpenFlow are the flags tun_flags matches and sets.
	TunFlagsOpenFlow = TunFlagOAM
)

// HasTunnel reports whether k carries tunnel metadata: the packet came
// through a tunnel port, or set_tunnel or set_field gave it a destination.
func (k *Key) HasTunnel() bool {
	return k.TunDst != 0 || k.TunIPv6Dst != [16]byte{}
}
