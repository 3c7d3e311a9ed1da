package openflow

import (
	"encoding/binary"
	"fmt"
)

// Reserved port numbers, in the 32-bit numbering of OpenFlow 1.1+. This
// package presents every port number in that numbering; OpenFlow 1.0's
// 16-bit reserved ports 0xff00..0xffff map to 0xffffff00..0xffffffff.
const (
	PortMax        uint32 = 0xffffff00
	PortInPort     uint32 = 0xfffffff8
	PortTable      uint32 = 0xfffffff9
	PortNormal     uint32 = 0xfffffffa
	PortFlood      uint32 = 0xfffffffb
	PortAll        uint32 = 0xfffffffc
	PortController uint32 = 0xfffffffd
	PortLocal      uint32 = 0xfffffffe
	PortAny        uint32 = 0xffffffff // OFPP_NONE in 1.0
)

func port10(p uint16) uint32 {
	if p >= 0xff00 {
		return uint32(p) + 0xffff0000
	}
	return uint32(p)
}

// Port16 is 32-bit port number p in OpenFlow 1.0's 16 bits, as Open
// vSwitch converts it (ofputil_port_from_ofp11): the reserved ports at
// the top of the 32-bit space are 1.0's; the numbers between the two
// ranges have none (ErrUnencodable).
func Port16(p uint32) (uint16, error) { return port10Wire(p) }

func port10Wire(p uint32) (uint16, error) {
	switch {
	case p >= PortMax:
		return uint16(p - 0xffff0000), nil
	case p < 0xff00:
		return uint16(p), nil
	}
	return 0, fmt.Errorf("%w: port %d in OpenFlow 1.0", ErrUnencodable, p)
}

// Property is a generic OpenFlow 1.4+ TLV property (type, length, data
// padded to 8 bytes). Data excludes the 4-byte header and the padding.
type Property struct {
	Type uint16
	Data []byte
}

// SplitProperties splits b, a run of OpenFlow 1.4 properties, as Open
// vSwitch reads one (ofpprop_pull): each a type, a length of at least 4
// that, padded to 8 bytes, stays within b, and its payload, which aliases
// b. A property that does not fit is OFPBPC_BAD_LEN (OpenFlow 1.4's
// numbering).
func SplitProperties(b []byte) ([]Property, error) {
	var ps []Property
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, newErr(ErrBadMessage, ErrTypeBadProperty, CodeBadPropertyLen, "%d bytes left for a property", len(b))
		}
		n := int(binary.BigEndian.Uint16(b[2:]))
		if n < 4 || pad8(n) > len(b) {
			return nil, newErr(ErrBadMessage, ErrTypeBadProperty, CodeBadPropertyLen, "property of length %d in %d bytes", n, len(b))
		}
		ps = append(ps, Property{Type: binary.BigEndian.Uint16(b), Data: b[4:n]})
		b = b[pad8(n):]
	}
	return ps, nil
}

func decodeProps(r *rd, what string) ([]Property, error) {
	var ps []Property
	for r.err == nil && r.len() > 0 {
		t := r.u16(what)
		l := int(r.u16(what))
		if l < 4 {
			return nil, badMessage("%s: property length %d", what, l)
		}
		d := r.copyN(l-4, what)
		r.skip(pad8(l)-l, what)
		ps = append(ps, Property{Type: t, Data: d})
	}
	return ps, r.err
}

func appendProps(w *wr, ps []Property) error {
	for _, p := range ps {
		if len(p.Data)+4 > 0xffff {
			return fmt.Errorf("%w: property of %d bytes", ErrTooLong, len(p.Data))
		}
		w.b = AppendProperty(w.b, p.Type, p.Data)
	}
	return nil
}

// AppendProperty appends property typ with payload data to b, padded to
// 8 bytes: SplitProperties reads it back. data must leave the length
// within 16 bits.
func AppendProperty(b []byte, typ uint16, data []byte) []byte {
	n := 4 + len(data)
	b = binary.BigEndian.AppendUint16(b, typ)
	b = binary.BigEndian.AppendUint16(b, uint16(n))
	b = append(b, data...)
	return append(b, make([]byte, pad8(n)-n)...)
}

// Port is a port description (ofp_phy_port in 1.0, ofp_port in 1.3, ofp_port
// with properties in 1.4+). The Ethernet fields are the 1.4+ Ethernet
// property; OtherProps holds any other 1.4+ property.
type Port struct {
	PortNo     uint32
	HWAddr     [6]byte
	Name       string
	Config     uint32
	State      uint32
	Curr       uint32
	Advertised uint32
	Supported  uint32
	Peer       uint32
	CurrSpeed  uint32
	MaxSpeed   uint32
	// NoEthernet is set for a 1.4+ port without an Ethernet property.
	NoEthernet bool
	OtherProps []Property
}

