package ofconn

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/ofconv"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// Bundles (OpenFlow 1.4 and later, and ONF's extension in OpenFlow 1.3,
// as Open vSwitch takes it): OFPT_BUNDLE_CONTROL opens, closes,
// commits or discards a bundle, OFPT_BUNDLE_ADD_MESSAGE adds a flow mod,
// group mod, port mod or packet out to one. As in Open vSwitch, a message is checked
// when it is added (an error reply to the add names what is refused, and
// the message stays out of the bundle), an add to a bundle that does not
// exist opens it, and a connection's bundles go with it.
//
// A commit is all or nothing, as in Open vSwitch: the bridge
// (BundleCommitter) runs the messages in order, each seeing the ones
// before it, and publishes them together, so that no packet sees a part
// of the bundle. When one fails (the table refuses it: a group it names
// is missing, a delete_learned conflict, ...) none takes effect: that
// message is answered with its error (to its xid, with the bytes of the
// OFPT_BUNDLE_ADD_MESSAGE that carried it, as Open vSwitch 3.1 answers),
// then the commit with OFPBFC_MSG_FAILED. Open vSwitch's port mods are not
// atomic: in an OFPBF_ATOMIC bundle a port mod fails the commit with
// OFPBFC_MSG_FAILED; in another it is checked in its turn and applied
// once everything else has taken effect. A packet out is translated in
// its turn, through the tables as the messages before it leave them, and
// sent once the whole bundle has taken effect (none when it fails), as
// Open vSwitch does. Meter mods are not bundled (OFPBFC_MSG_UNSUP when
// added).

const (
	typeBundleControl uint8 = 33
	typeBundleAdd     uint8 = 34

	// OpenFlow 1.3's bundles, as Open vSwitch takes them: ONF's
	// extension, the same bodies in experimenter messages; its errors
	// are ONF experimenter errors numbered 2300 + the OFPBFC code.
	onfBundleControl uint32 = 2300
	onfBundleAdd     uint32 = 2301
	onfBundleErrBase uint16 = 2300

	errTypeBundleFailed uint16 = 17

	// OFPBCT_*: bundle control types; a reply is the request's type + 1.
	bctOpen    uint16 = 0
	bctClose   uint16 = 2
	bctCommit  uint16 = 4
	bctDiscard uint16 = 6

	// OFPBF_ATOMIC and OFPBF_ORDERED.
	bundleAtomic  uint16 = 1
	bundleOrdered uint16 = 2
	bundleFlags          = bundleAtomic | bundleOrdered

	// OFPBFC_* codes.
	codeBundleBadID     uint16 = 2
	codeBundleExist     uint16 = 3
	codeBundleClosed    uint16 = 4
	codeOutOfBundles    uint16 = 5
	codeBundleBadType   uint16 = 6
	codeBundleBadFlags  uint16 = 7
	codeBundleMsgBadLen uint16 = 8
	codeBundleMsgBadXid uint16 = 9
	codeBundleMsgUnsup  uint16 = 10
	codeBundleTooMany   uint16 = 12
	codeBundleMsgFailed uint16 = 13

	// Bounds of a connection's bundles.
	maxBundles      = 16
	maxBundleMsgs   = 1 << 18
	maxBundleBytes  = 256 << 20
	bundleHeaderLen = 8 // bundle_id, type or padding, flags

	// bundleChunk is the size of the chunks a connection copies the
	// adds of its bundles into (hold): a bundle of 100,000 flow mods is
	// a few hundred allocations for the garbage collector to track, not
	// 100,000.
	bundleChunk = 64 << 10
)

// bundleState is an open bundle of a connection.
type bundleState struct {
	flags  uint16
	closed bool
	msgs   bundleList
	bytes  int
	// adds are the bundle's flow adds that the bridge converted when
	// they were added (Checker), as its table keeps them: the commit
	// installs them as they are.
	adds flow.FlowBatch
}

// full reports whether the bundle has no room for a message of n bytes.
func (bd *bundleState) full(n int) bool {
	return bd.msgs.n >= maxBundleMsgs || bd.bytes+n > maxBundleBytes
}

