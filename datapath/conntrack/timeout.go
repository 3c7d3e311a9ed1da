package conntrack

import (
	"fmt"
	"time"
)

// The timeout classes a connection expires by, as Open vSwitch names them
// (CT_TM_*); the names of its timeout policies' attributes are in
// parentheses.
const (
	tmTCPFirstPacket = iota // TCP, one side has sent (tcp_syn_sent)
	tmTCPOpening            // TCP, handshake under way (tcp_syn_recv)
	tmTCPEstablished        // TCP, established (tcp_established)
	tmTCPClosing            // TCP, one side has closed (tcp_fin_wait)
	tmTCPFinWait            // TCP, both sides have closed (tcp_time_wait)
	tmTCPClosed             // TCP, closed or reset (tcp_close)
	tmOtherFirst            // UDP and others, one packet (udp_first)
	tmOtherMultiple         // UDP and others, several one way (udp_single)
	tmOtherBidir            // UDP and others, both ways (udp_multiple)
	tmICMPFirst             // ICMP query, no reply yet (icmp_first)
	tmICMPReply             // ICMP query answered (icmp_reply)
	numTimeouts
)

// Timeouts are how long a connection lives without packets, per protocol
// and state.
type Timeouts struct {
	TCPSynSent, TCPSynRecv, TCPEstablished, TCPFinWait, TCPTimeWait, TCPClose time.Duration
	UDPFirst, UDPSingle, UDPMultiple                                          time.Duration
	ICMPFirst, ICMPReply                                                      time.Duration
}

// DefaultTimeouts returns Open vSwitch's default timeout policy for its
// userspace datapath.
func DefaultTimeouts() Timeouts {
	return Timeouts{
		TCPSynSent:     30 * time.Second,
		TCPSynRecv:     30 * time.Second,
		TCPEstablished: 24 * time.Hour,
		TCPFinWait:     15 * time.Minute,
		TCPTimeWait:    45 * time.Second,
		TCPClose:       30 * time.Second,
		UDPFirst:       60 * time.Second,
		UDPSingle:      60 * time.Second,
		UDPMultiple:    30 * time.Second,
		ICMPFirst:      60 * time.Second,
		ICMPReply:      30 * time.Second,
	}
}

func (t *Timeouts) list() [numTimeouts]time.Duration {
	return [numTimeouts]time.Duration{
		tmTCPFirstPacket: t.TCPSynSent,
		tmTCPOpening:     t.TCPSynRecv,
		tmTCPEstablished: t.TCPEstablished,
		tmTCPClosing:     t.TCPFinWait,
		tmTCPFinWait:     t.TCPTimeWait,
		tmTCPClosed:      t.TCPClose,
		tmOtherFirst:     t.UDPFirst,
		tmOtherMultiple:  t.UDPSingle,
		tmOtherBidir:     t.UDPMultiple,
		tmICMPFirst:      t.ICMPFirst,
		tmICMPReply:      t.ICMPReply,
	}
}

// SetTimeouts sets the timeouts; Timeouts returns them. A connection gets the new value the next
// time a packet refreshes it. Every timeout must be positive.
func (tr *Tracker) SetTimeouts(t Timeouts) error {
	l := t.list()
	for i, d := range l {
		if d <= 0 {
			return fmt.Errorf("timeout %d is %v: %w", i, d, ErrBadConfig)
		}
	}
	for i, d := range l {
		tr.timeouts[i].Store(int64(d))
	}
	return nil
}

func (tr *Tracker) Timeouts() Timeouts {
	var l [numTimeouts]time.Duration
	for i := range l {
		l[i] = time.Duration(tr.timeouts[i].Load())
	}
	return Timeouts{
		TCPSynSent: l[tmTCPFirstPacket], TCPSynRecv: l[tmTCPOpening], TCPEstablished: l[tmTCPEstablished],
		TCPFinWait: l[tmTCPClosing], TCPTimeWait: l[tmTCPFinWait], TCPClose: l[tmTCPClosed],
		UDPFirst: l[tmOtherFirst], UDPSingle: l[tmOtherMultiple], UDPMultiple: l[tmOtherBidir],
		ICMPFirst: l[tmICMPFirst], ICMPReply: l[tmICMPReply],
	}
}
