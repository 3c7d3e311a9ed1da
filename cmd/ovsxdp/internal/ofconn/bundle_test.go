package ofconn

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/ofconv"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// checkingBridge is a tableBridge that checks bundled flow and group mods
// as the daemon's bridge does.
type checkingBridge struct{ tableBridge }

func (b *checkingBridge) CheckFlowMod(v uint8, fm *openflow.FlowMod, adds *flow.FlowBatch) (*ofconv.Mod, bool, error) {
	mod, err := ofconv.FlowFromMod(nil, v, fm)
	if err != nil || adds == nil || mod.Cmd != flow.CmdAdd {
		return mod, false, err
	}
	adds.Add(mod.Flow)
	return nil, true, nil
}

func (b *checkingBridge) CheckGroupMod(v uint8, gm *openflow.GroupMod) error {
	if gm.Command != openflow.GroupAdd {
		return nil
	}
	_, err := ofconv.GroupFromMod(nil, v, gm)
	return err
}

var _ Checker = (*checkingBridge)(nil)

// bundleCtl is an OFPT_BUNDLE_CONTROL body.
func bundleCtl(id uint32, typ, flags uint16) *openflow.Unknown {
	b := binary.BigEndian.AppendUint32(nil, id)
	b = binary.BigEndian.AppendUint16(b, typ)
	return &openflow.Unknown{Type: typeBundleControl, Body: binary.BigEndian.AppendUint16(b, flags)}
}

// bundleAddMsg sends m inside an OFPT_BUNDLE_ADD_MESSAGE to bundle id,
// the message's xid innerXid (the add's own is the client's next), and
// returns the add's xid.
func (cl *client) bundleAddMsg(id uint32, flags uint16, m openflow.Message, innerXid func(xid uint32) uint32) uint32 {
	cl.t.Helper()
	cl.xd++
	cl.sendRaw(cl.bundleAddBytes(cl.xd, innerXid(cl.xd), id, flags, m))
	return cl.xd
}

// bundleAddBytes is the OFPT_BUNDLE_ADD_MESSAGE (xid xid) that adds m
// (xid innerXid) to bundle id.
func (cl *client) bundleAddBytes(xid, innerXid, id uint32, flags uint16, m openflow.Message) []byte {
	cl.t.Helper()
	inner, err := openflow.Encode(cl.v, innerXid, m)
	if err != nil {
		cl.t.Fatal(err)
	}
	body := binary.BigEndian.AppendUint32(nil, id)
	body = binary.BigEndian.AppendUint16(body, 0)
	body = binary.BigEndian.AppendUint16(body, flags)
	b, err := openflow.Encode(cl.v, xid, &openflow.Unknown{Type: typeBundleAdd, Body: append(body, inner...)})
	if err != nil {
		cl.t.Fatal(err)
	}
	return b
}

func sameXid(xid uint32) uint32 { return xid }

// expectBundleReply reads a bundle control reply of type typ for bundle id.
func (cl *client) expectBundleReply(xid, id uint32, typ uint16) {
	cl.t.Helper()
	h, m := cl.recv()
	u, ok := m.(*openflow.Unknown)
	if !ok || u.Type != typeBundleControl || h.Xid != xid || len(u.Body) < 8 ||
		binary.BigEndian.Uint32(u.Body) != id || binary.BigEndian.Uint16(u.Body[4:]) != typ {
		cl.t.Fatalf("got %T %+v (xid %d), want bundle control reply type %d for bundle %d (xid %d)", m, m, h.Xid, typ, id, xid)
	}
}

// expectError reads an error reply of type typ and code to xid.
func (cl *client) expectError(xid uint32, typ, code uint16) {
	cl.t.Helper()
	h, m := cl.recv()
	e, ok := m.(*openflow.ErrorMsg)
	if !ok || h.Xid != xid || e.Type != typ || e.Code != code {
		cl.t.Fatalf("got %T %+v (xid %d), want error %s to xid %d", m, m, h.Xid, ErrorName(typ, code), xid)
	}
}

