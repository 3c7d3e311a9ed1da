package vport

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// PcapSnaplen is the snapshot length of the pcap files a PcapPort writes.
const PcapSnaplen = 65535

// ErrFileExists is NewPcapPort's error for a WriteFile that exists
// already, when PcapConfig.Overwrite is not set.
var ErrFileExists = errors.New("file exists")

// pcapStreamQueue is how many frames read from a FIFO wait for Receive.
const pcapStreamQueue = 128

// PcapConfig describes a PcapPort. At least one of ReadFile and WriteFile
// must be set.
type PcapConfig struct {
	Name string
	// ReadFile is a pcap file (Ethernet link type) whose frames the port
	// receives, in order, on its one rx queue. Once the file is exhausted
	// (after Loop passes) the port receives nothing more; that is not an
	// error. It may be a FIFO (tcpdump -w FIFO): the port then reads it
	// in a goroutine of its own, never blocking its caller, and receives
	// frames as the writer writes them; until a writer comes it receives
	// nothing.
	ReadFile string
	// Loop is the number of passes over ReadFile: 0 or 1 is once, a
	// negative number is forever. A FIFO is read once.
	Loop int
	// Rate paces the replay in packets per second; 0 replays as fast as
	// Receive is called.
	Rate float64
	// RecordRxQueue makes received frames carry rx queue 0 as recorded.
	RecordRxQueue bool
	// WriteFile is a pcap file the port creates, readable by its owner
	// only (mode 0600), and writes every transmitted frame to, with the
	// time of transmission. Without it, transmitted frames are dropped and
	// counted.
	WriteFile string
	// Overwrite lets WriteFile name an existing regular file, which is
	// then truncated (and made mode 0600); without it an existing file is
	// refused with ErrFileExists.
	Overwrite bool
	BatchSize int // default MaxBatch
}

// PcapPort is a port that replays a pcap file as received traffic and
// records transmitted frames to a pcap file that tcpdump and Wireshark
// read. It has one rx and one tx queue; its device is DummyLike (it has no
// peer), registered and up. Its Receive and Transmit do file I/O under a
// mutex each: it is a port for tests and captures, not for speed.
type PcapPort struct {
	name          string
	dev           *Device
	batch         int
	rate          float64
	recordRxQueue bool

	rxMu     sync.Mutex // protects the fields down to timerfd
	rxFile   *os.File
	stream   bool          // rxFile is a FIFO, read by readStream into rxCh
	rxCh     chan []byte   // frames readStream read, for advanceLocked
	rxStop   chan struct{} // closed by Close: readStream returns
	rxDone   chan struct{} // closed when readStream has returned
	rxBuf    *bufio.Reader
	rxReader *pcapReader
	loops    int    // passes left after this one; negative: forever
	next     []byte // the next frame to deliver (valid until the next read), nil at the end
	passSeen bool   // the current pass has delivered a frame
	rxErr    error  // a read error to report once
	replayed uint64 // frames taken from the file
	start    time.Time
	timerfd  int // fires when the next paced frame is due

	txMu     sync.Mutex // protects the fields down to txWriter
	txFile   *os.File
	txBuf    *bufio.Writer
	txWriter *pcapWriter

	rxPackets, rxBytes, rxDropped atomic.Uint64
	txPackets, txBytes, txDropped atomic.Uint64
	closed                        atomic.Bool
}

var _ Port = (*PcapPort)(nil)

// NewPcapPort opens the files of cfg.
func NewPcapPort(cfg PcapConfig) (_ *PcapPort, err error) {
	if cfg.BatchSize == 0 {
		cfg.BatchSize = MaxBatch
	}
	switch {
	case cfg.Name == "":
		return nil, errors.New("pcap port: empty name")
	case cfg.ReadFile == "" && cfg.WriteFile == "":
		return nil, fmt.Errorf("pcap port %s: neither a file to read nor one to write", cfg.Name)
	case cfg.BatchSize < 1 || cfg.BatchSize > MaxBatch:
		return nil, fmt.Errorf("pcap port %s: batch size %d, want 1 to %d", cfg.Name, cfg.BatchSize, MaxBatch)
	case cfg.Rate < 0:
		return nil, fmt.Errorf("pcap port %s: rate %g, want 0 or more packets per second", cfg.Name, cfg.Rate)
	}
	dev, err := NewDevice(cfg.Name, DummyLike, 1)
	if err != nil {
		return nil, fmt.Errorf("pcap port: %w", err)
	}
	p := &PcapPort{name: cfg.Name, dev: dev, batch: cfg.BatchSize, rate: cfg.Rate, recordRxQueue: cfg.RecordRxQueue, timerfd: -1}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	p.timerfd, err = unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("pcap port %s: timerfd: %w", cfg.Name, err)
	}
	if cfg.ReadFile != "" {
		if err := p.openRx(cfg.ReadFile, cfg.Loop); err != nil {
			return nil, fmt.Errorf("pcap port %s: %w", cfg.Name, err)
		}
	}
	if cfg.WriteFile != "" {
		if err := p.openTx(cfg.WriteFile, cfg.Overwrite); err != nil {
			return nil, fmt.Errorf("pcap port %s: %w", cfg.Name, err)
		}
	}
	if err := dev.SetUp(); err != nil {
		return nil, fmt.Errorf("pcap port %s: %w", cfg.Name, err)
	}
	return p, nil
}

