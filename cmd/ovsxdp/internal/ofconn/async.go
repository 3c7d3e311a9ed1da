package ofconn

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/ofconv"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// This file is the asynchronous side of a connection: packet ins and port
// status messages that the switch sends unasked. Each connection has a
// bounded queue of encoded messages and a writer goroutine that drains
// it; whoever produces a message (the bridge's packet-in reader, the port
// watcher) only ever tries to queue it, and a full queue drops it and
// counts it. A peer that does not read cannot stall the producer, the poll
// threads or another connection; it is dropped after the write timeout.

// Kind is what a connection is to the switch, as Open vSwitch tells them.
type Kind uint8

const (
	// Service is a management connection (RUNDIR/BR.mgmt, ovs-ofctl): it
	// starts with miss_send_len 0 and gets asynchronous messages only
	// after it sets one (ovs-ofctl monitor BR MISS_LEN), as in Open
	// vSwitch.
	Service Kind = iota
	// Primary is a controller's connection (Bridge.controller): it gets
	// packet ins and port status by default.
	Primary
)

// asyncQueueLen bounds the messages waiting for one connection's writer.
const asyncQueueLen = 256

// asyncCfg is what the producers need to know about a connection; the
// connection's goroutine publishes a new one whenever it changes.
type asyncCfg struct {
	version      uint8
	kind         Kind
	format       uint32 // packet-in format (openflow.PacketInFormat*)
	flowFormat   uint32 // NXT_SET_FLOW_FORMAT's (openflow.FlowFormat*)
	missSendLen  uint16
	role         uint32
	controllerID uint16
	masks        asyncMasks // asyncconfig.go
}

// live reports whether the connection gets asynchronous messages at
// all: a management connection only once it set a miss_send_len.
func (a *asyncCfg) live() bool {
	return a != nil && a.version != 0 && (a.kind != Service || a.missSendLen != 0)
}

// wants reports whether the connection gets a message of kind
// (openflow.Async*) for reason, as its role's masks say.
func (a *asyncCfg) wants(kind int, reason uint8) bool {
	return a.live() && reason < 32 && a.masks.of(a.role)[kind]&(1<<reason) != 0
}

// asyncState is a connection's queue and writer.
type asyncState struct {
	cfg  atomic.Pointer[asyncCfg]
	q    chan []byte
	stop chan struct{}
	done chan struct{}
}

// AsyncStats counts a server's asynchronous messages.
type AsyncStats struct {
	Sent    uint64 // queued for a connection's writer
	Dropped uint64 // a connection's queue was full
}

// publishAsync publishes the connection's current settings for the
// producers and tells the server's owner when they may have changed what
// the bridge must send.
func (c *conn) publishAsync() {
	a := &asyncCfg{version: c.version, kind: c.kind, format: c.pinFormat, flowFormat: c.flowFormat, missSendLen: c.config.MissSendLen,
		role: c.role, controllerID: c.controllerID, masks: c.asyncConf()}
	old := c.async.cfg.Swap(a)
	if old == nil || *old != *a {
		c.s.changed()
	}
}

// startAsync registers the connection for asynchronous messages and starts
// its writer; stopAsync undoes it.
func (c *conn) startAsync() {
	c.async.q = make(chan []byte, asyncQueueLen)
	c.async.stop = make(chan struct{})
	c.async.done = make(chan struct{})
	go c.writeAsync()
	c.s.mu.Lock()
	c.s.live[c] = struct{}{}
	c.s.mu.Unlock()
	c.publishAsync()
}

func (c *conn) stopAsync() {
	if c.async.q == nil {
		return
	}
	c.s.mu.Lock()
	delete(c.s.live, c)
	c.s.mu.Unlock()
	close(c.async.stop)
	c.nc.Close() // ends a write the peer does not read
	<-c.async.done
	c.s.changed()
}

