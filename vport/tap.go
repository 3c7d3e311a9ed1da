package vport

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// A TAP port is a TAP device that the port creates and owns, as Open
// vSwitch's userspace datapath makes its internal ports: what the bridge
// transmits to it the host's stack receives on the device, and what the
// stack sends on the device the bridge receives. The device lives as long
// as the port: Close deletes it. A persistent port's device (TapConfig.
// Persist) outlives the process, as an Open vSwitch kernel datapath's
// internal port outlives ovs-vswitchd: a crash, or Close after Keep,
// leaves it where it is, with its addresses, MTU, link state and
// namespace, and a later port with TapConfig.Reattach takes it up again
// (tap_persist.go).
//
// The device may be moved into another network namespace (ip link set DEV
// netns NS); its file descriptor stays valid, so the port keeps working.
// Its Device therefore cannot follow the link through a LinkMonitor of one
// namespace (to which a move looks like a deletion): the port follows it
// itself, with a netlink socket that hears the link events of every
// namespace that has an id in the port's (NETLINK_LISTEN_ALL_NSID; moving
// a device gives its new namespace one), and on each event reads the
// device's state in whichever namespace it is now (TUNGETDEVNETNS). A
// device the kernel unregisters along with its namespace sends no event
// that reaches here (the namespace loses its id first), and a descriptor
// polled for errors alone is not woken: the port learns it when a poll
// thread's read meets the error (EBADFD), which wakes the follower, and
// in any case at the follower's next periodic read (tapResync). It then
// marks its Device unregistered, in the kernel's order, and calls
// TapConfig.OnGone.

// TapConfig configures a TAP port.
type TapConfig struct {
	// Name is the device's name, and the port's.
	Name string
	// OnGone, if set, is called once, on a goroutine of the port's, when
	// the kernel has unregistered the device (its namespace was deleted,
	// or it was deleted). It must not call Close on the port directly if
	// it waits for it: Close waits for the port's goroutine.
	OnGone func()
	// Logger receives the port's warnings; slog.Default() when nil.
	Logger *slog.Logger
	// Persist makes the device persistent (TUNSETPERSIST), owned by the
	// process's effective uid and marked with the alias TapAlias: it
	// outlives the port's descriptor, so a crash of the process leaves
	// it. Close deletes it all the same, unless Keep was called.
	Persist bool
	// Reattach takes up a persistent device of this name that a port
	// left (marked TapAlias) instead of creating one: in this network
	// namespace, or in the one it was moved into (tap_persist.go). When
	// there is none, the device is created as without it.
	Reattach bool
	// Owner names who makes the port's persistent device (a daemon's
	// configuration: its state file or database): Reattach takes up
	// only a device that a port with the same Owner left.
	Owner string
}

// tapResync is how often a TAP port reads its device's state even when no
// link event came (events of a namespace without an id are not heard).
const tapResync = time.Second

// TapPort is a port on a TAP device it created (NewTapPort).
type TapPort struct {
	name string
	fd   int
	dev  *Device
	log  *slog.Logger

	closed atomic.Bool
	// persist is TapConfig.Persist; keep is set by Keep.
	persist bool
	keep    atomic.Bool
	// closeMu makes Close exclusive; it protects fdClosed.
	closeMu  sync.Mutex
	fdClosed bool

	// wake is an eventfd that wakes the follower: to stop (closed is
	// set), or to read the device's state at once.
	wake    int
	done    chan struct{}
	onGone  func()
	gone    atomic.Bool
	resyncs atomic.Uint64

	// iov and spill are Receive's (readFrame).
	iov   [2]unix.Iovec
	spill [1]byte

	rxPackets, rxBytes, rxDropped atomic.Uint64
	txPackets, txBytes, txDropped atomic.Uint64
}

var _ Port = (*TapPort)(nil)

