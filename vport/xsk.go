package vport

// The AF_XDP port kind is built on github.com/asavie/xdp v0.3.3, whose
// defects are contained in this package:
//
//   - Transmit panics on ENETDOWN/ENXIO and gives up on EAGAIN/EBUSY: the
//     port drives the tx ring itself, with bounded kicks (xsk_socket.go,
//     xsk_layout.go);
//   - Poll(-1) never returns once the device is deleted (an unbound socket
//     reports nothing to poll(2)): the port is polled with a timeout, and
//     PrepareWait reads SO_ERROR, where the kernel reports the unbinding;
//   - Close never unmaps the rings, so the queue stays busy (EBUSY), and a
//     failed NewSocket leaks its rings: the port unmaps them, sweeps
//     orphans and retries a busy bind with a backoff (xsk_socket.go,
//     xsk_maps.go);
//   - Program.Attach hangs on a device with a generic-mode program and
//     replaces other programs: the port loads its own program and attaches
//     it through a BPF link (xdpprog.go);
//   - no need_wakeup and no zero-copy: bind takes its flags from a package
//     variable, which the port sets under its lock (xsk_socket.go); the
//     port binds with need_wakeup and kicks the kernel (sendto, recvfrom)
//     only when a ring's flag asks for it (in copy mode the tx ring always
//     does), and tries zero-copy first;
//   - tiny default rings, GetDescs scanning every frame, Receive returning
//     a slice the next call overwrites: the port sizes the rings, tracks its
//     frames itself, and either copies every frame out before it returns
//     (Receive) or lends it until the caller gives it back (Lender).

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ovsxdp/ovsxdp/vport/ethtool"
	"github.com/ovsxdp/ovsxdp/vport/internal/nsthread"
	"github.com/ovsxdp/ovsxdp/vport/nldump"
)

// Defaults of XSKConfig. Of DefaultXSKFrames, half receive: the fill ring
// holds all 8,192 of them, and the kernel drops a frame only once the poll
// thread has left that many unread on the rx ring. That lasts 11.5 ms at
// 713,000 packets/s and 19 ms at 425,000 (80% of the highest and lowest
// rates ovsxdp forwarded from bench/veth's AF_XDP sender): a poll thread
// that the kernel (or, on a virtual machine, the host) did not run for
// that long, on 2 CPUs shared with the sender and the receiver. The 4,096
// before held 9.6 ms at 425,000 packets/s and lost 1,075 frames at that
// rate; what is dropped shows in bench/results/veth.md. A socket pins
// 32 MiB, half the UMEM Open vSwitch gives each AF_XDP queue.
const (
	DefaultXSKFrames      = 16384
	DefaultXSKFrameSize   = 2048
	DefaultXSKBindTimeout = 5 * time.Second
)

// XSKConfig describes an AF_XDP port.
type XSKConfig struct {
	// Device is the name of the network device.
	Device string
	// Netns is the path of the network namespace the device lives in
	// (such as /var/run/netns/NAME); empty for the caller's namespace.
	Netns string
	// Queues is the number of rx queues to open a socket on, from queue 0;
	// 0 for every rx queue the device uses (its channels, as ethtool -l
	// shows them, which may be fewer than it has allocated).
	Queues int
	// Frames is the number of UMEM frames of each socket, a power of two
	// up to MaxXSKFrames (DefaultXSKFrames when 0). Half of them, or
	// RingSize, receive; the others transmit.
	Frames int
	// FrameSize is the size of a UMEM frame: 2048 or 4096
	// (DefaultXSKFrameSize when 0). A frame holds a packet of up to
	// FrameSize-256 bytes on receive (the kernel keeps headroom).
	FrameSize int
	// RingSize is the number of descriptors of each of the four rings of a
	// socket, a power of two no larger than Frames/2 (Frames/2 when 0).
	RingSize int
	// BatchSize is the most frames one Receive or Transmit moves
	// (MaxBatch when 0).
	BatchSize int
	// Mode is how the XDP program is attached.
	Mode XDPMode
	// BindTimeout bounds how long opening a queue retries while the
	// kernel still holds it busy (DefaultXSKBindTimeout when 0).
	BindTimeout time.Duration
	// UMEM is the budget the sockets' UMEM is reserved from; nil for the
	// process's, which has DefaultUMEMLimit.
	UMEM *UMEMBudget
	// CopyMode binds the sockets in copy mode without trying zero-copy
	// first (a device that refuses zero-copy gets copy mode anyway).
	CopyMode bool
	// BusyPollBudget, when not 0, makes the sockets prefer busy polling
	// (SO_PREFER_BUSY_POLL) with this many frames per poll: the port's
	// system calls then run the device's NAPI on the poll thread. A kernel
	// that refuses it leaves the port without it (XSKInfo says why).
	BusyPollBudget int
	// AllowDefaultRoute lets the port open a device that carries a default
	// route of its namespace, which the port takes away from the host's
	// stack; without it such a device is refused (ErrDefaultRoute).
	AllowDefaultRoute bool
	// Logger receives the port's warnings (discarded when nil).
	Logger *slog.Logger
}