// writeAsync writes the queued messages until the connection ends.
func (c *conn) writeAsync() {
	defer close(c.async.done)
	for {
		select {
		case <-c.async.stop:
			return
		case b := <-c.async.q:
			c.wmu.Lock()
			c.nc.SetWriteDeadline(time.Now().Add(c.s.writeTimeout))
			_, err := c.nc.Write(b)
			c.wmu.Unlock()
			if err != nil {
				c.log.Debug("openflow: asynchronous message not sent; connection closed", "err", err)
				c.nc.Close()
				return
			}
			if len(c.async.q) == 0 {
				c.maybeResume()
			}
		}
	}
}

// enqueue queues an encoded message without blocking.
func (s *Server) enqueue(c *conn, b []byte) {
	select {
	case c.async.q <- b:
		s.asyncSent.Add(1)
	default:
		s.asyncDropped.Add(1)
	}
}

// liveConns returns the connections that take asynchronous messages.
func (s *Server) liveConns() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*conn, 0, len(s.live))
	for c := range s.live {
		out = append(out, c)
	}
	return out
}

// changed calls the OnChange hook.
func (s *Server) changed() {
	if f := s.cfg.OnChange; f != nil {
		f()
	}
}

// AsyncStats returns the server's asynchronous message counters.
func (s *Server) AsyncStats() AsyncStats {
	return AsyncStats{Sent: s.asyncSent.Load(), Dropped: s.asyncDropped.Load()}
}

// Wants reports whether some connection takes packet ins, and whether
// table misses must go to the controller: as Open vSwitch, while a
// connection that takes packet ins speaks OpenFlow 1.0 to 1.2 with
// controller id 0 (OpenFlow 1.3 and later drop misses by default).
func (s *Server) Wants() (packetIns, miss bool) {
	for _, c := range s.liveConns() {
		a := c.async.cfg.Load()
		if a.live() && a.masks.of(a.role)[openflow.AsyncPacketIn] != 0 {
			packetIns = true
			if a.version < openflow.Version13 && a.controllerID == 0 {
				miss = true
			}
		}
	}
	return packetIns, miss
}

// Connected reports how many primary connections have negotiated a
// version.
func (s *Server) Connected() int {
	n := 0
	for _, c := range s.liveConns() {
		if a := c.async.cfg.Load(); a != nil && a.kind == Primary {
			n++
		}
	}
	return n
}

// PacketIn sends a packet in to every connection that takes it: data is
// the packet as the controller action cut it, totalLen its whole length.
func (s *Server) PacketIn(pi *flow.PacketIn, data []byte, totalLen int) {
	for _, c := range s.liveConns() {
		a := c.async.cfg.Load()
		// By default, no invalid_ttl, and no table miss without a flow
		// from OpenFlow 1.3 on (asyncconfig.go).
		if !a.wants(openflow.AsyncPacketIn, uint8(pi.Reason)) || a.controllerID != pi.ControllerID {
			continue
		}
		d := data
		if pi.Reason.IsMiss() && a.missSendLen != flow.MaxLenAll {
			d = d[:min(len(d), int(a.missSendLen))]
		}
		b, err := s.encodePacketIn(a, pi, d, totalLen)
		if err != nil {
			c.log.Error("openflow: cannot encode a packet in", "err", err)
			continue
		}
		s.enqueue(c, b)
	}
}

