package daemon

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ovsxdp/ovsxdp/datapath"
	"github.com/ovsxdp/ovsxdp/flow"
)

// stateVersion is the version of the state file's format.
const stateVersion = 1

// state is the state file: the configuration the daemon restores at start.
type state struct {
	Version int           `json:"version"`
	Bridges []bridgeState `json:"bridges"`
}

type bridgeState struct {
	Name   string `json:"name"`
	Policy string `json:"policy"`
	PMDs   int    `json:"pmds"`
	// Idle is the poll threads' idle strategy; empty (state files from
	// before the option) for adaptive.
	Idle string `json:"idle,omitempty"`
	// GRO is "off" when segment coalescing is off; empty (the
	// default, and state files from before the option) when it is on.
	GRO string `json:"gro,omitempty"`
	// SpareSpin is the spare-spin setting as add-br --spare-spin takes
	// it; empty (the default, and state files from before the option)
	// for datapath.DefaultSpareSpin.
	SpareSpin string        `json:"spare_spin,omitempty"`
	Ports     []*portConfig `json:"ports"`
	// Flows are the bridge's rules in ovs-ofctl syntax, in dump-flows
	// order (which add-flow keeps for rules of equal priority).
	Flows []string `json:"flows"`
	// Groups are the bridge's OpenFlow groups in ovs-ofctl syntax, by
	// group id; restored before the flows, which may name them.
	Groups []string `json:"groups,omitempty"`
	// Meters are the bridge's meters in ovs-ofctl syntax, by meter id;
	// restored before the flows, which may name them.
	Meters []string `json:"meters,omitempty"`
	// TLVMap is the bridge's Geneve option mappings as add-tlv-map
	// takes them; restored before the groups and flows.
	TLVMap string `json:"tlv_map,omitempty"`
	// Controllers and FailMode are the bridge's controller
	// configuration (set-controller, set-fail-mode).
	Controllers []ctlSpec `json:"controllers,omitempty"`
	FailMode    string    `json:"fail_mode,omitempty"`
}

// ErrStateLocked is the error of a daemon started on a state file that
// another daemon uses.
var ErrStateLocked = errors.New("in use by another daemon")

// lockState locks the state file for this process: an exclusive flock on
// PATH.lock, a file beside it (the state file itself is replaced by rename
// at every save, so it cannot carry the lock), which holds the PID of the
// daemon that has it. The lock lasts until the returned file is closed, or
// the process ends. what names the file in errors ("state file"), and
// flag the option that gives each daemon its own.
func lockState(path, what, flag string) (*os.File, error) {
	lp := path + ".lock"
	if err := os.MkdirAll(filepath.Dir(lp), 0o700); err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, path, err)
	}
	f, err := os.OpenFile(lp, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%s %s: lock: %w", what, path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := ""
			b := make([]byte, 32)
			n, _ := f.ReadAt(b, 0)
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n]))); err == nil && pid > 0 {
				holder = fmt.Sprintf(" (pid %d)", pid)
			}
			return nil, fmt.Errorf("%s %s: %w%s; give each daemon its own %s", what, path, ErrStateLocked, holder, flag)
		}
		return nil, fmt.Errorf("%s %s: lock %s: %w", what, path, lp, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// loadState reads the state file at path. A missing file is an empty
// state; a file that is not a valid state is an error naming the file, the
// place and the problem.
func loadState(path string) (*state, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &state{Version: stateVersion}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	var st state
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	err = dec.Decode(&st)
	if err == nil && dec.More() {
		err = errors.New("data after the state object")
	}
	if err != nil {
		return nil, fmt.Errorf("state file %s is corrupt: %s (the daemon does not start over it; fix it or move it away)", path, jsonErrorPlace(b, err))
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("state file %s: version %d, this daemon reads version %d", path, st.Version, stateVersion)
	}
	return &st, nil
}

// jsonErrorPlace describes a JSON decoding error with its line and column
// when it has an offset.
func jsonErrorPlace(b []byte, err error) string {
	var off int64 = -1
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		off = syn.Offset
	case errors.As(err, &typ):
		off = typ.Offset
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "the JSON ends early (truncated file?)"
	}
	if off <= 0 || off > int64(len(b)) {
		return err.Error()
	}
	off-- // the offset is just after the offending byte
	line := 1 + bytes.Count(b[:off], []byte("\n"))
	col := off - int64(bytes.LastIndexByte(b[:off], '\n'))
	return fmt.Sprintf("line %d, column %d: %v", line, col, err)
}

