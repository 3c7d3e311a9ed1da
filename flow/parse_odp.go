package flow

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ErrODPFlow is the error of a datapath flow that ParseODPFlow refuses.
var ErrODPFlow = errors.New("bad datapath flow")

// IsODPFlow reports whether s is written in datapath flow syntax
// ("in_port(1),eth(...),...") rather than as an OpenFlow microflow:
// ofproto/trace takes either.
func IsODPFlow(s string) bool {
	s = strings.TrimSpace(s)
	i := strings.IndexAny(s, "(=,")
	return i > 0 && s[i] == '('
}

// ParseODPFlow parses one packet's key written as dpctl/dump-flows writes
// a datapath flow's (the key attributes, without masks), as
// ofproto/trace takes it: tunnel(tun_id=,src=,dst=,ipv6_src=,ipv6_dst=,
// tos=,ttl=,tp_src=,tp_dst=,flags(...)), recirc_id, dp_hash, skb_mark,
// in_port (the bridge's port number: a bridge is its own datapath),
// packet_type, eth, eth_type, vlan and encap, ipv4, ipv6, tcp, udp,
// sctp, icmp, icmpv6, arp, nd and tcp_flags. The tunnel's UDP ports
// are read but kept nowhere: a key has no field for them. A mask, an
// unknown attribute or field, or an attribute ovsxdp has no field for
// (Geneve options, connection tracking) is an error.
func ParseODPFlow(s string) (Key, error) {
	var k Key
	if err := parseODPAttrs(&k, s, false); err != nil {
		return Key{}, fmt.Errorf("%w: %w", ErrODPFlow, err)
	}
	return k, nil
}