// encodePacketIn encodes a packet in in the connection's version and
// packet-in format, with no buffer id, as Open vSwitch does. Only
// NXT_PACKET_IN2 carries a paused pipeline's continuation (resume.go).
func (s *Server) encodePacketIn(a *asyncCfg, pi *flow.PacketIn, data []byte, totalLen int) ([]byte, error) {
	reason := wireReason(pi.Reason, a.version)
	if a.format == openflow.PacketInFormatNXT2 {
		m := &openflow.PacketIn2{Packet: data, FullLen: uint32(totalLen), HasFullLen: len(data) < totalLen,
			TableID: pi.Table, Cookie: pi.Cookie, Reason: reason, Metadata: pipelineFields(a.version, false, pi)}
		if len(pi.Userdata) > 0 {
			m.UserData, m.HasUserData = pi.Userdata, true
		}
		if pi.Continuation != nil {
			// A continuation whose actions this version cannot carry
			// (write_metadata as an action) is left off: the packet
			// in goes, and nothing can resume it.
			c, err := ofconv.EncodeContinuation(a.version, s.id, pi.InPort, pi.Continuation)
			if err != nil {
				s.log.Warn("openflow: a paused packet in goes without its continuation", "err", err)
			} else {
				m.Continuation, m.HasContinuation = c, true
			}
		}
		return openflow.Encode(a.version, 0, m)
	}
	if a.format == openflow.PacketInFormatNXT {
		return openflow.Encode(a.version, 0, &openflow.NXPacketIn{BufferID: openflow.NoBuffer, TotalLen: uint16(min(totalLen, 0xffff)),
			Reason: reason, TableID: pi.Table, Cookie: pi.Cookie, Match: pipelineFields(a.version, true, pi), Data: data})
	}
	m := &openflow.PacketIn{BufferID: openflow.NoBuffer, TotalLen: uint16(min(totalLen, 0xffff)), Reason: reason,
		TableID: pi.Table, Cookie: pi.Cookie, Data: data, InPort: ofPort32(pi.InPort)}
	if a.version != openflow.Version10 {
		m.Match = pipelineFields(a.version, false, pi)
	}
	return openflow.Encode(a.version, 0, m)
}

// wireReason is the reason a connection of version v is told, as Open
// vSwitch encodes it: OpenFlow 1.4's refinements of action are action
// before 1.4, a table-miss flow's packet in is no_match from 1.3 on.
func wireReason(r flow.PacketInReason, v uint8) uint8 {
	switch r {
	case flow.ReasonActionSet, flow.ReasonGroup, flow.ReasonPacketOut:
		if v < openflow.Version14 {
			return uint8(flow.ReasonAction)
		}
	case flow.ReasonExplicitMiss:
		if v < openflow.Version13 {
			return uint8(flow.ReasonAction)
		}
		return uint8(flow.ReasonNoMatch)
	case flow.ReasonImplicitMiss:
		return uint8(flow.ReasonNoMatch)
	}
	return uint8(r)
}

// pipelineFields are the packet in's match: in_port, and the metadata
// fields that are not zero, in the order and with the headers Open
// vSwitch encodes them for version v: NXM (NXT_PACKET_IN, in every
// version) when nxm, OXM otherwise (also in an OpenFlow 1.0
// NXT_PACKET_IN2, where a field whose OXM header is newer than v keeps
// its NXM one). The order is that of Open vSwitch's matches: in_port,
// eth_type, the tunnel, the registers, pkt_mark, the connection tracking
// fields, then the metadata.
func pipelineFields(v uint8, nxm bool, pi *flow.PacketIn) []openflow.Field {
	var fs []openflow.Field
	if nxm {
		fs = append(fs, wireField("in_port", true, binary.BigEndian.AppendUint16(nil, uint16(pi.InPort))))
	} else {
		fs = append(fs, wireField("in_port", false, binary.BigEndian.AppendUint32(nil, ofPort32(pi.InPort))))
	}
	if pi.CtState != 0 {
		fs = append(fs, wireField("eth_type", nxm || v < openflow.Version13, binary.BigEndian.AppendUint16(nil, pi.DlType)))
	}
	fs = tunnelFields(fs, v, nxm, pi)
	if !nxm && v >= openflow.Version15 {
		fs = append(fs, xregFields(pi)...)
	} else {
		for i, r := range pi.Regs {
			if r != 0 {
				fs = append(fs, wireField(fmt.Sprintf("reg%d", i), nxm, binary.BigEndian.AppendUint32(nil, r)))
			}
		}
	}
	if pi.PktMark != 0 {
		fs = append(fs, wireField("pkt_mark", nxm, binary.BigEndian.AppendUint32(nil, pi.PktMark)))
	}
	fs = ctFields(fs, nxm, pi)
	if pi.Metadata != 0 {
		fs = append(fs, wireField("metadata", nxm, binary.BigEndian.AppendUint64(nil, pi.Metadata)))
	}
	return fs
}

