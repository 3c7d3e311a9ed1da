package tunnel

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"

	"github.com/ovsxdp/ovsxdp/flow"
)

// Options are a vxlan or geneve port's configuration: Open vSwitch's
// interface options (ovs-vswitchd.conf.db(5), "Tunnel Options"), parsed.
type Options struct {
	Kind Kind

	// Remote is remote_ip; RemoteFlow is remote_ip=flow (the flow's
	// tun_dst or tun_ipv6_dst says where each packet goes).
	Remote     netip.Addr
	RemoteFlow bool
	// Local is local_ip (unset: the route's source); LocalFlow is
	// local_ip=flow, valid only with remote_ip=flow.
	Local     netip.Addr
	LocalFlow bool

	// InKey and OutKey are in_key and out_key (key sets both); the Flow
	// variants are the word flow: any key is received, and the flow's
	// tun_id is sent.
	InKey, OutKey         uint32
	InKeyFlow, OutKeyFlow bool

	DstPort uint16 // dst_port; the kind's default when not given
	Csum    bool   // csum (default false)
	DF      bool   // df_default (default true)

	// TOS is tos (DSCP bits; ECN is always the inner packet's);
	// TOSInherit is tos=inherit.
	TOS        uint8
	TOSInherit bool
	// TTL is ttl (0: the system default, 64); TTLInherit is ttl=inherit.
	TTL        uint8
	TTLInherit bool
}

// ErrOption reports a tunnel option that is unknown or malformed.
var ErrOption = errors.New("bad tunnel option")

// ErrNoRemote reports a packet sent through a remote_ip=flow port whose
// flow set neither tun_dst nor tun_ipv6_dst.
var ErrNoRemote = errors.New("remote_ip=flow and the flow set no tun_dst")

// ParseOptions parses the options of a port of the given kind. remote_ip
// is required; an unknown option is refused, naming it.
func ParseOptions(kind Kind, opts map[string]string) (Options, error) {
	o := Options{Kind: kind, DF: true, DstPort: kind.DefaultPort()}
	if kind != VXLAN && kind != Geneve {
		return o, fmt.Errorf("tunnel options: %w", ErrKind)
	}
	bad := func(name, v, why string) error {
		return fmt.Errorf("%s port option %s=%q: %s: %w", kind, name, v, why, ErrOption)
	}
	names := make([]string, 0, len(opts))
	for n := range opts {
		names = append(names, n)
	}
	sort.Strings(names)
	// key first, so that in_key and out_key override it.
	if v, ok := opts["key"]; ok {
		if err := o.parseKey("key", v, bad); err != nil {
			return o, err
		}
	}
	for _, name := range names {
		v := opts[name]
		switch name {
		case "key":
		case "in_key", "out_key":
			if err := o.parseKey(name, v, bad); err != nil {
				return o, err
			}
		case "remote_ip", "local_ip":
			flowWord, a := v == "flow", netip.Addr{}
			if !flowWord {
				var err error
				if a, err = netip.ParseAddr(v); err != nil || a.Zone() != "" {
					return o, bad(name, v, "not an IPv4 or IPv6 address or the word flow")
				}
				a = a.Unmap()
				if name == "remote_ip" && (a.IsMulticast() || a.IsUnspecified()) {
					return o, bad(name, v, "only unicast remote endpoints are supported")
				}
			}
			if name == "remote_ip" {
				o.Remote, o.RemoteFlow = a, flowWord
			} else {
				o.Local, o.LocalFlow = a, flowWord
			}
		case "dst_port":
			n, err := strconv.ParseUint(v, 10, 16)
			if err != nil || n == 0 {
				return o, bad(name, v, "not a UDP port (1 to 65535)")
			}
			o.DstPort = uint16(n)
		case "csum", "df_default":
			b, ok := map[string]bool{"true": true, "false": false}[v]
			if !ok {
				return o, bad(name, v, "not true or false")
			}
			if name == "csum" {
				o.Csum = b
			} else {
				o.DF = b
			}
		case "tos":
			if v == "inherit" {
				o.TOSInherit = true
				continue
			}
			n, err := strconv.ParseUint(v, 0, 8)
			if err != nil || n&3 != 0 {
				return o, bad(name, v, "not a TOS (0 to 255 with the ECN bits zero) or the word inherit")
			}
			o.TOS = uint8(n)
		case "ttl":
			if v == "inherit" {
				o.TTLInherit = true
				continue
			}
			n, err := strconv.ParseUint(v, 0, 8)
			if err != nil || n == 0 {
				return o, bad(name, v, "not a TTL (1 to 255) or the word inherit")
			}
			o.TTL = uint8(n)
		default:
			return o, fmt.Errorf("%s port option %s: unknown (valid: remote_ip, local_ip, key, in_key, out_key, dst_port, csum, df_default, tos, ttl): %w", kind, name, ErrOption)
		}
	}
	switch {
	case !o.Remote.IsValid() && !o.RemoteFlow:
		return o, fmt.Errorf("%s port: remote_ip is required: %w", kind, ErrOption)
	case o.LocalFlow && !o.RemoteFlow:
		return o, fmt.Errorf("%s port: local_ip=flow needs remote_ip=flow: %w", kind, ErrOption)
	case o.Remote.IsValid() && o.Local.IsValid() && o.Remote.Is4() != o.Local.Is4():
		return o, fmt.Errorf("%s port: remote_ip %s and local_ip %s are not of one family: %w", kind, o.Remote, o.Local, ErrOption)
	}
	return o, nil
}