var (
	// ErrLoopback is OpenXSK's error for a loopback device, which an
	// AF_XDP port would take away from the host's stack.
	ErrLoopback = errors.New("loopback device")
	// ErrDefaultRoute is OpenXSK's error for a device that carries a
	// default route, unless XSKConfig.AllowDefaultRoute is set.
	ErrDefaultRoute = errors.New("device carries a default route")
)

func (c XSKConfig) withDefaults() (XSKConfig, error) {
	if c.Frames == 0 {
		c.Frames = DefaultXSKFrames
	}
	if c.FrameSize == 0 {
		c.FrameSize = DefaultXSKFrameSize
	}
	if c.RingSize == 0 {
		c.RingSize = c.Frames / 2
	}
	if c.BatchSize == 0 {
		c.BatchSize = MaxBatch
	}
	if c.BindTimeout == 0 {
		c.BindTimeout = DefaultXSKBindTimeout
	}
	pow2 := func(n int) bool { return n > 0 && n&(n-1) == 0 }
	switch {
	case c.Device == "":
		return c, errors.New("xsk port: empty device name")
	case c.Queues < 0 || c.Queues > MaxQueues:
		return c, fmt.Errorf("xsk port %s: %d queues, want 0 to %d", c.Device, c.Queues, MaxQueues)
	case !pow2(c.Frames) || c.Frames < 16 || c.Frames > MaxXSKFrames:
		return c, fmt.Errorf("xsk port %s: %d frames, want a power of two from 16 to %d", c.Device, c.Frames, MaxXSKFrames)
	case c.FrameSize != 2048 && c.FrameSize != 4096:
		return c, fmt.Errorf("xsk port %s: frame size %d, want 2048 or 4096", c.Device, c.FrameSize)
	case !pow2(c.RingSize) || c.RingSize < 8 || c.RingSize > c.Frames/2:
		return c, fmt.Errorf("xsk port %s: ring size %d, want a power of two from 8 to Frames/2 (%d)", c.Device, c.RingSize, c.Frames/2)
	case c.BatchSize < 1 || c.BatchSize > MaxBatch:
		return c, fmt.Errorf("xsk port %s: batch size %d, want 1 to %d", c.Device, c.BatchSize, MaxBatch)
	case c.Mode > XDPGeneric:
		return c, fmt.Errorf("xsk port %s: %v", c.Device, c.Mode)
	case c.BusyPollBudget < 0 || c.BusyPollBudget > 1<<16-1:
		return c, fmt.Errorf("xsk port %s: busy poll budget %d, want 0 to %d", c.Device, c.BusyPollBudget, 1<<16-1)
	case c.BindTimeout < 0:
		return c, fmt.Errorf("xsk port %s: negative bind timeout", c.Device)
	}
	return c, nil
}

