package ofconn

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// Capabilities advertised in the features reply: flow, table and port
// stats, and (1.0) IP addresses matched in ARP.
const (
	capFlowStats  = 1 << 0
	capTableStats = 1 << 1
	capPortStats  = 1 << 2
	capGroupStats = 1 << 3
	capARPMatchIP = 1 << 7
	// OpenFlow 1.0 actions: output, set_vlan_vid, set_vlan_pcp,
	// strip_vlan, mod_dl_src/dst, mod_nw_src/dst, mod_nw_tos,
	// mod_tp_src/dst (no enqueue).
	actions10 = 0x7ff
	// nTables is the number of flow tables (0-253, as Open vSwitch).
	nTables = 254
)

func badRequest(code uint16, format string, args ...any) *openflow.Error {
	return &openflow.Error{Type: openflow.ErrTypeBadRequest, Code: code, Sentinel: openflow.ErrBadMessage, Detail: fmt.Sprintf(format, args...)}
}

// ReasonUnsupported is the reason counted (rejections.go) for a message
// ovsxdp does not implement at all.
const ReasonUnsupported = "message not supported"

// unsupported refuses a message ovsxdp does not implement.
func unsupported(code uint16, format string, args ...any) *openflow.Error {
	e := badRequest(code, format, args...)
	e.Item = ReasonUnsupported
	return e
}