// openRx opens the file to replay. It never blocks: a FIFO is opened
// non-blocking (opening it for reading would wait for a writer) and read
// by a goroutine, which Close stops.
func (p *PcapPort) openRx(path string, loop int) error {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	switch {
	case fi.Mode().Type() == fs.ModeNamedPipe:
		if loop > 1 || loop < 0 {
			f.Close()
			return fmt.Errorf("read %s: a FIFO is read once, it cannot loop", path)
		}
		p.rxFile, p.stream = f, true
		p.rxCh = make(chan []byte, pcapStreamQueue)
		p.rxStop, p.rxDone = make(chan struct{}), make(chan struct{})
		p.start = time.Now()
		go p.readStream(f)
		return nil
	case !fi.Mode().IsRegular():
		f.Close()
		return fmt.Errorf("read %s: not a regular file or a FIFO", path)
	}
	p.rxFile = f
	p.rxBuf = bufio.NewReaderSize(f, 1<<16)
	p.loops = max(loop, 1) - 1
	if loop < 0 {
		p.loops = -1
	}
	if err := p.rewindLocked(false); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	p.start = time.Now()
	p.advanceLocked()
	if p.rxErr != nil {
		return fmt.Errorf("read %s: %w", path, p.rxErr)
	}
	return nil
}

// rewindLocked starts a pass over the file.
func (p *PcapPort) rewindLocked(seek bool) error {
	if seek {
		if _, err := p.rxFile.Seek(0, io.SeekStart); err != nil {
			return err
		}
		p.rxBuf.Reset(p.rxFile)
	}
	r, err := newPcapReader(p.rxBuf)
	if err != nil {
		return err
	}
	if err := r.checkEthernet(); err != nil {
		return err
	}
	p.rxReader = r
	p.passSeen = false
	return nil
}

// readStream reads the pcap stream of the FIFO f into rxCh until the
// stream ends, fails or Close stops it, and wakes a sleeping poll thread
// (through the timerfd) for every frame.
func (p *PcapPort) readStream(f *os.File) {
	defer close(p.rxDone)
	err := p.readStreamFrames(f)
	if err == nil || p.closed.Load() {
		return
	}
	p.rxMu.Lock()
	defer p.rxMu.Unlock()
	p.rxErr = err
	p.wakeLocked()
}

func (p *PcapPort) readStreamFrames(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	r, err := newPcapReader(bufio.NewReaderSize(&fifoReader{rc: rc}, 1<<16))
	if err != nil {
		return err
	}
	if err := r.checkEthernet(); err != nil {
		return err
	}
	for {
		data, err := r.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case p.rxCh <- bytes.Clone(data): // next reuses data
		case <-p.rxStop:
			return nil
		}
		p.rxMu.Lock()
		p.wakeLocked()
		p.rxMu.Unlock()
	}
}

// wakeLocked makes the timerfd fire at once, for a poll thread asleep on
// it.
func (p *PcapPort) wakeLocked() {
	if p.timerfd >= 0 {
		p.settimeLocked(time.Nanosecond) //nolint:errcheck // a valid timerfd and time: it cannot fail
	}
}

// fifoReader reads a FIFO opened non-blocking, waiting in the runtime's
// poller, so that closing the file stops a read in progress. Until a
// writer has written something, an empty read means "no writer yet" and
// it waits; after that it is the end of the stream.
type fifoReader struct {
	rc   syscall.RawConn
	seen bool
}