// tunnelFields appends the packet in's tunnel fields that are not zero,
// then its tun_metadata fields by index. tun_flags goes masked to the bits OpenFlow sees, as Open vSwitch sends
// it.
func tunnelFields(fs []openflow.Field, v uint8, nxm bool, pi *flow.PacketIn) []openflow.Field {
	if pi.TunID != 0 {
		fs = append(fs, wireField("tun_id", nxm || v < openflow.Version13, binary.BigEndian.AppendUint64(nil, pi.TunID)))
	}
	if pi.TunFlags != 0 {
		f := wireField("tun_flags", nxm, binary.BigEndian.AppendUint16(nil, pi.TunFlags))
		f.Mask = binary.BigEndian.AppendUint16(nil, flow.TunFlagsOpenFlow)
		fs = append(fs, f)
	}
	if pi.TunSrc != 0 {
		fs = append(fs, wireField("tun_src", nxm, binary.BigEndian.AppendUint32(nil, pi.TunSrc)))
	}
	if pi.TunDst != 0 {
		fs = append(fs, wireField("tun_dst", nxm, binary.BigEndian.AppendUint32(nil, pi.TunDst)))
	}
	if pi.TunIPv6Src != ([16]byte{}) {
		fs = append(fs, wireField("tun_ipv6_src", nxm, bytes.Clone(pi.TunIPv6Src[:])))
	}
	if pi.TunIPv6Dst != ([16]byte{}) {
		fs = append(fs, wireField("tun_ipv6_dst", nxm, bytes.Clone(pi.TunIPv6Dst[:])))
	}
	for _, m := range pi.TunMetadata {
		fs = append(fs, wireField(fmt.Sprintf("tun_metadata%d", m.Index), nxm, m.Value))
	}
	return fs
}

// ctFields appends the packet in's connection tracking fields: ct_state
// masked to its 8 bits, as Open vSwitch sends it; the zone, mark and label
// when not zero; the tuple (source and destination, each address family's
// own, then the protocol and ports, zero or not) when it has a protocol.
func ctFields(fs []openflow.Field, nxm bool, pi *flow.PacketIn) []openflow.Field {
	if pi.CtState == 0 {
		return fs
	}
	f := wireField("ct_state", nxm, binary.BigEndian.AppendUint32(nil, uint32(pi.CtState)))
	f.Mask = binary.BigEndian.AppendUint32(nil, 0xff)
	fs = append(fs, f)
	if pi.CtZone != 0 {
		fs = append(fs, wireField("ct_zone", nxm, binary.BigEndian.AppendUint16(nil, pi.CtZone)))
	}
	if pi.CtMark != 0 {
		fs = append(fs, wireField("ct_mark", nxm, binary.BigEndian.AppendUint32(nil, pi.CtMark)))
	}
	if pi.CtLabel != ([16]byte{}) {
		fs = append(fs, wireField("ct_label", nxm, bytes.Clone(pi.CtLabel[:])))
	}
	if pi.CtNwProto == 0 {
		return fs
	}
	if pi.DlType == flow.EthTypeIPv6 {
		fs = append(fs, wireField("ct_ipv6_src", nxm, bytes.Clone(pi.CtIPv6Src[:])),
			wireField("ct_ipv6_dst", nxm, bytes.Clone(pi.CtIPv6Dst[:])))
	} else {
		fs = append(fs, wireField("ct_nw_src", nxm, binary.BigEndian.AppendUint32(nil, pi.CtNwSrc)),
			wireField("ct_nw_dst", nxm, binary.BigEndian.AppendUint32(nil, pi.CtNwDst)))
	}
	return append(fs, wireField("ct_nw_proto", nxm, []byte{pi.CtNwProto}),
		wireField("ct_tp_src", nxm, binary.BigEndian.AppendUint16(nil, pi.CtTpSrc)),
		wireField("ct_tp_dst", nxm, binary.BigEndian.AppendUint16(nil, pi.CtTpDst)))
}