// XSKPort is a port on a real network device, through AF_XDP sockets: one
// socket per rx queue, each with its own UMEM, fed by an XDP program that
// redirects every frame to the socket of the queue it arrived on (frames on
// queues without a socket go to the kernel's stack). Tx queue q of the port
// transmits through the socket of queue q modulo the number of sockets that
// can transmit.
//
// Device reflects the real link as netlink showed it at open; a
// LinkMonitor keeps it up to date. The port also learns by itself that the
// kernel unregistered the device (the sockets report it), and then returns
// ErrPortDown for good.
type XSKPort struct {
	name     string
	ifindex  int
	netns    string
	dev      *Device
	batch    int
	txQueues int
	txSocks  int
	socks    []*xskSocket
	prog     *xdpProgram
	// umem is the budget the sockets' UMEM was reserved from, and
	// umemBytes how much.
	umem      *UMEMBudget
	umemBytes int64
	// gso sends GSO packets (TransmitGSO); nil if it could not be opened.
	gso                 *gsoSocket
	gsoPackets, gsoSegs atomic.Uint64
	gsoBytes            atomic.Uint64
	closed              atomic.Bool
	// info is how the sockets were bound.
	info XSKInfo
	// waiters counts PrepareWait calls in progress: a poll thread may
	// prepare to sleep on a port it no longer polls, outside the grace
	// period that precedes Close, so Close waits for them before it
	// unmaps the rings.
	waiters atomic.Int64

	// mu serializes Close with Stats, which reads the sockets' kernel
	// counters.
	mu sync.Mutex
}

var (
	_ Port      = (*XSKPort)(nil)
	_ GSOSender = (*XSKPort)(nil)
	_ Lender    = (*XSKPort)(nil)
	_ UniformRx = (*XSKPort)(nil)
)

