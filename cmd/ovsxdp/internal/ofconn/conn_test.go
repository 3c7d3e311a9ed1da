package ofconn

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/ofconv"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// tableBridge is a Bridge over a real flow table, without ports.
type tableBridge struct{ t *flow.Table }

func (b *tableBridge) DatapathID() uint64     { return 1 }
func (b *tableBridge) Ports() []openflow.Port { return []openflow.Port{{PortNo: 1, Name: "p1"}} }
func (b *tableBridge) FlowMod(v uint8, fm *openflow.FlowMod, _ Origin) error {
	mod, err := ofconv.FlowFromMod(nil, v, fm)
	if err != nil {
		return err
	}
	switch mod.Cmd {
	case flow.CmdAdd:
		return ofconv.TableError(b.t.Add(mod.Flow))
	case flow.CmdModify:
		b.t.Modify(mod.Flow, mod.Strict)
	default:
		b.t.Delete(mod.Flow, mod.Strict)
	}
	return nil
}

// CommitBundle commits a bundle as the daemon's bridge does: one atomic
// change of the table.
func (b *tableBridge) CommitBundle(v uint8, mods []BundledMod) (int, error) {
	failed := -1
	err := b.t.UpdateAtomic(func(tx *flow.TableTxn) error {
		for i, m := range mods {
			err := m.Refuse
			if err == nil && m.Adds != nil {
				if err = tx.AddBatch(m.Adds, 1); err != nil {
					failed = i
					return ofconv.TableError(err)
				}
				continue
			}
			if err == nil && m.Flow != nil {
				err = txFlowMod(tx, m.Flow)
			} else if err == nil {
				err = txMod(tx, v, m.Msg)
			}
			if err != nil {
				failed = i
				return err
			}
		}
		return nil
	})
	return failed, err
}

// txMod runs a bundled message in tx as tableBridge runs it alone.
func txMod(tx *flow.TableTxn, v uint8, m openflow.Message) error {
	switch m := m.(type) {
	case *openflow.FlowMod:
		mod, err := ofconv.FlowFromMod(nil, v, m)
		if err != nil {
			return err
		}
		return txFlowMod(tx, mod)
	case *openflow.GroupMod:
		switch m.Command {
		case openflow.GroupAdd:
			g, err := ofconv.GroupFromMod(nil, v, m)
			if err != nil {
				return err
			}
			return ofconv.TableError(tx.AddGroups([]*flow.Group{g}))
		case openflow.GroupDelete:
			tx.DeleteGroups(m.GroupID)
			return nil
		}
		return ofconv.GroupModError(ofconv.CodeGroupBadCommand, "command %d", m.Command)
	case *openflow.PortMod:
		return nil
	}
	return fmt.Errorf("%T cannot be bundled", m)
}

// txFlowMod runs a converted flow mod in tx.
func txFlowMod(tx *flow.TableTxn, mod *ofconv.Mod) error {
	switch mod.Cmd {
	case flow.CmdAdd:
		return ofconv.TableError(tx.Add(mod.Flow))
	case flow.CmdModify:
		tx.Modify(mod.Flow, mod.Strict, false)
	default:
		tx.Delete(mod.Flow, mod.Strict)
	}
	return nil
}

var _ BundleCommitter = (*tableBridge)(nil)

