package ofconn

import (
	"encoding/binary"
	"testing"

	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// TestQueueRequests: queue stats of every queue get an empty reply, of
// one queue OFPQOFC_BAD_QUEUE, of a port the bridge lacks
// OFPQOFC_BAD_PORT; the table descriptions list every table.
// test/TestQueuesAndTableDescMatchOVS holds them to Open vSwitch 3.1's.
func TestQueueRequests(t *testing.T) {
	s := newTestServer()
	cl := dialController(t, s, openflow.Version13)
	port := s.br.Ports()[0].PortNo
	stats := func(port, queue uint32) {
		body := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, port), queue)
		cl.send(&openflow.MultipartRaw{Type: mpQueue, Body: body})
	}
	stats(0xffffffff, queueAll)
	if r := expect[*openflow.MultipartRaw](cl); !r.Reply || r.Type != mpQueue || len(r.Body) != 0 {
		t.Errorf("every queue: %+v", r)
	}
	for _, tt := range []struct {
		port, queue uint32
		code        uint16
	}{{port, 1, codeQueueBadQueue}, {0xffffffff, 1, codeQueueBadQueue}, {port + 100, queueAll, codeQueueBadPort}} {
		stats(tt.port, tt.queue)
		if e := expect[*openflow.ErrorMsg](cl); e.Type != errTypeQueueOpFailed || e.Code != tt.code {
			t.Errorf("port %d queue %d: error %d/%d, want %d/%d", tt.port, tt.queue, e.Type, e.Code, errTypeQueueOpFailed, tt.code)
		}
	}
	cl14 := dialController(t, s, openflow.Version14)
	cl14.send(&openflow.MultipartRaw{Type: mpTableDesc})
	if r := expect[*openflow.MultipartRaw](cl14); len(r.Body) != 16*nTables || r.Body[2+16*(nTables-1)] != nTables-1 {
		t.Errorf("table desc of %d bytes", len(r.Body))
	}
}

// TestTableMod: an OpenFlow 1.4 table mod's eviction and vacancy events
// show in the table descriptions; table 254 is Open vSwitch's own
// (OFPTMFC_EPERM), and a vacancy property with down above up is
// OFPBPC_BAD_VALUE. test/TestTableModMatchesOVS holds them to Open
// vSwitch 3.1's.
func TestTableMod(t *testing.T) {
	s := newTestServer()
	cl := dialController(t, s, openflow.Version14)
	mod := func(table uint8, config uint32, props ...byte) {
		body := append([]byte{table, 0, 0, 0}, binary.BigEndian.AppendUint32(nil, config)...)
		cl.send(&openflow.Unknown{Type: typeTableMod, Body: append(body, props...)})
	}
	mod(1, tableConfigEviction|tableConfigVacancyEvents, 0, 3, 0, 8, 10, 20, 0, 0)
	mod(254, tableConfigEviction)
	if e := expect[*openflow.ErrorMsg](cl); e.Type != errTypeTableModFailed || e.Code != codeTableEPerm {
		t.Errorf("table 254: error %d/%d", e.Type, e.Code)
	}
	mod(2, tableConfigVacancyEvents, 0, 3, 0, 8, 30, 20, 0, 0)
	if e := expect[*openflow.ErrorMsg](cl); e.Type != openflow.ErrTypeBadProperty || e.Code != codeBadPropertyValue {
		t.Errorf("vacancy down above up: error %d/%d", e.Type, e.Code)
	}
	cl.send(&openflow.MultipartRaw{Type: mpTableDesc})
	r := expect[*openflow.MultipartRaw](cl)
	// Table 0's 16 bytes, then table 1's 24: its configuration, the
	// eviction flags, the vacancy thresholds and the vacancy.
	if len(r.Body) != 16*nTables+8 || binary.BigEndian.Uint32(r.Body[20:]) != tableConfigEviction|tableConfigVacancyEvents ||
		string(r.Body[36:40]) != string([]byte{10, 20, 100, 0}) {
		t.Errorf("table desc: %x...", r.Body[:48])
	}
}