// bundled is a message added to a bundle: what its commit needs, and no
// more, since a bundle may hold hundreds of thousands of them.
type bundled struct {
	h openflow.Header
	// m is the decoded message; nil for a flow mod that the bridge
	// converted when it was added (Checker): flow, its conversion, is
	// what the commit runs, or, for an add (added), the bundle's next
	// flow in adds.
	m     openflow.Message
	flow  *ofconv.Mod
	added bool
	// add is the OFPT_BUNDLE_ADD_MESSAGE that carried the message, which
	// is add[at:]: Open vSwitch's error for a message that fails at
	// commit echoes its add.
	add []byte
	at  int
}

// bundleList is a bundle's messages in order, in chunks that double up
// to bundleListChunk: a bundle of 100,000 messages grows without copying
// those it holds, and one of a few takes little room.
type bundleList struct {
	chunks [][]bundled
	n      int
}

const bundleListChunk = 1024

func (l *bundleList) push(e bundled) {
	last := len(l.chunks) - 1
	if last < 0 || len(l.chunks[last]) == cap(l.chunks[last]) {
		l.chunks = append(l.chunks, make([]bundled, 0, min(bundleListChunk, max(8, l.n))))
		last++
	}
	l.chunks[last] = append(l.chunks[last], e)
	l.n++
}

// at returns message i.
func (l *bundleList) at(i int) *bundled {
	for _, c := range l.chunks {
		if i < len(c) {
			return &c[i]
		}
		i -= len(c)
	}
	panic("bundleList: index out of range")
}

// hold copies the add b into the connection's chunk of adds and returns
// the copy. A chunk lives as long as an add in it does.
func (c *conn) hold(b []byte) []byte {
	if len(b) > cap(c.adds)-len(c.adds) {
		c.adds = make([]byte, 0, max(bundleChunk, len(b)))
	}
	at := len(c.adds)
	c.adds = append(c.adds, b...)
	return c.adds[at:len(c.adds):len(c.adds)]
}

func bundleError(code uint16, format string, args ...any) *openflow.Error {
	return &openflow.Error{Type: errTypeBundleFailed, Code: code, Sentinel: openflow.ErrBadMessage, Detail: fmt.Sprintf(format, args...)}
}

// bundle handles an OFPT_BUNDLE_CONTROL or OFPT_BUNDLE_ADD_MESSAGE
// (msgType), or ONF's, whose body is body (b, with header h).
func (c *conn) bundle(h openflow.Header, msgType uint8, body, b []byte) error {
	if msgType == typeBundleAdd {
		return c.bundleAdd(h, body, b)
	}
	if len(body) < bundleHeaderLen {
		return badRequest(openflow.CodeBadRequestLen, "bundle control of %d bytes", len(b))
	}
	id, typ, flags := binary.BigEndian.Uint32(body), binary.BigEndian.Uint16(body[4:]), binary.BigEndian.Uint16(body[6:])
	answer := func() error {
		r := binary.BigEndian.AppendUint32(nil, id)
		r = binary.BigEndian.AppendUint16(r, typ+1)
		r = binary.BigEndian.AppendUint16(r, flags)
		if c.version == openflow.Version13 {
			return c.send(c.version, h.Xid, &openflow.Experimenter{Experimenter: onfExperimenter, ExpType: onfBundleControl, Data: r})
		}
		return c.send(c.version, h.Xid, &openflow.Unknown{Type: typeBundleControl, Body: r})
	}
	bd := c.bundles[id]
	switch typ {
	case bctOpen:
		switch {
		case bd != nil:
			return bundleError(codeBundleExist, "bundle %d is open", id)
		case flags&^bundleFlags != 0:
			return bundleError(codeBundleBadFlags, "bundle flags 0x%x", flags)
		case len(c.bundles) >= maxBundles:
			return bundleError(codeOutOfBundles, "%d bundles are open", len(c.bundles))
		}
		c.openBundle(id, flags)
		return answer()
	case bctClose, bctCommit, bctDiscard:
		switch {
		case bd == nil:
			return bundleError(codeBundleBadID, "no bundle %d", id)
		case typ == bctClose && bd.closed:
			return bundleError(codeBundleClosed, "bundle %d is closed", id)
		case typ != bctDiscard && flags != bd.flags:
			if typ == bctCommit {
				// Open vSwitch discards a bundle whatever its
				// commit's outcome.
				delete(c.bundles, id)
			}
			return bundleError(codeBundleBadFlags, "bundle %d has flags 0x%x, not 0x%x", id, bd.flags, flags)
		}
		switch typ {
		case bctClose:
			bd.closed = true
		case bctDiscard:
			delete(c.bundles, id)
		case bctCommit:
			delete(c.bundles, id)
			if err := c.commit(id, bd); err != nil {
				return err
			}
		}
		return answer()
	}
	return bundleError(codeBundleBadType, "bundle control type %d", typ)
}