func (b *tableBridge) Flows(v uint8, req *openflow.FlowStatsRequest) ([]openflow.FlowStats, error) {
	sel, err := ofconv.SelectionFromStats(nil, v, req)
	if err != nil {
		return nil, err
	}
	var out []openflow.FlowStats
	for _, r := range b.t.Dump(sel) {
		e, err := ofconv.FlowStats(v, req.Nicira, r, time.Now())
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}
func (b *tableBridge) Aggregate(v uint8, req *openflow.FlowStatsRequest) (*openflow.AggregateReply, error) {
	fs, err := b.Flows(v, req)
	return &openflow.AggregateReply{FlowCount: uint32(len(fs))}, err
}
func (b *tableBridge) Tables(uint8) []openflow.TableStats { return []openflow.TableStats{{TableID: 0}} }
func (b *tableBridge) PortStats(uint8, uint32) ([]openflow.PortStats, error) {
	return []openflow.PortStats{{PortNo: 1}}, nil
}
func (b *tableBridge) PortMod(uint8, *openflow.PortMod, Origin) error { return nil }
func (b *tableBridge) PacketOut(uint8, *openflow.PacketOut) error     { return nil }
func (b *tableBridge) GroupMod(v uint8, gm *openflow.GroupMod) error {
	switch gm.Command {
	case openflow.GroupAdd:
		g, err := ofconv.GroupFromMod(nil, v, gm)
		if err != nil {
			return err
		}
		return ofconv.TableError(b.t.AddGroups([]*flow.Group{g}))
	case openflow.GroupDelete:
		b.t.DeleteGroups(gm.GroupID)
		return nil
	}
	return ofconv.GroupModError(ofconv.CodeGroupBadCommand, "command %d", gm.Command)
}
func (b *tableBridge) GroupDesc(v uint8, id uint32) ([]openflow.GroupDesc, error) {
	var out []openflow.GroupDesc
	for _, g := range b.t.Groups() {
		d, err := ofconv.GroupDesc(v, &g.Group)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}
func (b *tableBridge) GroupStats(v uint8, id uint32) ([]openflow.GroupStats, error) {
	snap := b.t.Snapshot()
	var out []openflow.GroupStats
	for _, g := range snap.Groups() {
		out = append(out, ofconv.GroupStats(g, snap.GroupRefs(g.ID), time.Now()))
	}
	return out, nil
}

func newTestServer() *Server {
	return NewServer(&tableBridge{t: flow.NewTable()}, Config{Logger: slog.New(slog.DiscardHandler)})
}

// client is the peer side of a connection under test.
type client struct {
	t  *testing.T
	c  net.Conn
	r  *openflow.Reader
	v  uint8
	xd uint32
}

func dial(t *testing.T, s *Server, v uint8) *client {
	t.Helper()
	a, b := net.Pipe()
	done := make(chan struct{})
	go func() { s.ServeConn(b); close(done) }()
	t.Cleanup(func() {
		a.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("connection handler did not end after the peer closed")
		}
	})
	cl := &client{t: t, c: a, r: openflow.NewReader(a, 0), v: v}
	h, m := cl.recv()
	if _, ok := m.(*openflow.Hello); !ok {
		t.Fatalf("first message %T (header %+v), want hello", m, h)
	}
	hello, _ := openflow.NewHello(v)
	cl.send(hello)
	return cl
}

func (cl *client) send(m openflow.Message) uint32 {
	cl.t.Helper()
	cl.xd++
	b, err := openflow.Encode(cl.v, cl.xd, m)
	if err != nil {
		cl.t.Fatal(err)
	}
	cl.sendRaw(b)
	return cl.xd
}

func (cl *client) sendRaw(b []byte) {
	cl.t.Helper()
	cl.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := cl.c.Write(b); err != nil {
		cl.t.Fatal(err)
	}
}

func (cl *client) recv() (openflow.Header, openflow.Message) {
	cl.t.Helper()
	cl.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := cl.r.ReadMessage()
	if err != nil {
		cl.t.Fatal(err)
	}
	h, m, err := openflow.Decode(b)
	if err != nil {
		cl.t.Fatalf("decode reply: %v", err)
	}
	return h, m
}

func TestNegotiationAndBasics(t *testing.T) {
	for _, v := range Versions {
		s := newTestServer()
		cl := dial(t, s, v)
		xid := cl.send(&openflow.EchoRequest{Data: []byte("ping")})
		h, m := cl.recv()
		if e, ok := m.(*openflow.EchoReply); !ok || h.Xid != xid || string(e.Data) != "ping" || h.Version != v {
			t.Fatalf("v%d: echo answered with %+v %#v", v, h, m)
		}
		cl.send(&openflow.FeaturesRequest{})
		if _, m := cl.recv(); m.(*openflow.FeaturesReply).DatapathID != 1 {
			t.Fatalf("v%d: features %#v", v, m)
		}
		cl.send(&openflow.BarrierRequest{})
		if _, m := cl.recv(); m == nil {
			t.Fatal("no barrier reply")
		} else if _, ok := m.(*openflow.BarrierReply); !ok {
			t.Fatalf("v%d: barrier answered with %T", v, m)
		}
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name           string
		msg            func(v uint8) []byte
		wantType, code uint16
	}{
		{"unknown type", func(v uint8) []byte { return []byte{v, 99, 0, 8, 0, 0, 0, 7} },
			openflow.ErrTypeBadRequest, openflow.CodeBadRequestType},
		{"wrong version", func(v uint8) []byte { return []byte{v ^ 0x07, 2, 0, 8, 0, 0, 0, 7} },
			openflow.ErrTypeBadRequest, openflow.CodeBadRequestVersion},
		{"missing group", func(v uint8) []byte {
			fm := &openflow.FlowMod{Command: openflow.FlowAdd, BufferID: openflow.NoBuffer, OutPort: openflow.PortAny, OutGroup: 0xffffffff,
				Instructions: []openflow.Instruction{{Type: openflow.InstApplyActions, Actions: []openflow.Action{&openflow.ActU32{Type: openflow.ActTypeGroup, Value: 1}}}}}
			b, _ := openflow.Encode(v, 7, fm)
			return b
		}, openflow.ErrTypeBadAction, 9}, // OFPBAC_BAD_OUT_GROUP
		{"existing group", func(v uint8) []byte {
			gm := &openflow.GroupMod{Command: openflow.GroupAdd, GroupID: 5}
			b, _ := openflow.Encode(v, 7, gm)
			return b
		}, openflow.ErrTypeGroupModFailed, 0}, // OFPGMFC_GROUP_EXISTS
		{"unsupported field", func(v uint8) []byte {
			f, _ := openflow.FieldByName("tun_gbp_id", false)
			fm := &openflow.FlowMod{Command: openflow.FlowAdd, BufferID: openflow.NoBuffer, OutPort: openflow.PortAny, OutGroup: 0xffffffff,
				Match: []openflow.Field{{Name: "tun_gbp_id", Class: f.Class, Field: f.Field, Value: []byte{0, 1}}}}
			b, _ := openflow.Encode(v, 7, fm)
			return b
		}, openflow.ErrTypeBadMatch, openflow.CodeBadMatchField},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := flow.NewTable()
			if err := tb.AddGroups([]*flow.Group{{ID: 5, Type: flow.GroupAll}}); err != nil {
				t.Fatal(err)
			}
			cl := dial(t, NewServer(&tableBridge{t: tb}, Config{Logger: slog.New(slog.DiscardHandler)}), openflow.Version13)
			b := tc.msg(openflow.Version13)
			cl.sendRaw(b)
			h, m := cl.recv()
			e, ok := m.(*openflow.ErrorMsg)
			if !ok || h.Xid != 7 || e.Type != tc.wantType || e.Code != tc.code {
				t.Fatalf("got %+v %#v, want error %d/%d", h, m, tc.wantType, tc.code)
			}
			if !bytes.HasPrefix(b, e.Data) || len(e.Data) == 0 {
				t.Errorf("error data %x is not the start of the request %x", e.Data, b)
			}
			// The connection goes on.
			cl.send(&openflow.EchoRequest{})
			if _, m := cl.recv(); m == nil {
				t.Fatal("no echo reply after the error")
			}
		})
	}
}

