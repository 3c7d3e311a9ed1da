package ofconn

import (
	"bytes"
	"encoding/hex"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// dialController connects a controller (a Primary connection) to s.
func dialController(t *testing.T, s *Server, v uint8) *client {
	t.Helper()
	a, b := net.Pipe()
	done := make(chan struct{})
	up := make(chan uint8, 1)
	go func() { s.ServeController(b, ControllerOptions{Up: func(v uint8) { up <- v }}); close(done) }()
	t.Cleanup(func() {
		a.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("connection handler did not end after the peer closed")
		}
	})
	cl := &client{t: t, c: a, r: openflow.NewReader(a, 0), v: v}
	if _, m := cl.recv(); m == nil {
		t.Fatal("no hello")
	}
	hello, _ := openflow.NewHello(v)
	cl.send(hello)
	select {
	case <-up:
	case <-time.After(10 * time.Second):
		t.Fatal("the connection did not come up")
	}
	return cl
}

// expect receives messages until one of type T arrives (echo requests
// and the like may come first).
func expect[T openflow.Message](cl *client) T {
	cl.t.Helper()
	for range 16 {
		if _, m := cl.recv(); m != nil {
			if x, ok := m.(T); ok {
				return x
			}
		}
	}
	var zero T
	cl.t.Fatalf("no %T among 16 messages", zero)
	return zero
}

func testPacketIn() (*flow.PacketIn, []byte) {
	pi := &flow.PacketIn{Reason: flow.ReasonAction, MaxLen: 64, Table: 3, Cookie: 0x42, InPort: 2, Metadata: 9, Userdata: []byte{7, 8}}
	pi.Regs[1] = 5
	data := bytes.Repeat([]byte{0xab}, 64)
	return pi, data
}

func TestPacketInVersions(t *testing.T) {
	for _, v := range Versions {
		s := newTestServer()
		cl := dialController(t, s, v)
		if pins, miss := s.Wants(); !pins || miss != (v < openflow.Version13) {
			t.Errorf("v%d: Wants() = %v, %v", v, pins, miss)
		}
		pi, data := testPacketIn()
		s.PacketIn(pi, data, 100)
		m := expect[*openflow.PacketIn](cl)
		if m.BufferID != openflow.NoBuffer || m.TotalLen != 100 || !bytes.Equal(m.Data, data) || m.Reason != openflow.PacketInAction {
			t.Errorf("v%d: packet in %+v", v, m)
		}
		if v == openflow.Version10 {
			if m.InPort != 2 {
				t.Errorf("v1.0 in_port %d", m.InPort)
			}
		} else if m.TableID != 3 || m.Cookie != 0x42 || len(m.Match) != 3 {
			t.Errorf("v%d: table %d cookie %#x match %v", v, m.TableID, m.Cookie, m.Match)
		}
	}
}

func TestPacketIn2AndMissSendLen(t *testing.T) {
	s := newTestServer()
	cl := dialController(t, s, openflow.Version13)
	cl.send(&openflow.SetPacketInFormat{Format: openflow.PacketInFormatNXT2})
	cl.send(&openflow.SetConfig{SwitchConfig: openflow.SwitchConfig{MissSendLen: 10}})
	cl.send(&openflow.BarrierRequest{})
	expect[*openflow.BarrierReply](cl)
	pi, data := testPacketIn()
	s.PacketIn(pi, data, 64)
	m := expect[*openflow.PacketIn2](cl)
	if m.TableID != 3 || m.Cookie != 0x42 || !bytes.Equal(m.UserData, []byte{7, 8}) || len(m.Packet) != 64 {
		t.Errorf("packet in2 %+v", m)
	}
	// A table miss without a flow (the bridge sends it while an OpenFlow
	// 1.0 controller is connected) does not go to a 1.3 connection.
	s.PacketIn(&flow.PacketIn{Reason: flow.ReasonImplicitMiss, MaxLen: flow.MaxLenAll, Table: 9}, data, 64)
	// A miss is cut to miss_send_len.
	miss := &flow.PacketIn{Reason: flow.ReasonNoMatch, MaxLen: flow.MaxLenAll, InPort: 1, Cookie: flow.CookieNone}
	s.PacketIn(miss, data, 64)
	m = expect[*openflow.PacketIn2](cl)
	if len(m.Packet) != 10 || m.FullLen != 64 || m.Reason != openflow.PacketInNoMatch || m.TableID != 0 {
		t.Errorf("miss packet in2: %d bytes, full %d, reason %d", len(m.Packet), m.FullLen, m.Reason)
	}
}