// NewTapPort creates the TAP device cfg.Name, down, and returns its port;
// with cfg.Reattach it takes up the persistent device of that name that a
// port left, if any, as it is. A missing /dev/net/tun or privilege is an
// ErrNotSupported; a device of that name that is not such a device is an
// os.ErrExist.
func NewTapPort(cfg TapConfig) (*TapPort, error) {
	if cfg.Name == "" || len(cfg.Name) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("tap %q: a device name has 1 to %d characters", cfg.Name, unix.IFNAMSIZ-1)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	fd, created := -1, false
	if cfg.Reattach {
		var where string
		var err error
		fd, where, err = reattachTap(cfg.Name, cfg.Owner)
		if err != nil {
			return nil, err
		}
		if fd >= 0 {
			log.Info("tap: took up the device left by an earlier port", "dev", cfg.Name, "netns", where)
		}
	}
	if fd < 0 {
		var err error
		if fd, err = createTap(cfg.Name, cfg.Owner, cfg.Persist); err != nil {
			return nil, err
		}
		created = true
	}
	// On an error from here on, the device is left as it was found: a
	// device this call created is deleted, one it took up is kept.
	release := func() {
		if created && cfg.Persist {
			unix.IoctlSetInt(fd, unix.TUNSETPERSIST, 0) //nolint:errcheck // Close then deletes it
		}
		unix.Close(fd)
	}
	dev, err := NewMirrorDevice(cfg.Name, DummyLike, 1)
	if err != nil {
		release()
		return nil, err
	}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		release()
		return nil, fmt.Errorf("tap %s: eventfd: %w", cfg.Name, err)
	}
	p := &TapPort{name: cfg.Name, fd: fd, dev: dev, log: log, persist: cfg.Persist, wake: wake, done: make(chan struct{}), onGone: cfg.OnGone}
	nl, err := tapListen()
	if err != nil {
		p.log.Warn("tap: no link events; following the device by polling", "dev", cfg.Name, "err", err)
		nl = -1
	}
	p.resync()
	go p.follow(nl)
	return p, nil
}

// tapListen returns a non-blocking rtnetlink socket subscribed to link
// events of every namespace with an id here.
func tapListen() (int, error) {
	s, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return -1, fmt.Errorf("netlink socket: %w", err)
	}
	if err := unix.Bind(s, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: unix.RTMGRP_LINK}); err != nil {
		unix.Close(s)
		return -1, fmt.Errorf("netlink bind: %w", err)
	}
	if err := unix.SetsockoptInt(s, unix.SOL_NETLINK, unix.NETLINK_LISTEN_ALL_NSID, 1); err != nil {
		unix.Close(s)
		return -1, fmt.Errorf("netlink listen all nsid: %w", err)
	}
	return s, nil
}

// follow keeps the Device up to date until Close or the device is gone.
func (p *TapPort) follow(nl int) {
	defer close(p.done)
	if nl >= 0 {
		defer unix.Close(nl)
	}
	buf := make([]byte, 64<<10)
	for !p.gone.Load() {
		fds := []unix.PollFd{{Fd: int32(p.wake), Events: unix.POLLIN}, {Fd: int32(p.fd)}}
		if nl >= 0 {
			fds = append(fds, unix.PollFd{Fd: int32(nl), Events: unix.POLLIN})
		}
		_, err := unix.Poll(fds, int(tapResync/time.Millisecond))
		if err != nil && !errors.Is(err, unix.EINTR) {
			p.log.Warn("tap: poll", "dev", p.name, "err", err)
			time.Sleep(tapResync)
		}
		if fds[0].Revents != 0 {
			var cnt [8]byte
			unix.Read(p.wake, cnt[:]) //nolint:errcheck // EAGAIN: drained
			if p.closed.Load() {
				return
			}
		}
		if fds[1].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 {
			p.markGone()
			return
		}
		if nl >= 0 && fds[2].Revents != 0 {
			// The events only say that something changed: drain them
			// (ENOBUFS included) and read the device's state.
			for range 1024 {
				if _, _, err := unix.Recvfrom(nl, buf, unix.MSG_DONTWAIT); errors.Is(err, unix.EAGAIN) {
					break
				}
			}
		}
		p.resync()
	}
}

