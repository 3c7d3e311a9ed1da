package vport

import (
	"bytes"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/netns"
)

// lockedBuffer is a bytes.Buffer for a logger that several goroutines use.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestLinkMonitorRecords checks the monitor's debug record of a watched
// link: the watch, each event with the state changes it carries (taking a
// veth down clears running and carrier in one event), and the deletion with
// how it was learnt.
func TestLinkMonitorRecords(t *testing.T) {
	tp := newXSKTopo(t, 2)
	var buf lockedBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m := startMonitor(t, LinkMonitorConfig{Netns: tp.sw.Path(), Logger: log})
	dev, ifindex := tp.watchedHost(t)
	if _, err := m.Watch(dev, ifindex, nil); err != nil {
		t.Fatal(err)
	}
	tp.peer.IP(t, "link", "set", "p0", "down")
	waitState(t, dev, "peer down", func(s DeviceState) bool { return !s.Carrier() })
	tp.sw.IP(t, "link", "set", "h0", "down")
	waitState(t, dev, "down", func(s DeviceState) bool { return !s.Running() })
	tp.sw.IP(t, "link", "del", "h0")
	waitState(t, dev, "deleted", func(s DeviceState) bool { return s.Registration() == Unregistered })

	want := []string{
		`msg="link monitor: watch" netns=` + tp.sw.Path() + ` name=h0 ifindex=` + itoa(ifindex) + ` up=true carrier=true`,
		`name=h0 ifindex=` + itoa(ifindex) + ` type=new up=true carrier=false txqueues=2 watched=true changes=carrier-`,
		`name=h0 ifindex=` + itoa(ifindex) + ` type=new up=false carrier=false txqueues=2 watched=true changes=running-`,
		`type=del up=false carrier=false txqueues=2 watched=true changes=deleted`,
		`msg="link monitor: deleted" netns=` + tp.sw.Path() + ` name=h0 ifindex=` + itoa(ifindex) + ` via=dellink`,
	}
	if !netns.Eventually(5*time.Second, func() bool { return inOrder(buf.String(), want) }) {
		t.Errorf("the record lacks, in this order:\n%s\nrecord:\n%s", strings.Join(want, "\n"), buf.String())
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// inOrder reports whether s contains each of want, in order.
func inOrder(s string, want []string) bool {
	for _, w := range want {
		i := strings.Index(s, w)
		if i < 0 {
			return false
		}
		s = s[i+len(w):]
	}
	return true
}