// saveInterval is the most often the daemon saves the state after
// changes that do not save it at once (flow and group mods over
// OpenFlow): a crash loses at most the changes of the last interval (or
// of four times the last save's duration, when that is longer).
const saveInterval = 150 * time.Millisecond

// stateSaver coalesces state saves: changes mark the state dirty, and the
// daemon's expiry goroutine saves it at most once per saveInterval, and
// when the daemon closes.
//
// A save is in two steps: what is to be written is taken under Daemon.mu
// (pointers to the immutable rules, the rest formatted), and written, with
// the flows formatted, under wmu only, so that a save of 100,000 flows in
// the background does not hold back the flow mods that keep arriving. A
// write never replaces a newer state on disk with an older one.
type stateSaver struct {
	dirty bool // a change is not saved yet; guarded by Daemon.mu
	// changes counts the changes marked, saved or not, and the
	// messages added to bundles (busyLocked); guarded by Daemon.mu. The
	// expiry loop releases memory only after a second without one
	// (releaseMemory).
	changes uint64
	kick    chan struct{} // a change was marked (capacity one)
	// taken numbers the states taken to be saved; guarded by Daemon.mu.
	taken uint64

	wmu     sync.Mutex // serializes writes of the file; guards written
	written uint64     // the number of the state last written
}

// pendingSave is a state taken to be saved: write writes it, formatting
// the flows on as many goroutines as workers.
type pendingSave struct {
	n     uint64
	write func(workers int) error
}

func newStateSaver() stateSaver {
	return stateSaver{kick: make(chan struct{}, 1)}
}

// takeLocked numbers a state taken to be saved. Daemon.mu must be held.
func (s *stateSaver) takeLocked(write func(workers int) error) pendingSave {
	s.dirty = false
	s.taken++
	return pendingSave{n: s.taken, write: write}
}

// write writes p, formatting its flows on as many goroutines as workers,
// unless a state taken after it is on disk already. It may be called
// with Daemon.mu held or not (the lock order is Daemon.mu, then wmu).
func (s *stateSaver) write(p pendingSave, workers int) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if p.write == nil || p.n <= s.written {
		return nil
	}
	if err := p.write(workers); err != nil {
		return err
	}
	s.written = p.n
	return nil
}

// markDirtyLocked notes a change to be saved within saveInterval. d.mu
// must be held.
func (d *Daemon) markDirtyLocked() {
	d.saver.changes++
	if (d.cfg.StatePath == "" && d.cfg.FlowsPath == "") || d.saver.dirty {
		return
	}
	d.saver.dirty = true
	select {
	case d.saver.kick <- struct{}{}:
	default:
	}
}

// busyLocked notes work that changes nothing yet but holds memory that
// its end makes garbage: a message added to an OpenFlow bundle, which the
// bundle keeps until it is committed or discarded. The expiry loop then
// does not release memory while a bundle is being built: each release
// would collect the whole heap, bundle included, once a second, and the
// last one, just before the commit, would leave the bundle's memory, free
// after the commit, resident (releaseMemory releases only after as many
// allocations as the live heap). d.mu must be held.
func (d *Daemon) busyLocked() {
	d.saver.changes++
}

// saveIfDirty saves the state if a change is not saved yet, formatting
// its flows on as many goroutines as workers. The state is taken under
// d.mu and written without it.
func (d *Daemon) saveIfDirty(workers int) {
	d.mu.Lock()
	if !d.saver.dirty {
		d.mu.Unlock()
		return
	}
	p, err := d.takeSaveLocked()
	d.mu.Unlock()
	if err == nil {
		err = d.saver.write(p, workers)
	}
	if err != nil {
		// The next change tries again.
		d.log.Error("saving the state", "err", err)
	}
}

// saveLocked writes the configuration to the state file atomically: a
// temporary file in the same directory, synced, renamed over the old one,
// and the directory synced. d.mu must be held.
func (d *Daemon) saveLocked() error {
	p, err := d.takeSaveLocked()
	if err != nil {
		return err
	}
	// The caller waits for the save with d.mu held: every CPU formats.
	return d.saver.write(p, runtime.GOMAXPROCS(0))
}