func (c *conn) openBundle(id uint32, flags uint16) {
	c.addBundle(id, &bundleState{flags: flags})
}

func (c *conn) addBundle(id uint32, bd *bundleState) {
	if c.bundles == nil {
		c.bundles = map[uint32]*bundleState{}
	}
	c.bundles[id] = bd
}

// bundleAdd checks the message inside an OFPT_BUNDLE_ADD_MESSAGE and adds
// it to its bundle. A message that is refused is answered (to the add's
// xid, with the add's bytes) and counted as a refusal of the message
// inside.
func (c *conn) bundleAdd(h openflow.Header, body, b []byte) error {
	if len(body) < bundleHeaderLen+openflow.HeaderLen {
		return bundleError(codeBundleMsgBadLen, "bundle add of %d bytes", len(b))
	}
	id, flags := binary.BigEndian.Uint32(body), binary.BigEndian.Uint16(body[6:])
	inner := body[bundleHeaderLen:]
	n := int(binary.BigEndian.Uint16(inner[2:]))
	if n < openflow.HeaderLen || n > len(inner) {
		return bundleError(codeBundleMsgBadLen, "bundled message of length %d in %d bytes", n, len(inner))
	}
	at := len(b) - len(body) + bundleHeaderLen // where the message starts
	// b is the reader's buffer, which the next message overwrites: the
	// message is decoded from a copy, which the decoded message and its
	// conversion may point into.
	add := c.hold(b[:at+n])
	inner = add[at:]
	c.s.acct.countReceived(inner)
	refuse := func(err error) error {
		c.replyErrorAs(h, b, inner, err)
		return nil
	}
	// A flow mod is decoded into the connection's reused one: only its
	// conversion is kept, unless the bridge makes none (below).
	ih, im, err := c.dec.Decode(inner)
	switch {
	case err != nil:
		return refuse(err)
	case ih.Version != c.version:
		return refuse(badRequest(openflow.CodeBadRequestVersion, "bundled message of version 0x%02x on a 0x%02x connection", ih.Version, c.version))
	case ih.Xid != h.Xid:
		return refuse(bundleError(codeBundleMsgBadXid, "bundled message xid %d in an add of xid %d", ih.Xid, h.Xid))
	}
	// A flow add that the bridge converts goes straight into the
	// bundle's adds, when the bundle can take it; the bundle is made
	// here when the add opens it, and kept only if the add is taken.
	bd := c.bundles[id]
	opens := bd == nil
	var adds *flow.FlowBatch
	switch {
	case opens:
		bd = &bundleState{flags: flags}
		adds = &bd.adds
	case !bd.closed && bd.flags == flags && !bd.full(at+n):
		adds = &bd.adds
	}
	conv, added, err := c.checkMod(im, adds)
	if err != nil {
		return refuse(err)
	}
	switch {
	case opens && len(c.bundles) >= maxBundles:
		return bundleError(codeOutOfBundles, "%d bundles are open", len(c.bundles))
	case opens && flags&^bundleFlags != 0:
		return bundleError(codeBundleBadFlags, "bundle flags 0x%x", flags)
	case opens:
		c.addBundle(id, bd)
	case bd.closed:
		return bundleError(codeBundleClosed, "bundle %d is closed", id)
	case bd.flags != flags:
		return bundleError(codeBundleBadFlags, "bundle %d has flags 0x%x, not 0x%x", id, bd.flags, flags)
	}
	if bd.full(at + n) {
		return bundleError(codeBundleTooMany, "bundle %d holds %d messages (%d bytes)", id, bd.msgs.n, bd.bytes)
	}
	switch {
	case conv != nil || added:
		// The conversion is what the commit runs: the decoded flow
		// mod, several times its size, is not kept.
		im = nil
	case c.dec.Reused(im):
		// Kept decoded for the commit: a flow mod of its own.
		if _, im, err = openflow.Decode(inner); err != nil {
			return refuse(err)
		}
	}
	bd.msgs.push(bundled{h: ih, m: im, flow: conv, added: added, add: add, at: at})
	bd.bytes += at + n
	return nil
}

