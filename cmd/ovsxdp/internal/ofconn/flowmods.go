package ofconn

import (
	"encoding/binary"

	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// Flow mods in batches: a controller sends flow mods back to back. When a
// flow mod is followed by another, whole in the read buffer, the
// connection holds it and runs it with the flow mods after it in one call
// to FlowModBatcher.FlowMods, which changes the tables once. (ovs-ofctl
// add-flows sends each flow mod with a barrier and waits for the barrier's
// reply: its flow mods run one at a time.) The batch is run before any other message is handled,
// before the connection waits for more input, and when it is full, so
// that every message and every barrier sees each earlier flow mod in
// effect, as when they are run one at a time; each failing flow mod still
// gets its own error reply, in order, with its xid.

// maxBatchedFlowMods bounds the flow mods a connection holds: enough to
// make a publication's cost small beside theirs, few enough that the
// batch's messages (at most 64 KiB each) stay bounded.
const maxBatchedFlowMods = 256

// flowModBatch is the flow mods a connection holds, in order.
type flowModBatch struct {
	mods  []*openflow.FlowMod
	from  []Origin
	heads []openflow.Header
	msgs  [][]byte // each flow mod's message, for its error reply
}

// batching reports whether the message just read may be held in the
// batch: the bridge runs batches, and a batch is being held or the next
// message, whole in the buffer, is a flow mod too. A flow mod followed by
// anything else runs alone, without the batch's copy of its message: as
// ovs-ofctl add-flows sends them, each with a barrier behind it.
func (c *conn) batching() bool {
	if c.version == 0 {
		return false
	}
	if _, ok := c.s.br.(FlowModBatcher); !ok {
		return false
	}
	return len(c.flowMods.mods) > 0 || c.nextIsFlowMod()
}

// Message types that batching looks for in the read buffer: OFPT_FLOW_MOD,
// and NXT_FLOW_MOD in a vendor (experimenter) message; both have the same
// numbers in every version.
const (
	typeFlowMod   uint8  = 14
	typeVendor    uint8  = 4
	nxtFlowModSub uint32 = 13
	vendorHeadLen        = openflow.HeaderLen + 8 // vendor id, subtype
)

// nextIsFlowMod reports whether the next message is whole in the buffer
// and is a flow mod.
func (c *conn) nextIsFlowMod() bool {
	n, ok := c.nextLen()
	if !ok {
		return false
	}
	h, _ := c.br.Peek(openflow.HeaderLen)
	switch {
	case h[1] == typeFlowMod:
		return true
	case h[1] == typeVendor && n >= vendorHeadLen:
		b, err := c.br.Peek(vendorHeadLen)
		return err == nil && binary.BigEndian.Uint32(b[8:]) == openflow.NiciraExperimenter &&
			binary.BigEndian.Uint32(b[12:]) == nxtFlowModSub
	}
	return false
}

// nextBuffered reports whether a whole message is buffered, so that the
// next read will not wait for the peer.
func (c *conn) nextBuffered() bool {
	_, ok := c.nextLen()
	return ok
}

// nextLen returns the length of the next message when it is whole in the
// buffer.
func (c *conn) nextLen() (int, bool) {
	n := c.br.Buffered()
	if n < openflow.HeaderLen {
		return 0, false
	}
	h, err := c.br.Peek(openflow.HeaderLen)
	if err != nil {
		return 0, false
	}
	l := int(binary.BigEndian.Uint16(h[2:4]))
	return l, l <= n
}

// checkFlowMod refuses a flow mod the connection may not send, and
// resolves an OpenFlow 1.0 flow mod's table: 0 for an add, all tables
// for the others, unless NXT_FLOW_MOD_TABLE_ID put it in the command.
func (c *conn) checkFlowMod(m *openflow.FlowMod) error {
	if c.role == openflow.RoleSlave {
		return badRequest(codeBadReqIsSlave, "flow mod from a slave")
	}
	if c.version == openflow.Version10 && !c.tableID {
		m.TableID = 0xff
		if m.Command == openflow.FlowAdd {
			m.TableID = 0
		}
	}
	return nil
}

// holdFlowMod adds the flow mod fm (header h, message b, which it keeps)
// to the batch, and runs the batch when it is full.
func (c *conn) holdFlowMod(h openflow.Header, fm *openflow.FlowMod, b []byte) error {
	if err := c.checkFlowMod(fm); err != nil {
		c.runFlowMods()
		c.replyError(h, b, err)
		return nil
	}
	fb := &c.flowMods
	fb.mods = append(fb.mods, fm)
	fb.from = append(fb.from, Origin{c: c, xid: h.Xid})
	fb.heads = append(fb.heads, h)
	fb.msgs = append(fb.msgs, b)
	if len(fb.mods) >= maxBatchedFlowMods {
		c.runFlowMods()
	}
	return nil
}

// runFlowMods runs the flow mods held in the batch, and answers each
// one that failed with its error.
func (c *conn) runFlowMods() {
	fb := &c.flowMods
	if len(fb.mods) == 0 {
		return
	}
	errs := c.s.br.(FlowModBatcher).FlowMods(c.version, fb.mods, fb.from)
	for i, err := range errs {
		if err != nil {
			c.replyError(fb.heads[i], fb.msgs[i], err)
		}
	}
	clear(fb.mods)
	clear(fb.from)
	clear(fb.msgs)
	fb.mods, fb.from, fb.heads, fb.msgs = fb.mods[:0], fb.from[:0], fb.heads[:0], fb.msgs[:0]
}