// takeSaveLocked takes the state to be saved, to the flows file with
// --ovsdb, else to the state file. d.mu must be held.
func (d *Daemon) takeSaveLocked() (pendingSave, error) {
	if d.cfg.FlowsPath != "" {
		return d.takeFlowsLocked(), nil
	}
	if d.cfg.StatePath == "" {
		return pendingSave{}, nil
	}
	st := state{Version: stateVersion, Bridges: []bridgeState{}}
	var rules [][]*flow.Rule // each bridge's, formatted as they are written
	for _, b := range d.sortedLocked() {
		bs := bridgeState{Name: b.name, Policy: b.dp.Policy().String(), PMDs: b.pmds, Idle: b.dp.Idle().String(), Ports: []*portConfig{}}
		if !b.dp.GRO() {
			bs.GRO = onOff(false)
		}
		if spare := b.dp.SpareSpin(); spare != datapath.DefaultSpareSpin {
			bs.SpareSpin = spareSpinName(spare)
		}
		// Every configured port, attached or waiting for its device.
		bs.Ports = append(bs.Ports, b.sortedPorts()...)
		bs.TLVMap = formatTLVMap(b.dp.Table().TLVMap())
		for _, g := range b.dp.Table().Groups() {
			bs.Groups = append(bs.Groups, flow.FormatGroup(&g.Group, flow.GroupOF15))
		}
		for _, m := range b.dp.Table().Snapshot().Meters() {
			bs.Meters = append(bs.Meters, flow.FormatMeter(&m.MeterConfig, " "))
		}
		cc := d.controllersLocked(b.name)
		bs.Controllers, bs.FailMode = cc.Specs, cc.FailMode
		st.Bridges = append(st.Bridges, bs)
		rules = append(rules, b.dp.Table().Dump(nil))
	}
	// The bridges' JSON is made now: ports and controllers may change
	// once d.mu is released; rules never change (a change makes a new one).
	heads, err := bridgeHeads(&st)
	if err != nil {
		return pendingSave{}, err
	}
	path := d.cfg.StatePath
	return d.saver.takeLocked(func(workers int) error {
		return writeFileAtomic(path, func(w *bufio.Writer) error { return writeState(w, st.Version, heads, rules, workers) })
	}), nil
}

// bridgeHead is a bridge's JSON as writeState writes it, cut where its
// flows go.
type bridgeHead struct{ head, tail []byte }

// bridgeHeads formats st's bridges without their flows.
func bridgeHeads(st *state) ([]bridgeHead, error) {
	var hs []bridgeHead
	for i := range st.Bridges {
		bs := st.Bridges[i]
		bs.Flows = nil
		b, err := json.MarshalIndent(&bs, "    ", "  ")
		if err != nil {
			return nil, err
		}
		head, tail, ok := bytes.Cut(b, []byte(`"flows": null`))
		if !ok {
			return nil, fmt.Errorf("bridge %s: no flows in its JSON", bs.Name)
		}
		hs = append(hs, bridgeHead{head: head, tail: tail})
	}
	return hs, nil
}

// writeState writes a state of version v, whose bridges' JSON without
// their flows are heads, as json.MarshalIndent(st, "", "  ") would, with
// bridge i's flows formatted from rules[i] one at a time as they are
// written: a state of 100,000 flows is never held whole in memory, as
// strings or as JSON.
func writeState(w *bufio.Writer, v int, heads []bridgeHead, rules [][]*flow.Rule, workers int) error {
	fmt.Fprintf(w, "{\n  \"version\": %d,\n  \"bridges\": [", v)
	for i, h := range heads {
		if i > 0 {
			w.WriteByte(',')
		}
		w.WriteString("\n    ")
		w.Write(h.head)
		w.WriteString(`"flows": [`)
		if err := writeFlows(w, rules[i], workers); err != nil {
			return err
		}
		if len(rules[i]) > 0 {
			w.WriteString("\n      ")
		}
		w.WriteByte(']')
		w.Write(h.tail)
	}
	if len(heads) > 0 {
		w.WriteString("\n  ")
	}
	w.WriteString("]\n}\n")
	return nil
}