func TestIncompatibleHello(t *testing.T) {
	s := newTestServer()
	a, b := net.Pipe()
	go s.ServeConn(b)
	defer a.Close()
	r := openflow.NewReader(a, 0)
	a.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	hello, _ := openflow.NewHello(0x02) // OpenFlow 1.1 only
	raw, _ := openflow.Encode(0x02, 1, hello)
	a.Write(raw)
	msg, err := r.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	_, m, err := openflow.Decode(msg)
	if e, ok := m.(*openflow.ErrorMsg); err != nil || !ok || e.Type != openflow.ErrTypeHelloFailed {
		t.Fatalf("got %#v, %v; want a hello failed error", m, err)
	}
	if _, err := r.ReadMessage(); !errors.Is(err, io.EOF) {
		t.Fatalf("connection not closed after the failed hello: %v", err)
	}
}

// TestFirstMessageNotHello checks that a connection whose first message
// is not a hello is dropped without an error reply, as Open vSwitch 3.1
// drops it, and that the rejection is counted.
func TestFirstMessageNotHello(t *testing.T) {
	s := newTestServer()
	a, b := net.Pipe()
	go s.ServeConn(b)
	defer a.Close()
	r := openflow.NewReader(a, 0)
	a.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.ReadMessage(); err != nil { // the server's hello
		t.Fatal(err)
	}
	raw, _ := openflow.Encode(openflow.Version13, 1, &openflow.EchoRequest{Data: make([]byte, 100)})
	go a.Write(raw)
	if msg, err := r.ReadMessage(); !errors.Is(err, io.EOF) {
		t.Fatalf("got %x, %v; want the connection closed", msg, err)
	}
	got := s.Rejections()
	if len(got) != 1 || got[0].Message != "OFPT_ECHO_REQUEST" || got[0].Error != "OFPHFC_EPERM" || got[0].Count != 1 {
		t.Fatalf("rejections %+v", got)
	}
}

