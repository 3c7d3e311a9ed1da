package vport

import (
	"encoding/binary"
	"errors"
	"hash/crc32"

	"github.com/ovsxdp/ovsxdp/flow"
)

// StampLen is the length of the integrity stamp that the traffic generator
// writes over the last bytes of every frame, inside the L4 payload (or the
// ARP trailer):
//
//	0-1   magic 0x6f76 ("ov")
//	2-5   flow id
//	6-9   sequence number within the flow
//	10-13 digest: CRC-32C of the frame with bytes 6-15 of the stamp zeroed,
//	      continued over the sequence number
//	14-15 adjustment that keeps the stamp's 16-bit one's complement sum
//	      constant, so the L4 checksum computed once at setup stays valid
//	      whatever the sequence number and digest
//
// Any change to a byte of the frame makes the digest or the sum disagree.
const StampLen = 16

const (
	stampMagic = 0x6f76
	stampSum   = 0x5a5a // the one's complement sum of every stamp
)

var (
	// ErrNoStamp means a frame does not carry a generator stamp.
	ErrNoStamp = errors.New("no generator stamp")
	// ErrCorrupt means a frame's stamp disagrees with its bytes.
	ErrCorrupt = errors.New("frame corrupt")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var stampZeros [StampLen - 6]byte

// stampBase is the CRC-32C of frame with the variable part of its stamp
// (sequence number, digest, adjustment) zeroed. It is the same for every
// packet of a flow. len(frame) must be at least StampLen.
func stampBase(frame []byte) uint32 {
	c := crc32.Update(0, castagnoli, frame[:len(frame)-len(stampZeros)])
	return crc32.Update(c, castagnoli, stampZeros[:])
}

// writeStamp stamps frame, whose stamp already holds the magic and the flow
// id, with seq. base is stampBase of the frame.
func writeStamp(frame []byte, seq, base uint32) {
	st := frame[len(frame)-StampLen:]
	binary.BigEndian.PutUint32(st[6:10], seq)
	binary.BigEndian.PutUint32(st[10:14], crc32.Update(base, castagnoli, st[6:10]))
	st[14], st[15] = 0, 0
	adj := onesAdd(stampSum, ^onesSum(st))
	binary.BigEndian.PutUint16(st[14:16], adj)
}

// initStamp writes a stamp with sequence number 0 for flow, with a digest
// of zero: the frame's checksums are then computed over it, and the
// per-packet stamp keeps them valid.
func initStamp(frame []byte, flow uint32) {
	st := frame[len(frame)-StampLen:]
	binary.BigEndian.PutUint16(st[0:2], stampMagic)
	binary.BigEndian.PutUint32(st[2:6], flow)
	clear(st[6:])
	binary.BigEndian.PutUint16(st[14:16], onesAdd(stampSum, ^onesSum(st)))
}

// VerifyStamp checks the generator stamp of frame and returns its flow id
// and sequence number. It returns ErrNoStamp for a frame without one and
// ErrCorrupt when the frame's bytes disagree with the stamp. It does not
// allocate.
func VerifyStamp(frame []byte) (flow, seq uint32, err error) {
	if len(frame) < StampLen {
		return 0, 0, ErrNoStamp
	}
	st := frame[len(frame)-StampLen:]
	if binary.BigEndian.Uint16(st[0:2]) != stampMagic {
		return 0, 0, ErrNoStamp
	}
	flow = binary.BigEndian.Uint32(st[2:6])
	seq = binary.BigEndian.Uint32(st[6:10])
	digest := crc32.Update(stampBase(frame), castagnoli, st[6:10])
	if digest != binary.BigEndian.Uint32(st[10:14]) || onesSum(st) != stampSum {
		return flow, seq, ErrCorrupt
	}
	return flow, seq, nil
}

// onesSum is the folded 16-bit one's complement sum of b, read as
// big-endian words (len(b) is even).
func onesSum(b []byte) uint16 { return flow.FoldSum(flow.OnesSum(0, b)) }

func onesAdd(a, b uint16) uint16 { return flow.FoldSum(uint64(a) + uint64(b)) }