// OpenXSK opens an AF_XDP port on cfg.Device: it loads the redirect
// program, binds a socket to each rx queue, registers them and attaches
// the program (never replacing another one: ErrXDPBusy). It refuses a
// loopback device (ErrLoopback), a device that carries a default route
// unless cfg.AllowDefaultRoute (ErrDefaultRoute), and sockets whose UMEM
// does not fit cfg.UMEM (ErrUMEMLimit).
func OpenXSK(cfg XSKConfig) (_ *XSKPort, err error) {
	if cfg, err = cfg.withDefaults(); err != nil {
		return nil, err
	}
	if cfg.UMEM == nil {
		cfg.UMEM = defaultUMEM
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if err := checkSocketLayout(); err != nil {
		return nil, fmt.Errorf("xsk port %s: %w", cfg.Device, err)
	}
	h, err := netlinkHandle(cfg.Netns)
	if err != nil {
		return nil, fmt.Errorf("xsk port %s: %w", cfg.Device, err)
	}
	defer h.Close()
	lk, err := h.LinkByName(cfg.Device)
	if err != nil {
		return nil, fmt.Errorf("xsk port %s: %w", cfg.Device, err)
	}
	a := lk.Attrs()
	if a.RawFlags&unix.IFF_LOOPBACK != 0 {
		return nil, fmt.Errorf("xsk port %s: %w: an AF_XDP port would take its traffic from the host", cfg.Device, ErrLoopback)
	}
	if !cfg.AllowDefaultRoute {
		if fam, err := defaultRouteFamily(h, a.Index); err != nil {
			return nil, fmt.Errorf("xsk port %s: %w", cfg.Device, err)
		} else if fam != "" {
			return nil, fmt.Errorf("xsk port %s: %w (%s): an AF_XDP port would take the host's traffic on it away from the host's stack", cfg.Device, ErrDefaultRoute, fam)
		}
	}
	if x := a.Xdp; x != nil && x.Attached {
		return nil, fmt.Errorf("xsk port %s: XDP program id %d is attached (%s); ovsxdp attaches its own and does not replace others: detach it first (ip link set dev %s xdp off): %w",
			cfg.Device, x.ProgId, xdpAttachModeName(x.AttachMode), cfg.Device, ErrXDPBusy)
	}
	inUse := rxQueuesInUse(cfg.Netns, cfg.Device, a.NumRxQueues)
	queues := cfg.Queues
	if queues == 0 {
		queues = inUse
	}
	if queues < 1 || queues > inUse {
		return nil, fmt.Errorf("xsk port %s: %d queues asked, the device uses %d rx queues", cfg.Device, queues, inUse)
	}
	dev, err := deviceFromLink(lk)
	if err != nil {
		return nil, fmt.Errorf("xsk port %s: %w", cfg.Device, err)
	}
	p := &XSKPort{
		name:     cfg.Device,
		ifindex:  a.Index,
		netns:    cfg.Netns,
		dev:      dev,
		batch:    cfg.BatchSize,
		txQueues: dev.MaxTxQueues(),
		txSocks:  min(queues, dev.MaxTxQueues()),
	}
	umem := int64(queues) * int64(cfg.Frames) * int64(cfg.FrameSize)
	if err := cfg.UMEM.reserve(umem); err != nil {
		return nil, fmt.Errorf("xsk port %s: %d sockets of %d frames of %d bytes: %w", cfg.Device, queues, cfg.Frames, cfg.FrameSize, err)
	}
	p.umem, p.umemBytes = cfg.UMEM, umem
	defer func() {
		if err != nil {
			p.closeResources()
		}
	}()
	if p.prog, err = loadXDPProgram(cfg.Device, a.NumRxQueues); err != nil {
		return nil, fmt.Errorf("xsk port: %w", err)
	}
	sz := xskSizes{frames: cfg.Frames, frameSize: cfg.FrameSize, ringSize: cfg.RingSize}
	deadline := time.Now().Add(cfg.BindTimeout)
	err = nsthread.Do(cfg.Netns, func() error {
		zeroCopy := !cfg.CopyMode
		for q := range queues {
			s, err := openSocket(p.ifindex, q, sz, deadline, zeroCopy)
			if err != nil {
				return err
			}
			p.socks = append(p.socks, s)
			// A device that refused zero-copy on one queue refuses it on
			// all: the other queues are bound in copy mode at once.
			zeroCopy = zeroCopy && s.zcRefused == nil
			if err := p.prog.register(q, s.fd); err != nil {
				return err
			}
		}
		return p.prog.attach(cfg.Device, p.ifindex, cfg.Mode)
	})
	if err != nil {
		return nil, fmt.Errorf("xsk port %s: %w", cfg.Device, err)
	}
	p.info = xskInfoOf(p.socks, cfg)
	if cfg.BusyPollBudget > 0 {
		for _, s := range p.socks {
			if err := s.preferBusyPoll(cfg.BusyPollBudget); err != nil {
				p.info.BusyPoll, p.info.BusyPollErr = false, err
				break
			}
			p.info.BusyPoll = true
		}
	}
	cfg.Logger.Info("xsk port opened", "port", cfg.Device, "queues", queues, "xdp_mode", p.prog.mode.String(),
		"bind", p.info.BindMode(), "need_wakeup", p.info.NeedWakeup, "busy_poll", p.info.BusyPoll)
	if p.info.ZeroCopyErr != nil {
		cfg.Logger.Debug("xsk port: no zero-copy, copy mode", "port", cfg.Device, "err", p.info.ZeroCopyErr)
	}
	// GSO is an optimization: a port without it sends every segment
	// through its AF_XDP socket.
	if p.gso, err = openGSOSocket(cfg.Netns, p.ifindex); err != nil {
		cfg.Logger.Warn("xsk port: no GSO transmit, every segment goes through the AF_XDP socket", "port", cfg.Device, "err", err)
		p.gso, err = nil, nil
	}
	return p, nil
}

// rxQueuesInUse is the number of rx queues that the device dev uses: its
// channels (combined and rx-only, as ethtool -l counts them), which may
// be fewer than the allocated queues that netlink reports. A driver
// without channels uses every allocated queue.
func rxQueuesInUse(netns, dev string, allocated int) int {
	n := 0
	err := nsthread.Do(netns, func() error {
		e, err := ethtool.Open()
		if err != nil {
			return err
		}
		defer e.Close()
		ch, err := e.Channels(dev)
		if err != nil {
			return err
		}
		n = int(ch.Combined + ch.Rx)
		return nil
	})
	if err != nil || n < 1 || n > allocated {
		return allocated
	}
	return n
}

// defaultRouteFamily returns "IPv4" or "IPv6" if a default route of the
// main table goes out through the device ifindex (as its device or as one
// of its multipath next hops), "" if none does.
func defaultRouteFamily(h *netlink.Handle, ifindex int) (string, error) {
	routes, err := nldump.Retry(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return "", fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue
			}
		}
		uses := r.LinkIndex == ifindex
		for _, nh := range r.MultiPath {
			uses = uses || nh.LinkIndex == ifindex
		}
		if !uses {
			continue
		}
		if r.Family == netlink.FAMILY_V6 {
			return "IPv6", nil
		}
		return "IPv4", nil
	}
	return "", nil
}