// handle answers one decoded message.
func (c *conn) handle(h openflow.Header, m openflow.Message, b []byte) error {
	v := c.version
	reply := func(r openflow.Message) error { return c.send(v, h.Xid, r) }
	fail := func(err error) error {
		if err != nil {
			c.replyError(h, b, err)
		}
		return nil
	}
	switch m := m.(type) {
	case *openflow.Hello:
		return nil
	case *openflow.EchoRequest:
		return reply(&openflow.EchoReply{Data: m.Data})
	case *openflow.EchoReply, *openflow.BarrierReply, *openflow.ErrorMsg:
		return nil
	case *openflow.FeaturesRequest:
		fr := &openflow.FeaturesReply{DatapathID: c.s.br.DatapathID(), NTables: nTables,
			Capabilities: capFlowStats | capTableStats | capPortStats}
		if v == openflow.Version10 {
			fr.Capabilities |= capARPMatchIP
			fr.Actions = actions10
			fr.Ports = c.s.br.Ports()
		} else {
			fr.Capabilities |= capGroupStats
		}
		return reply(fr)
	case *openflow.GetConfigRequest:
		return reply(&openflow.GetConfigReply{SwitchConfig: c.config})
	case *openflow.SetConfig:
		c.config = m.SwitchConfig
		c.publishAsync()
		return nil
	case *openflow.BarrierRequest:
		// Every message is done before the next is read.
		return reply(&openflow.BarrierReply{})
	case *openflow.RoleRequest:
		if m.Role.Role != openflow.RoleNoChange {
			c.role = m.Role.Role
		}
		if m.Role.Role == openflow.RoleMaster || m.Role.Role == openflow.RoleSlave {
			c.generation = m.GenerationID
		}
		c.publishAsync()
		return reply(&openflow.RoleReply{Role: openflow.Role{Role: c.role, GenerationID: c.generation}})
	case *openflow.NXRoleRequest:
		// Nicira roles: 0 other, 1 master, 2 slave.
		c.role = map[uint32]uint32{0: openflow.RoleEqual, 1: openflow.RoleMaster, 2: openflow.RoleSlave}[m.Role]
		c.publishAsync()
		return reply(&openflow.NXRoleReply{Role: m.Role})
	case *openflow.SetAsync:
		return fail(c.setAsync(m))
	case *openflow.Resume:
		return fail(c.resume(m)) // resume.go
	case *openflow.GetAsyncRequest:
		return reply(c.getAsyncReply())
	case *openflow.SetFlowFormat:
		if m.Format != openflow.FlowFormatOpenFlow10 && m.Format != openflow.FlowFormatNXM {
			return fail(&openflow.Error{Type: openflow.ErrTypeBadRequest, Code: codeBadRequestEPerm, Sentinel: openflow.ErrBadMessage, Detail: "flow format"})
		}
		c.flowFormat = m.Format
		c.publishAsync()
		return nil
	case *openflow.FlowModTableID:
		c.tableID = m.Set != 0
		return nil
	case *openflow.SetPacketInFormat:
		if m.Format > openflow.PacketInFormatNXT2 {
			// Open vSwitch refuses the formats it does not know with EPERM.
			return fail(&openflow.Error{Type: openflow.ErrTypeBadRequest, Code: codeBadRequestEPerm, Sentinel: openflow.ErrBadMessage,
				Detail: fmt.Sprintf("packet in format %d", m.Format)})
		}
		c.pinFormat = m.Format
		c.publishAsync()
		return nil
	case *openflow.SetControllerID:
		c.controllerID = m.ID
		c.publishAsync()
		return nil
	case *openflow.FlowMod:
		if err := c.checkFlowMod(m); err != nil {
			return fail(err)
		}
		return fail(c.s.br.FlowMod(v, m, Origin{c: c, xid: h.Xid}))
	case *openflow.FlowMonitorRequest:
		return fail(c.monitorRequest(h, m))
	case *openflow.FlowMonitorCancel:
		return fail(c.cancelMonitor(m.ID))
	case *openflow.PortMod:
		if c.role == openflow.RoleSlave {
			return fail(badRequest(codeBadReqIsSlave, "port mod from a slave"))
		}
		return fail(c.s.br.PortMod(v, m, Origin{c: c, xid: h.Xid}))
	case *openflow.PacketOut:
		if c.role == openflow.RoleSlave {
			return fail(badRequest(codeBadReqIsSlave, "packet out from a slave"))
		}
		return fail(c.s.br.PacketOut(v, m))
	case *openflow.DescRequest:
		d := c.s.cfg.Desc
		return reply(&d)
	case *openflow.FlowStatsRequest:
		if m.Aggregate {
			r, err := c.s.br.Aggregate(v, m)
			if err != nil {
				return fail(err)
			}
			r.Nicira = m.Nicira
			return reply(r)
		}
		es, err := c.s.br.Flows(v, m)
		if err != nil {
			return fail(err)
		}
		return c.sendParts(h.Xid, len(es), func(i, j int) openflow.Message {
			return &openflow.FlowStatsReply{Nicira: m.Nicira, Entries: es[i:j]}
		})
	case *openflow.TableStatsRequest:
		ts := c.s.br.Tables(v)
		return c.sendParts(h.Xid, len(ts), func(i, j int) openflow.Message {
			return &openflow.TableStatsReply{Entries: ts[i:j]}
		})
	case *openflow.PortStatsRequest:
		ps, err := c.s.br.PortStats(v, m.PortNo)
		if err != nil {
			return fail(err)
		}
		return c.sendParts(h.Xid, len(ps), func(i, j int) openflow.Message {
			return &openflow.PortStatsReply{Entries: ps[i:j]}
		})
	case *openflow.PortDescRequest:
		ports := c.s.br.Ports()
		if v >= openflow.Version15 && m.PortNo != openflow.PortAny {
			var one []openflow.Port
			for _, p := range ports {
				if p.PortNo == m.PortNo {
					one = append(one, p)
				}
			}
			ports = one
		}
		return c.sendParts(h.Xid, len(ports), func(i, j int) openflow.Message {
			return &openflow.PortDescReply{Ports: ports[i:j]}
		})
	case *openflow.TableFeaturesRequest:
		if len(m.Tables) != 0 {
			// Setting table features is not supported (Open vSwitch's
			// OFPTFFC_EPERM).
			return fail(&openflow.Error{Type: 13, Code: 5, Sentinel: openflow.ErrBadMessage, Detail: "table features cannot be changed"})
		}
		ts := tableFeatures()
		return c.sendParts(h.Xid, len(ts), func(i, j int) openflow.Message {
			return &openflow.TableFeaturesReply{Tables: ts[i:j]}
		})
	case *openflow.GroupMod:
		if c.role == openflow.RoleSlave {
			return fail(badRequest(codeBadReqIsSlave, "group mod from a slave"))
		}
		return fail(c.s.br.GroupMod(v, m))
	case *openflow.GroupStatsRequest:
		gs, err := c.s.br.GroupStats(v, m.GroupID)
		if err != nil {
			return fail(err)
		}
		return c.sendParts(h.Xid, len(gs), func(i, j int) openflow.Message {
			return &openflow.GroupStatsReply{Entries: gs[i:j]}
		})
	case *openflow.GroupDescRequest:
		id := m.GroupID
		if !openflow.GroupBodies15(v) {
			id = GroupAll // only OpenFlow 1.5 and NXST_GROUP_DESC ask for one group
		}
		gs, err := c.s.br.GroupDesc(v, id)
		if err != nil {
			return fail(err)
		}
		return c.sendParts(h.Xid, len(gs), func(i, j int) openflow.Message {
			return &openflow.GroupDescReply{Entries: gs[i:j]}
		})
	case *openflow.MultipartRaw:
		if m.Type == mpGroupFeatures && v != openflow.Version10 && !m.Reply {
			return reply(&openflow.MultipartRaw{Reply: true, Type: mpGroupFeatures, Body: groupFeatures(v)})
		}
		if v == openflow.Version10 && m.Type == openflow.MPExperimenter && m.Experimenter == openflow.NiciraExperimenter && m.ExpType == nxstGroupFeatures && !m.Reply {
			// NXST_GROUP_FEATURES: OpenFlow 1.1's body, with OpenFlow
			// 1.0's action bitmap.
			return reply(&openflow.MultipartRaw{Reply: true, Type: openflow.MPExperimenter, Experimenter: openflow.NiciraExperimenter, ExpType: nxstGroupFeatures, Body: groupFeatures(v)})
		}
		if ok, err := c.meterMultipart(h.Xid, m, fail); ok {
			return err
		}
		if r, ok, err := c.queueMultipart(v, m); ok { // queues.go
			if err != nil {
				return fail(err)
			}
			return reply(r)
		}
		code := openflow.CodeBadRequestMultipart
		switch {
		case m.Type == openflow.MPExperimenter && m.Experimenter != openflow.NiciraExperimenter:
			code = openflow.CodeBadRequestExperimenter
		case m.Type == openflow.MPExperimenter:
			code = openflow.CodeBadRequestExpType
		}
		return fail(unsupported(code, "multipart type %d is not supported by ovsxdp", m.Type))
	case *openflow.Experimenter:
		if _, ok := c.s.br.(BundleCommitter); ok && v == openflow.Version13 && m.Experimenter == onfExperimenter &&
			(m.ExpType == onfBundleControl || m.ExpType == onfBundleAdd) {
			typ := typeBundleControl
			if m.ExpType == onfBundleAdd {
				typ = typeBundleAdd
			}
			return c.runBundle(h, typ, m.Data, b)
		}
		if m.Experimenter == openflow.NiciraExperimenter && m.ExpType == nxtCTFlushZone {
			// struct nx_zone_id: 6 zero bytes and the zone.
			if len(m.Data) != ctFlushZoneLen {
				return fail(&openflow.Error{Type: openflow.ErrTypeBadRequest, Code: openflow.CodeBadRequestLen,
					Detail: fmt.Sprintf("NXT_CT_FLUSH_ZONE of %d bytes, want %d", len(m.Data), ctFlushZoneLen)})
			}
			if f, ok := c.s.br.(ConntrackFlusher); ok {
				f.FlushConntrackZone(binary.BigEndian.Uint16(m.Data[6:]))
			}
			return nil
		}
		code := openflow.CodeBadRequestExpType
		if m.Experimenter != openflow.NiciraExperimenter {
			code = openflow.CodeBadRequestExperimenter
		}
		return fail(unsupported(code, "experimenter 0x%08x type %d is not supported by ovsxdp", m.Experimenter, m.ExpType))
	case *openflow.TLVTableRequest:
		t, ok := c.s.br.(TLVTabler)
		if !ok {
			// A bridge without a TLV table has no room for a mapping.
			return reply(&openflow.TLVTableReply{})
		}
		return reply(t.TLVTable())
	case *openflow.TLVTableMod:
		if c.role == openflow.RoleSlave {
			return fail(badRequest(codeBadReqIsSlave, "tlv table mod from a slave"))
		}
		t, ok := c.s.br.(TLVTabler)
		if !ok {
			return fail(unsupported(openflow.CodeBadRequestExpType, "NXT_TLV_TABLE_MOD is not supported by this bridge"))
		}
		return fail(t.TLVTableMod(m))
	case *openflow.Unknown:
		if v == openflow.Version10 && m.Type == typeQueueGetConfigRequest10 || v == openflow.Version13 && m.Type == typeQueueGetConfigRequest13 {
			r, err := c.queueGetConfig(v, m.Body) // queues.go
			if err != nil {
				return fail(err)
			}
			return reply(r)
		}
		if v != openflow.Version10 && m.Type == typeTableMod {
			return fail(c.tableMod(m.Body)) // tablemod.go
		}
		if v != openflow.Version10 && m.Type == openflow.TypeMeterMod {
			return fail(c.meterMod(m.Body))
		}
		if _, ok := c.s.br.(BundleCommitter); ok && v >= openflow.Version14 && (m.Type == typeBundleControl || m.Type == typeBundleAdd) {
			return c.runBundle(h, m.Type, m.Body, b)
		}
		return fail(unsupported(openflow.CodeBadRequestType, "message type %d", m.Type))
	}
	// Replies and asynchronous messages a switch does not take, and
	// requests ovsxdp does not implement (group mod, flow monitors, ...).
	return fail(unsupported(openflow.CodeBadRequestType, "message %T is not supported by ovsxdp", m))
}