// TestBundleCommit opens a bundle, adds two flows and one that ovsxdp
// refuses (ct), commits, and checks that the table holds the two, that
// nothing was in it before the commit, and that the refusal is counted
// as a refused OFPT_FLOW_MOD.
func TestBundleCommit(t *testing.T) {
	br := &checkingBridge{tableBridge{t: flow.NewTable()}}
	s := NewServer(br, Config{Logger: slog.New(slog.DiscardHandler)})
	cl := dial(t, s, openflow.Version15)
	const flags = 1 | 2 // atomic, ordered
	xid := cl.send(bundleCtl(7, bctOpen, flags))
	cl.expectBundleReply(xid, 7, bctOpen+1)
	out := func(port uint32, prio uint16) *openflow.FlowMod {
		fm := flowModWith(nil, applyActions(&openflow.ActOutput{Port: port}))
		fm.Priority = prio
		return fm
	}
	cl.bundleAddMsg(7, flags, out(1, 10), sameXid)
	cl.bundleAddMsg(7, flags, out(2, 20), sameXid)
	bad := cl.bundleAddMsg(7, flags, flowModWith(nil, applyActions(nxRaw(29, 14))), sameXid)
	cl.expectError(bad, openflow.ErrTypeBadAction, openflow.CodeBadActionType)
	cl.barrier()
	if n := br.t.Len(); n != 0 {
		t.Fatalf("%d flows before the commit, want 0", n)
	}
	xid = cl.send(bundleCtl(7, bctCommit, flags))
	cl.expectBundleReply(xid, 7, bctCommit+1)
	if n := br.t.Len(); n != 2 {
		t.Fatalf("%d flows after the commit, want 2", n)
	}
	rej := s.Rejections()
	if len(rej) != 1 || rej[0].Message != "OFPT_FLOW_MOD" || rej[0].Reason != "NXAST_SAMPLE" || rej[0].Count != 1 {
		t.Errorf("rejections %+v, want the sample flow mod", rej)
	}
	if recv := s.Received(); recv["OFPT_FLOW_MOD"] != 3 || recv["OFPT_BUNDLE_ADD_MESSAGE"] != 3 || recv["OFPT_BUNDLE_CONTROL"] != 2 {
		t.Errorf("received %v, want the 3 bundled flow mods counted", recv)
	}
	// The bundle is gone after its commit.
	xid = cl.send(bundleCtl(7, bctCommit, flags))
	cl.expectError(xid, errTypeBundleFailed, codeBundleBadID)
}

// onceBridge is a checkingBridge that records the conversions its
// CheckFlowMod returns and the messages it is asked to commit.
type onceBridge struct {
	checkingBridge
	mu        sync.Mutex // protects converted and committed
	converted []*ofconv.Mod
	committed []BundledMod
}

// CheckFlowMod keeps every conversion, adds too, as BundledMod.Flow.
func (b *onceBridge) CheckFlowMod(v uint8, fm *openflow.FlowMod, _ *flow.FlowBatch) (*ofconv.Mod, bool, error) {
	mod, _, err := b.checkingBridge.CheckFlowMod(v, fm, nil)
	if err == nil {
		b.mu.Lock()
		b.converted = append(b.converted, mod)
		b.mu.Unlock()
	}
	return mod, false, err
}

func (b *onceBridge) CommitBundle(v uint8, mods []BundledMod) (int, error) {
	b.mu.Lock()
	b.committed = append(b.committed, mods...)
	b.mu.Unlock()
	return b.checkingBridge.CommitBundle(v, mods)
}

