package daemon

import (
	"context"
	"encoding/binary"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/bench/rules/ovnrules"
	"github.com/ovsxdp/ovsxdp/cmd/ovsxdp/internal/control"
	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/ofconv"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// ofctlFlowMods encodes n of bench/rules' OVN-like rules as the flow mods
// ovs-ofctl add-flows sends for them: NXT_FLOW_MOD with an NXM match, the
// table in the command's high byte, OpenFlow 1.0 actions, one xid each
// from xid up.
func ofctlFlowMods(tb testing.TB, n int, xid uint32) [][]byte {
	tb.Helper()
	var p flow.Parser
	out := make([][]byte, 0, n)
	for i := range n {
		f, err := p.ParseFlow(strings.TrimSpace(ovnrules.Rule(i)), flow.CmdAdd)
		if err != nil {
			tb.Fatalf("rule %d: %v", i, err)
		}
		acts, err := ofconv.ActionsToOF(openflow.Version10, &f.Match, f.Actions)
		if err != nil {
			tb.Fatalf("rule %d: %v", i, err)
		}
		fm := &openflow.FlowMod{Nicira: true, TableID: f.Table, Command: openflow.FlowAdd, Priority: f.Priority,
			BufferID: openflow.NoBuffer, OutPort: openflow.PortAny, OutGroup: 0xffffffff,
			Match: ofconv.FieldsFromMatch(&f.Match, true), Actions: acts}
		b, err := openflow.Encode(openflow.Version10, xid+uint32(i), fm)
		if err != nil {
			tb.Fatalf("rule %d: %v", i, err)
		}
		out = append(out, b)
	}
	return out
}

// ofctlPeer is an OpenFlow 1.0 connection set up as ovs-ofctl add-flows
// sets it up: NXM flow format, NXT_FLOW_MOD_TABLE_ID on.
type ofctlPeer struct {
	tb testing.TB
	c  net.Conn
	r  *openflow.Reader
}

func dialOfctl(tb testing.TB, path string) *ofctlPeer {
	tb.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		tb.Fatal(err)
	}
	p := &ofctlPeer{tb: tb, c: c, r: openflow.NewReader(c, 0)}
	p.recv() // the switch's hello
	h, _ := openflow.NewHello(openflow.Version10)
	p.send(p.encode(1, h))
	p.send(p.encode(2, &openflow.SetFlowFormat{Format: openflow.FlowFormatNXM}))
	p.send(p.encode(3, &openflow.FlowModTableID{Set: 1}))
	return p
}

func (p *ofctlPeer) encode(xid uint32, m openflow.Message) []byte {
	b, err := openflow.Encode(openflow.Version10, xid, m)
	if err != nil {
		p.tb.Fatal(err)
	}
	return b
}

func (p *ofctlPeer) send(b []byte) {
	if err := p.write(b); err != nil {
		p.tb.Fatal(err)
	}
}

// write is send for another goroutine than the test's.
func (p *ofctlPeer) write(b []byte) error {
	p.c.SetWriteDeadline(time.Now().Add(time.Minute))
	_, err := p.c.Write(b)
	return err
}

// recv returns the next message's xid and type.
func (p *ofctlPeer) recv() (uint32, uint8) {
	p.c.SetReadDeadline(time.Now().Add(time.Minute))
	b, err := p.r.ReadMessage()
	if err != nil {
		p.tb.Fatal(err)
	}
	return binary.BigEndian.Uint32(b[4:]), b[1]
}

// waitBarrier reads until the barrier reply with xid, and returns the
// xids of the error replies before it.
func (p *ofctlPeer) waitBarrier(xid uint32) []uint32 {
	var errs []uint32
	for {
		x, typ := p.recv()
		switch {
		case typ == 1: // OFPT_ERROR
			errs = append(errs, x)
		case x == xid && typ == 19: // OFPT_BARRIER_REPLY (1.0)
			return errs
		}
	}
}

// benchDaemon starts a daemon with a state file and a run directory, as
// bench/rules starts one, with one empty bridge, and returns the bridge's
// management socket.
func benchDaemon(tb testing.TB) (*Daemon, string) {
	tb.Helper()
	dir := tb.TempDir()
	d, err := New(Config{NoLocalPort: true, StatePath: filepath.Join(dir, "state.json"), RunDir: filepath.Join(dir, "run"),
		Version: "test", Logger: quietLogger()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Close() })
	if _, err := d.Handle(context.Background(), &control.Request{Verb: "add-br", Args: []string{"br0"}}); err != nil {
		tb.Fatal(err)
	}
	return d, filepath.Join(dir, "run", "br0.mgmt")
}

// BenchmarkOfctlAddFlows adds bench/rules' OVN-like rules to a fresh
// daemon over its management socket, as ovs-ofctl add-flows does: each
// flow mod followed by a barrier whose reply is awaited (barrier), and
// as a controller does: every flow mod, then one barrier (pipelined). It
// reports the wall and process CPU time per flow mod (the process is the
// daemon and this client, whose messages are encoded beforehand).
func BenchmarkOfctlAddFlows(b *testing.B) {
	const n = 20000
	for _, mode := range []string{"barrier", "pipelined"} {
		b.Run(mode, func(b *testing.B) {
			mods := ofctlFlowMods(b, n, 100)
			b.ReportAllocs()
			var took, cpu time.Duration
			for b.Loop() {
				b.StopTimer()
				d, sock := benchDaemon(b)
				p := dialOfctl(b, sock)
				start, cpu0 := time.Now(), processCPU(b)
				b.StartTimer()
				var errs []uint32
				if mode == "barrier" {
					for i, m := range mods {
						bx := uint32(1<<30 + i)
						p.send(m)
						p.send(p.encode(bx, &openflow.BarrierRequest{}))
						errs = append(errs, p.waitBarrier(bx)...)
					}
				} else {
					barrier := p.encode(1<<30, &openflow.BarrierRequest{})
					go func() {
						for _, m := range append(mods, barrier) {
							if err := p.write(m); err != nil {
								b.Error(err)
								return
							}
						}
					}()
					errs = p.waitBarrier(1 << 30)
				}
				b.StopTimer()
				took += time.Since(start)
				cpu += processCPU(b) - cpu0
				if len(errs) != 0 {
					b.Fatalf("%d error replies, the first for xid %d", len(errs), errs[0])
				}
				if got := d.bridges["br0"].dp.Table().Len(); got != n {
					b.Fatalf("the table holds %d rules, want %d", got, n)
				}
				p.c.Close()
				d.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(took.Nanoseconds())/float64(b.N)/n, "ns/flowmod")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/n, "cpu-ns/flowmod")
		})
	}
}

// processCPU is the user and system time this process has used.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
