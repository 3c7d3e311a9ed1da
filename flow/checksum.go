package flow

import (
	"encoding/binary"
	"hash/crc32"
	"math/bits"
)

// Incremental checksum updates for header rewrites.
//
// The Internet checksum (IPv4 header, TCP, UDP, ICMP, ICMPv6) is updated as
// RFC 1624 (equation 3) describes: HC' = ~(~HC + ~m + m'), summed in ones'
// complement, for each 16-bit word m of the covered data that becomes m'.
// Given a correct HC this equals a full recomputation, and given an incorrect
// one it keeps the error, so a corrupted packet stays detectably corrupted.
//
// SCTP's CRC32c is not a sum, but it is linear over GF(2): for two messages of
// the same length the CRC of one is the CRC of the other XOR the raw CRC
// (zero initial value, no final XOR) of their difference. The difference of a
// port rewrite is two bytes followed by zeros, so its raw CRC is the CRC of
// those two bytes carried through the trailing zero bytes, which a table of
// precomputed "append 2^i zero bytes" operators does in O(log n) without
// reading the payload.

// OnesSum adds b, read as big-endian 16-bit words (an odd last byte padded
// with a zero), to the ones'-complement sum acc and returns the new sum,
// not yet folded (FoldSum). b must start at an even offset of the summed
// data. It is the one ones'-complement sum of ovsxdp: the datapath's
// segment coalescing, trace's frames and the traffic generator's stamps
// all use it.
func OnesSum(acc uint64, b []byte) uint64 {
	var c uint64
	for len(b) >= 32 {
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b), c)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[8:]), c)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[16:]), c)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[24:]), c)
		b = b[32:]
	}
	for len(b) >= 8 {
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b), c)
		b = b[8:]
	}
	for len(b) >= 2 {
		acc, c = bits.Add64(acc, uint64(binary.BigEndian.Uint16(b)), c)
		b = b[2:]
	}
	if len(b) == 1 {
		acc, c = bits.Add64(acc, uint64(b[0])<<8, c)
	}
	// End-around carry: adding it back overflows only if acc was all
	// ones, leaving 0, and then adding 1 cannot overflow.
	acc, c = bits.Add64(acc, c, 0)
	return acc + c
}

// FoldSum folds a ones'-complement sum to 16 bits. The Internet checksum
// of data is ^FoldSum(OnesSum(0, data)); data with a right checksum sums
// to 0xffff.
func FoldSum(acc uint64) uint16 {
	acc = acc>>32 + acc&0xffffffff
	acc = acc>>32 + acc&0xffffffff
	acc = acc>>16 + acc&0xffff
	acc = acc>>16 + acc&0xffff
	acc = acc>>16 + acc&0xffff
	return uint16(acc)
}

// csumAdd16 adds the change of one covered 16-bit word from old to new to
// the ones'-complement accumulator acc.
func csumAdd16(acc uint32, old, new uint16) uint32 {
	return acc + uint32(^old) + uint32(new)
}

// csumAddBytes adds the change of covered bytes from old to new to acc. The
// slices have the same, even length and start at an even distance from the
// start of the checksummed data.
func csumAddBytes(acc uint32, old, new []byte) uint32 {
	for i := 0; i+1 < len(old) && i+1 < len(new); i += 2 {
		acc = csumAdd16(acc, binary.BigEndian.Uint16(old[i:]), binary.BigEndian.Uint16(new[i:]))
	}
	return acc
}

// csumFinish folds acc, the sum of ^HC and the word changes, and returns the
// new checksum.
func csumFinish(acc uint32) uint16 {
	return ^FoldSum(uint64(acc))
}

// csumRef is a 16-bit Internet checksum inside a frame, together with how
// a zero value is treated.
type csumRef struct {
	b   []byte // the two checksum bytes; nil when there is none to update
	udp bool   // UDP: 0 means "no checksum" (left alone), and a computed 0 is sent as 0xffff
}

// update applies a change of the covered data, accumulated from zero by
// csumAdd16 and csumAddBytes, to the checksum.
func (c csumRef) update(change uint32) {
	if len(c.b) < 2 {
		return
	}
	old := binary.BigEndian.Uint16(c.b)
	if c.udp && old == 0 {
		return
	}
	sum := csumFinish(uint32(^old) + change)
	if c.udp && sum == 0 {
		sum = 0xffff
	}
	binary.BigEndian.PutUint16(c.b, sum)
}

// crc32cTable is the byte table of the reflected Castagnoli polynomial.
var crc32cTable = crc32.MakeTable(crc32.Castagnoli)

// gf2Op is a linear map on 32-bit CRC registers: column i is the image of
// bit i.
type gf2Op [32]uint32

func (m *gf2Op) apply(v uint32) uint32 {
	var r uint32
	for i := 0; v != 0; i, v = i+1, v>>1 {
		if v&1 != 0 {
			r ^= m[i]
		}
	}
	return r
}

// crc32cZeros[i] carries a raw CRC32c register through 2^i zero bytes.
// 17 operators cover any IP payload length (at most 65535 bytes).
var crc32cZeros = func() (ops [17]gf2Op) {
	for i := range 32 {
		// One zero byte: the register shifts through the table once.
		r := uint32(1) << i
		ops[0][i] = crc32cTable[r&0xff] ^ r>>8
	}
	for n := 1; n < len(ops); n++ {
		for i := range 32 {
			ops[n][i] = ops[n-1].apply(ops[n-1][i])
		}
	}
	return ops
}()

// crc32cRawByte runs one byte through a raw CRC32c register.
func crc32cRawByte(r uint32, b byte) uint32 {
	return crc32cTable[byte(r)^b] ^ r>>8
}

// sctpCRCDelta returns what a checksum over an n-byte SCTP packet changes
// by (XOR) when the 16-bit word at byte pos changes from old to new.
func sctpCRCDelta(n, pos int, old, new uint16) uint32 {
	d := old ^ new
	r := crc32cRawByte(0, byte(d>>8))
	r = crc32cRawByte(r, byte(d))
	zeros := n - pos - 2
	for i := 0; zeros > 0 && i < len(crc32cZeros); i, zeros = i+1, zeros>>1 {
		if zeros&1 != 0 {
			r = crc32cZeros[i].apply(r)
		}
	}
	return r
}
