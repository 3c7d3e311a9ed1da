package datapath

import (
	"bytes"
	"encoding/binary"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// Segment coalescing (software GRO) on output.
//
// A poll thread's output batch for a port often holds consecutive segments
// of one TCP connection (a bulk sender's data) or consecutive datagrams of
// one UDP flow. Sent one by one, each costs the kernel an skb, a trip
// through the veth and a run of the receiving stack. A port that can send
// GSO packets (vport.GSOSender) gets each run of them as one large packet
// instead, which the kernel delivers whole to a local stack (a UDP socket
// that did not ask for GRO gets the datagrams one by one) or cuts back
// into the same packets.
//
// The rules are strict, so that cutting the large packet back (as the
// kernel's TCP and UDP segmentation do: the IPv4 ID counts up from the
// first packet's, the TCP sequence number advances by the payload, PSH
// stays on the last segment only, lengths and checksums are computed
// afresh) gives back the original frames byte for byte:
//   - Ethernet without VLAN tags, carrying IPv4 without options or
//     fragmentation, or IPv6 without extension headers, carrying TCP or
//     UDP;
//   - the frame is exactly as long as the IP packet says (and the UDP
//     header), and the IP and TCP or UDP checksums are right (a corrupted
//     packet is never merged, so it still reaches the receiver corrupted
//     and is dropped there); a UDP datagram without a checksum (0) is not
//     merged, since segmenting computes one;
//   - all headers are equal except the IP length, IPv4 ID and checksums,
//     the UDP length and checksum, and the TCP sequence number, flags and
//     checksum;
//   - the IPv4 IDs count up by one, the TCP sequence numbers follow on
//     (each starts where the previous segment's payload ends);
//   - TCP flags are ACK only, except that the last segment may carry PSH;
//   - every payload but the last is as long as the first (the MSS), the
//     last is no longer;
//   - the IP packet stays within 65,535 bytes.
// A run ends at the first packet that breaks a rule; it is merged only if
// it has at least two packets.

const (
	ethHdrLen   = 14
	ipv4HdrLen  = 20
	ipv6HdrLen  = 40
	tcpMinLen   = 20
	udpHdrLen   = 8
	ipProtoTCP  = 6
	ipProtoUDP  = 17
	tcpFlagACK  = 0x10
	tcpFlagPSH  = 0x08
	maxIPLength = 0xffff
	// maxGSOFrame is the longest merged frame.
	maxGSOFrame = ethHdrLen + maxIPLength
)

// seg describes a frame that is a TCP segment or UDP datagram fit to be
// merged.
type seg struct {
	v6, udp bool
	l4      int    // offset of the TCP or UDP header
	hdrLen  int    // length of all headers
	payload int    // payload length
	seq     uint32 // TCP sequence number
	id      uint16 // IPv4 ID
	psh     bool
}

// parseSeg reports whether f is a TCP segment or UDP datagram that may be
// merged on its own terms (the first two rules above), and describes it.
func parseSeg(f []byte) (s seg, ok bool) {
	if len(f) < ethHdrLen+ipv4HdrLen+udpHdrLen {
		return s, false
	}
	var proto byte
	switch binary.BigEndian.Uint16(f[12:]) {
	case 0x0800:
		ip := f[ethHdrLen:]
		proto = ip[9]
		if ip[0] != 0x45 ||
			binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 || // MF, fragment offset
			int(binary.BigEndian.Uint16(ip[2:])) != len(ip) ||
			binary.BigEndian.Uint16(ip[10:]) == 0xffff || // the kernel writes 0
			flow.FoldSum(flow.OnesSum(0, ip[:ipv4HdrLen])) != 0xffff {
			return s, false
		}
		s.l4 = ethHdrLen + ipv4HdrLen
		s.id = binary.BigEndian.Uint16(ip[4:])
	case 0x86dd:
		if len(f) < ethHdrLen+ipv6HdrLen+udpHdrLen {
			return s, false
		}
		ip := f[ethHdrLen:]
		proto = ip[6]
		if ip[0]>>4 != 6 || int(binary.BigEndian.Uint16(ip[4:])) != len(ip)-ipv6HdrLen {
			return s, false
		}
		s.v6 = true
		s.l4 = ethHdrLen + ipv6HdrLen
	default:
		return s, false
	}
	switch proto {
	case ipProtoUDP:
		return parseUDP(f, s)
	case ipProtoTCP:
		return parseTCP(f, s)
	}
	return s, false
}

// parseUDP goes on with parseSeg for a UDP datagram.
func parseUDP(f []byte, s seg) (seg, bool) {
	udp := f[s.l4:]
	// A computed checksum of 0 goes out as 0xffff, and 0 means none.
	if int(binary.BigEndian.Uint16(udp[4:])) != len(udp) || len(udp) == udpHdrLen ||
		binary.BigEndian.Uint16(udp[6:]) == 0 || !l4ChecksumOK(f, s.l4, s.v6, ipProtoUDP) {
		return s, false
	}
	s.udp = true
	s.hdrLen = s.l4 + udpHdrLen
	s.payload = len(udp) - udpHdrLen
	return s, true
}

// parseTCP goes on with parseSeg for a TCP segment.
func parseTCP(f []byte, s seg) (seg, bool) {
	tcp := f[s.l4:]
	if len(tcp) < tcpMinLen {
		return s, false
	}
	doff := int(tcp[12]>>4) * 4
	flags := tcp[13]
	if doff < tcpMinLen || doff >= len(tcp) || tcp[12]&0x0f != 0 ||
		(flags != tcpFlagACK && flags != tcpFlagACK|tcpFlagPSH) ||
		binary.BigEndian.Uint16(tcp[18:]) != 0 || // urgent pointer
		binary.BigEndian.Uint16(tcp[16:]) == 0xffff || // the kernel writes 0
		!l4ChecksumOK(f, s.l4, s.v6, ipProtoTCP) {
		return s, false
	}
	s.hdrLen = s.l4 + doff
	s.payload = len(f) - s.hdrLen
	s.seq = binary.BigEndian.Uint32(tcp[4:])
	s.psh = flags&tcpFlagPSH != 0
	return s, true
}

// l4ChecksumOK reports whether the TCP or UDP (proto) checksum of f is
// right. Checksums are not all-ones sums, so the two forms of zero (0 and
// 0xffff) both pass; parseTCP and parseUDP refuse the one that
// segmenting would not give back.
func l4ChecksumOK(f []byte, l4 int, v6 bool, proto byte) bool {
	return flow.FoldSum(flow.OnesSum(pseudoSum(f, v6, proto, len(f)-l4), f[l4:])) == 0xffff
}

// pseudoSum is the ones'-complement sum of the pseudo-header of a TCP or
// UDP (proto) packet of l4Len bytes in f.
func pseudoSum(f []byte, v6 bool, proto byte, l4Len int) uint64 {
	if v6 {
		return flow.OnesSum(uint64(l4Len)+uint64(proto), f[ethHdrLen+8:ethHdrLen+ipv6HdrLen])
	}
	return flow.OnesSum(uint64(l4Len)+uint64(proto), f[ethHdrLen+12:ethHdrLen+ipv4HdrLen])
}

// sameFlow is follows' comparison of the headers, on the raw frames a and
// b before either is parsed: a cheap test that b may follow a (it must
// pass follows too). a's Ethernet type tells where the ranges are; b's
// matches it when they are equal.
func sameFlow(a, b []byte) bool {
	if len(a) < ethHdrLen {
		return false
	}
	l4, same := ethHdrLen+ipv4HdrLen, [3][2]int{{0, 16}, {20, 24}, {26, 34}}
	if binary.BigEndian.Uint16(a[12:]) == 0x86dd {
		l4, same = ethHdrLen+ipv6HdrLen, [3][2]int{{0, 18}, {20, 54}, {54, 54}}
	}
	if len(a) < l4+4 || len(b) < l4+4 {
		return false
	}
	for _, r := range same {
		if string(a[r[0]:r[1]]) != string(b[r[0]:r[1]]) {
			return false
		}
	}
	return string(a[l4:l4+4]) == string(b[l4:l4+4]) // ports
}

// follows reports whether segment n (frame nf) may join a run whose first
// segment is s (frame sf) and whose last is p, given the run's IP length
// so far.
func follows(sf []byte, s seg, p seg, nf []byte, n seg, ipLen int) bool {
	if n.v6 != s.v6 || n.udp != s.udp || n.hdrLen != s.hdrLen || p.psh || p.payload != s.payload ||
		n.payload > s.payload || ipLen+n.payload > maxIPLength {
		return false
	}
	if !s.udp && n.seq != p.seq+uint32(p.payload) {
		return false
	}
	if !s.v6 && n.id != p.id+1 {
		return false
	}
	// Compare the headers, skipping the fields that differ by rule.
	var same [][2]int // byte ranges that must be equal
	if s.v6 {
		same = [][2]int{{0, 18}, {20, 54}}
	} else {
		same = [][2]int{{0, 16}, {20, 24}, {26, 34}}
	}
	for _, r := range same {
		if !bytes.Equal(sf[r[0]:r[1]], nf[r[0]:r[1]]) {
			return false
		}
	}
	t, u := sf[s.l4:s.hdrLen], nf[s.l4:s.hdrLen]
	if s.udp {
		return bytes.Equal(t[0:4], u[0:4]) // ports
	}
	return bytes.Equal(t[0:4], u[0:4]) && // ports
		bytes.Equal(t[8:13], u[8:13]) && // acknowledgment, data offset
		bytes.Equal(t[14:16], u[14:16]) && // window
		bytes.Equal(t[18:], u[18:]) // urgent pointer, options
}

// gsoRun finds the run of mergeable segments that starts at frames[i]: it
// returns its end j (the run is frames[i:j]; j == i+1 when frames[i]
// merges with nothing) and the first segment's description.
func gsoRun(frames [][]byte, i int) (j int, s seg) {
	// A frame whose next one is of another flow merges with nothing:
	// parseSeg's checksums are not worth it (nor parsing the next one
	// twice, here and as the start of the next run), and in traffic of
	// many flows that is most frames.
	if i+1 >= len(frames) || !sameFlow(frames[i], frames[i+1]) {
		return i + 1, s
	}
	s, ok := parseSeg(frames[i])
	if !ok {
		return i + 1, s
	}
	p := s
	ipLen := len(frames[i]) - ethHdrLen
	for j = i + 1; j < len(frames); j++ {
		if !sameFlow(frames[i], frames[j]) {
			break
		}
		n, ok := parseSeg(frames[j])
		if !ok || !follows(frames[i], s, p, frames[j], n, ipLen) {
			break
		}
		ipLen += n.payload
		p = n
	}
	return j, s
}

// mergeRun builds the GSO packet of the run frames (at least two
// segments, the first described by s) in buf, which must hold
// maxGSOFrame bytes, and returns it with its description.
func mergeRun(buf []byte, frames [][]byte, s seg) ([]byte, vport.GSO) {
	out := append(buf[:0], frames[0][:s.hdrLen]...)
	for _, f := range frames {
		out = append(out, f[s.hdrLen:]...)
	}
	ip := out[ethHdrLen:]
	l4Len := len(out) - s.l4
	if s.v6 {
		binary.BigEndian.PutUint16(ip[4:], uint16(len(ip)-ipv6HdrLen))
	} else {
		binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
		binary.BigEndian.PutUint16(ip[10:], 0)
		binary.BigEndian.PutUint16(ip[10:], ^flow.FoldSum(flow.OnesSum(0, ip[:ipv4HdrLen])))
	}
	// The kernel completes the checksum from the pseudo-header sum.
	l4 := out[s.l4:]
	if s.udp {
		binary.BigEndian.PutUint16(l4[4:], uint16(l4Len))
		binary.BigEndian.PutUint16(l4[6:], flow.FoldSum(pseudoSum(out, s.v6, ipProtoUDP, l4Len)))
	} else {
		last := frames[len(frames)-1]
		l4[13] = last[s.l4+13] // the last segment's flags: PSH if it had it
		binary.BigEndian.PutUint16(l4[16:], flow.FoldSum(pseudoSum(out, s.v6, ipProtoTCP, l4Len)))
	}
	return out, vport.GSO{IPv6: s.v6, UDP: s.udp, L4: s.l4, HeaderLen: s.hdrLen, MSS: s.payload}
}
