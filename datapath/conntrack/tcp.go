package conntrack

import "strconv"

// TCP tracking, with the sequence and window checks of Guido van Rooij's
// "Real Stateful TCP Packet Filtering in IP Filter", as OpenBSD's pf and
// Open vSwitch's userspace tracker (conntrack-tcp.c) apply them: each side
// of a connection has a state and the window of sequence numbers the
// other side has allowed it, and a segment is valid only if it falls
// within that window and acknowledges nothing the other side has not sent.

// TCP flags.
const (
	tcpFIN = 0x001
	tcpSYN = 0x002
	tcpRST = 0x004
	tcpPSH = 0x008
	tcpACK = 0x010
	tcpURG = 0x020
)

// TCPState is the state of one side of a TCP connection, with the values
// and names Open vSwitch's ct-dpif gives them.
type TCPState uint8

// The TCP states.
const (
	TCPClosed TCPState = iota
	TCPListen
	TCPSynSent
	TCPSynRecv
	TCPEstablished
	TCPCloseWait
	TCPFinWait1
	TCPClosing
	TCPLastAck
	TCPFinWait2
	TCPTimeWait
	numTCPStates
)

var tcpStateNames = [numTCPStates]string{
	"CLOSED", "LISTEN", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "CLOSE_WAIT",
	"FIN_WAIT_1", "CLOSING", "LAST_ACK", "FIN_WAIT_2", "TIME_WAIT",
}

func (s TCPState) String() string {
	if s < numTCPStates {
		return tcpStateNames[s]
	}
	return "[" + strconv.Itoa(int(s)) + "]"
}

// coalesce maps the tracker's view of a state to the Linux kernel's, as
// Open vSwitch does when it prints one state per connection.
func (s TCPState) coalesce() TCPState {
	switch s {
	case TCPFinWait2:
		return TCPTimeWait
	case TCPSynRecv:
		return TCPEstablished
	}
	return s
}

// tcpPeer is one side of a TCP connection.
type tcpPeer struct {
	seqlo  uint32 // the highest sequence number this side has sent, plus one
	seqhi  uint32 // the highest it may send: the other side's ack plus window
	maxWin uint16 // the largest window it has advertised (unscaled)
	state  TCPState
	wscale uint8 // wscaleKnown | shift, or wscaleUnknown
}

const (
	wscaleKnown   = 0x80 // the side sent a window scale option
	wscaleUnknown = 0x40 // the connection was picked up after its handshake
	wscaleMask    = 0x0f
	maxWscale     = 14
	// maxAckWindow bounds how far an acknowledgement may stray from what
	// the other side sent (a window plus a fudge factor).
	maxAckWindow = 0xffff + 1500
)

// tcpInvalidFlags reports flag combinations no TCP sends: SYN with RST or
// FIN, neither SYN, ACK nor RST, and FIN, PSH or URG without ACK.
func tcpInvalidFlags(f uint16) bool {
	if f&tcpSYN != 0 {
		if f&(tcpRST|tcpFIN) != 0 {
			return true
		}
	} else if f&(tcpACK|tcpRST) == 0 {
		return true
	}
	return f&tcpACK == 0 && f&(tcpFIN|tcpPSH|tcpURG) != 0
}

// tcpWscale reads the window scale option of a TCP header's options:
// wscaleKnown|shift, or 0 without the option.
func tcpWscale(opts []byte) uint8 {
	for len(opts) >= 3 {
		switch opts[0] {
		case 0: // end of options
			return 0
		case 1: // no-op
			opts = opts[1:]
			continue
		case 3: // window scale
			return min(opts[2], maxWscale) | wscaleKnown
		}
		n := max(int(opts[1]), 2)
		if n > len(opts) {
			return 0
		}
		opts = opts[n:]
	}
	return 0
}

// seqGEQ and seqGT compare sequence numbers modulo 2^32.
func seqGEQ(a, b uint32) bool { return int32(a-b) >= 0 }
func seqGT(a, b uint32) bool  { return int32(a-b) > 0 }

// tcpNewConn sets up a connection from the segment that starts it (a SYN,
// or any valid segment of a connection picked up midway).
func tcpNewConn(c *conn, p *packet) {
	src, dst := &c.tcp[0], &c.tcp[1]
	src.seqlo = p.seq
	src.seqhi = p.seq + uint32(p.payload) + 1
	if p.tcpFlags&tcpSYN != 0 {
		src.seqhi++
		src.wscale = p.wscale
	} else {
		src.wscale = wscaleUnknown
		dst.wscale = wscaleUnknown
	}
	src.maxWin = max(p.win, 1)
	if shift := src.wscale & wscaleMask; shift != 0 {
		src.maxWin = uint16((uint32(src.maxWin) + 1<<shift - 1) >> shift)
	}
	if p.tcpFlags&tcpFIN != 0 {
		src.seqhi++
	}
	dst.seqhi = 1
	dst.maxWin = 1
	src.state = TCPSynSent
	dst.state = TCPClosed
}