// TestAsyncService checks that a management connection gets nothing
// until it sets a miss_send_len, as ovs-ofctl monitor does, and that a
// controller id routes packet ins.
func TestAsyncService(t *testing.T) {
	s := newTestServer()
	svc := dial(t, s, openflow.Version13)
	ctl := dialController(t, s, openflow.Version13)
	pi, data := testPacketIn()
	s.PortStatus(openflow.PortReasonDelete, openflow.Port{PortNo: 4, Name: "p4"})
	if st := expect[*openflow.PortStatus](ctl); st.Reason != openflow.PortReasonDelete || st.Port.Name != "p4" {
		t.Errorf("port status %+v", st)
	}
	svc.send(&openflow.SetConfig{SwitchConfig: openflow.SwitchConfig{MissSendLen: 0xffff}})
	svc.send(&openflow.BarrierRequest{})
	expect[*openflow.BarrierReply](svc)
	ctl.send(&openflow.SetControllerID{ID: 5})
	ctl.send(&openflow.BarrierRequest{})
	expect[*openflow.BarrierReply](ctl)
	s.PacketIn(pi, data, 64) // controller id 0: the service connection only
	expect[*openflow.PacketIn](svc)
	pi5 := *pi
	pi5.ControllerID = 5
	s.PacketIn(&pi5, data, 64)
	s.PortStatus(openflow.PortReasonAdd, openflow.Port{PortNo: 5, Name: "p5"})
	if m := expect[*openflow.PacketIn](ctl); m.Cookie != 0x42 {
		t.Errorf("packet in %+v", m)
	}
	expect[*openflow.PortStatus](svc)
}

// TestAsyncSlowController checks that a controller that does not read
// costs the producer nothing: messages beyond its queue are dropped and
// counted, another connection still gets its own, and the slow one is
// dropped after the write timeout. No step waits for a time to pass: each
// waits, with a generous bound, for what must come.
func TestAsyncSlowController(t *testing.T) {
	pi, _ := testPacketIn()
	big := make([]byte, 1000)
	t.Run("full queue", func(t *testing.T) {
		s := newTestServer()
		// No write times out within the test: the slow controller stays
		// connected through the whole burst, however slowly a loaded
		// machine runs it, so its queue surely overflows.
		s.writeTimeout = time.Hour
		slow := dialController(t, s, openflow.Version13)
		_ = slow
		fast := dialController(t, s, openflow.Version13)
		fastGot := make(chan int, 1)
		go func() {
			n := 0
			defer func() {
				if n < 5 {
					fastGot <- n
				}
			}()
			for {
				fast.c.SetReadDeadline(time.Now().Add(20 * time.Second))
				b, err := fast.r.ReadMessage()
				if err != nil {
					return
				}
				if h, _ := openflow.ParseHeader(b); h.Type == 10 { // OFPT_PACKET_IN
					n++
				}
				if n == 5 {
					fastGot <- n
				}
			}
		}()
		const sent = asyncQueueLen * 4
		produced := make(chan struct{})
		go func() {
			defer close(produced)
			for range sent {
				s.PacketIn(pi, big, len(big))
			}
		}()
		select {
		case <-produced:
		case <-time.After(20 * time.Second):
			t.Fatalf("queuing %d packet ins did not end: the producer waits for a peer that does not read", sent)
		}
		// Every packet in went to both connections' queues or was
		// dropped at one: neither is gone.
		if st := s.AsyncStats(); st.Dropped == 0 || st.Sent+st.Dropped != 2*sent {
			t.Errorf("stats %+v: want drops with a peer that never reads, and %d in all", st, 2*sent)
		}
		select {
		case n := <-fastGot:
			if n != 5 {
				t.Errorf("the reading controller got %d packet ins", n)
			}
		case <-time.After(20 * time.Second):
			t.Error("the reading controller got no packet in")
		}
		if n := s.Connected(); n != 2 {
			t.Errorf("%d controllers connected, want 2: a full queue drops messages, not the connection", n)
		}
	})
	t.Run("write timeout", func(t *testing.T) {
		s := newTestServer()
		s.writeTimeout = 300 * time.Millisecond
		slow := dialController(t, s, openflow.Version13)
		_ = slow
		s.PacketIn(pi, big, len(big))
		waitUntil(t, "the slow controller to be dropped", func() bool { return s.Connected() == 0 })
	})
}