// deviceFromLink builds the device model of a link as netlink shows it.
func deviceFromLink(lk netlink.Link) (*Device, error) {
	a := lk.Attrs()
	kind := DummyLike
	if lk.Type() == "veth" {
		kind = VethLike
	}
	dev, err := NewMirrorDevice(a.Name, kind, max(1, min(a.NumTxQueues, MaxQueues)))
	if err != nil {
		return nil, err
	}
	dev.SetRunning(a.RawFlags&unix.IFF_UP != 0)
	dev.SetCarrier(a.RawFlags&unix.IFF_LOWER_UP != 0)
	return dev, nil
}

func xdpAttachModeName(m uint32) string {
	switch m {
	case 1:
		return "native mode"
	case 2:
		return "generic mode"
	case 3:
		return "offload mode"
	case 4:
		return "several modes"
	}
	return fmt.Sprintf("mode %d", m)
}

// Name is the device's name.
func (p *XSKPort) Name() string { return p.name }

// Ifindex is the device's interface index in its namespace.
func (p *XSKPort) Ifindex() int { return p.ifindex }

// Netns is the path of the device's namespace, empty for the caller's.
func (p *XSKPort) Netns() string { return p.netns }

// Device is the device state the port runs on.
func (p *XSKPort) Device() *Device { return p.dev }

// BatchSize is the most frames one call moves.
func (p *XSKPort) BatchSize() int { return p.batch }

// RxQueues is the number of sockets, one per rx queue served.
func (p *XSKPort) RxQueues() int { return len(p.socks) }

// TxQueues is the device's number of tx queues at open.
func (p *XSKPort) TxQueues() int { return p.txQueues }

// Mode is the mode the XDP program was attached in (native or generic).
func (p *XSKPort) Mode() XDPMode { return p.prog.mode }

// XSKInfo is how an XSKPort's sockets were bound.
type XSKInfo struct {
	// ZeroCopy tells whether the sockets are in zero-copy mode; when
	// they are not, ZeroCopyErr is the device's refusal (nil if the port
	// did not ask, XSKConfig.CopyMode).
	ZeroCopy    bool
	ZeroCopyErr error
	// NeedWakeup tells whether the kernel is woken only when a ring asks
	// for it (XDP_USE_NEED_WAKEUP).
	NeedWakeup bool
	// BusyPoll tells whether the sockets prefer busy polling; BusyPollErr
	// is the kernel's refusal when XSKConfig.BusyPollBudget asked for it.
	// Busy polling acts only on a socket that has a NAPI id (NAPIIDs): a
	// veth's AF_XDP sockets have none (0), so there it changes nothing.
	BusyPoll    bool
	BusyPollErr error
}

// BindMode is "zero-copy" or "copy".
func (i XSKInfo) BindMode() string {
	if i.ZeroCopy {
		return "zero-copy"
	}
	return "copy"
}

