package main

import (
	"fmt"
	"net"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// The harness's two UDP senders (the AF_XDP sender and the 1,000-flow
// socket sender) send to 1,000 UDP ports of b on which nothing listens.
// Taken up b's stack, each datagram costs a route lookup, a socket
// lookup and an ICMP port unreachable (for which the kernel looks up a
// route before its rate limit refuses to send it), and that work runs
// where the frame entered b: in the softirq of the CPU that transmitted
// it to p-b, which for every forwarder here is its own forwarding CPU.
// Profiled under ovsxdp, __icmp_send alone took 13% of the forwarding
// process's samples and b's stack 24%, on top of the forwarder's own
// work. So during these senders' tests a sink on p-b's ingress (TCX,
// after p-b has counted the frame) drops the datagrams before b's IP
// layer, as a traffic generator's receive port counts and discards what
// it gets: the tests measure the forwarders, not b's ICMP.

// tcActShot is TC_ACT_SHOT: drop the packet.
const tcActShot = 2

// Offsets in struct __sk_buff.
const (
	skbData    = 76
	skbDataEnd = 80
)

// udpSinkInstructions drop an IPv4 UDP frame (Ethertype 0x0800, protocol
// 17) and let everything else (ARP, ICMP) pass.
func udpSinkInstructions() asm.Instructions {
	return asm.Instructions{
		asm.Mov.Imm(asm.R0, 0), // TC_ACT_OK
		asm.LoadMem(asm.R2, asm.R1, skbData, asm.Word),
		asm.LoadMem(asm.R3, asm.R1, skbDataEnd, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, 14+20),
		asm.JGT.Reg(asm.R4, asm.R3, "out"), // shorter than Ethernet + IPv4
		asm.LoadMem(asm.R5, asm.R2, 12, asm.Half),
		asm.JNE.Imm(asm.R5, 0x0008, "out"), // 0x0800 in network order, loaded little-endian
		asm.LoadMem(asm.R5, asm.R2, 14+9, asm.Byte),
		asm.JNE.Imm(asm.R5, 17, "out"),
		asm.Mov.Imm(asm.R0, tcActShot),
		asm.Return().WithSymbol("out"),
	}
}

// udpSink is the sink on p-b's ingress.
type udpSink struct {
	prog *ebpf.Program
	lk   link.Link
}

// startUDPSink attaches the sink to p-b in b.
func startUDPSink(t *topo) (*udpSink, error) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "vethbench_sink", Type: ebpf.SchedCLS, License: "Dual MIT/GPL",
		Instructions: udpSinkInstructions()})
	if err != nil {
		return nil, fmt.Errorf("load the UDP sink: %w", err)
	}
	s := &udpSink{prog: prog}
	err = t.inNetns(t.b, func() error {
		ifc, err := net.InterfaceByName(t.peerB)
		if err != nil {
			return err
		}
		s.lk, err = link.AttachTCX(link.TCXOptions{Interface: ifc.Index, Program: prog, Attach: ebpf.AttachTCXIngress})
		return err
	})
	if err != nil {
		prog.Close()
		return nil, fmt.Errorf("attach the UDP sink to %s: %w", t.peerB, err)
	}
	return s, nil
}

// Close detaches and unloads the sink.
func (s *udpSink) Close() error {
	err := s.lk.Close()
	s.prog.Close()
	return err
}