func (o *Options) parseKey(name, v string, bad func(name, v, why string) error) error {
	flowWord := v == "flow"
	var n uint64
	if !flowWord {
		var err error
		if n, err = strconv.ParseUint(v, 0, 64); err != nil || n > 0xffffff {
			return bad(name, v, "not a 24-bit key or the word flow")
		}
	}
	if name != "out_key" {
		o.InKey, o.InKeyFlow = uint32(n), flowWord
	}
	if name != "in_key" {
		o.OutKey, o.OutKeyFlow = uint32(n), flowWord
	}
	return nil
}

// Accepts reports whether a decapsulated packet belongs to the port:
// from its remote_ip (any with flow), to its local_ip (any when unset or
// flow), with its in_key (any with flow).
func (o *Options) Accepts(h *Header) bool {
	switch {
	case !o.RemoteFlow && h.Src != o.Remote:
		return false
	case o.Local.IsValid() && h.Dst != o.Local:
		return false
	case !o.InKeyFlow && h.VNI != o.InKey:
		return false
	}
	return true
}

// ToKey stores what a decapsulated packet's outer headers say into the
// tunnel metadata of the inner packet's key.
func (h *Header) ToKey(k *flow.Key) {
	k.TunID = uint64(h.VNI)
	k.TunSrc, k.TunDst, k.TunIPv6Src, k.TunIPv6Dst = 0, 0, [16]byte{}, [16]byte{}
	if h.Src.Is4() {
		s, d := h.Src.As4(), h.Dst.As4()
		k.TunSrc = uint32(s[0])<<24 | uint32(s[1])<<16 | uint32(s[2])<<8 | uint32(s[3])
		k.TunDst = uint32(d[0])<<24 | uint32(d[1])<<16 | uint32(d[2])<<8 | uint32(d[3])
	} else {
		k.TunIPv6Src, k.TunIPv6Dst = h.Src.As16(), h.Dst.As16()
	}
	k.TunTOS, k.TunTTL = h.TOS, h.TTL
	// Not df: Open vSwitch's userspace datapath leaves it unset on
	// receive, whatever the outer header says, and its megaflows match
	// -df.
	k.TunFlags = flow.TunFlagKey
	if h.Kind == Geneve {
		k.TunFlags |= flow.TunFlagGeneve
	}
	if h.HasOptions {
		k.TunFlags |= flow.TunFlagOpts
	}
	if h.Csum {
		k.TunFlags |= flow.TunFlagCsum
	}
	if h.OAM {
		k.TunFlags |= flow.TunFlagOAM
	}
	k.TunMeta, k.TunMetaPresent = h.TunMeta, h.TunMetaPresent
}

// Config returns the encapsulation of a packet with key k sent through
// the port: the remote, local address and VNI from the options or, where
// they say flow, from k's tunnel metadata; TOS and TTL from the options or
// the inner packet (innerTOS, innerTTL: zero for a packet that is not IP).
// The MACs and, when Src is not valid, the source address come from the
// route (underlay.Path), which the caller fills in.
func (o *Options) Config(k *flow.Key, innerTOS, innerTTL uint8) (Config, error) {
	c := Config{Kind: o.Kind, DstPort: o.DstPort, Csum: o.Csum, DF: o.DF, Src: o.Local, Dst: o.Remote,
		VNI: o.OutKey, TOS: o.TOS&^3 | innerTOS&3, TTL: o.TTL}
	if o.RemoteFlow {
		switch {
		case k.TunDst != 0:
			c.Dst = addr4(k.TunDst)
		case k.TunIPv6Dst != [16]byte{}:
			c.Dst = netip.AddrFrom16(k.TunIPv6Dst)
		default:
			return c, ErrNoRemote
		}
	}
	if o.LocalFlow {
		switch {
		case k.TunSrc != 0:
			c.Src = addr4(k.TunSrc)
		case k.TunIPv6Src != [16]byte{}:
			c.Src = netip.AddrFrom16(k.TunIPv6Src)
		}
	}
	if o.OutKeyFlow {
		c.VNI = uint32(k.TunID) & 0xffffff
	}
	if o.TOSInherit {
		c.TOS = innerTOS
	}
	if o.TTLInherit {
		c.TTL = innerTTL
	}
	return c, nil
}

func addr4(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