func xskInfoOf(socks []*xskSocket, cfg XSKConfig) XSKInfo {
	i := XSKInfo{ZeroCopy: len(socks) > 0, NeedWakeup: len(socks) > 0}
	for _, s := range socks {
		i.ZeroCopy = i.ZeroCopy && s.zeroCopy
		i.NeedWakeup = i.NeedWakeup && s.needWakeup
		if s.zcRefused != nil && i.ZeroCopyErr == nil {
			i.ZeroCopyErr = s.zcRefused
		}
	}
	if !i.ZeroCopy && i.ZeroCopyErr == nil && !cfg.CopyMode {
		i.ZeroCopyErr = errors.New("the kernel bound the socket in copy mode")
	}
	return i
}

// Info is how the port's sockets were bound.
func (p *XSKPort) Info() XSKInfo { return p.info }

// Wakeups returns the system calls the port made to wake the kernel: for
// the fill rings and for the tx rings.
func (p *XSKPort) Wakeups() (fill, tx uint64) {
	for _, s := range p.socks {
		fill += s.fillWakeups.Load()
		tx += s.txKicks.Load()
	}
	return fill, tx
}

// NAPIIDs returns the NAPI instance each socket last received from (0 for
// none): busy polling needs one.
func (p *XSKPort) NAPIIDs() []uint32 {
	ids := make([]uint32, len(p.socks))
	for i, s := range p.socks {
		ids[i] = s.napiID()
	}
	return ids
}

// usable is the check of Receive, Transmit and PrepareWait.
func (p *XSKPort) usable(s *xskSocket) error {
	if p.closed.Load() {
		return ErrClosed
	}
	if st := p.dev.Snapshot(); !st.Running() || st.Registration() != Registered || s.dead.Load() {
		return ErrPortDown
	}
	return nil
}

// RxQueueInfo implements UniformRx: Receive and ReceiveLent record rx
// queue q for every frame.
func (p *XSKPort) RxQueueInfo(q int) RxInfo { return RxInfo{RxQueue: RecordRxQueue(q)} }

// Receive implements Port. Frames carry rx queue q as their recorded rx
// queue: they come from a device queue.
func (p *XSKPort) Receive(q int, bufs [][]byte, sizes []int, info []RxInfo) (int, error) {
	if q < 0 || q >= len(p.socks) {
		return 0, ErrBadQueue
	}
	s := p.socks[q]
	if err := p.usable(s); err != nil {
		return 0, err
	}
	limit := min(p.batch, len(bufs), len(sizes))
	if info != nil {
		limit = min(limit, len(info))
	}
	n, _ := s.receive(bufs[:limit], sizes[:limit])
	fillRxInfo(info, n, p.RxQueueInfo(q))
	return n, nil
}

// ReceiveLent implements Lender: the frames are the UMEM frames the kernel
// wrote them into, with the rest of their UMEM frame as capacity. They go
// back to the fill ring when Release gives them back.
func (p *XSKPort) ReceiveLent(q int, frames [][]byte, info []RxInfo) (int, error) {
	if q < 0 || q >= len(p.socks) {
		return 0, ErrBadQueue
	}
	s := p.socks[q]
	if err := p.usable(s); err != nil {
		return 0, err
	}
	limit := min(p.batch, len(frames))
	if info != nil {
		limit = min(limit, len(info))
	}
	n, _ := s.lend(frames[:limit])
	fillRxInfo(info, n, p.RxQueueInfo(q))
	return n, nil
}

// Release implements Lender: the frames go back to the fill ring of queue
// q's socket.
func (p *XSKPort) Release(q int, frames [][]byte) {
	if q < 0 || q >= len(p.socks) || p.closed.Load() {
		return
	}
	p.socks[q].release(frames)
}

// Transmit implements Port. Frames longer than a UMEM frame are taken and
// dropped (TxDropped). When the device goes down under a Transmit, the
// frames it already put on the tx ring are reported as not sent; they go
// out if the device comes back up before the port is closed.
func (p *XSKPort) Transmit(q int, frames [][]byte) (int, error) {
	if q < 0 || q >= p.txQueues {
		return 0, ErrBadQueue
	}
	s := p.socks[q%p.txSocks]
	if err := p.usable(s); err != nil {
		return 0, err
	}
	return s.transmit(frames[:min(len(frames), p.batch)])
}

