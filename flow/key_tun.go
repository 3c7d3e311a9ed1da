package flow

// Tunnel flags (Key.TunFlags), as Open vSwitch's FLOW_TNL_F_*. Only
// TunFlagOAM is visible to OpenFlow (tun_flags); the others describe the
// outer packet a tunnel port received (datapath flows print them).
const (
	TunFlagOAM  = 1 << 0 // Geneve O bit: an OAM frame
	TunFlagDF   = 1 << 1 // the outer IPv4 header had don't-fragment set
	TunFlagCsum = 1 << 2 // the outer UDP checksum was present (and right)
	TunFlagKey  = 1 << 3 // the tunnel header carried a key (VNI)
	// TunFlagOpts: the Geneve header carried options, mapped or not.
	// Open vSwitch's key holds the options themselves, and its datapath
	// flows print geneve({}) for them when none is matched; ovsxdp keeps
	// only the mapped ones, and this bit.
	TunFlagOpts = 1 << 4
	// TunFlagGeneve: the packet came out of a Geneve tunnel. Open
	// vSwitch's datapath flows print a geneve(...) group for every one,
	// geneve() when no option came.
	TunFlagGeneve = 1 << 5

	// TunFlagsOpenFlow are the flags tun_flags matches and sets.
	TunFlagsOpenFlow = TunFlagOAM
)

// tunnelReceived consults what Open vSwitch's tnl_wc_init makes every
// megaflow of a packet that came out of a tunnel match, whatever the
// pipeline reads: the whole tun_id (64 bits), the outer addresses, the
// outer TOS, the df, csum and key flags (and whether Geneve options came,
// which Open vSwitch's key holds as the options), and, for an inner IP
// packet whose outer ECN says congestion experienced, the inner ECN bits
// (a decapsulation copies CE inward). A packet whose tunnel destination
// is not set did not come out of a tunnel: nothing.
func (wc *Key) tunnelReceived(k *Key) {
	if !k.HasTunnel() {
		return
	}
	wc.TunID = 1<<64 - 1
	if k.TunDst != 0 {
		wc.TunSrc, wc.TunDst = ^uint32(0), ^uint32(0)
	} else {
		for i := range 16 {
			wc.TunIPv6Src[i], wc.TunIPv6Dst[i] = 0xff, 0xff
		}
	}
	wc.TunFlags |= TunFlagDF | TunFlagCsum | TunFlagKey | TunFlagOpts | TunFlagGeneve
	wc.TunTOS = 0xff
	if k.ceIn() {
		wc.NwTos |= ecnMask
	}
}

// ceIn reports whether k is a decapsulated IP packet whose outer header
// says congestion experienced.
func (k *Key) ceIn() bool {
	return k.HasTunnel() && k.TunTOS&ecnMask == ecnCE && (k.DlType == EthTypeIPv4 || k.DlType == EthTypeIPv6)
}

// ceNotECT reports whether k is a decapsulated IP packet whose outer
// header says congestion experienced while the inner one is not ECN
// capable: RFC 6040 drops it, and so does Open vSwitch.
func (k *Key) ceNotECT() bool {
	return k.ceIn() && k.NwTos&ecnMask == 0
}

// ceOverECT reports whether k is a decapsulated IP packet whose outer
// header says congestion experienced while the inner one is ECN capable
// (ECT(0) or ECT(1)): the inner header is then marked CE too.
func (k *Key) ceOverECT() bool {
	return k.ceIn() && k.NwTos&ecnMask != 0 && k.NwTos&ecnMask != ecnCE
}

// The ECN bits of a TOS byte, and their congestion experienced value.
const (
	ecnMask = 0x03
	ecnCE   = 0x03
)

// SetTunnel gives k the tunnel metadata of from, as a tunnel port gives
// a packet it decapsulated the outer header's (ofproto/trace gives a
// traced packet the microflow's).
func (k *Key) SetTunnel(from *Key) {
	k.TunID, k.TunSrc, k.TunDst = from.TunID, from.TunSrc, from.TunDst
	k.TunIPv6Src, k.TunIPv6Dst = from.TunIPv6Src, from.TunIPv6Dst
	k.TunFlags, k.TunTOS, k.TunTTL = from.TunFlags, from.TunTOS, from.TunTTL
	k.TunMeta, k.TunMetaPresent = from.TunMeta, from.TunMetaPresent
}

// HasTunnel reports whether k carries tunnel metadata: the packet came
// through a tunnel port, or set_tunnel or set_field gave it a destination.
func (k *Key) HasTunnel() bool {
	return k.TunDst != 0 || k.TunIPv6Dst != [16]byte{}
}