// TestNXPacketInFormat checks that nxt_packet_in (format 1) gives
// NXT_PACKET_IN with an NXM match in every version, cut to miss_send_len
// for a miss, and that a format Open vSwitch does not know is refused
// with OFPBRC_EPERM as it refuses it.
func TestNXPacketInFormat(t *testing.T) {
	for _, v := range Versions {
		s := newTestServer()
		cl := dialController(t, s, v)
		cl.send(&openflow.SetPacketInFormat{Format: 3})
		if e := expect[*openflow.ErrorMsg](cl); e.Type != openflow.ErrTypeBadRequest || e.Code != codeBadRequestEPerm {
			t.Errorf("v%d: format 3 answered with %+v, want OFPBRC_EPERM", v, e)
		}
		cl.send(&openflow.SetPacketInFormat{Format: openflow.PacketInFormatNXT})
		cl.send(&openflow.SetConfig{SwitchConfig: openflow.SwitchConfig{MissSendLen: 10}})
		cl.send(&openflow.BarrierRequest{})
		expect[*openflow.BarrierReply](cl)
		pi, data := testPacketIn()
		s.PacketIn(pi, data, 64)
		m := expect[*openflow.NXPacketIn](cl)
		var names []string
		for _, f := range m.Match {
			names = append(names, f.Name)
		}
		if m.TableID != 3 || m.Cookie != 0x42 || m.TotalLen != 64 || len(m.Data) != 64 || m.BufferID != openflow.NoBuffer ||
			strings.Join(names, ",") != "in_port,reg1,metadata" || m.Match[0].Class != openflow.ClassNXM0 || len(m.Match[0].Value) != 2 {
			t.Errorf("v%d: nx packet in %+v, match %v", v, m, names)
		}
		miss := &flow.PacketIn{Reason: flow.ReasonNoMatch, MaxLen: flow.MaxLenAll, InPort: 1, Cookie: flow.CookieNone}
		s.PacketIn(miss, data, 64)
		if m := expect[*openflow.NXPacketIn](cl); len(m.Data) != 10 || m.TotalLen != 64 || m.Reason != openflow.PacketInNoMatch {
			t.Errorf("v%d: miss: %d bytes, total %d, reason %d", v, len(m.Data), m.TotalLen, m.Reason)
		}
	}
}

