package datapath

import (
	"time"

	"context"
	"errors"
	"fmt"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// This file is what OpenFlow's packet out and port mod need of a bridge:
// sending a packet that no port received through the pipeline and the
// guarded output, and bringing a port administratively up or down.

// ErrMalformedPacket is returned for a packet out whose frame cannot be
// parsed.
var ErrMalformedPacket = errors.New("malformed packet")

// maxPacketOut bounds the frame of a packet out: it must fit a poll
// thread's buffer with room for the tags actions may push.
const maxPacketOut = maxFrame

// PacketOut runs acts on frame as Open vSwitch runs a packet out: the
// actions are translated through the pipeline (resubmit and goto_table
// reach the tables) from the packet's key with in_port inPort, and the
// datapath actions run on one poll thread, between two batches, through
// the same output function as every received packet (the output policy,
// the tx queue pick and the counters). The packet is accounted to an
// origin of its own, not to the port named in_port: no port received it.
// IN_PORT, FLOOD and ALL treat inPort as the ingress port.
func (b *Bridge) PacketOut(ctx context.Context, frame []byte, inPort uint32, acts []flow.Action) error {
	po, err := PreparePacketOut(b.table.Snapshot(), frame, inPort, acts)
	if err != nil {
		return err
	}
	return b.SendPacketOut(ctx, po)
}

// PreparedPacketOut is a packet out translated and not yet sent.
type PreparedPacketOut struct {
	frame  []byte
	inPort uint32
	k      flow.Key
	off    flow.Offsets
	tr     *flow.Translation
}

// PreparePacketOut checks frame and translates acts on it through the
// tables of s, as PacketOut does, for SendPacketOut to send later: a
// packet out in an OpenFlow bundle is translated in its turn, through
// the tables as the bundle's changes before it leave them
// (flow.TableTxn.Snapshot), and sent once the whole bundle has taken
// effect, as Open vSwitch does. frame must not change until it is sent.
func PreparePacketOut(s *flow.TableSnapshot, frame []byte, inPort uint32, acts []flow.Action) (*PreparedPacketOut, error) {
	if len(frame) > maxPacketOut {
		return nil, fmt.Errorf("packet out of %d bytes, more than %d: %w", len(frame), maxPacketOut, ErrMalformedPacket)
	}
	if len(frame) < 14 {
		return nil, fmt.Errorf("packet out of %d bytes: %w", len(frame), ErrMalformedPacket)
	}
	po := &PreparedPacketOut{frame: frame, inPort: inPort}
	if m := flow.Extract(&po.k, &po.off, frame, inPort); m != flow.MalformedNone {
		return nil, fmt.Errorf("packet out: %v: %w", m, ErrMalformedPacket)
	}
	po.tr = s.TranslateActions(&po.k, acts)
	return po, nil
}

// PrepareResume prepares the resumption of continuation c on frame, as
// Open vSwitch runs NXT_RESUME: the packet's key is extracted with
// in_port inPort, meta then sets the pipeline fields the packet in
// reported (registers, metadata, ...), and the continuation is
// translated from where it stopped. SendPacketOut sends it as a packet
// out.
func PrepareResume(s *flow.TableSnapshot, frame []byte, inPort uint32, meta func(*flow.Key), c *flow.Continuation) (*PreparedPacketOut, error) {
	if len(frame) > maxPacketOut || len(frame) < 14 {
		return nil, fmt.Errorf("resumed packet of %d bytes: %w", len(frame), ErrMalformedPacket)
	}
	po := &PreparedPacketOut{frame: frame, inPort: inPort}
	if m := flow.Extract(&po.k, &po.off, frame, inPort); m != flow.MalformedNone {
		return nil, fmt.Errorf("resumed packet: %v: %w", m, ErrMalformedPacket)
	}
	meta(&po.k)
	po.tr = s.TranslateContinuation(&po.k, c)
	return po, nil
}

// SendPacketOut sends a prepared packet out from one poll thread.
func (b *Bridge) SendPacketOut(ctx context.Context, po *PreparedPacketOut) error {
	frame, inPort, k, off, tr := po.frame, po.inPort, po.k, po.off, po.tr
	origin := &Port{Name: "packet-out", OFPort: inPort, counters: make([]portCounters, len(b.pmds))}
	return b.onOnePMD(ctx, func(p *pmd) {
		buf := p.bufs[0][:len(frame)]
		// bufs[0] is free between batches; it has room for pushed tags.
		copy(buf, frame)
		p.tbl = b.ports.Load()
		p.policy = b.Policy()
		p.key, p.off = k, off
		p.in = origin
		now := time.Now()
		p.now, p.mono = now.UnixNano(), int64(now.Sub(monoBase))
		p.copies = 0
		p.pick.hashed = false
		p.pick.rxQueue = vport.RxQueue(0) // none recorded
		c := &origin.counters[p.id]
		c.rxPackets.Add(1)
		c.rxBytes.Add(uint64(len(frame)))
		_, verdict := flow.Execute(buf, &p.key, &p.off, tr.Actions, &packetOutSink{p: p, in: inPort})
		if verdict == flow.VerdictOK {
			verdict = tr.Verdict
		}
		switch {
		case p.copies > 1:
			c.copies.Add(uint64(p.copies - 1))
		case p.copies == 0:
			c.drops[verdictDrop(verdict)].Add(1)
		}
		p.flush()
		p.published.publish()
		p.in = nil
	})
}

// packetOutSink resolves a packet out's outputs: IN_PORT is the port named
// in_port, and FLOOD and ALL leave it out; the rest is resolveOutput's.
type packetOutSink struct {
	p  *pmd
	in uint32
}

// Output implements flow.Outputter.
func (s *packetOutSink) Output(port uint32, frame []byte) {
	p := s.p
	p.frame = frame
	defer func() { p.frame = nil }()
	switch port {
	case flow.PortInPort:
		if dst := p.tbl.lookup(s.in); dst != nil {
			p.send(dst)
			return
		}
		p.drop(port, DropPortGone)
	case flow.PortFlood, flow.PortAll:
		for _, dst := range p.tbl.list {
			if dst.OFPort != s.in {
				p.send(dst)
			}
		}
	default:
		resolveOutput(p.tbl, p.in, s.in, port, p)
	}
}

// OutputAs implements flow.InPortOutputter: after the packet out's
// actions wrote in_port, flood and all leave the written port out, and
// normal runs as the poll threads' (pmd.OutputAs) does.
func (s *packetOutSink) OutputAs(port, inPort uint32, frame []byte) {
	if port == flow.PortNormal {
		s.p.OutputAs(port, inPort, frame)
		return
	}
	(&packetOutSink{p: s.p, in: inPort}).Output(port, frame)
}

// Conntrack and Recirculate make the sink a flow.Recirculator: ct runs
// as for a received packet, and a recirculated copy's outputs come back
// here.
func (s *packetOutSink) Conntrack(frame []byte, k *flow.Key, off *flow.Offsets, ct *flow.CT, rest []flow.Action) flow.Verdict {
	return s.p.conntrack(frame, k, off, ct, rest, s)
}

// Recirculate implements flow.Recirculator.
func (s *packetOutSink) Recirculate(frame []byte, k *flow.Key, off *flow.Offsets) {
	s.p.recirculate(frame, k, off, s)
}

// onOnePMD runs fn once on the first poll thread (between batches) and
// returns when it has run; on a bridge whose threads are not running it
// runs fn on the caller's goroutine under b.mu, as onEachPMD does.
func (b *Bridge) onOnePMD(ctx context.Context, fn func(p *pmd)) error {
	b.mu.Lock()
	switch {
	case b.stopped || len(b.pmds) == 0:
		b.mu.Unlock()
		return ErrStopped
	case !b.started:
		defer b.mu.Unlock()
		fn(b.pmds[0])
		return nil
	}
	b.mu.Unlock()
	p := b.pmds[0]
	r := &controlRequest{fn: fn, done: make(chan struct{})}
	p.ctl.push(r)
	select {
	case <-r.done:
		return nil
	case <-p.done:
		select {
		case <-r.done:
			return nil
		default:
			return ErrStopped
		}
	case <-ctx.Done():
		return fmt.Errorf("bridge %s: waiting for pmd %d: %w", b.cfg.Name, p.id, ctx.Err())
	}
}

// SetPortAdminUp brings p's device administratively up or down, as an
// OpenFlow port mod does: output to a port that is down is dropped by the
// output policy (device not running). A port on a real device
// (vport.AdminSetter) has the device itself brought up or down, as
// ovs-vswitchd does, so that what the kernel reports next agrees; the
// model changes at once all the same, and an error leaves it changed.
func SetPortAdminUp(p *Port, up bool) error {
	var err error
	if as, ok := p.vp.(vport.AdminSetter); ok {
		err = as.SetAdminUp(up)
	}
	p.dev.SetRunning(up)
	return err
}