// resync reads the device's state in the namespace it is in now.
func (p *TapPort) resync() {
	p.resyncs.Add(1)
	nsfd, err := unix.IoctlRetInt(p.fd, unix.TUNGETDEVNETNS)
	if err != nil {
		if errors.Is(err, unix.EBADFD) {
			p.markGone()
		} else {
			p.log.Warn("tap: device's namespace", "dev", p.name, "err", err)
		}
		return
	}
	ns := netns.NsHandle(nsfd)
	defer ns.Close()
	ifr, err := unix.NewIfreq("")
	if err != nil {
		return
	}
	if err := unix.IoctlIfreq(p.fd, unix.TUNGETIFF, ifr); err != nil {
		if errors.Is(err, unix.EBADFD) {
			p.markGone()
		}
		return
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		p.log.Warn("tap: netlink in the device's namespace", "dev", p.name, "err", err)
		return
	}
	defer h.Close()
	lk, err := h.LinkByName(ifr.Name())
	if err != nil {
		// Gone between the ioctls and the query: the descriptor reports
		// it, and the next pass sees it.
		return
	}
	flags := lk.Attrs().RawFlags
	running := flags&unix.IFF_UP != 0
	if !running {
		p.dev.SetRunning(false)
	}
	p.dev.SetCarrier(flags&unix.IFF_LOWER_UP != 0)
	if running {
		p.dev.SetRunning(true)
	}
}

// markGone applies the device's unregistration, in the kernel's order,
// once, and calls OnGone.
func (p *TapPort) markGone() {
	if p.gone.Swap(true) {
		return
	}
	d := p.dev
	d.SetRunning(false)
	d.SetCarrier(false)
	advanceRegistration(d, Unregistering)
	d.SetTxQueues(0) //nolint:errcheck // 0 is always in range
	advanceRegistration(d, Unregistered)
	p.log.Warn("tap: device unregistered", "dev", p.name)
	if p.onGone != nil && !p.closed.Load() {
		go p.onGone()
	}
}

// kick wakes the follower. It does not allocate.
func (p *TapPort) kick() {
	unix.Write(p.wake, eventfdOne) //nolint:errcheck // a full counter already wakes it
}

// Resyncs is how many times the port has read its device's state.
func (p *TapPort) Resyncs() uint64 { return p.resyncs.Load() }

// Name implements Port.
func (p *TapPort) Name() string { return p.name }

// Device implements Port.
func (p *TapPort) Device() *Device { return p.dev }

// BatchSize implements Port.
func (p *TapPort) BatchSize() int { return MaxBatch }

// RxQueues implements Port: a TAP port has one queue each way.
func (p *TapPort) RxQueues() int { return 1 }

// TxQueues implements Port.
func (p *TapPort) TxQueues() int { return 1 }

func (p *TapPort) usable() error {
	if p.closed.Load() {
		return ErrClosed
	}
	if st := p.dev.Snapshot(); !st.Running() || st.Registration() != Registered {
		return ErrPortDown
	}
	return nil
}

// Receive implements Port: it reads the frames the host's stack sent on
// the device.
func (p *TapPort) Receive(q int, bufs [][]byte, sizes []int, info []RxInfo) (int, error) {
	if q != 0 {
		return 0, ErrBadQueue
	}
	if err := p.usable(); err != nil {
		return 0, err
	}
	n := min(MaxBatch, len(bufs), len(sizes))
	got := 0
	for got < n {
		buf := bufs[got]
		r, err := p.readFrame(buf)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				break
			}
			p.kick() // EBADFD: the device is gone; the follower marks it
			if got > 0 {
				break
			}
			return 0, ErrPortDown
		}
		if r > len(buf) {
			p.rxDropped.Add(1)
			continue
		}
		sizes[got] = r
		if info != nil {
			info[got] = RxInfo{}
		}
		p.rxBytes.Add(uint64(r))
		got++
	}
	p.rxPackets.Add(uint64(got))
	return got, nil
}