// TestMultipartSplit checks that a flow dump too large for one message
// arrives in several, all but the last flagged "more".
func TestMultipartSplit(t *testing.T) {
	s := newTestServer()
	cl := dial(t, s, openflow.Version13)
	const n = 3000
	var fs []flow.Flow
	for i := range n {
		f, err := flow.ParseFlow("priority=1,ip,nw_dst=10.0."+strconv.Itoa(i/256)+"."+strconv.Itoa(i%256)+",actions=output:1,note:0102030405060708", flow.CmdAdd)
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, *f)
	}
	s.br.(*tableBridge).t.AddFlows(fs)
	cl.send(&openflow.FlowStatsRequest{TableID: 0xff, OutPort: openflow.PortAny, OutGroup: 0xffffffff})
	got, parts := 0, 0
	for {
		_, m := cl.recv()
		r := m.(*openflow.FlowStatsReply)
		got += len(r.Entries)
		parts++
		if r.Flags&openflow.MultipartMore == 0 {
			break
		}
	}
	if got != n || parts < 2 {
		t.Fatalf("%d flows in %d parts, want %d in several", got, parts, n)
	}
}

// TestGroups adds a group with a group mod and finds it in the group
// desc and group stats replies, in OpenFlow 1.3 and 1.5, and answers a
// group features request.
func TestGroups(t *testing.T) {
	for _, v := range []uint8{openflow.Version13, openflow.Version15} {
		cl := dial(t, newTestServer(), v)
		bk := openflow.Bucket{BucketID: 0, Weight: 1, WatchPort: openflow.PortAny, WatchGroup: openflow.GroupAny, HasWeight: true,
			HasWatchPort: v < openflow.Version15, HasWatchGroup: v < openflow.Version15, Actions: []openflow.Action{&openflow.ActOutput{Port: 1}}}
		cl.send(&openflow.GroupMod{Command: openflow.GroupAdd, Type: openflow.GroupSelect, GroupID: 3, Buckets: []openflow.Bucket{bk}})
		xid := cl.send(&openflow.GroupDescRequest{GroupID: GroupAll})
		h, m := cl.recv()
		d, ok := m.(*openflow.GroupDescReply)
		if !ok || h.Xid != xid || len(d.Entries) != 1 || d.Entries[0].GroupID != 3 || d.Entries[0].Type != openflow.GroupSelect ||
			len(d.Entries[0].Buckets) != 1 || d.Entries[0].Buckets[0].Weight != 1 {
			t.Fatalf("v%d: group desc answered with %+v %#v", v, h, m)
		}
		xid = cl.send(&openflow.GroupStatsRequest{GroupID: GroupAll})
		h, m = cl.recv()
		st, ok := m.(*openflow.GroupStatsReply)
		if !ok || h.Xid != xid || len(st.Entries) != 1 || st.Entries[0].GroupID != 3 || len(st.Entries[0].Buckets) != 1 {
			t.Fatalf("v%d: group stats answered with %+v %#v", v, h, m)
		}
		xid = cl.send(&openflow.MultipartRaw{Type: mpGroupFeatures})
		h, m = cl.recv()
		if f, ok := m.(*openflow.MultipartRaw); !ok || h.Xid != xid || !f.Reply || f.Type != mpGroupFeatures || len(f.Body) != 40 {
			t.Fatalf("v%d: group features answered with %+v %#v", v, h, m)
		}
		// del-groups with OFPG_ALL empties the table.
		cl.send(&openflow.GroupMod{Command: openflow.GroupDelete, GroupID: GroupAll})
		cl.send(&openflow.GroupDescRequest{GroupID: GroupAll})
		if _, m := cl.recv(); len(m.(*openflow.GroupDescReply).Entries) != 0 {
			t.Fatalf("v%d: groups left after a delete of all: %#v", v, m)
		}
	}
}
