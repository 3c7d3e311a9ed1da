package vport

// The xsk port kind loads and attaches its own XDP program instead of the
// one github.com/asavie/xdp v0.3.3 provides: that library's Program.Attach
// hangs when a generic-mode program is already attached and silently
// replaces any other program, and it attaches through netlink, so the
// program stays on the device when the process dies. This program is
// attached through a BPF link, which the kernel detaches when the last
// file descriptor of the link is closed, including by the process's death,
// and which never replaces another program.

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// XDPMode is how the XDP program is attached, as OVS's options:xdp-mode.
type XDPMode uint8

const (
	// XDPBestEffort tries native mode, then generic mode.
	XDPBestEffort XDPMode = iota
	// XDPNative attaches in the driver (XDP_FLAGS_DRV_MODE).
	XDPNative
	// XDPGeneric attaches in the kernel's generic hook (XDP_FLAGS_SKB_MODE),
	// which every device supports.
	XDPGeneric
)

var xdpModeNames = [...]string{XDPBestEffort: "best-effort", XDPNative: "native", XDPGeneric: "generic"}

func (m XDPMode) String() string {
	if int(m) < len(xdpModeNames) {
		return xdpModeNames[m]
	}
	return fmt.Sprintf("xdp-mode(%d)", uint8(m))
}

// ParseXDPMode parses "best-effort", "native" or "generic".
func ParseXDPMode(s string) (XDPMode, error) {
	for m, name := range xdpModeNames {
		if s == name {
			return XDPMode(m), nil
		}
	}
	return 0, fmt.Errorf("unknown xdp-mode %q (want best-effort, native or generic)", s)
}

// ErrXDPBusy means the device already runs another XDP program (or a BPF
// link holds its XDP hook), which the port will not replace.
var ErrXDPBusy = errors.New("device already has an XDP program")

// xdpMdRxQueueIndex is the offset of rx_queue_index in struct xdp_md.
const xdpMdRxQueueIndex = 16

// xskRedirectInstructions is the program: redirect the frame to the
// socket registered in the XSKMAP for the rx queue it arrived on, or pass
// it to the kernel's stack when no socket is registered there (the low
// bits of bpf_redirect_map's flags are the action it returns when the
// lookup fails).
//
//	r2 = ctx->rx_queue_index
//	r1 = &xsks
//	r3 = XDP_PASS
//	r0 = bpf_redirect_map(r1, r2, r3)
//	return r0
func xskRedirectInstructions(mapFD int) asm.Instructions {
	return asm.Instructions{
		asm.LoadMem(asm.R2, asm.R1, xdpMdRxQueueIndex, asm.Word),
		asm.LoadMapPtr(asm.R1, mapFD),
		asm.Mov.Imm(asm.R3, xdpPass),
		asm.FnRedirectMap.Call(),
		asm.Return(),
	}
}

const xdpPass = 2 // XDP_PASS

// xdpProgram is one device's XSKMAP and redirect program, and the link
// that attaches it.
type xdpProgram struct {
	xsks *ebpf.Map
	prog *ebpf.Program
	lnk  link.Link
	mode XDPMode // the mode it is attached in
}

// loadXDPProgram creates an XSKMAP of entries sockets and loads the
// redirect program over it.
func loadXDPProgram(name string, entries int) (*xdpProgram, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{
		Name:       "ovsxdp_xsks",
		Type:       ebpf.XSKMap,
		KeySize:    4,
		ValueSize:  4,
		MaxEntries: uint32(entries),
	})
	if err != nil {
		return nil, bpfErr(fmt.Errorf("%s: create XSKMAP: %w", name, err))
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "ovsxdp_xsk",
		Type:         ebpf.XDP,
		License:      "Dual MIT/GPL",
		Instructions: xskRedirectInstructions(m.FD()),
	})
	if err != nil {
		m.Close()
		return nil, bpfErr(fmt.Errorf("%s: load XDP program: %w", name, err))
	}
	return &xdpProgram{xsks: m, prog: prog}, nil
}

// bpfErr marks a missing privilege or kernel feature as ErrNotSupported.
func bpfErr(err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, ebpf.ErrNotSupported) {
		return fmt.Errorf("%w (BPF needs root or CAP_BPF+CAP_NET_ADMIN and a kernel with XDP): %w", err, ErrNotSupported)
	}
	return err
}

// register points queue's XSKMAP entry at the socket fd.
func (x *xdpProgram) register(queue, fd int) error {
	if err := x.xsks.Put(uint32(queue), uint32(fd)); err != nil {
		return fmt.Errorf("register queue %d in XSKMAP: %w", queue, err)
	}
	return nil
}

// attach attaches the program to ifindex (device name for messages) in
// mode. It must run in the device's namespace. It never replaces another
// program: the kernel refuses a BPF link on a hook that is in use.
func (x *xdpProgram) attach(name string, ifindex int, mode XDPMode) error {
	try := func(m XDPMode) error {
		flags := link.XDPDriverMode
		if m == XDPGeneric {
			flags = link.XDPGenericMode
		}
		l, err := link.AttachXDP(link.XDPOptions{Program: x.prog, Interface: ifindex, Flags: flags})
		if err != nil {
			return err
		}
		x.lnk, x.mode = l, m
		return nil
	}
	var err error
	switch mode {
	case XDPNative, XDPGeneric:
		err = try(mode)
	case XDPBestEffort:
		if err = try(XDPNative); err != nil && !hookBusy(err) {
			nerr := err
			if err = try(XDPGeneric); err != nil {
				err = fmt.Errorf("native: %w; generic: %w", nerr, err)
			}
		}
	default:
		return fmt.Errorf("attach XDP program to %s: %v", name, mode)
	}
	switch {
	case err == nil:
		return nil
	case hookBusy(err):
		return fmt.Errorf("attach XDP program to %s (%s mode): another XDP program or link holds the device's XDP hook; detach it first (ip link set dev %s xdp off): %w: %w", name, mode, name, ErrXDPBusy, err)
	case errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Errorf("attach XDP program to %s (%s mode): %w: %w", name, mode, err, ErrNotSupported)
	}
	return bpfErr(fmt.Errorf("attach XDP program to %s (%s mode): %w", name, mode, err))
}

// hookBusy reports whether err is the kernel refusing to replace an XDP
// program (EBUSY) or to mix native and generic programs (EEXIST).
func hookBusy(err error) bool {
	return errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EEXIST)
}

// Close detaches the program and releases the program and the map.
func (x *xdpProgram) Close() error {
	var errs []error
	if x.lnk != nil {
		if err := x.lnk.Close(); err != nil {
			errs = append(errs, fmt.Errorf("detach XDP program: %w", err))
		}
		x.lnk = nil
	}
	if x.prog != nil {
		errs = append(errs, x.prog.Close())
		x.prog = nil
	}
	if x.xsks != nil {
		errs = append(errs, x.xsks.Close())
		x.xsks = nil
	}
	return errors.Join(errs...)
}