// readFrame reads one frame into buf, with a byte of the port's own after
// it: the kernel truncates a frame to the room given, so a frame that
// reaches that byte was longer than buf. It does not allocate (readv
// through the port's own iovecs: one rx queue, read by one thread at a
// time).
func (p *TapPort) readFrame(buf []byte) (int, error) {
	if len(buf) == 0 {
		buf = p.spill[:0]
	}
	p.iov[0].Base = unsafe.SliceData(buf)
	p.iov[0].SetLen(len(buf))
	p.iov[1].Base = &p.spill[0]
	p.iov[1].SetLen(1)
	r, _, e := unix.Syscall(unix.SYS_READV, uintptr(p.fd), uintptr(unsafe.Pointer(&p.iov[0])), 2)
	runtime.KeepAlive(buf)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// Transmit implements Port: the host's stack receives the frames on the
// device. A frame the kernel refuses (the device went down meanwhile, a
// malformed frame) is counted in TxDropped.
func (p *TapPort) Transmit(q int, frames [][]byte) (int, error) {
	if q != 0 {
		return 0, ErrBadQueue
	}
	if err := p.usable(); err != nil {
		return 0, err
	}
	for i, f := range frames {
		_, err := unix.Write(p.fd, f)
		switch {
		case err == nil:
			p.txPackets.Add(1)
			p.txBytes.Add(uint64(len(f)))
		case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.ENOBUFS):
			return i, nil
		case errors.Is(err, unix.EBADFD):
			p.kick()
			if i == 0 {
				return 0, ErrPortDown
			}
			return i, nil
		default:
			p.txDropped.Add(1)
		}
	}
	return len(frames), nil
}

// PrepareWait implements Port.
func (p *TapPort) PrepareWait(q int) (int, bool, error) {
	if q != 0 {
		return -1, false, ErrBadQueue
	}
	if err := p.usable(); err != nil {
		return -1, false, err
	}
	return p.fd, false, nil
}

// Stats implements Port.
func (p *TapPort) Stats() Stats {
	return Stats{
		RxPackets: p.rxPackets.Load(), RxBytes: p.rxBytes.Load(), RxDropped: p.rxDropped.Load(),
		TxPackets: p.txPackets.Load(), TxBytes: p.txBytes.Load(), TxDropped: p.txDropped.Load(),
	}
}

// Keep makes Close leave a persistent port's device in place, in
// whichever namespace it is, as a stopping daemon leaves its internal
// ports (a later port with TapConfig.Reattach takes it up). It does
// nothing to a port that is not persistent.
func (p *TapPort) Keep() { p.keep.Store(true) }

// Close implements Port: it stops following the device and deletes it
// (a persistent device after Keep is left as it is).
func (p *TapPort) Close() error {
	p.closeMu.Lock()
	defer p.closeMu.Unlock()
	if p.fdClosed {
		return nil
	}
	p.closed.Store(true)
	p.kick()
	<-p.done
	p.fdClosed = true
	unix.Close(p.wake)
	var errs []error
	if p.persist && !p.keep.Load() {
		// Not persistent any more: the kernel deletes the device when
		// its last descriptor closes. EBADFD: it is gone already.
		if err := unix.IoctlSetInt(p.fd, unix.TUNSETPERSIST, 0); err != nil && !errors.Is(err, unix.EBADFD) {
			errs = append(errs, fmt.Errorf("tap %s: delete: %w", p.name, err))
		}
	}
	if err := unix.Close(p.fd); err != nil {
		errs = append(errs, fmt.Errorf("tap %s: close: %w", p.name, err))
	}
	return errors.Join(errs...)
}
