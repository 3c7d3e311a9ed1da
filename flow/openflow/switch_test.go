package openflow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// fakeSwitch plays the switch side of an OpenFlow connection well enough
// for ovs-ofctl's commands, using this package's codec for every reply. It
// records every message the peer sent, and keeps the flows added so that a
// later dump-flows in the same test reports them.
type fakeSwitch struct {
	t    testing.TB
	sock string
	ln   net.Listener

	mu       sync.Mutex // protects the fields below
	captured []captured
	flows    map[uint8][]*FlowMod // by negotiated version
	errs     []error
}

type captured struct {
	version uint8
	raw     []byte
}

func newFakeSwitch(t testing.TB) *fakeSwitch {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "br0.mgmt")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatalf("listen %s: %v", sock, err)
	}
	s := &fakeSwitch{t: t, sock: sock, ln: ln, flows: map[uint8][]*FlowMod{}}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return s
}

func (s *fakeSwitch) fail(err error) {
	s.mu.Lock()
	s.errs = append(s.errs, err)
	s.mu.Unlock()
}

var switchPort = Port{PortNo: 1, HWAddr: [6]byte{0x02, 0, 0, 0, 0, 1}, Name: "p1", Curr: 1 << 6, CurrSpeed: 10000000, MaxSpeed: 10000000}

// serve handles one connection until the peer closes it.
func (s *fakeSwitch) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	hello, hv := NewHello(Version10, Version13, Version14, Version15)
	send := func(v uint8, xid uint32, m Message) {
		b, err := Encode(v, xid, m)
		if err == nil {
			_, err = c.Write(b)
		}
		if err != nil {
			s.fail(fmt.Errorf("send %T: %w", m, err))
		}
	}
	send(hv, 0, hello)
	rd := NewReader(c, 0)
	var v uint8
	for {
		raw, err := rd.ReadMessage()
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				s.fail(err)
			}
			return
		}
		h, m, err := Decode(raw)
		s.mu.Lock()
		s.captured = append(s.captured, captured{version: h.Version, raw: append([]byte(nil), raw...)})
		s.mu.Unlock()
		if err != nil {
			s.fail(fmt.Errorf("decode %x: %w", raw, err))
			continue
		}
		if hm, ok := m.(*Hello); ok {
			if v, err = Negotiate([]uint8{Version10, Version13, Version14, Version15}, h.Version, hm); err != nil {
				s.fail(err)
				return
			}
			continue
		}
		switch m := m.(type) {
		case *EchoRequest:
			send(v, h.Xid, &EchoReply{Data: m.Data})
		case *FeaturesRequest:
			fr := &FeaturesReply{DatapathID: 0xabc, NTables: 254, Capabilities: 0xc7}
			if v == Version10 {
				fr.Actions = 0xfff
				fr.Ports = []Port{switchPort}
			}
			send(v, h.Xid, fr)
		case *GetConfigRequest:
			send(v, h.Xid, &GetConfigReply{SwitchConfig{MissSendLen: 128}})
		case *BarrierRequest:
			send(v, h.Xid, &BarrierReply{})
		case *NXRoleRequest:
			send(v, h.Xid, &NXRoleReply{Role: m.Role})
		case *RoleRequest:
			send(v, h.Xid, &RoleReply{m.Role})
		case *FlowMod:
			s.mu.Lock()
			if m.Command == FlowAdd {
				s.flows[v] = append(s.flows[v], m)
			}
			s.mu.Unlock()
		case *DescRequest:
			send(v, h.Xid, &DescReply{MfrDesc: "ovsxdp", HWDesc: "test", SWDesc: "codec", SerialNum: "1", DPDesc: "br0"})
		case *FlowStatsRequest:
			if m.Aggregate {
				send(v, h.Xid, &AggregateReply{Nicira: m.Nicira, PacketCount: 7, ByteCount: 700, FlowCount: 1,
					Stats15: OXSFlowCount | OXSPacketCount | OXSByteCount})
				break
			}
			send(v, h.Xid, s.flowStats(v, m.Nicira))
		case *PortDescRequest:
			send(v, h.Xid, &PortDescReply{Ports: []Port{switchPort}})
		case *PortStatsRequest:
			send(v, h.Xid, &PortStatsReply{Entries: []PortStats{{PortNo: 1, RxPackets: 3, TxPackets: 4, RxBytes: 300, TxBytes: 400}}})
		case *TableStatsRequest:
			send(v, h.Xid, &TableStatsReply{Entries: []TableStats{{TableID: 0, Name: "classifier", ActiveCount: 1, LookupCount: 10, MatchedCount: 9}}})
		case *GroupDescRequest:
			send(v, h.Xid, &GroupDescReply{Entries: []GroupDesc{}})
		case *TableFeaturesRequest:
			send(v, h.Xid, &TableFeaturesReply{Tables: []TableFeatures{tableFeatures0()}})
		case *FlowMonitorRequest:
			// No flows to report; updates would follow as flows change.
			rep := &MultipartRaw{Reply: true, Type: MPFlowMonitor}
			switch m.Format {
			case MonitorNicira:
				rep = &MultipartRaw{Reply: true, Type: MPExperimenter, Experimenter: NiciraExperimenter, ExpType: nxstFlowMonitor}
			case MonitorONF:
				rep = &MultipartRaw{Reply: true, Type: MPExperimenter, Experimenter: onfExperimenter, ExpType: onfstFlowMonitor}
			}
			send(v, h.Xid, rep)
		case *GroupStatsRequest:
			send(v, h.Xid, &GroupStatsReply{Entries: []GroupStats{}})
		}
	}
}