// flowsPart is the number of flows that writeFlows formats as one part.
const flowsPart = 2048

// flowTextSize is about what a flow takes in the state file (OVN's flows
// average 120 bytes), for the size of a part's buffer.
const flowTextSize = 128

// partBuffers are writeFlows' buffers of parts, kept from one save to the
// next: a part is a few hundred kilobytes, which a new buffer takes from
// the heap, zeroed, and grows once it is full, at every save, and saves
// come every few hundred milliseconds while a controller's flow mods
// stream in. releaseMemory drops them.
var partBuffers = make(chan *bytes.Buffer, 4)

// dropPartBuffers lets the garbage collector have partBuffers.
func dropPartBuffers() {
	for {
		select {
		case <-partBuffers:
		default:
			return
		}
	}
}

// writeFlows writes the flows of rs as writeState lists them (each on a
// line of its own, after a comma but the first). The flows are formatted
// in parts of flowsPart, on as many goroutines as workers, and written
// in order; at most one part per worker, and one more, is held at a
// time.
func writeFlows(w *bufio.Writer, rs []*flow.Rule, workers int) error {
	n := (len(rs) + flowsPart - 1) / flowsPart
	parts := make([]chan *bytes.Buffer, n)
	for k := range parts {
		parts[k] = make(chan *bytes.Buffer, 1)
	}
	held := max(1, workers) + 1
	slots := make(chan struct{}, held)
	// The parts' buffers once written are for the next parts and the
	// next save (partBuffers): a save of 100,000 flows reuses a few
	// buffers of a part's size instead of asking the heap for fifty.
	free := partBuffers
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for k := range n {
			select {
			case slots <- struct{}{}:
			case <-stop:
				return
			}
			go func() {
				var b *bytes.Buffer
				select {
				case b = <-free:
					b.Reset()
				default:
					b = new(bytes.Buffer)
					b.Grow(flowsPart * flowTextSize)
				}
				bw := bufio.NewWriter(b)
				// One Flow (two whole keys, 700 bytes) for the
				// part, not one on the heap per flow formatted.
				f := new(flow.Flow)
				for j := k * flowsPart; j < min(len(rs), (k+1)*flowsPart); j++ {
					if j > 0 {
						bw.WriteByte(',')
					}
					bw.WriteString("\n        ")
					*f = rs[j].Flow()
					writeJSONString(bw, flow.FormatFlowAsWritten(f)) // errs only as bw does
				}
				bw.Flush()
				parts[k] <- b
			}()
		}
	}()
	for k := range parts {
		b := <-parts[k]
		if _, err := w.Write(b.Bytes()); err != nil {
			return err
		}
		select {
		case free <- b:
		default:
		}
		<-slots
	}
	return nil
}

// writeJSONString writes s as json.Marshal does. Flow text is printable
// ASCII, which it escapes itself (as json.Marshal, < > & too) without
// the reflection and the copy of json.Marshal; anything else goes through
// json.Marshal.
func writeJSONString(w *bufio.Writer, s string) error {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			b, err := json.Marshal(s)
			if err != nil {
				return err
			}
			_, err = w.Write(b)
			return err
		}
	}
	w.WriteByte('"')
	start := 0
	for i := 0; i < len(s); i++ {
		var esc string
		switch s[i] {
		case '"':
			esc = `\"`
		case '\\':
			esc = `\\`
		case '<':
			esc = `\u003c`
		case '>':
			esc = `\u003e`
		case '&':
			esc = `\u0026`
		default:
			continue
		}
		w.WriteString(s[start:i])
		w.WriteString(esc)
		start = i + 1
	}
	w.WriteString(s[start:])
	return w.WriteByte('"')
}

// releasedAt is the process's heap allocations (bytes) when
// releaseMemory last released memory.
var releasedAt atomic.Uint64

