package ofconn

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
)

// panicLog counts the records that say a connection handler panicked.
type panicLog struct{ n atomic.Int64 }

func (h *panicLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *panicLog) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "panicked") {
		h.n.Add(1)
	}
	return nil
}
func (h *panicLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *panicLog) WithGroup(string) slog.Handler      { return h }

// FuzzConn feeds arbitrary bytes to a connection as its peer's side of the
// stream: the handler must never panic and must end once the peer has
// sent everything and gone. The seeds (testdata/fuzz/FuzzConn) are
// messages ovs-ofctl sends: hellos of each version, features, flow mods,
// flow and port stats requests, packet outs, meter mods and meter
// multiparts (the bridge has meters).
func FuzzConn(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		log := &panicLog{}
		s := NewServer(&meterTableBridge{tableBridge{t: flow.NewTable()}}, Config{Logger: slog.New(log)})
		a, b := net.Pipe()
		done := make(chan struct{})
		go func() { s.ServeConn(b); close(done) }()
		go io.Copy(io.Discard, a) // the peer reads every reply
		a.SetWriteDeadline(time.Now().Add(5 * time.Second))
		a.Write(in)
		a.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the connection handler did not end after the peer closed")
		}
		if n := log.n.Load(); n != 0 {
			t.Fatalf("the connection handler panicked on %x", in)
		}
	})
}