// TestPacketInMetadataBytes encodes packet ins with tunnel and connection
// tracking fields and compares them with what Open vSwitch 3.1 sent for
// the same packets (test/of_packetin_meta_test.go compares them live):
// the fields' order, headers and masks are its.
func TestPacketInMetadataBytes(t *testing.T) {
	const frame = "ffffffffffff00000000000108004500001c0001000040110000c0a80001c0a800020035003500080000"
	tests := []struct {
		name    string
		version uint8
		format  uint32
		frame   string
		pi      flow.PacketIn
		want    string
	}{
		{name: "tracked, OpenFlow 1.3 packet in",
			version: openflow.Version13, format: openflow.PacketInFormatStandard,
			frame: "ffffffffffff00000000000108004500001c000100004011f97cc0a80001c0a800020035003500080000",
			pi: flow.PacketIn{Reason: flow.ReasonAction, Table: 1, InPort: 1, Regs: [flow.NumRegs]uint32{3: 9},
				DlType: flow.EthTypeIPv4, CtState: flow.CtStateNew | flow.CtStateTracked, CtZone: 5, CtMark: 3,
				CtLabel: [16]byte{15: 0x11}, CtNwSrc: 0xc0a80001, CtNwDst: 0xc0a80002, CtNwProto: 17, CtTpSrc: 53, CtTpDst: 53},
			want: "040a00b400000000ffffffff002a0101000000000000000000010069800000040000000180000a02080000010604000000090001d30800000021000000ff0001d40200050001d604000000030001d810000000000000000000000000000000110001f004c0a800010001f204c0a800020001ee01110001f80200350001fa020035000000000000000000ffffffffffff00000000000108004500001c000100004011f97cc0a80001c0a800020035003500080000"},
		{name: "IPv6 tunnel with OAM, OpenFlow 1.0 NXT_PACKET_IN2",
			version: openflow.Version10, format: openflow.PacketInFormatNXT2, frame: frame,
			pi: flow.PacketIn{Reason: flow.ReasonAction, InPort: 1, TunID: 0xabc, TunFlags: flow.TunFlagOAM,
				TunIPv6Src: [16]byte{0: 0xfd, 15: 1}, TunIPv6Dst: [16]byte{0: 0xfd, 15: 2}},
			want: "010400a800000000000023200000001e0000002effffffffffff00000000000108004500001c0001000040110000c0a80001c0a80002003500350008000000000003000500000000000400100000000000000000000000000005000501000000000600488000000400000001000120080000000000000abc0001d104000100010001da10fd0000000000000000000000000000010001dc10fd000000000000000000000000000002"},
		{name: "tun_metadata after the tunnel, OpenFlow 1.3 packet in",
			version: openflow.Version13, format: openflow.PacketInFormatStandard, frame: frame,
			pi: flow.PacketIn{Reason: flow.ReasonAction, InPort: 1, TunID: 5, TunDst: 0x0a000002,
				TunMetadata: []flow.PacketInTunMeta{{Index: 0, Value: []byte{0, 0, 0, 0xab}}, {Index: 3, Value: []byte{0, 0, 0, 0, 0, 0, 0x12, 0x34}}}},
			want: "040a007c00000000ffffffff002a0100000000000000000000010034800000040000000180004c080000000000000005000140040a00000200015004000000ab000156080000000000001234000000000000ffffffffffff00000000000108004500001c0001000040110000c0a80001c0a800020035003500080000"},
		{name: "invalid, OpenFlow 1.0 NXT_PACKET_IN",
			version: openflow.Version10, format: openflow.PacketInFormatNXT, frame: frame,
			pi: flow.PacketIn{Reason: flow.ReasonAction, Table: 1, InPort: 1,
				DlType: flow.EthTypeIPv4, CtState: flow.CtStateInv | flow.CtStateTracked, CtZone: 5},
			want: "01040074000000000000232000000011ffffffff002a01010000000000000000001e0000000000000000000200010000060208000001d30800000030000000ff0001d402000500000000ffffffffffff00000000000108004500001c0001000040110000c0a80001c0a800020035003500080000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := hex.DecodeString(tt.frame)
			if err != nil {
				t.Fatal(err)
			}
			pi := tt.pi
			pi.MaxLen, pi.Cookie = flow.MaxLenAll, 0
			b, err := newTestServer().encodePacketIn(&asyncCfg{version: tt.version, format: tt.format}, &pi, data, len(data))
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(b); got != tt.want {
				t.Errorf("\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}