// flowStats reports the flows added so far on connections of version v as
// a flow stats reply of that version.
func (s *fakeSwitch) flowStats(v uint8, nicira bool) Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	rep := &FlowStatsReply{Nicira: nicira, Entries: []FlowStats{}}
	for _, fm := range s.flows[v] {
		e := FlowStats{TableID: fm.TableID, Priority: fm.Priority, IdleTimeout: fm.IdleTimeout, HardTimeout: fm.HardTimeout,
			Cookie: fm.Cookie, Match10: fm.Match10, Match: fm.Match, Actions: fm.Actions, Instructions: fm.Instructions,
			Stats15: OXSDuration | OXSPacketCount | OXSByteCount}
		if v == Version10 && !nicira && fm.Nicira {
			continue // an NXM flow cannot be reported in the 1.0 format
		}
		if v == Version10 && nicira && !fm.Nicira {
			e.Match = e.Match10.Fields()
		}
		rep.Entries = append(rep.Entries, e)
	}
	return rep
}

// take returns and clears the captured messages and any server errors.
func (s *fakeSwitch) take() ([]captured, []error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, e := s.captured, s.errs
	s.captured, s.errs = nil, nil
	return c, e
}

// ofctl runs ovs-ofctl against the fake switch and returns its output.
func (s *fakeSwitch) ofctl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := s.ofctlErr(t, args...)
	if err != nil {
		t.Fatalf("ovs-ofctl %q: %v\n%s", args, err, out)
	}
	return out
}

// ofctlErr runs ovs-ofctl and returns its output and exit error.
func (s *fakeSwitch) ofctlErr(t testing.TB, args ...string) (string, error) {
	t.Helper()
	bin := testenv.RequireTool(t, "ovs-ofctl", "openvswitch-common")
	ctx, cancel := context.WithTimeout(context.Background(), timeoutOfctl)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// monitor opens a control socket in OVS_RUNDIR; keep it in the test's
	// directory.
	cmd.Env = append(os.Environ(), "OVS_RUNDIR="+filepath.Dir(s.sock), "OVS_LOGDIR="+filepath.Dir(s.sock))
	err := cmd.Run()
	return out.String(), err
}

// timeoutOfctl bounds one ovs-ofctl run; generous for a loaded machine.
var timeoutOfctl = 60 * time.Second

// tableFeatures0 describes table 0 with the required properties, empty.
func tableFeatures0() TableFeatures {
	t := TableFeatures{Name: "classifier", MetadataMatch: ^uint64(0), MetadataWrite: ^uint64(0), MaxEntries: 1000000}
	for p := TFPInstructions; p <= TFPApplySetfield; p += 2 {
		t.Props = append(t.Props, Property{Type: p})
	}
	return t
}