// Port config and state bits used by port mod and port status.
const (
	PortConfigDown uint32 = 1 << 0
	PortStateDown  uint32 = 1 << 0 // OFPPS_LINK_DOWN
	// PortStateLive is OFPPS_LIVE of OpenFlow 1.1+; OpenFlow 1.0 has no
	// such bit, and it is left out there.
	PortStateLive uint32 = 1 << 2
)

// Port feature bits (OFPPF_*) in OpenFlow 1.1+'s numbering, which this
// package presents in every version, as it does port numbers: OpenFlow
// 1.0 has no 40 Gb/s, 100 Gb/s, 1 Tb/s or other-rate bit and numbers the
// medium, autonegotiation and pause bits 7 to 11 instead of 11 to 15.
const (
	PortFeature10MBHD     uint32 = 1 << 0
	PortFeature10MBFD     uint32 = 1 << 1
	PortFeature100MBHD    uint32 = 1 << 2
	PortFeature100MBFD    uint32 = 1 << 3
	PortFeature1GBHD      uint32 = 1 << 4
	PortFeature1GBFD      uint32 = 1 << 5
	PortFeature10GBFD     uint32 = 1 << 6
	PortFeature40GBFD     uint32 = 1 << 7
	PortFeature100GBFD    uint32 = 1 << 8
	PortFeature1TBFD      uint32 = 1 << 9
	PortFeatureOther      uint32 = 1 << 10
	PortFeatureCopper     uint32 = 1 << 11
	PortFeatureFiber      uint32 = 1 << 12
	PortFeatureAutoneg    uint32 = 1 << 13
	PortFeaturePause      uint32 = 1 << 14
	PortFeaturePauseAsym  uint32 = 1 << 15
	features10Rates       uint32 = 1<<7 - 1
	features10MediumShift        = 11 - 7
)

// features10 is the OpenFlow 1.0 encoding of features f: the rates 1.0
// lacks are dropped.
func features10(f uint32) uint32 {
	return f&features10Rates | f>>features10MediumShift&(0x1f<<7)
}

// features11 is features f of OpenFlow 1.0 in 1.1+'s numbering.
func features11(f uint32) uint32 {
	return f&features10Rates | (f&(0x1f<<7))<<features10MediumShift
}

func decodePort(v uint8, r *rd) (Port, error) {
	var p Port
	switch {
	case v == Version10:
		p.PortNo = port10(r.u16("port"))
		copy(p.HWAddr[:], r.bytes(6, "port"))
		p.Name = r.str(16, "port")
		p.Config, p.State = r.u32("port"), r.u32("port")
		p.Curr, p.Advertised, p.Supported, p.Peer = features11(r.u32("port")), features11(r.u32("port")), features11(r.u32("port")), features11(r.u32("port"))
	case v == Version13:
		p.PortNo = r.u32("port")
		r.skip(4, "port")
		copy(p.HWAddr[:], r.bytes(6, "port"))
		r.skip(2, "port")
		p.Name = r.str(16, "port")
		p.Config, p.State = r.u32("port"), r.u32("port")
		p.Curr, p.Advertised, p.Supported, p.Peer = r.u32("port"), r.u32("port"), r.u32("port"), r.u32("port")
		p.CurrSpeed, p.MaxSpeed = r.u32("port"), r.u32("port")
	default:
		p.PortNo = r.u32("port")
		l := int(r.u16("port"))
		if l < 40 {
			return p, badMessage("port length %d", l)
		}
		r.skip(2, "port")
		copy(p.HWAddr[:], r.bytes(6, "port"))
		r.skip(2, "port")
		p.Name = r.str(16, "port")
		p.Config, p.State = r.u32("port"), r.u32("port")
		props, err := decodeProps(r.sub(l-40, "port properties"), "port property")
		if err != nil {
			return p, err
		}
		p.NoEthernet = true
		for _, pr := range props {
			if pr.Type == 0 && p.NoEthernet && len(pr.Data) == 28 {
				e := &rd{b: pr.Data}
				e.skip(4, "ethernet property")
				p.Curr, p.Advertised, p.Supported, p.Peer = e.u32(""), e.u32(""), e.u32(""), e.u32("")
				p.CurrSpeed, p.MaxSpeed = e.u32(""), e.u32("")
				p.NoEthernet = false
				continue
			}
			p.OtherProps = append(p.OtherProps, pr)
		}
	}
	return p, r.err
}