// errNoGSO is TransmitGSO's error on a port whose packet socket could not
// be opened.
var errNoGSO = errors.New("no GSO socket")

// TransmitGSO implements GSOSender, through a packet socket on the device
// (the AF_XDP socket cannot carry GSO packets). Its segments count as
// transmitted frames in Stats, and the packet in TxGSO.
func (p *XSKPort) TransmitGSO(frame []byte, g GSO) error {
	if p.gso == nil {
		return errNoGSO
	}
	if err := p.usable(p.socks[0]); err != nil {
		return err
	}
	if err := p.gso.send(frame, g); err != nil {
		return err
	}
	payload := len(frame) - g.HeaderLen
	segs := (payload + g.MSS - 1) / g.MSS
	p.gsoPackets.Add(1)
	p.gsoSegs.Add(uint64(segs))
	p.gsoBytes.Add(uint64(len(frame) + (segs-1)*g.HeaderLen))
	return nil
}

// PrepareWait implements Port: the descriptor is the queue's socket. It
// also sends what waits on the socket's tx ring, and checks that the
// kernel has not unbound the socket (poll(2) would never report that):
// when the socket received nothing since the last PrepareWait on it, at
// most every 10 ms (the first time at once), so that a thread learns it
// within a few bounded sleeps.
func (p *XSKPort) PrepareWait(q int) (int, bool, error) {
	if q < 0 || q >= len(p.socks) {
		return -1, false, ErrBadQueue
	}
	p.waiters.Add(1) // before usable reads closed; Close does the converse
	defer p.waiters.Add(-1)
	s := p.socks[q]
	if err := p.usable(s); err != nil {
		return -1, false, err
	}
	if s.checkErrorIdle() {
		return -1, false, ErrPortDown
	}
	s.kick()
	if s.rxReady() {
		return s.fd, true, nil
	}
	return s.fd, false, nil
}

// RxPending returns how many received frames wait on the rx ring of queue
// q, from the ring's producer and consumer indexes: no system call, so that
// a poll thread can look before every nap. It is 0 for a queue that does
// not exist and after Close. The caller must keep the port open meanwhile
// (a poll thread looks inside a read-side section).
func (p *XSKPort) RxPending(q int) int {
	if q < 0 || q >= len(p.socks) || p.closed.Load() {
		return 0
	}
	return p.socks[q].rxPending()
}

// RxRoom returns how many more frames queue q can take before the kernel
// drops what arrives (as RxPending, no system call): the room on its rx
// ring, or the frames on its fill ring if fewer (lent frames, or frames
// the kernel took but has not published yet, are on neither); 0 for a
// queue that does not exist and after Close.
func (p *XSKPort) RxRoom(q int) int {
	if q < 0 || q >= len(p.socks) || p.closed.Load() {
		return 0
	}
	s := p.socks[q]
	return max(min(len(s.rx.descs)-s.rxPending(), s.fillPosted()), 0)
}

// RxLow reports whether fewer than half of queue q's rx frames are on its
// fill ring, posted to the kernel (as RxPending, no system call): the
// others wait on the rx ring, are lent, or are the kernel's. False for a
// queue that does not exist and after Close.
func (p *XSKPort) RxLow(q int) bool {
	if q < 0 || q >= len(p.socks) || p.closed.Load() {
		return false
	}
	s := p.socks[q]
	return s.fillPosted() < len(s.fill.descs)/2
}

// FillStats are the levels of an XSKPort's fill rings: the free frames
// posted to the kernel, which drops a frame that arrives when it has none
// ("no fill frame", Stats.RxNoFrame).
type FillStats struct {
	// Size is how many frames the fill rings hold when full (every rx
	// frame of the sockets), Posted how many they hold now.
	Size, Posted int
	// Low is the fewest frames one socket's fill ring held when a poll
	// found received frames waiting, since the port opened: how close the
	// kernel came to dropping. FoundEmpty counts the polls that found a
	// fill ring empty: the kernel dropped what arrived until then.
	Low        int
	FoundEmpty uint64
	// RxHigh is the most frames one socket's rx ring held when a poll
	// found frames waiting: received, not yet taken. HeldHigh is the most
	// rx frames such a poll found on neither ring: taken by the datapath
	// and not yet given back (a few of them may be frames the kernel was
	// receiving into). A fill ring runs dry when the two add up to Size.
	RxHigh, HeldHigh int
}

