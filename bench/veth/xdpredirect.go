package main

import (
	"errors"
	"fmt"
	"net"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// xdpFwd is the limit: forwarding between h-a and h-b entirely in XDP.
// A program on each host end looks the ingress interface up in a
// DEVMAP_HASH that maps h-a to h-b and h-b to h-a, and redirects the frame
// there (bpf_redirect_map). A veth transmits a redirected frame only if
// its peer runs an XDP program (native XDP on veth needs the peer's NAPI),
// so p-a and p-b get a program that returns XDP_PASS. All four are native
// mode, attached through BPF links, which the kernel detaches when the
// links close (or this process dies).
type xdpFwd struct {
	devs  *ebpf.Map
	redir *ebpf.Program
	pass  *ebpf.Program
	links []link.Link
	peerA link.Link // the XDP_PASS program's link on p-a
}

// Offsets in struct xdp_md and XDP actions.
const (
	xdpMdIngressIfindex = 12
	xdpPass             = 2
)

// redirectInstructions: r0 = bpf_redirect_map(&devs, ctx->ingress_ifindex,
// XDP_PASS); the flags' low bits are the action when the key is missing.
func redirectInstructions(mapFD int) asm.Instructions {
	return asm.Instructions{
		asm.LoadMem(asm.R2, asm.R1, xdpMdIngressIfindex, asm.Word),
		asm.LoadMapPtr(asm.R1, mapFD),
		asm.Mov.Imm(asm.R3, xdpPass),
		asm.FnRedirectMap.Call(),
		asm.Return(),
	}
}

func (f *xdpFwd) start(t *topo) error {
	var err error
	f.devs, err = ebpf.NewMap(&ebpf.MapSpec{Name: "vethbench_devs", Type: ebpf.DevMapHash, KeySize: 4, ValueSize: 4, MaxEntries: 8})
	if err != nil {
		return fmt.Errorf("create DEVMAP_HASH: %w", err)
	}
	f.redir, err = ebpf.NewProgram(&ebpf.ProgramSpec{Name: "vethbench_redir", Type: ebpf.XDP, License: "Dual MIT/GPL",
		Instructions: redirectInstructions(f.devs.FD())})
	if err != nil {
		return fmt.Errorf("load redirect program: %w", err)
	}
	f.pass, err = ebpf.NewProgram(&ebpf.ProgramSpec{Name: "vethbench_pass", Type: ebpf.XDP, License: "Dual MIT/GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, xdpPass), asm.Return()}})
	if err != nil {
		return fmt.Errorf("load pass program: %w", err)
	}
	// The kernel resolves a DEVMAP entry's ifindex in the namespace of
	// the process that updates it: update it from the switch namespace.
	err = t.inNetns(t.sw, func() error {
		a, err := net.InterfaceByName(t.hostA)
		if err != nil {
			return err
		}
		b, err := net.InterfaceByName(t.hostB)
		if err != nil {
			return err
		}
		if err := f.devs.Put(uint32(a.Index), uint32(b.Index)); err != nil {
			return fmt.Errorf("DEVMAP_HASH %s: %w", t.hostA, err)
		}
		if err := f.devs.Put(uint32(b.Index), uint32(a.Index)); err != nil {
			return fmt.Errorf("DEVMAP_HASH %s: %w", t.hostB, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Peers first, so that a redirected frame always finds one.
	for _, d := range []struct {
		ns, dev string
		prog    *ebpf.Program
	}{{t.b, t.peerB, f.pass}, {t.sw, t.hostA, f.redir}, {t.sw, t.hostB, f.redir}} {
		l, err := attachXDP(t, d.ns, d.dev, d.prog)
		if err != nil {
			return err
		}
		f.links = append(f.links, l)
	}
	return f.reclaimPeerA(t)
}

// yieldPeerA detaches the XDP_PASS program from p-a, so that the AF_XDP
// sender can attach its own there (which, like XDP_PASS, lets the veth
// transmit frames redirected into h-a).
func (f *xdpFwd) yieldPeerA() error {
	if f.peerA == nil {
		return nil
	}
	err := f.peerA.Close()
	f.peerA = nil
	return err
}

// reclaimPeerA attaches the XDP_PASS program to p-a.
func (f *xdpFwd) reclaimPeerA(t *topo) error {
	if f.peerA != nil {
		return nil
	}
	l, err := attachXDP(t, t.a, t.peerA, f.pass)
	if err != nil {
		return err
	}
	f.peerA = l
	return nil
}

// attachXDP attaches prog to dev in namespace ns, in native mode, through
// a BPF link.
func attachXDP(t *topo, ns, dev string, prog *ebpf.Program) (link.Link, error) {
	var l link.Link
	err := t.inNetns(ns, func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifi.Index, Flags: link.XDPDriverMode})
		if err != nil {
			return fmt.Errorf("attach XDP to %s in %s (native mode): %w", dev, ns, err)
		}
		return nil
	})
	return l, err
}

func (f *xdpFwd) pid() int { return 0 }

func (f *xdpFwd) stop() error {
	var errs []error
	// Host ends first, then the peers.
	for i := len(f.links) - 1; i >= 0; i-- {
		errs = append(errs, f.links[i].Close())
	}
	f.links = nil
	errs = append(errs, f.yieldPeerA())
	if f.redir != nil {
		errs = append(errs, f.redir.Close())
	}
	if f.pass != nil {
		errs = append(errs, f.pass.Close())
	}
	if f.devs != nil {
		errs = append(errs, f.devs.Close())
	}
	f.redir, f.pass, f.devs = nil, nil, nil
	return errors.Join(errs...)
}