// splitODP splits s at its top-level commas.
func splitODP(s string) ([]string, error) {
	var parts []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
			if depth < 0 {
				return nil, fmt.Errorf("unbalanced parentheses in %q", Clipped(s))
			}
		case ',':
			if depth == 0 {
				parts = append(parts, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("unbalanced parentheses in %q", Clipped(s))
	}
	if rest := strings.TrimSpace(s[start:]); rest != "" || len(parts) > 0 {
		parts = append(parts, rest)
	}
	return parts, nil
}

// odpAttr splits "name(args)".
func odpAttr(s string) (name, args string, err error) {
	open := strings.IndexByte(s, '(')
	if open <= 0 || !strings.HasSuffix(s, ")") {
		return "", "", fmt.Errorf("%q is not an attribute, name(...)", Clipped(s))
	}
	return s[:open], s[open+1 : len(s)-1], nil
}

// odpFields parses "a=1,b=2" into its fields, in order; a field written
// name(...) (tunnel flags) keeps its parentheses in its value.
func odpFields(s string) ([][2]string, error) {
	parts, err := splitODP(s)
	if err != nil {
		return nil, err
	}
	var fs [][2]string
	for _, p := range parts {
		if p == "" {
			continue
		}
		if name, args, err := odpAttr(p); err == nil && !strings.Contains(name, "=") {
			fs = append(fs, [2]string{name, args})
			continue
		}
		name, v, ok := strings.Cut(p, "=")
		if !ok {
			return nil, fmt.Errorf("%q is not name=value", Clipped(p))
		}
		if strings.Contains(v, "/") {
			return nil, fmt.Errorf("%s=%s: a traced packet's fields are exact, without a mask", name, Clipped(v))
		}
		fs = append(fs, [2]string{name, v})
	}
	return fs, nil
}

func odpNum(name, v string, bits int) (uint64, error) {
	n, err := parseNum(v, bits)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return n, nil
}

func odpIPv4(name, v string) (uint32, error) {
	a, ok := ipv4FromText(v)
	if !ok {
		return 0, fmt.Errorf("%s: %q is not an IPv4 address", name, Clipped(v))
	}
	return a, nil
}

func odpIPv6(name, v string) ([16]byte, error) {
	a, err := netip.ParseAddr(v)
	if err != nil || !a.Is6() || a.Is4In6() && strings.Contains(v, ".") {
		return [16]byte{}, fmt.Errorf("%s: %q is not an IPv6 address", name, Clipped(v))
	}
	return a.As16(), nil
}

func odpMAC(name, v string) ([6]byte, error) {
	n, ok := parseMAC(v)
	if !ok {
		return [6]byte{}, fmt.Errorf("%s: %q is not a MAC address", name, Clipped(v))
	}
	var m [6]byte
	for i := range m {
		m[i] = byte(n >> (40 - 8*i))
	}
	return m, nil
}

// parseODPAttrs parses the attributes of s into k; inner: s is an
// encap(...)'s, whose VLAN tag is the second.
func parseODPAttrs(k *Key, s string, inner bool) error {
	attrs, err := splitODP(s)
	if err != nil {
		return err
	}
	if len(attrs) == 0 {
		return errors.New("empty flow")
	}
	for _, a := range attrs {
		name, args, err := odpAttr(a)
		if err != nil {
			return err
		}
		if err := parseODPAttr(k, name, args, inner); err != nil {
			return err
		}
	}
	return nil
}

// odpGroup parses a group's fields with set, which knows each field.
func odpGroup(group, args string, set func(name, v string) error) error {
	fs, err := odpFields(args)
	if err != nil {
		return fmt.Errorf("%s: %w", group, err)
	}
	for _, f := range fs {
		if err := set(f[0], f[1]); err != nil {
			return fmt.Errorf("%s: %w", group, err)
		}
	}
	return nil
}

func unknownODPField(name string) error { return fmt.Errorf("unknown field %q", Clipped(name)) }

func parseODPAttr(k *Key, name, args string, inner bool) error {
	var err error
	num := func(bits int) (uint64, error) { return odpNum(name, args, bits) }
	switch name {
	case "recirc_id":
		var v uint64
		v, err = num(32)
		k.RecircID = uint32(v)
	case "dp_hash":
		var v uint64
		v, err = num(32)
		k.DpHash = uint32(v)
	case "skb_mark":
		var v uint64
		v, err = num(32)
		k.PktMark = uint32(v)
	case "skb_priority":
		// A key has no priority: only the default is taken.
		var v uint64
		if v, err = num(32); err == nil && v != 0 {
			err = errors.New("skb_priority: only 0 is supported")
		}
	case "in_port":
		var v uint64
		v, err = num(32)
		k.InPort = uint32(v)
	case "packet_type":
		err = odpGroup(name, args, func(f, v string) error {
			if (f == "ns" || f == "id") && v == "0" {
				return nil
			}
			return fmt.Errorf("%s=%s: only Ethernet packets (ns=0,id=0)", f, Clipped(v))
		})
	case "eth":
		err = odpGroup(name, args, func(f, v string) (err error) {
			switch f {
			case "src":
				k.DlSrc, err = odpMAC(f, v)
			case "dst":
				k.DlDst, err = odpMAC(f, v)
			default:
				err = unknownODPField(f)
			}
			return err
		})
	case "eth_type":
		var v uint64
		v, err = num(16)
		if t := uint16(v); t == EthTypeVLAN || t == EthTypeQinQ {
			i := 0
			if inner {
				i = 1
			}
			k.VLANs[i].TPID = t
		} else {
			k.DlType = t
		}
	case "vlan":
		i := 0
		if inner {
			i = 1
		}
		v := &k.VLANs[i]
		if v.TPID == 0 {
			v.TPID = EthTypeVLAN
		}
		v.TCI |= VLANPresent
		err = odpGroup(name, args, func(f, val string) error {
			switch f {
			case "vid":
				n, err := odpNum(f, val, 12)
				v.TCI |= uint16(n)
				return err
			case "pcp":
				n, err := odpNum(f, val, 3)
				v.TCI |= uint16(n) << 13
				return err
			case "cfi":
				return nil
			}
			return unknownODPField(f)
		})
	case "encap":
		if inner {
			return errors.New("encap: more than two VLAN tags")
		}
		err = parseODPAttrs(k, args, true)
	case "ipv4", "ipv6":
		err = odpGroup(name, args, func(f, v string) (err error) {
			var n uint64
			switch {
			case f == "src" && name == "ipv4":
				k.NwSrc, err = odpIPv4(f, v)
			case f == "dst" && name == "ipv4":
				k.NwDst, err = odpIPv4(f, v)
			case f == "src":
				k.IPv6Src, err = odpIPv6(f, v)
			case f == "dst":
				k.IPv6Dst, err = odpIPv6(f, v)
			case f == "label" && name == "ipv6":
				n, err = odpNum(f, v, 20)
				k.IPv6Label = uint32(n)
			case f == "proto":
				n, err = odpNum(f, v, 8)
				k.NwProto = uint8(n)
			case f == "tos" && name == "ipv4", f == "tclass" && name == "ipv6":
				n, err = odpNum(f, v, 8)
				k.NwTos = uint8(n)
			case f == "ttl" && name == "ipv4", f == "hlimit" && name == "ipv6":
				n, err = odpNum(f, v, 8)
				k.NwTTL = uint8(n)
			case f == "frag":
				switch v {
				case "no":
					k.NwFrag = 0
				case "first":
					k.NwFrag = FragAny
				case "later":
					k.NwFrag = FragAny | FragLater
				default:
					err = fmt.Errorf("frag=%s: no, first or later", Clipped(v))
				}
			default:
				err = unknownODPField(f)
			}
			return err
		})
	case "tcp", "udp", "sctp", "icmp", "icmpv6":
		src, dst, bits := "src", "dst", 16
		if name == "icmp" || name == "icmpv6" {
			src, dst, bits = "type", "code", 8
		}
		err = odpGroup(name, args, func(f, v string) error {
			n, err := odpNum(f, v, bits)
			switch f {
			case src:
				k.TpSrc = uint16(n)
			case dst:
				k.TpDst = uint16(n)
			default:
				return unknownODPField(f)
			}
			return err
		})
	case "tcp_flags":
		var v uint64
		v, err = num(12)
		k.TcpFlags = uint16(v)
	case "arp":
		err = odpGroup(name, args, func(f, v string) (err error) {
			var n uint64
			switch f {
			case "sip":
				k.NwSrc, err = odpIPv4(f, v)
			case "tip":
				k.NwDst, err = odpIPv4(f, v)
			case "op":
				n, err = odpNum(f, v, 8)
				k.NwProto = uint8(n)
			case "sha":
				k.ArpSha, err = odpMAC(f, v)
			case "tha":
				k.ArpTha, err = odpMAC(f, v)
			default:
				err = unknownODPField(f)
			}
			return err
		})
	case "nd":
		err = odpGroup(name, args, func(f, v string) (err error) {
			switch f {
			case "target":
				k.NdTarget, err = odpIPv6(f, v)
			case "sll":
				k.ArpSha, err = odpMAC(f, v)
			case "tll":
				k.ArpTha, err = odpMAC(f, v)
			default:
				err = unknownODPField(f)
			}
			return err
		})
	case "tunnel":
		err = parseODPTunnel(k, args)
	default:
		return fmt.Errorf("%s(...): not an attribute ovsxdp traces", Clipped(name))
	}
	if err != nil && !strings.HasPrefix(err.Error(), name) {
		err = fmt.Errorf("%s: %w", name, err)
	}
	return err
}

// odpTunnelFlag returns the bit of the tunnel flag a datapath flow names
// name (odpTunnelFlags, as dumps write them).
func odpTunnelFlag(name string) (uint16, bool) {
	for _, f := range odpTunnelFlags {
		if f.name == name {
			return f.bit, true
		}
	}
	return 0, false
}

// parseODPTunnel parses tunnel(...)'s fields into k.
func parseODPTunnel(k *Key, args string) error {
	return odpGroup("tunnel", args, func(f, v string) (err error) {
		var n uint64
		switch f {
		case "tun_id":
			k.TunID, err = odpNum(f, v, 64)
		case "src":
			k.TunSrc, err = odpIPv4(f, v)
		case "dst":
			k.TunDst, err = odpIPv4(f, v)
		case "ipv6_src":
			k.TunIPv6Src, err = odpIPv6(f, v)
		case "ipv6_dst":
			k.TunIPv6Dst, err = odpIPv6(f, v)
		case "tos":
			n, err = odpNum(f, v, 8)
			k.TunTOS = uint8(n)
		case "ttl":
			n, err = odpNum(f, v, 8)
			k.TunTTL = uint8(n)
		case "tp_src", "tp_dst":
			_, err = odpNum(f, v, 16) // a key keeps no outer ports
		case "flags":
			// +df+csum+key as dumps write them, or df|csum|key.
			for _, tok := range strings.FieldsFunc(strings.ReplaceAll(v, "|", "+"), func(r rune) bool { return r == '+' }) {
				neg := false
				for _, part := range strings.SplitAfter(tok, "-") {
					name := strings.TrimSuffix(part, "-")
					if name != "" {
						bit, ok := odpTunnelFlag(name)
						if !ok {
							return fmt.Errorf("flags: unknown tunnel flag %q", Clipped(name))
						}
						if neg {
							k.TunFlags &^= bit
						} else {
							k.TunFlags |= bit
						}
					}
					neg = strings.HasSuffix(part, "-")
				}
			}
		default:
			err = fmt.Errorf("%s: not a tunnel field ovsxdp keeps", Clipped(f))
		}
		return err
	})
}