func (r *fifoReader) Read(b []byte) (int, error) {
	var (
		n    int
		rerr error
	)
	err := r.rc.Read(func(fd uintptr) bool {
		for {
			n, rerr = unix.Read(int(fd), b)
			if rerr != unix.EINTR {
				break
			}
		}
		switch {
		case rerr == unix.EAGAIN:
			return false
		case rerr == nil && n == 0 && !r.seen:
			return false
		}
		return true
	})
	switch {
	case err != nil:
		return 0, err
	case rerr != nil:
		return 0, rerr
	case n <= 0:
		return 0, io.EOF
	}
	r.seen = true
	return n, nil
}

// advanceLocked reads the next frame into p.next, starting the next pass
// at the end of the file if passes are left (and the pass was not empty).
// A FIFO's next frame is the next one its goroutine read, if any.
func (p *PcapPort) advanceLocked() {
	if p.stream {
		select {
		case p.next = <-p.rxCh:
		default:
			p.next = nil
		}
		return
	}
	for range 2 {
		data, err := p.rxReader.next()
		if err == nil {
			p.next = data
			p.passSeen = true
			return
		}
		p.next = nil
		if err != io.EOF {
			p.rxErr = err
			return
		}
		if p.loops == 0 || !p.passSeen {
			return
		}
		if p.loops > 0 {
			p.loops--
		}
		if err := p.rewindLocked(true); err != nil {
			p.rxErr = err
			return
		}
	}
}