// xregFields are the registers as OpenFlow 1.5 carries them, as Open
// vSwitch sends them: pairs in OXM_OF_PKT_REGs (xregN is reg2N, the high
// half, and reg2N+1), masked to the half that is not zero when only one
// is.
func xregFields(pi *flow.PacketIn) []openflow.Field {
	var fs []openflow.Field
	for i := 0; i+1 < len(pi.Regs); i += 2 {
		hi, lo := pi.Regs[i], pi.Regs[i+1]
		if hi == 0 && lo == 0 {
			continue
		}
		f := wireField(fmt.Sprintf("xreg%d", i/2), false, binary.BigEndian.AppendUint64(nil, uint64(hi)<<32|uint64(lo)))
		switch {
		case hi == 0:
			f.Mask = binary.BigEndian.AppendUint64(nil, 0xffffffff)
		case lo == 0:
			f.Mask = binary.BigEndian.AppendUint64(nil, 0xffffffff<<32)
		}
		fs = append(fs, f)
	}
	return fs
}

func wireField(name string, nxm bool, v []byte) openflow.Field {
	h, _ := openflow.FieldByName(name, nxm)
	return openflow.Field{Name: name, Class: h.Class, Field: h.Field, Experimenter: h.Experimenter, Value: v}
}

// ofPort32 turns a 16-bit OpenFlow 1.0 port number into the 32-bit one.
func ofPort32(p uint32) uint32 {
	if p >= flow.PortMax && p <= 0xffff {
		return p + 0xffff0000
	}
	return p
}

// PortStatus sends a port status message to every connection that takes
// asynchronous messages.
func (s *Server) PortStatus(reason uint8, p openflow.Port) {
	s.portStatus(reason, nil, p, nil)
}

// PortModified reports the change of a port from old to p, as Open
// vSwitch does, only to the connections whose OpenFlow version tells the
// two apart (OpenFlow 1.0 has no live bit, for one).
func (s *Server) PortModified(old, p openflow.Port) {
	s.portStatus(openflow.PortReasonModify, &old, p, nil)
}

// PortModifiedBy reports the change a port mod from made, as
// PortModified, except to the connection that sent it when it speaks
// OpenFlow 1.4 or earlier: as Open vSwitch, which keeps the rule of
// OpenFlow 1.0-1.4 that a port mod brings its sender no port status, and
// sends one to every connection only in 1.5. What the device does after
// (its link going down) is reported to every connection all the same.
func (s *Server) PortModifiedBy(old, p openflow.Port, from Origin) {
	s.portStatus(openflow.PortReasonModify, &old, p, from.c)
}

func (s *Server) portStatus(reason uint8, old *openflow.Port, p openflow.Port, sender *conn) {
	for _, c := range s.liveConns() {
		a := c.async.cfg.Load()
		if !a.wants(openflow.AsyncPortStatus, reason) {
			continue
		}
		if c == sender && a.version < openflow.Version15 {
			continue
		}
		b, err := openflow.Encode(a.version, 0, &openflow.PortStatus{Reason: reason, Port: p})
		if err != nil {
			c.log.Error("openflow: cannot encode a port status", "err", err)
			continue
		}
		if old != nil {
			if ob, err := openflow.Encode(a.version, 0, &openflow.PortStatus{Reason: reason, Port: *old}); err == nil && bytes.Equal(ob, b) {
				continue
			}
		}
		s.enqueue(c, b)
	}
}