// checkMod tells whether m may be bundled and whether the bridge would
// take it, without running it; a flow mod's conversion, when the bridge
// made one, is kept for the commit.
func (c *conn) checkMod(m openflow.Message, adds *flow.FlowBatch) (conv *ofconv.Mod, added bool, err error) {
	if c.role == openflow.RoleSlave {
		return nil, false, badRequest(codeBadReqIsSlave, "bundled message from a slave")
	}
	ck, _ := c.s.br.(Checker)
	switch m := m.(type) {
	case *openflow.FlowMod:
		if ck != nil {
			return ck.CheckFlowMod(c.version, m, adds)
		}
		return nil, false, nil
	case *openflow.GroupMod:
		if ck != nil {
			return nil, false, ck.CheckGroupMod(c.version, m)
		}
		return nil, false, nil
	case *openflow.PortMod:
		return nil, false, nil
	case *openflow.PacketOut:
		if ck, ok := c.s.br.(PacketOutChecker); ok {
			return nil, false, ck.CheckPacketOut(c.version, m)
		}
		return nil, false, nil
	}
	// As Open vSwitch, which bundles flow mods, group mods, port mods
	// and packet outs only.
	return nil, false, bundleError(codeBundleMsgUnsup, "%T cannot be bundled", m)
}

// commit runs the messages of bundle id (bd, already removed from the
// connection) as one change of the bridge, or none of them. A message
// that fails is answered with its error here; the error returned is the
// commit's.
func (c *conn) commit(id uint32, bd *bundleState) error {
	bc := c.s.br.(BundleCommitter) // bundles are taken only then
	mods := make([]BundledMod, 0, bd.msgs.n)
	for _, chunk := range bd.msgs.chunks {
		for j := range chunk {
			e := &chunk[j]
			m := BundledMod{Msg: e.m, From: Origin{c: c, xid: e.h.Xid}, Flow: e.flow}
			if e.added {
				m.Adds = &bd.adds
			}
			// mods holds the conversion alone, for the bridge to
			// drop once it has run it.
			e.flow = nil
			if _, ok := e.m.(*openflow.PortMod); ok && bd.flags&bundleAtomic != 0 {
				// Open vSwitch's port mods are not atomic: it
				// fails an atomic bundle that holds one when its
				// turn comes.
				m.Refuse = bundleError(codeBundleMsgFailed, "a port mod cannot be part of an atomic bundle")
			}
			mods = append(mods, m)
		}
	}
	i, err := bc.CommitBundle(c.version, mods)
	switch {
	case err == nil:
		return nil
	case i < 0 || i >= bd.msgs.n:
		// Not a message's failure: the bridge could not be changed
		// at all (it was deleted). The commit is answered with the
		// error, and the connection goes on.
		var oe *openflow.Error
		if errors.As(err, &oe) {
			return err
		}
		return badRequest(codeBadRequestEPerm, "bundle %d: %v", id, err)
	}
	// As Open vSwitch 3.1: the error goes to the message's xid (its
	// add's too) with its add's bytes, and counts as a refusal of the
	// message.
	e := bd.msgs.at(i)
	c.replyErrorAs(e.h, e.add, e.add[e.at:], err)
	return bundleError(codeBundleMsgFailed, "bundle %d: message %d of %d failed, none took effect", id, i+1, bd.msgs.n)
}