func (p *Port) append(v uint8, w *wr) error {
	switch {
	case v == Version10:
		n, err := port10Wire(p.PortNo)
		if err != nil {
			return err
		}
		w.u16(n)
		w.bytes(p.HWAddr[:])
		w.str(p.Name, 16)
		for _, x := range []uint32{p.Config, p.State &^ PortStateLive, features10(p.Curr), features10(p.Advertised), features10(p.Supported), features10(p.Peer)} {
			w.u32(x)
		}
	case v == Version13:
		w.u32(p.PortNo)
		w.zeros(4)
		w.bytes(p.HWAddr[:])
		w.zeros(2)
		w.str(p.Name, 16)
		for _, x := range []uint32{p.Config, p.State, p.Curr, p.Advertised, p.Supported, p.Peer, p.CurrSpeed, p.MaxSpeed} {
			w.u32(x)
		}
	default:
		start := w.pos()
		w.u32(p.PortNo)
		w.u16(0)
		w.zeros(2)
		w.bytes(p.HWAddr[:])
		w.zeros(2)
		w.str(p.Name, 16)
		w.u32(p.Config)
		w.u32(p.State)
		if !p.NoEthernet {
			w.u16(0)
			w.u16(32)
			w.zeros(4)
			for _, x := range []uint32{p.Curr, p.Advertised, p.Supported, p.Peer, p.CurrSpeed, p.MaxSpeed} {
				w.u32(x)
			}
		}
		if err := appendProps(w, p.OtherProps); err != nil {
			return err
		}
		if w.pos()-start > 0xffff {
			return ErrTooLong
		}
		w.put16(start+4, uint16(w.pos()-start))
	}
	return nil
}

// PortStatus is OFPT_PORT_STATUS.
type PortStatus struct {
	Reason uint8
	Port   Port
}

// Port status reasons.
const (
	PortReasonAdd    uint8 = 0
	PortReasonDelete uint8 = 1
	PortReasonModify uint8 = 2
)

func decodePortStatus(v uint8, r *rd) (*PortStatus, error) {
	m := &PortStatus{Reason: r.u8("port status")}
	r.skip(7, "port status")
	p, err := decodePort(v, r)
	m.Port = p
	return m, err
}

func (m *PortStatus) msgType(v uint8) (uint8, error) { return typeOf(kPortStatus, v) }
func (m *PortStatus) appendBody(v uint8, w *wr) error {
	w.u8(m.Reason)
	w.zeros(7)
	return m.Port.append(v, w)
}

// PortMod is OFPT_PORT_MOD. Advertise is carried in 1.0 and 1.3 and, in
// 1.4+, as the Ethernet property when HasAdvertise is set.
type PortMod struct {
	PortNo       uint32
	HWAddr       [6]byte
	Config       uint32
	Mask         uint32
	Advertise    uint32
	HasAdvertise bool
	OtherProps   []Property
}

func decodePortMod(v uint8, r *rd) (*PortMod, error) {
	m := &PortMod{}
	switch {
	case v == Version10:
		m.PortNo = port10(r.u16("port mod"))
		copy(m.HWAddr[:], r.bytes(6, "port mod"))
		m.Config, m.Mask, m.Advertise = r.u32("port mod"), r.u32("port mod"), features11(r.u32("port mod"))
		r.skip(4, "port mod")
		m.HasAdvertise = true
	default:
		m.PortNo = r.u32("port mod")
		r.skip(4, "port mod")
		copy(m.HWAddr[:], r.bytes(6, "port mod"))
		r.skip(2, "port mod")
		m.Config, m.Mask = r.u32("port mod"), r.u32("port mod")
		if v == Version13 {
			m.Advertise = r.u32("port mod")
			r.skip(4, "port mod")
			m.HasAdvertise = true
			break
		}
		props, err := decodeProps(r, "port mod property")
		if err != nil {
			return nil, err
		}
		for _, p := range props {
			if p.Type == 0 && !m.HasAdvertise && len(p.Data) == 4 {
				m.Advertise = uint32(p.Data[0])<<24 | uint32(p.Data[1])<<16 | uint32(p.Data[2])<<8 | uint32(p.Data[3])
				m.HasAdvertise = true
				continue
			}
			m.OtherProps = append(m.OtherProps, p)
		}
	}
	return m, r.err
}

func (m *PortMod) msgType(v uint8) (uint8, error) { return typeOf(kPortMod, v) }
func (m *PortMod) appendBody(v uint8, w *wr) error {
	if v == Version10 {
		n, err := port10Wire(m.PortNo)
		if err != nil {
			return err
		}
		w.u16(n)
		w.bytes(m.HWAddr[:])
		w.u32(m.Config)
		w.u32(m.Mask)
		w.u32(features10(m.Advertise))
		w.zeros(4)
		return nil
	}
	w.u32(m.PortNo)
	w.zeros(4)
	w.bytes(m.HWAddr[:])
	w.zeros(2)
	w.u32(m.Config)
	w.u32(m.Mask)
	if v == Version13 {
		w.u32(m.Advertise)
		w.zeros(4)
		return nil
	}
	if m.HasAdvertise {
		w.u16(0)
		w.u16(8)
		w.u32(m.Advertise)
	}
	return appendProps(w, m.OtherProps)
}
