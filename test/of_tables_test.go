package test

import (
	"encoding/binary"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// Queues and tables against Open vSwitch 3.1: the requests that read
// queues, the tables' descriptions, and table mods.

// TestQueuesAndTableDescMatchOVS: the requests that read queues (queue
// stats, OFPT_QUEUE_GET_CONFIG_REQUEST, OpenFlow 1.4's queue desc) of
// every port, of a port, of a reserved port and of a port the bridge
// does not have, and the tables' descriptions, to Open vSwitch 3.1
// (whose ports have no QoS) and to ovsxdp: both answer the same bytes.
// (ovsxdp's test switch has no LOCAL port, Open vSwitch's has: the
// requests for it are left out where that tells them apart.)
func TestQueuesAndTableDescMatchOVS(t *testing.T) {
	v10, v13, v14, v15 := openflow.Version10, openflow.Version13, openflow.Version14, openflow.Version15
	mp := func(typ uint16, body []byte) openflow.Message { return &openflow.MultipartRaw{Type: typ, Body: body} }
	be := func(vs ...uint32) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.BigEndian.AppendUint32(b, v)
		}
		return b
	}
	port10 := func(p uint16, queue uint32) []byte {
		return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, uint32(p)<<16), queue)
	}
	config10 := func(p uint16) openflow.Message {
		return &openflow.Unknown{Type: 20, Body: []byte{byte(p >> 8), byte(p), 0, 0}}
	}
	config13 := func(p uint32) openflow.Message { return &openflow.Unknown{Type: 22, Body: be(p, 0)} }
	const any, all, local, queueAll = 0xffffffff, 0xfffffffc, 0xfffffffe, 0xffffffff
	var cases []errorCase
	for _, v := range []uint8{v13, v15} {
		for _, q := range []struct {
			port, queue uint32
		}{{any, queueAll}, {any, 0}, {1, queueAll}, {1, 3}, {9, queueAll}, {0x10000, queueAll}} {
			name := fmt.Sprintf("queue-stats-%d-%x-%x", v, q.port, q.queue)
			cases = append(cases, errorCase{name, v, asyncMsgs(mp(5, be(q.port, q.queue)))})
		}
	}
	for _, q := range []struct {
		port  uint16
		queue uint32
	}{{0xfffc, queueAll}, {0xffff, 0}, {1, queueAll}, {1, 3}, {9, queueAll}} {
		cases = append(cases, errorCase{fmt.Sprintf("queue-stats-1.0-%x-%x", q.port, q.queue), v10, asyncMsgs(mp(5, port10(q.port, q.queue)))})
	}
	for _, p := range []uint16{1, 0xfffe, 0xffff, 0xfffc, 9} {
		cases = append(cases, errorCase{fmt.Sprintf("queue-config-1.0-%x", p), v10, asyncMsgs(config10(p))})
	}
	for _, p := range []uint32{1, local, any, all, 9, 0x10000} {
		cases = append(cases, errorCase{fmt.Sprintf("queue-config-1.3-%x", p), v13, asyncMsgs(config13(p))})
	}
	for _, q := range []struct{ port, queue uint32 }{{any, queueAll}, {1, queueAll}, {1, 0}, {any, 0}, {9, queueAll}} {
		cases = append(cases, errorCase{fmt.Sprintf("queue-desc-1.4-%x-%x", q.port, q.queue), v14, asyncMsgs(mp(15, be(q.port, q.queue)))})
	}
	cases = append(cases,
		errorCase{"queue-stats-short-1.3", v13, asyncMsgs(mp(5, be(1)))},
		errorCase{"table-desc-1.4", v14, asyncMsgs(mp(14, nil))},
		errorCase{"table-desc-1.5", v15, asyncMsgs(mp(14, nil))},
	)
	if refused := refusals(compareCases(t, cases, nil)); refused == 0 || refused == len(cases) {
		t.Errorf("Open vSwitch refused %d of the %d cases: the cases tell nothing", refused, len(cases))
	}
}