// FillStats returns the levels of the port's fill rings (no system call);
// zero after Close.
func (p *XSKPort) FillStats() FillStats {
	p.mu.Lock() // the rings stay mapped meanwhile
	defer p.mu.Unlock()
	var f FillStats
	if p.closed.Load() {
		return f
	}
	for i, s := range p.socks {
		f.Size += len(s.fill.descs)
		f.Posted += s.fillPosted()
		if low := int(s.fillLow.Load()); i == 0 || low < f.Low {
			f.Low = low
		}
		f.FoundEmpty += s.fillEmpty.Load()
		f.RxHigh = max(f.RxHigh, int(s.rxHigh.Load()))
		f.HeldHigh = max(f.HeldHigh, int(s.heldHigh.Load()))
	}
	return f
}

// ResetFillLow starts FillStats.Low afresh, at the fill rings' size, and
// RxHigh and HeldHigh at 0, so that they cover only what follows (a phase
// of a benchmark). A poll that records its levels at the same moment may
// leave them, which are still levels the rings held.
func (p *XSKPort) ResetFillLow() {
	p.mu.Lock() // the sockets stay as they are meanwhile
	defer p.mu.Unlock()
	if p.closed.Load() {
		return
	}
	for _, s := range p.socks {
		s.fillLow.Store(uint32(len(s.fill.descs)))
		s.rxHigh.Store(0)
		s.heldHigh.Store(0)
	}
}

// Stats implements Port. RxDropped includes the frames the kernel dropped
// on the sockets (full rx ring, no fill frame), which RxRingFull and
// RxNoFrame count apart.
func (p *XSKPort) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := Stats{TxPackets: p.gsoSegs.Load(), TxBytes: p.gsoBytes.Load(), TxGSO: p.gsoPackets.Load()}
	for _, s := range p.socks {
		st.RxPackets += s.rxPackets.Load()
		st.RxBytes += s.rxBytes.Load()
		st.RxDropped += s.rxDropped.Load()
		st.TxPackets += s.txPackets.Load()
		st.TxBytes += s.txBytes.Load()
		st.TxDropped += s.txDropped.Load()
		if p.closed.Load() {
			continue
		}
		if ks, err := s.kernelStats(); err == nil {
			st.RxDropped += ks.Rx_dropped + ks.Rx_ring_full
			st.RxRingFull += ks.Rx_ring_full
			st.RxNoFrame += ks.Rx_dropped
		}
	}
	return st
}

// Close implements Port: it detaches the XDP program and closes the
// sockets, releasing their UMEM and rings, so that the queues can be bound
// again at once. It leaves the device state alone.
func (p *XSKPort) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed.CompareAndSwap(false, true) {
		return nil
	}
	// A PrepareWait that missed the flag finishes in a few syscalls.
	for p.waiters.Load() != 0 {
		time.Sleep(50 * time.Microsecond)
	}
	if err := p.closeResources(); err != nil {
		return fmt.Errorf("close xsk port %s: %w", p.name, err)
	}
	return nil
}

func (p *XSKPort) closeResources() error {
	var errs []error
	if p.prog != nil {
		errs = append(errs, p.prog.Close())
	}
	// Each close waits for a grace period in the kernel; wait for them
	// together.
	serrs := make([]error, len(p.socks))
	var wg sync.WaitGroup
	for i, s := range p.socks {
		wg.Go(func() { serrs[i] = s.close() })
	}
	wg.Wait()
	if p.gso != nil {
		errs = append(errs, p.gso.close())
	}
	if p.umem != nil {
		p.umem.release(p.umemBytes)
		p.umem = nil
	}
	return errors.Join(append(errs, serrs...)...)
}