// runBundle handles a bundle message (bundle.go) and answers its error.
func (c *conn) runBundle(h openflow.Header, typ uint8, body, b []byte) error {
	err := c.bundle(h, typ, body, b)
	var oe *openflow.Error
	if err != nil && !errors.As(err, &oe) {
		return err // the connection failed (a reply could not be written)
	}
	if err != nil {
		c.replyError(h, b, err)
	}
	return nil
}

// sendParts sends n entries as one multipart reply, or several when they
// do not fit in one message (all but the last with the "more" flag).
// part(i, j) builds the reply holding entries i to j-1.
func (c *conn) sendParts(xid uint32, n int, part func(i, j int) openflow.Message) error {
	v := c.version
	base, err := openflow.Encode(v, xid, part(0, 0))
	if err != nil {
		return c.send(v, xid, part(0, 0)) // reports the encoding error
	}
	start, size := 0, len(base)
	flush := func(end int, more bool) error {
		m := part(start, end)
		setMore(m, more)
		start, size = end, len(base)
		return c.send(v, xid, m)
	}
	for i := 0; i < n; i++ {
		one, err := openflow.Encode(v, xid, part(i, i+1))
		if err != nil {
			return c.send(v, xid, part(i, i+1))
		}
		n1 := len(one) - len(base)
		if size+n1 > openflow.MaxMessageLen && i > start {
			if err := flush(i, true); err != nil {
				return err
			}
		}
		size += n1
	}
	return flush(n, false)
}