// TestBundleConvertedOnce checks that each bundled flow mod reaches the
// commit with the conversion its check made when it was added, in order,
// so that the bridge need not convert it again, without its decoded form,
// which the bundle does not keep, and that a flow mod the check refused
// is not part of the commit.
func TestBundleConvertedOnce(t *testing.T) {
	br := &onceBridge{checkingBridge: checkingBridge{tableBridge{t: flow.NewTable()}}}
	s := NewServer(br, Config{Logger: slog.New(slog.DiscardHandler)})
	cl := dial(t, s, openflow.Version14)
	const flags = bundleAtomic | bundleOrdered
	for i := range 3 {
		fm := flowModWith(nil, applyActions(&openflow.ActOutput{Port: uint32(i + 1)}))
		fm.Priority = uint16(10 * (i + 1))
		cl.bundleAddMsg(3, flags, fm, sameXid)
	}
	bad := cl.bundleAddMsg(3, flags, flowModWith(nil, applyActions(nxRaw(29, 14))), sameXid)
	cl.expectError(bad, openflow.ErrTypeBadAction, openflow.CodeBadActionType)
	xid := cl.send(bundleCtl(3, bctCommit, flags))
	cl.expectBundleReply(xid, 3, bctCommit+1)
	if n := br.t.Len(); n != 3 {
		t.Fatalf("%d flows after the commit, want 3", n)
	}
	br.mu.Lock()
	defer br.mu.Unlock()
	if len(br.converted) != 3 || len(br.committed) != 3 {
		t.Fatalf("%d conversions, %d messages committed; want 3 each", len(br.converted), len(br.committed))
	}
	for i, m := range br.committed {
		if m.Flow == nil || m.Flow != br.converted[i] {
			t.Errorf("message %d committed with conversion %p, want %p, its check's", i+1, m.Flow, br.converted[i])
		}
		if m.Msg != nil {
			t.Errorf("message %d was kept decoded (%T) beside its conversion", i+1, m.Msg)
		}
		if m.Flow != nil && m.Flow.Flow.Priority != uint16(10*(i+1)) {
			t.Errorf("message %d is the flow of priority %d, want %d", i+1, m.Flow.Flow.Priority, 10*(i+1))
		}
	}
}

// expectErrorData reads an error reply of type typ and code to xid, and
// checks that its data is msg, whole, as Open vSwitch echoes it.
func (cl *client) expectErrorData(xid uint32, typ, code uint16, msg []byte) {
	cl.t.Helper()
	h, m := cl.recv()
	e, ok := m.(*openflow.ErrorMsg)
	if !ok || h.Xid != xid || e.Type != typ || e.Code != code {
		cl.t.Fatalf("got %T %+v (xid %d), want error %s to xid %d", m, m, h.Xid, ErrorName(typ, code), xid)
	}
	if want := msg; !bytes.Equal(e.Data, want) {
		cl.t.Fatalf("error %s to xid %d carries % x, want % x", ErrorName(typ, code), xid, e.Data, want)
	}
}

