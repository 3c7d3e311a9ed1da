package tunnel

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
)

// Open vSwitch's datapath port types (OVS_VPORT_TYPE_*), which the header
// of a tnl_push action names its kind by.
const (
	odpTypeVXLAN  = 4
	odpTypeGeneve = 5
)

// ODPHeader writes the outer headers as the header(...) argument of Open
// vSwitch's tnl_push datapath action: "header(size=50,type=4,eth(dst=...,
// src=...,dl_type=0x0800),ipv4(src=...,dst=...,proto=17,tos=0,ttl=64,
// frag=0x4000),udp(src=0,dst=4789,csum=0x0),vxlan(flags=0x8000000,
// vni=0x5))". The fields Put fills per packet (lengths, IPv4
// identification and checksum, the UDP source port and checksum) are as
// Open vSwitch's header template has them: zero, and a UDP checksum of
// 0xffff when the port computes one.
func (e *Encap) ODPHeader() string {
	h := e.hdr[:e.hlen]
	var b strings.Builder
	typ := odpTypeVXLAN
	if e.kind == Geneve {
		typ = odpTypeGeneve
	}
	fmt.Fprintf(&b, "header(size=%d,type=%d,eth(dst=%s,src=%s,dl_type=0x%04x),", e.hlen, typ,
		macText(h[0:6]), macText(h[6:12]), binary.BigEndian.Uint16(h[12:]))
	ip := h[EthLen:]
	if e.ipv6 {
		src, dst := netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
		vtf := binary.BigEndian.Uint32(ip[0:])
		fmt.Fprintf(&b, "ipv6(src=%s,dst=%s,label=%d,proto=%d,tclass=0x%x,hlimit=%d),",
			src, dst, vtf&0xfffff, ip[6], vtf>>20&0xff, ip[7])
	} else {
		src, dst := netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
		fmt.Fprintf(&b, "ipv4(src=%s,dst=%s,proto=%d,tos=%s,ttl=%d,frag=0x%x),",
			src, dst, ip[9], hexZero(uint64(ip[1])), ip[8], binary.BigEndian.Uint16(ip[6:]))
	}
	udp := h[e.udp:]
	csum := 0
	if e.csum {
		csum = 0xffff
	}
	fmt.Fprintf(&b, "udp(src=0,dst=%d,csum=0x%x),", binary.BigEndian.Uint16(udp[2:]), csum)
	tun := udp[UDPLen:]
	vni := binary.BigEndian.Uint32(tun[4:]) >> 8
	switch e.kind {
	case VXLAN:
		fmt.Fprintf(&b, "vxlan(flags=0x%x,vni=0x%x)", binary.BigEndian.Uint32(tun[0:]), vni)
	case Geneve:
		b.WriteString("geneve(")
		if tun[1]&geneveOAM != 0 {
			b.WriteString("oam,")
		}
		if tun[1]&geneveCritical != 0 {
			b.WriteString("crit,")
		}
		fmt.Fprintf(&b, "vni=0x%x", vni)
		if opts := tun[GeneveLen:]; len(opts) > 0 {
			b.WriteString(",options(")
			for len(opts) >= geneveOptHdrLen {
				n := int(opts[3]&0x1f) * 4
				fmt.Fprintf(&b, "{class=%s,type=%s,len=%d", hexZero(uint64(binary.BigEndian.Uint16(opts))), hexZero(uint64(opts[2])), n)
				if n > 0 {
					b.WriteString("," + hexBytes(opts[geneveOptHdrLen:geneveOptHdrLen+n]))
				}
				b.WriteByte('}')
				opts = opts[geneveOptHdrLen+n:]
			}
			b.WriteByte(')')
		}
		b.WriteByte(')')
	}
	b.WriteByte(')')
	return b.String()
}

func macText(m []byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// hexZero writes v as C's %#x: 0, or hexadecimal with 0x.
func hexZero(v uint64) string {
	if v == 0 {
		return "0"
	}
	return fmt.Sprintf("0x%x", v)
}

// hexBytes writes an option's data as one hexadecimal number, as Open
// vSwitch does.
func hexBytes(b []byte) string {
	s := strings.TrimLeft(hex.EncodeToString(b), "0")
	if s == "" {
		return "0"
	}
	return "0x" + s
}