// openCapture creates path with mode 0600, or, with overwrite, truncates
// the regular file path is. It never blocks (a FIFO is opened
// non-blocking, and refused).
func openCapture(path string, overwrite bool) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NONBLOCK, 0o600)
	if err == nil || !errors.Is(err, fs.ErrExist) {
		return f, err
	}
	if !overwrite {
		return nil, fmt.Errorf("write %s: %w", path, ErrFileExists)
	}
	if f, err = os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("write %s: not a regular file", path)
	}
	if err == nil {
		err = f.Truncate(0)
	}
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func (p *PcapPort) openTx(path string, overwrite bool) error {
	f, err := openCapture(path, overwrite)
	if err != nil {
		return err
	}
	p.txFile = f
	p.txBuf = bufio.NewWriterSize(f, 1<<16)
	if p.txWriter, err = newPcapWriter(p.txBuf, PcapSnaplen); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Name is the port's name.
func (p *PcapPort) Name() string { return p.name }

// Device is the port's device state.
func (p *PcapPort) Device() *Device { return p.dev }

// BatchSize is the most frames one call moves.
func (p *PcapPort) BatchSize() int { return p.batch }

// RxQueues is 1.
func (p *PcapPort) RxQueues() int { return 1 }

// TxQueues is 1.
func (p *PcapPort) TxQueues() int { return 1 }

func (p *PcapPort) usable() error {
	if p.closed.Load() {
		return ErrClosed
	}
	if s := p.dev.Snapshot(); !s.Running() || s.Registration() == Unregistered {
		return ErrPortDown
	}
	return nil
}

// dueLocked is how many frames the pacing allows now.
func (p *PcapPort) dueLocked(now time.Time) uint64 {
	if p.rate == 0 {
		return MaxBatch
	}
	due := uint64(now.Sub(p.start).Seconds() * p.rate)
	if due <= p.replayed {
		return 0
	}
	return due - p.replayed
}

// Receive implements Port. A read error (a truncated file, say) is
// returned once, wrapped; the replay then ends.
func (p *PcapPort) Receive(q int, bufs [][]byte, sizes []int, info []RxInfo) (int, error) {
	if q != 0 {
		return 0, ErrBadQueue
	}
	if err := p.usable(); err != nil {
		return 0, err
	}
	limit := min(p.batch, len(bufs), len(sizes))
	if info != nil {
		limit = min(limit, len(info))
	}
	p.rxMu.Lock()
	defer p.rxMu.Unlock()
	if p.rxFile == nil {
		return 0, nil
	}
	if p.stream && p.next == nil {
		p.advanceLocked()
	}
	budget := p.dueLocked(time.Now())
	n := 0
	for tries := 0; n < limit && tries < 2*limit && uint64(tries) < budget && p.next != nil; tries++ {
		if len(p.next) <= len(bufs[n]) {
			sizes[n] = copy(bufs[n], p.next)
			p.rxBytes.Add(uint64(sizes[n]))
			if info != nil {
				info[n] = RxInfo{}
				if p.recordRxQueue {
					info[n].RxQueue = RecordRxQueue(0)
				}
			}
			n++
		} else {
			p.rxDropped.Add(1)
		}
		p.replayed++
		p.advanceLocked()
	}
	p.rxPackets.Add(uint64(n))
	if err := p.rxErr; err != nil {
		p.rxErr = nil
		return n, fmt.Errorf("pcap port %s: read %s: %w", p.name, p.rxFile.Name(), err)
	}
	return n, nil
}

// PrepareWait implements Port. The descriptor is a timerfd: it is armed
// for the time the next paced frame is due, and never fires once the
// replay is over.
func (p *PcapPort) PrepareWait(q int) (int, bool, error) {
	if q != 0 {
		return -1, false, ErrBadQueue
	}
	if err := p.usable(); err != nil {
		return -1, false, err
	}
	p.rxMu.Lock()
	defer p.rxMu.Unlock()
	var buf [8]byte
	unix.Read(p.timerfd, buf[:]) //nolint:errcheck // EAGAIN: the timer had not fired
	if p.stream && p.next == nil {
		// The goroutine wakes the timerfd for the frames it reads later.
		p.advanceLocked()
	}
	if p.next == nil && p.rxErr == nil {
		return p.timerfd, false, p.settimeLocked(0)
	}
	now := time.Now()
	if p.rxErr != nil || p.dueLocked(now) > 0 {
		return p.timerfd, true, nil
	}
	at := p.start.Add(time.Duration(float64(p.replayed+1) / p.rate * float64(time.Second)))
	return p.timerfd, false, p.settimeLocked(max(at.Sub(now), time.Microsecond))
}

// settimeLocked arms the timer to fire after d, or disarms it for d == 0.
func (p *PcapPort) settimeLocked(d time.Duration) error {
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
	if err := unix.TimerfdSettime(p.timerfd, 0, &spec, nil); err != nil {
		return fmt.Errorf("pcap port %s: timerfd: %w", p.name, err)
	}
	return nil
}

// Transmit implements Port: each frame is appended to the file with the
// current time. Frames longer than PcapSnaplen are captured truncated.
func (p *PcapPort) Transmit(q int, frames [][]byte) (int, error) {
	if q != 0 {
		return 0, ErrBadQueue
	}
	if err := p.usable(); err != nil {
		return 0, err
	}
	frames = frames[:min(len(frames), p.batch)]
	p.txMu.Lock()
	defer p.txMu.Unlock()
	if p.txWriter == nil {
		p.txDropped.Add(uint64(len(frames)))
		return len(frames), nil
	}
	now := time.Now()
	for i, f := range frames {
		data := f[:min(len(f), PcapSnaplen)]
		if err := p.txWriter.write(now, data, len(f)); err != nil {
			return i, fmt.Errorf("pcap port %s: write %s: %w", p.name, p.txFile.Name(), err)
		}
		p.txPackets.Add(1)
		p.txBytes.Add(uint64(len(f)))
	}
	return len(frames), nil
}

// Flush writes buffered frames to the file.
func (p *PcapPort) Flush() error {
	p.txMu.Lock()
	defer p.txMu.Unlock()
	if p.txBuf == nil {
		return nil
	}
	if err := p.txBuf.Flush(); err != nil {
		return fmt.Errorf("pcap port %s: flush %s: %w", p.name, p.txFile.Name(), err)
	}
	return nil
}

// Stats implements Port.
func (p *PcapPort) Stats() Stats {
	return Stats{
		RxPackets: p.rxPackets.Load(), RxBytes: p.rxBytes.Load(), RxDropped: p.rxDropped.Load(),
		TxPackets: p.txPackets.Load(), TxBytes: p.txBytes.Load(), TxDropped: p.txDropped.Load(),
	}
}

// Close implements Port: it flushes and closes the written file, closes
// the read one and releases the timer. It is idempotent.
func (p *PcapPort) Close() error {
	if !p.closed.CompareAndSwap(false, true) {
		return nil
	}
	var errs []error
	p.txMu.Lock()
	if p.txFile != nil {
		errs = append(errs, p.txBuf.Flush(), p.txFile.Sync(), p.txFile.Close())
		p.txWriter = nil
	}
	p.txMu.Unlock()
	if p.stream {
		// Closing the FIFO stops a read in progress; the goroutine takes
		// rxMu to wake the timer, so it is not held here.
		close(p.rxStop)
		errs = append(errs, p.rxFile.Close())
		<-p.rxDone
	}
	p.rxMu.Lock()
	if p.rxFile != nil {
		if !p.stream {
			errs = append(errs, p.rxFile.Close())
		}
		p.next = nil
	}
	if p.timerfd >= 0 {
		errs = append(errs, unix.Close(p.timerfd))
		p.timerfd = -1
	}
	p.rxMu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close pcap port %s: %w", p.name, err)
	}
	return nil
}