// TestBundleCommitAtomic commits a bundle whose fourth message the table
// refuses at commit (a flow that names a group that does not exist):
// that message is answered with its error and the bytes of its add (as
// Open vSwitch 3.1 answers), the commit with
// OFPBFC_MSG_FAILED, and none of the bundle's changes (an add, a delete,
// a modify) took effect or was published. A bundle that adds the group
// first then commits, published once.
func TestBundleCommitAtomic(t *testing.T) {
	br := &checkingBridge{tableBridge{t: flow.NewTable()}}
	s := NewServer(br, Config{Logger: slog.New(slog.DiscardHandler)})
	cl := dial(t, s, openflow.Version14)
	const flags = bundleAtomic | bundleOrdered
	out := func(port uint32, prio uint16) *openflow.FlowMod {
		fm := flowModWith(nil, applyActions(&openflow.ActOutput{Port: port}))
		fm.Priority = prio
		return fm
	}
	toGroup := flowModWith(nil, applyActions(&openflow.ActU32{Type: openflow.ActTypeGroup, Value: 9}))
	toGroup.Priority = 30
	// Two flows before the bundle.
	cl.send(out(3, 5))
	cl.send(out(4, 6))
	cl.barrier()
	before := dumpFlows(br.t)
	gen := br.t.Generation()

	del := out(0, 5)
	del.Command, del.Instructions = openflow.FlowDeleteStrict, nil
	mod := out(7, 6)
	mod.Command = openflow.FlowModifyStrict
	msgs := []*openflow.FlowMod{out(1, 10), del, mod, toGroup, out(2, 20)}
	var xids []uint32
	for _, m := range msgs {
		xids = append(xids, cl.bundleAddMsg(1, flags, m, sameXid))
	}
	xid := cl.send(bundleCtl(1, bctCommit, flags))
	bad := cl.bundleAddBytes(xids[3], xids[3], 1, flags, toGroup)
	cl.expectErrorData(xids[3], openflow.ErrTypeBadAction, 9, bad) // OFPBAC_BAD_OUT_GROUP
	cl.expectError(xid, errTypeBundleFailed, codeBundleMsgFailed)
	if got := dumpFlows(br.t); !slices.Equal(got, before) {
		t.Errorf("after the failed commit the table holds\n%s\nwant, as before it,\n%s", strings.Join(got, "\n"), strings.Join(before, "\n"))
	}
	if g := br.t.Generation(); g != gen {
		t.Errorf("the failed commit published %d times", g-gen)
	}
	// The bundle is gone, failed or not.
	xid = cl.send(bundleCtl(1, bctCommit, flags))
	cl.expectError(xid, errTypeBundleFailed, codeBundleBadID)
	// Nothing of it is left behind to be published with a later change.
	cl.send(out(9, 99))
	cl.barrier()
	if got, want := dumpFlows(br.t), append([]string{"priority=99 actions=output:9"}, before...); !slices.Equal(got, want) {
		t.Errorf("after a later flow mod the table holds\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	gen = br.t.Generation()

	// The same bundle, with the group added first, commits whole.
	bucket := openflow.Bucket{Actions: []openflow.Action{&openflow.ActOutput{Port: 1}}}
	cl.bundleAddMsg(2, flags, &openflow.GroupMod{Command: openflow.GroupAdd, Type: openflow.GroupAll, GroupID: 9, Buckets: []openflow.Bucket{bucket}}, sameXid)
	for _, m := range msgs {
		cl.bundleAddMsg(2, flags, m, sameXid)
	}
	xid = cl.send(bundleCtl(2, bctCommit, flags))
	cl.expectBundleReply(xid, 2, bctCommit+1)
	want := []string{
		"priority=99 actions=output:9",
		"priority=30 actions=group:9",
		"priority=20 actions=output:2",
		"priority=10 actions=output:1",
		"priority=6 actions=output:7",
	}
	if got := dumpFlows(br.t); !slices.Equal(got, want) {
		t.Errorf("after the commit the table holds\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if g := br.t.Generation(); g != gen+1 {
		t.Errorf("the commit published %d times, want once", g-gen)
	}
}

// TestBundlePortMod checks Open vSwitch's rule for port mods, which are
// not atomic: an atomic bundle that holds one fails at commit, the port
// mod answered with OFPBFC_MSG_FAILED, and nothing of it takes effect;
// a bundle that is not atomic takes it. A meter mod cannot be bundled.
func TestBundlePortMod(t *testing.T) {
	br := &checkingBridge{tableBridge{t: flow.NewTable()}}
	s := NewServer(br, Config{Logger: slog.New(slog.DiscardHandler)})
	cl := dial(t, s, openflow.Version15)
	add := flowModWith(nil, applyActions(&openflow.ActOutput{Port: 1}))
	pm := &openflow.PortMod{PortNo: 1, Config: openflow.PortConfigDown, Mask: openflow.PortConfigDown}
	for _, flags := range []uint16{bundleAtomic | bundleOrdered, bundleOrdered} {
		id := uint32(flags)
		cl.bundleAddMsg(id, flags, add, sameXid)
		pmXid := cl.bundleAddMsg(id, flags, pm, sameXid)
		xid := cl.send(bundleCtl(id, bctCommit, flags))
		if flags&bundleAtomic == 0 {
			cl.expectBundleReply(xid, id, bctCommit+1)
			if n := br.t.Len(); n != 1 {
				t.Errorf("a bundle that is not atomic added %d flows, want 1", n)
			}
			continue
		}
		cl.expectErrorData(pmXid, errTypeBundleFailed, codeBundleMsgFailed, cl.bundleAddBytes(pmXid, pmXid, id, flags, pm))
		cl.expectError(xid, errTypeBundleFailed, codeBundleMsgFailed)
		if n := br.t.Len(); n != 0 {
			t.Errorf("an atomic bundle with a port mod added %d flows, want none", n)
		}
	}
	xid := cl.bundleAddMsg(9, 0, &openflow.Unknown{Type: openflow.TypeMeterMod, Body: []byte{0, 2, 0, 0, 0xff, 0xff, 0xff, 0xff}}, sameXid)
	cl.expectError(xid, errTypeBundleFailed, codeBundleMsgUnsup)
}

// TestBundleONF commits OpenFlow 1.3 bundles, ONF's extension as Open
// vSwitch takes it: the replies are ONF experimenter messages, the
// errors ONF experimenter errors (2300 + the OFPBFC code), and a commit
// is all or nothing as in OpenFlow 1.4.
func TestBundleONF(t *testing.T) {
	br := &checkingBridge{tableBridge{t: flow.NewTable()}}
	s := NewServer(br, Config{Logger: slog.New(slog.DiscardHandler)})
	cl := dial(t, s, openflow.Version13)
	const flags = bundleAtomic | bundleOrdered
	ctl := func(id uint32, typ uint16) *openflow.Experimenter {
		u := bundleCtl(id, typ, flags)
		return &openflow.Experimenter{Experimenter: onfExperimenter, ExpType: onfBundleControl, Data: u.Body}
	}
	add := func(id uint32, m openflow.Message) uint32 {
		cl.xd++
		inner, err := openflow.Encode(cl.v, cl.xd, m)
		if err != nil {
			t.Fatal(err)
		}
		body := binary.BigEndian.AppendUint32(nil, id)
		body = binary.BigEndian.AppendUint16(body, 0)
		body = binary.BigEndian.AppendUint16(body, flags)
		b, err := openflow.Encode(cl.v, cl.xd, &openflow.Experimenter{Experimenter: onfExperimenter, ExpType: onfBundleAdd, Data: append(body, inner...)})
		if err != nil {
			t.Fatal(err)
		}
		cl.sendRaw(b)
		return cl.xd
	}
	expectONFError := func(xid uint32, code uint16) {
		t.Helper()
		h, m := cl.recv()
		e, ok := m.(*openflow.ErrorMsg)
		if !ok || h.Xid != xid || e.Type != openflow.ErrTypeExperimenter || e.Experimenter != onfExperimenter || e.Code != onfBundleErrBase+code {
			t.Fatalf("got %T %+v (xid %d), want ONF bundle error %d to xid %d", m, m, h.Xid, onfBundleErrBase+code, xid)
		}
	}
	good := flowModWith(nil, applyActions(&openflow.ActOutput{Port: 1}))
	bad := flowModWith(nil, applyActions(&openflow.ActU32{Type: openflow.ActTypeGroup, Value: 9}))
	bad.Priority = 9

	xid := cl.send(ctl(1, bctOpen))
	h, m := cl.recv()
	if r, ok := m.(*openflow.Experimenter); !ok || h.Xid != xid || r.Experimenter != onfExperimenter || r.ExpType != onfBundleControl ||
		binary.BigEndian.Uint16(r.Data[4:]) != bctOpen+1 {
		t.Fatalf("bundle open answered with %T %+v, want ONFT_BUNDLE_CONTROL OPEN_REPLY", m, m)
	}
	add(1, good)
	badXid := add(1, bad)
	xid = cl.send(ctl(1, bctCommit))
	cl.expectError(badXid, openflow.ErrTypeBadAction, 9) // OFPBAC_BAD_OUT_GROUP
	expectONFError(xid, codeBundleMsgFailed)
	if n := br.t.Len(); n != 0 {
		t.Fatalf("%d flows after a failed commit, want none", n)
	}
	xid = cl.send(ctl(1, bctCommit))
	expectONFError(xid, codeBundleBadID)

	add(2, good)
	xid = cl.send(ctl(2, bctCommit))
	if h, m := cl.recv(); h.Xid != xid {
		t.Fatalf("commit answered with %T %+v", m, m)
	} else if r, ok := m.(*openflow.Experimenter); !ok || binary.BigEndian.Uint16(r.Data[4:]) != bctCommit+1 {
		t.Fatalf("commit answered with %T %+v, want ONFT_BUNDLE_CONTROL COMMIT_REPLY", m, m)
	}
	if n := br.t.Len(); n != 1 {
		t.Fatalf("%d flows after the commit, want 1", n)
	}
	if recv := s.Received(); recv["ONFT_BUNDLE_ADD_MESSAGE"] != 3 || recv["ONFT_BUNDLE_CONTROL"] != 4 {
		t.Errorf("received %v, want the ONF bundle messages named", recv)
	}
}

// dumpFlows is the table's flows as dump-flows lists them, without
// counters.
func dumpFlows(t *flow.Table) []string {
	var out []string
	for _, r := range t.Dump(nil) {
		f := r.Flow()
		out = append(out, flow.FormatFlow(&f))
	}
	return out
}

func TestBundleErrors(t *testing.T) {
	br := &checkingBridge{tableBridge{t: flow.NewTable()}}
	s := NewServer(br, Config{Logger: slog.New(slog.DiscardHandler)})
	cl := dial(t, s, openflow.Version14)
	fm := flowModWith(nil, applyActions(&openflow.ActOutput{Port: 1}))

	// An add opens its bundle; a second open of it is refused.
	cl.bundleAddMsg(1, 0, fm, sameXid)
	xid := cl.send(bundleCtl(1, bctOpen, 0))
	cl.expectError(xid, errTypeBundleFailed, codeBundleExist)
	// Flags must match the bundle's. A commit discards the bundle
	// whatever its outcome, as Open vSwitch does, and its messages
	// never run.
	xid = cl.send(bundleCtl(1, bctCommit, 1))
	cl.expectError(xid, errTypeBundleFailed, codeBundleBadFlags)
	xid = cl.send(bundleCtl(1, bctCommit, 0))
	cl.expectError(xid, errTypeBundleFailed, codeBundleBadID)
	if n := br.t.Len(); n != 0 {
		t.Fatalf("%d flows after a commit with the wrong flags, want 0", n)
	}
	cl.bundleAddMsg(1, 0, fm, sameXid)
	// A closed bundle takes no more messages.
	xid = cl.send(bundleCtl(1, bctClose, 0))
	cl.expectBundleReply(xid, 1, bctClose+1)
	xid = cl.bundleAddMsg(1, 0, fm, sameXid)
	cl.expectError(xid, errTypeBundleFailed, codeBundleClosed)
	// A discarded bundle's messages never run.
	xid = cl.send(bundleCtl(1, bctDiscard, 0))
	cl.expectBundleReply(xid, 1, bctDiscard+1)
	if n := br.t.Len(); n != 0 {
		t.Fatalf("%d flows after the discard, want 0", n)
	}
	// The bundled message's xid must be the add's.
	xid = cl.bundleAddMsg(2, 0, fm, func(x uint32) uint32 { return x + 100 })
	cl.expectError(xid, errTypeBundleFailed, codeBundleMsgBadXid)
	// Only modifications can be bundled.
	xid = cl.bundleAddMsg(2, 0, &openflow.BarrierRequest{}, sameXid)
	cl.expectError(xid, errTypeBundleFailed, codeBundleMsgUnsup)
	// An unknown control type.
	xid = cl.send(bundleCtl(2, 9, 0))
	cl.expectError(xid, errTypeBundleFailed, codeBundleBadType)
	// A connection holds a bounded number of bundles.
	// (Bundle 2 is not open: its adds were refused before they opened it.)
	for id := uint32(10); id < 10+maxBundles; id++ {
		xid = cl.send(bundleCtl(id, bctOpen, 0))
		cl.expectBundleReply(xid, id, bctOpen+1)
	}
	xid = cl.send(bundleCtl(99, bctOpen, 0))
	cl.expectError(xid, errTypeBundleFailed, codeOutOfBundles)
	// OpenFlow 1.3 has no OFPT_BUNDLE_CONTROL (Open vSwitch takes ONF's
	// extension there): it is an unknown message type.
	cl13 := dial(t, s, openflow.Version13)
	xid = cl13.send(bundleCtl(1, bctOpen, 0))
	cl13.expectError(xid, openflow.ErrTypeBadRequest, openflow.CodeBadRequestType)
}

// TestNoMeters checks what ovsxdp, which has no meters, conntrack or
// tunnel metadata, answers to meter messages, a zone flush and a TLV table
// request.
func TestNoMeters(t *testing.T) {
	s := newTestServer()
	cl := dial(t, s, openflow.Version15)
	xid := cl.send(&openflow.MultipartRaw{Type: openflow.MPMeterFeatures})
	h, m := cl.recv()
	r, ok := m.(*openflow.MultipartRaw)
	if !ok || !r.Reply || r.Type != openflow.MPMeterFeatures || h.Xid != xid || len(r.Body) != openflow.MeterFeaturesLen ||
		binary.BigEndian.Uint32(r.Body) != 0 {
		t.Fatalf("meter features answered with %T %+v, want a reply with max_meter 0", m, m)
	}
	// Deleting every meter deletes nothing and succeeds.
	cl.send(&openflow.Unknown{Type: openflow.TypeMeterMod, Body: []byte{0, 2, 0, 0, 0xff, 0xff, 0xff, 0xff}})
	// So does flushing a conntrack zone.
	cl.send(&openflow.Experimenter{Experimenter: openflow.NiciraExperimenter, ExpType: nxtCTFlushZone, Data: make([]byte, 8)})
	cl.barrier()
	// Adding a meter is refused.
	xid = cl.send(&openflow.Unknown{Type: openflow.TypeMeterMod, Body: []byte{0, 0, 0, 1, 0, 0, 0, 1}})
	cl.expectError(xid, errTypeMeterModFailed, codeMeterInvalid)
	xid = cl.send(&openflow.Unknown{Type: openflow.TypeMeterMod, Body: []byte{0, 9, 0, 0, 0, 0, 0, 1}})
	cl.expectError(xid, errTypeMeterModFailed, codeMeterBadCommand)
	xid = cl.send(&openflow.Unknown{Type: openflow.TypeMeterMod, Body: []byte{0, 2}})
	cl.expectError(xid, openflow.ErrTypeBadRequest, openflow.CodeBadRequestLen)
	// A bridge without a TLV table answers with one that has no room.
	xid = cl.send(&openflow.TLVTableRequest{})
	h, m = cl.recv()
	if e, ok := m.(*openflow.TLVTableReply); !ok || h.Xid != xid || e.MaxOptionSpace != 0 || e.MaxFields != 0 || len(e.Mappings) != 0 {
		t.Fatalf("TLV table request answered with %T %+v, want a reply with no room", m, m)
	}
	if got := s.Rejections(); len(got) != 3 {
		t.Errorf("rejections %+v, want the meter add, the bad command and the short meter mod", got)
	}
}

// TestBundleAddOpens checks the cases in which an add decides whether it
// opens its bundle: an add to a bundle that does not exist opens it only
// when it is taken, with valid flags and room for one more bundle, and an
// add to an open bundle keeps to its flags.
func TestBundleAddOpens(t *testing.T) {
	br := &checkingBridge{tableBridge{t: flow.NewTable()}}
	s := NewServer(br, Config{Logger: slog.New(slog.DiscardHandler)})
	cl := dial(t, s, openflow.Version14)
	fm := flowModWith(nil, applyActions(&openflow.ActOutput{Port: 1}))

	// Unknown flags: refused, and the bundle stays unopened, so that
	// an open of it is taken.
	xid := cl.bundleAddMsg(1, 0x80, fm, sameXid)
	cl.expectError(xid, errTypeBundleFailed, codeBundleBadFlags)
	xid = cl.send(bundleCtl(1, bctOpen, bundleAtomic))
	cl.expectBundleReply(xid, 1, bctOpen+1)
	// An add with other flags than the open bundle's is refused and
	// leaves the bundle as it was.
	xid = cl.bundleAddMsg(1, bundleOrdered, fm, sameXid)
	cl.expectError(xid, errTypeBundleFailed, codeBundleBadFlags)
	// An add that opens a bundle takes its flags.
	cl.bundleAddMsg(2, bundleOrdered, fm, sameXid)
	xid = cl.bundleAddMsg(2, 0, fm, sameXid)
	cl.expectError(xid, errTypeBundleFailed, codeBundleBadFlags)
	for id := uint32(3); id <= maxBundles; id++ {
		cl.bundleAddMsg(id, 0, fm, sameXid)
	}
	// The connection holds as many bundles as it may: an add to another
	// is refused and does not open it.
	xid = cl.bundleAddMsg(99, 0, fm, sameXid)
	cl.expectError(xid, errTypeBundleFailed, codeOutOfBundles)
	xid = cl.send(bundleCtl(99, bctCommit, 0))
	cl.expectError(xid, errTypeBundleFailed, codeBundleBadID)
	// Bundle 1 holds nothing (its add was refused), bundle 2 the flow
	// of the add that opened it.
	xid = cl.send(bundleCtl(1, bctCommit, bundleAtomic))
	cl.expectBundleReply(xid, 1, bctCommit+1)
	if n := br.t.Len(); n != 0 {
		t.Fatalf("%d flows after bundle 1's commit, want 0", n)
	}
	xid = cl.send(bundleCtl(2, bctCommit, bundleOrdered))
	cl.expectBundleReply(xid, 2, bctCommit+1)
	if n := br.t.Len(); n != 1 {
		t.Fatalf("%d flows after bundle 2's commit, want 1", n)
	}
}