// TestTableModMatchesOVS: ovs-ofctl mod-table in OpenFlow 1.4, with
// eviction and vacancy events on and off, on Open vSwitch 3.1 and on
// ovsxdp: dump-table-desc prints the same tables after each, and the
// same errors come back for a table the bridge lacks; then table mods on
// the wire that are malformed or out of range get the same errors, and
// well formed ones the same silence.
func TestTableModMatchesOVS(t *testing.T) {
	switches := flagSwitches(t)
	steps := [][]string{
		{"0", "evict"}, {"1", "vacancy:10,20"}, {"2", "vacancy:0,100"}, {"1", "novacancy"}, {"0", "noevict"}, {"3", "evict"},
		{"254", "evict"},
	}
	const v = "OpenFlow14"
	for _, s := range switches {
		s.must(t, v, "mod-table", "255", "noevict")
		s.must(t, v, "mod-table", "255", "novacancy")
	}
	for _, st := range steps {
		var got []string
		for _, s := range switches {
			_, errOut, err := s.ofctl(v, "mod-table", st...)
			answer := "taken"
			if err != nil {
				answer = "refused: " + ofErrorName(errOut)
			}
			got = append(got, answer+"\n"+tableDescLines(s.must(t, v, "dump-table-desc")))
		}
		if got[0] != got[1] || !strings.Contains(got[0], "table 0:") {
			t.Errorf("mod-table %s:\nOpen vSwitch\n%s\novsxdp\n%s", strings.Join(st, " "), got[0], got[1])
		}
	}

	tableMod := func(table uint8, config uint32, props ...[]byte) openflow.Message {
		body := append([]byte{table, 0, 0, 0}, binary.BigEndian.AppendUint32(nil, config)...)
		for _, p := range props {
			body = append(body, p...)
		}
		return &openflow.Unknown{Type: 17, Body: body}
	}
	vacancy := func(down, up, now uint8) []byte { return []byte{0, 3, 0, 8, down, up, now, 0} }
	v13, v14, v15 := openflow.Version13, openflow.Version14, openflow.Version15
	cases := []errorCase{
		{"1.3", v13, asyncMsgs(tableMod(0, 0))},
		{"1.3-bad-table", v13, asyncMsgs(tableMod(254, 0))},
		{"1.3-long", v13, asyncMsgs(&openflow.Unknown{Type: 17, Body: make([]byte, 16)})},
		{"1.4-evict-all", v14, asyncMsgs(tableMod(0xff, 1<<2))},
		{"1.4-vacancy", v14, asyncMsgs(tableMod(5, 1<<3, vacancy(10, 30, 0)))},
		{"1.4-vacancy-down-above-up", v14, asyncMsgs(tableMod(5, 1<<3, vacancy(40, 30, 0)))},
		{"1.4-vacancy-above-100", v14, asyncMsgs(tableMod(5, 1<<3, vacancy(10, 101, 0)))},
		{"1.4-vacancy-now", v14, asyncMsgs(tableMod(5, 1<<3, vacancy(10, 30, 7)))},
		{"1.4-vacancy-short", v14, asyncMsgs(tableMod(5, 1<<3, []byte{0, 3, 0, 6, 1, 2, 0, 0}))},
		{"1.4-eviction-prop", v14, asyncMsgs(tableMod(5, 0, []byte{0, 2, 0, 8, 0, 0, 0, 1}))},
		{"1.4-unknown-prop", v14, asyncMsgs(tableMod(5, 0, []byte{0, 9, 0, 8, 0, 0, 0, 0}))},
		{"1.4-prop-too-long", v14, asyncMsgs(tableMod(5, 0, []byte{0, 3, 0, 16, 0, 0, 0, 0}))},
		{"1.5-bad-table", v15, asyncMsgs(tableMod(254, 1<<2))},
		{"1.5-short", v15, asyncMsgs(&openflow.Unknown{Type: 17, Body: make([]byte, 4)})},
	}
	if refused := refusals(compareCases(t, cases, nil)); refused == 0 || refused == len(cases) {
		t.Errorf("Open vSwitch refused %d of the %d cases: the cases tell nothing", refused, len(cases))
	}
}

// tableDescLines are dump-table-desc's lines without its header, which
// has the xid.
func tableDescLines(out string) string {
	return tableDescHeader.ReplaceAllString(out, "")
}

var tableDescHeader = regexp.MustCompile(`(?m)^OFPST_TABLE_DESC reply.*\n`)