// setMore sets or clears the "more" flag of a multipart reply.
func setMore(m openflow.Message, more bool) {
	var f uint16
	if more {
		f = openflow.MultipartMore
	}
	switch m := m.(type) {
	case *openflow.FlowStatsReply:
		m.Flags = f
	case *openflow.TableStatsReply:
		m.Flags = f
	case *openflow.PortStatsReply:
		m.Flags = f
	case *openflow.PortDescReply:
		m.Flags = f
	case *openflow.TableFeaturesReply:
		m.Flags = f
	case *openflow.GroupStatsReply:
		m.Flags = f
	case *openflow.GroupDescReply:
		m.Flags = f
	case *openflow.MultipartRaw:
		m.Flags = f
	}
}

// mpGroupFeatures is OFPMP_GROUP_FEATURES (OpenFlow 1.2+).
const mpGroupFeatures uint16 = 8

// NXT_CT_FLUSH_ZONE with the size of its body.
const (
	nxtCTFlushZone uint32 = 29
	ctFlushZoneLen        = 8
)

// ConntrackFlusher is a Bridge whose connection tracker NXT_CT_FLUSH_ZONE
// flushes; with a bridge that is not one, the message does nothing.
type ConntrackFlusher interface {
	FlushConntrackZone(zone uint16)
}