// releaseMemory returns the heap's free memory to the operating
// system once the changes since the last release have allocated more than
// the live heap (and at least 64 MiB): add-flows of a large file, a
// restore. The Go runtime otherwise keeps freed memory for reuse, up to
// about twice the live heap, so a table that was built in one go would
// keep the garbage of building it resident for good. It costs one garbage
// collection, tens of milliseconds per 100 MB of live heap. The expiry
// loop calls it once a second, outside the command lock, so that the
// command's own garbage (its request, the parsed flows) is free by then,
// and not while changes stream in (a controller's or ovs-ofctl's flow
// mods, one at a time): each release would cost a collection of the
// whole heap per second of the stream.
func releaseMemory() {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 || s[1].Value.Kind() != metrics.KindUint64 {
		return
	}
	allocs, live := s[0].Value.Uint64(), s[1].Value.Uint64()
	if allocs-releasedAt.Load() < max(64<<20, live) {
		return
	}
	dropPartBuffers()
	debug.FreeOSMemory()
	releasedAt.Store(allocs)
}

// writeFileAtomic replaces path with what write writes, so that a crash
// leaves either the old file or the new one, never a mix.
func writeFileAtomic(path string, write func(*bufio.Writer) error) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 64<<10)
	if err := write(w); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	dh, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer dh.Close()
	return dh.Sync()
}

// restore recreates the bridges, ports and flows of st. It stops at the
// first error, which names the bridge and the port or flow.
func (d *Daemon) restore(st *state) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	defer d.publishLocked()
	for i := range st.Bridges {
		bs := &st.Bridges[i]
		pol, err := datapath.ParsePolicy(bs.Policy)
		if err != nil {
			return fmt.Errorf("bridge %s: %w", bs.Name, err)
		}
		idle := datapath.IdleAdaptive
		if bs.Idle != "" {
			if idle, err = datapath.ParseIdleStrategy(bs.Idle); err != nil {
				return fmt.Errorf("bridge %s: %w", bs.Name, err)
			}
		}
		gro := true
		if bs.GRO != "" {
			if gro, err = parseOnOff(bs.GRO); err != nil {
				return fmt.Errorf("bridge %s: gro %w", bs.Name, err)
			}
		}
		var spare time.Duration
		if bs.SpareSpin != "" {
			if spare, err = parseSpareSpin(bs.SpareSpin); err != nil {
				return fmt.Errorf("bridge %s: spare_spin %w", bs.Name, err)
			}
		}
		b, err := d.addBridgeLocked(datapath.Config{Name: bs.Name, Policy: pol, PMDs: bs.PMDs, Idle: idle, DisableGRO: !gro, SpareSpin: spare})
		if err != nil {
			return err
		}
		for _, pc := range bs.Ports {
			if pc == nil {
				return fmt.Errorf("bridge %s: a port is null", bs.Name)
			}
			err := d.addPortLocked(b, pc, true)
			var de *deviceError
			switch {
			case err == nil:
			case pc.Type == typeInternal && errors.As(err, &de):
				// As Open vSwitch keeps an Interface whose device
				// it cannot make, with its error.
				d.keepFailedLocked(b, pc, err)
			default:
				return err
			}
		}
		if err := restoreTLVMap(b, bs.TLVMap); err != nil {
			return fmt.Errorf("bridge %s: tlv map: %w", bs.Name, err)
		}
		if err := restoreGroups(b, bs.Groups); err != nil {
			return fmt.Errorf("bridge %s: %w", bs.Name, err)
		}
		if err := restoreMeters(b, bs.Meters); err != nil {
			return fmt.Errorf("bridge %s: %w", bs.Name, err)
		}
		fs := make([]flow.Flow, 0, len(bs.Flows))
		for j, s := range bs.Flows {
			f, err := b.parser().ParseFlow(s, flow.CmdAdd)
			if err != nil {
				return fmt.Errorf("bridge %s: flow %d: %w", bs.Name, j+1, err)
			}
			fs = append(fs, *f)
		}
		if err := b.dp.Table().AddFlows(fs); err != nil {
			return fmt.Errorf("bridge %s: %w", bs.Name, err)
		}
		for _, cs := range bs.Controllers {
			if _, err := parseTarget(cs.Target); err != nil {
				return fmt.Errorf("bridge %s: %w", bs.Name, err)
			}
		}
		if len(bs.Controllers) > 0 || bs.FailMode != "" {
			d.setControllersLocked(bs.Name, ctlConfig{Specs: bs.Controllers, FailMode: bs.FailMode})
		}
	}
	return nil
}
