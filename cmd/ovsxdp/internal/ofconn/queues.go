package ofconn

import (
	"encoding/binary"
	"fmt"

	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// Queues and table descriptions (tablemod.go). ovsxdp has no QoS queues: a port has
// none, as an Open vSwitch port without a QoS configuration. The
// requests that read queues get Open vSwitch's answers for such ports:
// an empty reply for every queue of a port (or of every port), and
// OFPQOFC_BAD_QUEUE for one queue, OFPQOFC_BAD_PORT for a port the bridge
// does not have.

// Multipart types and messages of this file.
const (
	mpQueue     uint16 = 5  // OFPMP_QUEUE (OFPST_QUEUE in OpenFlow 1.0)
	mpTableDesc uint16 = 14 // OFPMP_TABLE_DESC, OpenFlow 1.4 on
	mpQueueDesc uint16 = 15 // OFPMP_QUEUE_DESC, OpenFlow 1.4 on

	typeQueueGetConfigRequest10 uint8 = 20
	typeQueueGetConfigReply10   uint8 = 21
	typeQueueGetConfigRequest13 uint8 = 22
	typeQueueGetConfigReply13   uint8 = 23

	// OFPET_QUEUE_OP_FAILED, as OpenFlow 1.3 numbers it (5 in 1.0), and
	// its codes.
	errTypeQueueOpFailed uint16 = 9
	codeQueueBadPort     uint16 = 0
	codeQueueBadQueue    uint16 = 1

	queueAll         uint32 = 0xffffffff // OFPQ_ALL
	nxqofcQueueError uint16 = 23         // NXQOFC_QUEUE_ERROR

	// The eviction flags Open vSwitch describes every table with
	// (OFPTMPEF14_OTHER, IMPORTANCE and LIFETIME), in the eviction
	// property (OFPTMPT14_EVICTION).
	tableEvictionFlags uint32 = 0x7
	tablePropEviction  uint16 = 2
)

func queueError(code uint16, format string, args ...any) *openflow.Error {
	return &openflow.Error{Type: errTypeQueueOpFailed, Code: code, Sentinel: openflow.ErrBadMessage, Detail: fmt.Sprintf(format, args...)}
}

// portFrom11 reads a 32-bit port number as Open vSwitch does
// (openflow.Port16): the numbers without a 16-bit one are
// OFPBAC_BAD_OUT_PORT.
func portFrom11(p uint32) (uint16, error) {
	n, err := openflow.Port16(p)
	if err != nil {
		return 0, &openflow.Error{Type: openflow.ErrTypeBadAction, Code: codeBadOutPort, Sentinel: openflow.ErrBadMessage, Detail: fmt.Sprintf("port %d", p)}
	}
	return n, nil
}

// codeBadOutPort is OFPBAC_BAD_OUT_PORT.
const codeBadOutPort uint16 = 4

// port16Any is OFPP_ANY (OpenFlow 1.0's OFPP_NONE) as 16 bits, port16All
// OFPP_ALL, and port16Max OFPP_MAX, the first reserved port.
const (
	port16Any uint16 = 0xffff
	port16All uint16 = 0xfffc
	port16Max uint16 = 0xff00
)

// hasPort16 reports whether the bridge has port p (16-bit numbering).
func (c *conn) hasPort16(p uint16) bool {
	for _, bp := range c.s.br.Ports() {
		if n, err := portFrom11(bp.PortNo); err == nil && n == p {
			return true
		}
	}
	return false
}

// queueLookup answers a request for queue (queueAll: every one) of port
// (port16Any: of every port): none exists, so a lookup of every queue
// finds nothing and succeeds, and one of a single queue fails.
func (c *conn) queueLookup(port uint16, queue uint32) error {
	if port != port16Any && !c.hasPort16(port) {
		return queueError(codeQueueBadPort, "no port %d", port)
	}
	if queue != queueAll || port == port16Any && len(c.s.br.Ports()) == 0 {
		return queueError(codeQueueBadQueue, "no queue %d", queue)
	}
	return nil
}

// queueStats answers OFPMP_QUEUE: an empty reply, or the lookup's error.
func (c *conn) queueStats(v uint8, m *openflow.MultipartRaw) (*openflow.MultipartRaw, error) {
	if len(m.Body) != 8 {
		return nil, badLen("queue stats request of %d bytes", len(m.Body))
	}
	queue := binary.BigEndian.Uint32(m.Body[4:])
	var port uint16
	if v == openflow.Version10 {
		if port = binary.BigEndian.Uint16(m.Body); port == port16All {
			port = port16Any // OpenFlow 1.0 says every port so
		}
	} else {
		var err error
		if port, err = portFrom11(binary.BigEndian.Uint32(m.Body)); err != nil {
			return nil, err
		}
	}
	if err := c.queueLookup(port, queue); err != nil {
		return nil, err
	}
	return &openflow.MultipartRaw{Reply: true, Type: mpQueue}, nil
}

// queueDesc answers OFPMP_QUEUE_DESC (OpenFlow 1.4 on) as queueStats
// does OFPMP_QUEUE.
func (c *conn) queueDesc(m *openflow.MultipartRaw) (*openflow.MultipartRaw, error) {
	if len(m.Body) != 8 {
		return nil, badLen("queue desc request of %d bytes", len(m.Body))
	}
	port, err := portFrom11(binary.BigEndian.Uint32(m.Body))
	if err != nil {
		return nil, err
	}
	queue := binary.BigEndian.Uint32(m.Body[4:])
	if queue != queueAll && port != port16Any && c.hasPort16(port) {
		// Open vSwitch's devices fail the lookup of a single queue
		// of a port without a QoS so: NXQOFC_QUEUE_ERROR (of every
		// port, it is OFPQOFC_BAD_QUEUE).
		return nil, &openflow.Error{Type: openflow.ErrTypeExperimenter, Code: nxqofcQueueError, Sentinel: openflow.ErrBadMessage,
			Detail: fmt.Sprintf("no queue %d", queue)}
	}
	if err := c.queueLookup(port, queue); err != nil {
		return nil, err
	}
	return &openflow.MultipartRaw{Reply: true, Type: mpQueueDesc}, nil
}

// queueGetConfig answers OFPT_QUEUE_GET_CONFIG_REQUEST (OpenFlow 1.0
// and 1.3, of every queue of a port) with the port and no queue. As in
// Open vSwitch, a reserved port is OFPQOFC_BAD_PORT, except OpenFlow
// 1.3's OFPP_ANY, which asks for every port.
func (c *conn) queueGetConfig(v uint8, body []byte) (*openflow.Unknown, error) {
	want, typ := 8, typeQueueGetConfigReply13 // port, padding
	if v == openflow.Version10 {
		want, typ = 4, typeQueueGetConfigReply10
	}
	if len(body) != want {
		return nil, badLen("queue get config request of %d bytes", len(body))
	}
	var port uint16
	if v == openflow.Version10 {
		port = binary.BigEndian.Uint16(body)
	} else {
		p32 := binary.BigEndian.Uint32(body)
		var err error
		if port, err = portFrom11(p32); err != nil {
			return nil, err
		}
		if p32 == 0xffffffff {
			port = port16Any
		}
	}
	if port >= port16Max && !(v != openflow.Version10 && port == port16Any) {
		return nil, queueError(codeQueueBadPort, "reserved port %d", port)
	}
	if err := c.queueLookup(port, queueAll); err != nil {
		return nil, err
	}
	reply := make([]byte, 8)
	if v == openflow.Version10 {
		binary.BigEndian.PutUint16(reply, port)
	} else {
		binary.BigEndian.PutUint32(reply, binary.BigEndian.Uint32(body))
	}
	return &openflow.Unknown{Type: typ, Body: reply}, nil
}

func badLen(format string, args ...any) *openflow.Error {
	return &openflow.Error{Type: openflow.ErrTypeBadRequest, Code: openflow.CodeBadRequestLen, Sentinel: openflow.ErrBadMessage, Detail: fmt.Sprintf(format, args...)}
}

// queueMultipart answers the multipart requests of this file, and
// reports whether m was one.
func (c *conn) queueMultipart(v uint8, m *openflow.MultipartRaw) (r openflow.Message, ok bool, err error) {
	if m.Reply {
		return nil, false, nil
	}
	switch {
	case m.Type == mpQueue:
		r, err = c.queueStats(v, m)
	case m.Type == mpQueueDesc && v >= openflow.Version14:
		r, err = c.queueDesc(m)
	case m.Type == mpTableDesc && v >= openflow.Version14:
		r = c.s.tableDesc()
	default:
		return nil, false, nil
	}
	return r, true, err
}