// TLVTabler is a Bridge with a TLV table, the mapping of Geneve options to
// the tun_metadata fields (NXT_TLV_TABLE_MOD, NXT_TLV_TABLE_REQUEST).
// With a bridge that is not one, a request is answered with an empty table
// and a mod is refused.
type TLVTabler interface {
	// TLVTableMod changes the table, atomically; an error is the
	// *openflow.Error Open vSwitch replies with (NXTTMFC_*).
	TLVTableMod(m *openflow.TLVTableMod) error
	// TLVTable describes the table.
	TLVTable() *openflow.TLVTableReply
}

// OFPET_METER_MOD_FAILED and the codes meterModNoMeters answers with.
const (
	errTypeMeterModFailed = openflow.ErrTypeMeterModFailed
	codeMeterInvalid      = openflow.CodeMeterInvalid
	codeMeterBadCommand   = openflow.CodeMeterBadCommand
	meterModDelete        = openflow.MeterDelete
)

// meterModNoMeters answers a meter mod to a bridge without meters (its
// meter features say max_meter 0): deleting meters deletes nothing and
// succeeds; adding or modifying one is refused with OFPMMFC_INVALID_METER,
// as Open vSwitch refuses it when its datapath has no meters.
func meterModNoMeters(body []byte) error {
	if len(body) < 8 {
		return badRequest(openflow.CodeBadRequestLen, "meter mod of %d bytes", len(body)+openflow.HeaderLen)
	}
	cmd, id := binary.BigEndian.Uint16(body), binary.BigEndian.Uint32(body[4:])
	switch {
	case cmd == meterModDelete:
		return nil
	case cmd > meterModDelete:
		return &openflow.Error{Type: errTypeMeterModFailed, Code: codeMeterBadCommand, Sentinel: openflow.ErrBadMessage,
			Detail: fmt.Sprintf("meter mod command %d", cmd), Item: "meter command"}
	}
	return &openflow.Error{Type: errTypeMeterModFailed, Code: codeMeterInvalid, Sentinel: openflow.ErrBadMessage,
		Detail: fmt.Sprintf("meter %d: ovsxdp has no meters", id), Item: "meter"}
}

// groupFeatures is the body of a group features reply: every group type,
// select groups with weights and liveness, chaining, as many groups of
// each type as group ids, and the actions a bucket may have (output,
// push/pop VLAN, group, dec TTL, set field, as the table features say).
func groupFeatures(v uint8) []byte {
	const (
		allTypes = 1<<openflow.GroupAll | 1<<openflow.GroupSelect | 1<<openflow.GroupIndirect | 1<<openflow.GroupFF
		// OFPGFC_SELECT_WEIGHT, OFPGFC_SELECT_LIVENESS, OFPGFC_CHAINING.
		caps    = 1<<0 | 1<<1 | 1<<2
		maxID   = 0xffffff00 // OFPG_MAX
		actions = 1<<openflow.ActTypeOutput | 1<<openflow.ActTypePushVLAN | 1<<openflow.ActTypePopVLAN |
			1<<openflow.ActTypeGroup | 1<<openflow.ActTypeDecNWTTL | 1<<openflow.ActTypeSetField
	)
	b := binary.BigEndian.AppendUint32(nil, allTypes)
	b = binary.BigEndian.AppendUint32(b, caps)
	for range 4 {
		b = binary.BigEndian.AppendUint32(b, maxID)
	}
	acts := uint32(actions)
	if v == openflow.Version10 {
		acts = actions10
	}
	for range 4 {
		b = binary.BigEndian.AppendUint32(b, acts)
	}
	return b
}

// nxstGroupFeatures is NXST_GROUP_FEATURES, OpenFlow 1.0's group features
// request (Nicira stats subtype 9).
const nxstGroupFeatures uint32 = 9