// tcpUpdate checks a segment of a known connection and moves its state.
func (tr *Tracker) tcpUpdate(c *conn, p *packet, reply bool, now int64) int {
	src, dst := &c.tcp[0], &c.tcp[1]
	if reply {
		src, dst = dst, src
	}
	flags := p.tcpFlags
	if tcpInvalidFlags(flags) {
		return updInvalid
	}
	win := uint32(p.win)
	if flags&(tcpSYN|tcpACK) == tcpSYN {
		if dst.state >= TCPFinWait2 && src.state >= TCPFinWait2 {
			// A new connection reusing the tuple of a closed one.
			src.state, dst.state = TCPClosed, TCPClosed
			return updNew
		}
		if src.state <= TCPSynSent {
			// A retransmitted SYN.
			src.state = TCPSynSent
			tr.setExpiry(c, tmTCPFirstPacket, now)
			return updValidNew
		}
	}

	var sws, dws uint8
	switch {
	case src.wscale&wscaleKnown != 0 && dst.wscale&wscaleKnown != 0 && flags&tcpSYN == 0:
		sws, dws = src.wscale&wscaleMask, dst.wscale&wscaleMask
	case src.wscale&wscaleUnknown != 0 && dst.wscale&wscaleUnknown != 0 && flags&tcpSYN == 0:
		sws, dws = maxWscale, maxWscale
	}

	seq := p.seq
	origSeq := seq
	ack := p.ack
	end := seq + uint32(p.payload)
	if flags&tcpSYN != 0 {
		end++
	}
	if flags&tcpFIN != 0 {
		end++
	}
	checkAckSkew := true
	if src.state < TCPSynSent {
		// The first segment from this side (the SYN+ACK, usually).
		if flags&tcpSYN != 0 && dst.wscale&wscaleKnown != 0 {
			src.wscale = p.wscale
			if src.wscale&wscaleKnown != 0 {
				sws = src.wscale & wscaleMask
				win = (win + 1<<sws - 1) >> sws
				dws = dst.wscale & wscaleMask
			} else {
				// The other side's window was not scaled after all.
				dst.maxWin <<= dst.wscale & wscaleMask
				dst.wscale = 0
			}
		}
		src.seqlo = seq
		src.state = TCPSynSent
		reach := end + max(uint32(dst.maxWin)<<dws, 1)
		if src.seqhi == 1 || seqGEQ(reach, src.seqhi) {
			src.seqhi = reach
			// A new connection, or one picked up midway: be lenient
			// about what it acknowledges.
			checkAckSkew = false
		}
		if win > uint32(src.maxWin) {
			src.maxWin = uint16(min(win, 0xffff))
		}
	}

	if flags&tcpACK == 0 {
		ack = dst.seqlo // nothing acknowledged: let it pass the ack check
	} else if ack == 0 && flags&(tcpACK|tcpRST) == tcpACK|tcpRST {
		ack = dst.seqlo // stacks that send RST+ACK with no ack number
	}
	if seq == end {
		// No data: ease the sequence checks.
		seq = src.seqlo
		end = seq
	}
	var ackSkew int32
	if checkAckSkew {
		ackSkew = int32(dst.seqlo - ack)
	}

	inWindow := seqGEQ(src.seqhi, end) && // the last byte is within the other side's window
		seqGEQ(seq, src.seqlo-uint32(dst.maxWin)<<dws) && // a retransmission at most one window back
		ackSkew >= -maxAckWindow && // acks at most one window back
		int64(ackSkew) <= int64(maxAckWindow)<<sws && // and at most one window ahead
		(flags&tcpRST == 0 || origSeq == src.seqlo || origSeq == src.seqlo+1 || origSeq+1 == src.seqlo) // a reset must hit the sequence

	switch {
	case inWindow || tr.noSeqCheck.Load():
		src.slide(dst, win, ack, end, sws)
		if flags&tcpSYN != 0 && src.state < TCPSynSent {
			src.state = TCPSynSent
		}
		if flags&tcpFIN != 0 && src.state < TCPClosing {
			src.state = TCPClosing
		}
		if flags&tcpACK != 0 {
			switch dst.state {
			case TCPSynSent:
				dst.state = TCPEstablished
			case TCPClosing:
				dst.state = TCPFinWait2
			}
		}
		if flags&tcpRST != 0 {
			src.state, dst.state = TCPTimeWait, TCPTimeWait
		}
		switch {
		case src.state >= TCPFinWait2 && dst.state >= TCPFinWait2:
			tr.setExpiry(c, tmTCPClosed, now)
		case src.state >= TCPClosing && dst.state >= TCPClosing:
			tr.setExpiry(c, tmTCPFinWait, now)
		case src.state < TCPEstablished || dst.state < TCPEstablished:
			tr.setExpiry(c, tmTCPOpening, now)
		case src.state >= TCPClosing || dst.state >= TCPClosing:
			tr.setExpiry(c, tmTCPClosing, now)
		default:
			tr.setExpiry(c, tmTCPEstablished, now)
		}
	case (dst.state < TCPSynSent || dst.state >= TCPFinWait2 || src.state >= TCPFinWait2) &&
		seqGEQ(src.seqhi+maxAckWindow, end) && seqGEQ(seq, src.seqlo-maxAckWindow):
		// Within a window of the expected range while the other side
		// has not answered yet or the connection is closing: SYNs sent
		// in bursts, a connection picked up after a table flush, stray
		// segments after a close. Accepted, without refreshing the
		// timeout, so that a flood of them cannot keep it alive.
		src.slide(dst, win, ack, end, sws)
		if flags&tcpFIN != 0 && src.state < TCPClosing {
			src.state = TCPClosing
		}
		if flags&tcpRST != 0 {
			src.state, dst.state = TCPTimeWait, TCPTimeWait
		}
	default:
		return updInvalid
	}
	return updValid
}

// slide records an accepted segment: the sender's largest window, the
// highest sequence it has sent, and how far the receiver may now send.
func (src *tcpPeer) slide(dst *tcpPeer, win, ack, end uint32, sws uint8) {
	if win > uint32(src.maxWin) {
		src.maxWin = uint16(min(win, 0xffff))
	}
	if seqGT(end, src.seqlo) {
		src.seqlo = end
	}
	if seqGEQ(ack+win<<sws, dst.seqhi) {
		dst.seqhi = ack + max(win<<sws, 1)
	}
}

// tcpStates returns the states of the two sides.
func (c *conn) tcpStates() (orig, reply TCPState) {
	return c.tcp[0].state, c.tcp[1].state
}
