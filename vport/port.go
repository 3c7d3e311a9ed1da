// Package vport is ovsxdp's port layer: the Port interface every port kind
// implements, the model of the kernel net_device state that output depends
// on (Device), and the kinds themselves: in-memory ports with a traffic
// generator and a sink, pcap replay and capture, and AF_XDP sockets.
package vport

import "errors"

// MaxBatch is the largest batch any port moves in one Receive or Transmit.
const MaxBatch = 32

var (
	// ErrClosed is returned by a port after Close.
	ErrClosed = errors.New("port closed")
	// ErrPortDown means the device under the port is not running or is gone
	// (unregistered). The port may work again once the device is up.
	ErrPortDown = errors.New("port down")
	// ErrNotSupported means a kernel feature or a privilege that a port kind
	// needs is missing; the wrapping message says which and how to get it.
	ErrNotSupported = errors.New("not supported")
	// ErrBadQueue means a queue number outside the port's queues.
	ErrBadQueue = errors.New("no such queue")
)

// Port is one datapath port. Its I/O is batch-shaped: the caller owns the
// buffers, a call moves up to BatchSize frames on one numbered queue and
// returns how many it moved. The batch size and the numbers of queues are
// fixed for the port's lifetime.
//
// The packet-path methods (Receive, Transmit) do not allocate and do not
// block. On the packet path they return the bare sentinel errors (no
// wrapping, which would allocate). Each rx queue is meant to be polled by
// one thread at a time; tx queues may be shared by several threads.
type Port interface {
	// Name is the port's name, as the device's name.
	Name() string
	// Device is the device state the port runs on.
	Device() *Device
	// BatchSize is the most frames one Receive or Transmit moves
	// (at most MaxBatch).
	BatchSize() int
	// RxQueues and TxQueues are the numbers of queues.
	RxQueues() int
	TxQueues() int

	// Receive copies up to min(BatchSize, len(bufs), len(sizes)) frames
	// waiting on rx queue q into bufs[i][:sizes[i]] and returns how many.
	// If info is not nil it must be at least as long as the batch, and
	// info[i] describes frame i. A frame longer than its buffer is dropped
	// and counted in Stats. Receive returns ErrPortDown while the device
	// is not running or is unregistered, ErrClosed after Close.
	Receive(q int, bufs [][]byte, sizes []int, info []RxInfo) (int, error)

	// Transmit sends frames[0:n] on tx queue q, one frame per slice, and
	// returns n. The port copies the bytes before returning; the caller
	// keeps ownership of frames. n is smaller than len(frames) when the tx
	// ring fills up: frames[n:] were not sent (a "tx ring full" drop for
	// the caller to count). Transmit returns ErrPortDown while the device
	// is not running or is unregistered, as the kernel's dev_queue_xmit
	// refuses a device that is not up.
	Transmit(q int, frames [][]byte) (int, error)

	// PrepareWait readies rx queue q for a poll thread that is about to
	// sleep. It returns a file descriptor that polls readable (POLLIN)
	// once the queue has traffic, and ready=true if traffic is already
	// waiting (the thread must then not sleep). Errors are those of
	// Receive. Poll threads use a Poller rather than calling it directly.
	PrepareWait(q int) (fd int, ready bool, err error)

	// Stats returns the port's counters.
	Stats() Stats

	// Close releases the port. It is idempotent. It must not run while a
	// Poller is sleeping on the port's file descriptors: the datapath
	// closes a port only after a grace period in which every poll thread
	// has let go of it.
	Close() error
}

// A Lender is a port that can lend received frames out of its own memory
// (an AF_XDP socket's UMEM, an in-memory port's rx ring) instead of
// copying them into the caller's buffers. A lent frame stays the port's:
// the caller may read it, rewrite it and grow it into its capacity (the
// room the port has after it) until it gives it back with Release, and
// not after. The port cannot receive
// into a frame that is out on loan, so the caller gives frames back as
// soon as it is done with them; it must have given back every frame before
// the port is closed.
type Lender interface {
	Port
	// ReceiveLent is Receive without the copy: frames[i] is set to the
	// i-th frame received, in the port's memory. Its errors are Receive's.
	ReceiveLent(q int, frames [][]byte, info []RxInfo) (int, error)
	// Release gives back frames that ReceiveLent lent on rx queue q,
	// each once (resliced at will within its capacity). It does not
	// allocate or block.
	Release(q int, frames [][]byte)
}

// A RunLender is a Lender that has one loan out at a time on an rx
// queue: ReceiveLent lends nothing more on the queue until every frame of
// its last loan is back. A frame of the loan is then known by its place
// in it, and a run of them goes back at once, at the cost of one frame.
type RunLender interface {
	Lender
	// ReleaseRun gives back frames first to first+n-1 of the loan out
	// on rx queue q (frames[first:first+n] of the ReceiveLent that lent
	// it), as Release would give them back; those that are not out are
	// ignored. It does not allocate or block.
	ReleaseRun(q, first, n int)
}

// A UniformRx is a port that records the same RxInfo for every frame it
// receives on an rx queue: a caller may pass a nil info to Receive (and
// ReceiveLent) and take RxQueueInfo's once for the batch.
type UniformRx interface {
	Port
	// RxQueueInfo is the RxInfo of every frame received on rx queue q.
	RxQueueInfo(q int) RxInfo
}

// fillRxInfo gives the first n frames of a batch the info x in info (nil
// for none): what a UniformRx's Receive and ReceiveLent write, x being
// its RxQueueInfo for the queue.
func fillRxInfo(info []RxInfo, n int, x RxInfo) {
	if info == nil {
		return
	}
	for i := range info[:n] {
		info[i] = x
	}
}

// RxQueue is the rx queue a frame was received on, as the kernel records it
// in an skb (skb_record_rx_queue stores queue+1, so that zero means none).
// Only frames that carry a recorded rx queue make the kernel's skb_tx_hash
// derive the tx queue from it, so the distinction matters to output.
type RxQueue uint16

// RecordRxQueue returns the RxQueue recording queue q.
func RecordRxQueue(q int) RxQueue { return RxQueue(q + 1) }

// Recorded reports whether an rx queue was recorded.
func (r RxQueue) Recorded() bool { return r != 0 }

// Queue is the recorded rx queue number, or -1 when none was recorded.
func (r RxQueue) Queue() int { return int(r) - 1 }

// RxInfo is what a port reports about a received frame besides its bytes.
type RxInfo struct {
	// RxQueue is the rx queue recorded for the frame, if any.
	RxQueue RxQueue
}

// Stats are a port's counters since it was created.
type Stats struct {
	RxPackets, RxBytes uint64
	// RxDropped counts frames the port dropped on receive: the rx ring was
	// full, the device was down, or a frame did not fit a buffer.
	RxDropped uint64
	// RxRingFull and RxNoFrame are the parts of RxDropped that the kernel
	// side of an AF_XDP socket dropped before the port saw the frames:
	// the socket's rx ring was full, or no fill frame was free for the
	// frame (or it was longer than a frame).
	RxRingFull, RxNoFrame uint64
	// TxPackets and TxBytes count frames sent, a GSO packet counting as
	// the segments it stands for (as they would go on the wire).
	TxPackets, TxBytes uint64
	// TxGSO counts GSO packets sent (GSOSender).
	TxGSO uint64
	// TxDropped counts frames Transmit accepted but the port then dropped,
	// as a veth drops what it sends while its peer is down. Frames that
	// Transmit refused (ring full, device down) are not counted here.
	TxDropped uint64
}

// A DeviceDrop is a count of frames a port dropped on receive, by reason.
type DeviceDrop struct {
	Reason string
	Count  uint64
}

// The reasons of DeviceDrop.
const (
	DeviceDropRingFull = "rx-ring-full"     // RxRingFull
	DeviceDropNoFrame  = "no-fill-frame"    // RxNoFrame
	DeviceDropPort     = "down-or-oversize" // the rest of RxDropped: the port's own drops (device down, frame longer than a buffer)
)

// RxDrops breaks RxDropped down by reason, in a fixed order.
func (s Stats) RxDrops() [3]DeviceDrop {
	kernel := s.RxRingFull + s.RxNoFrame
	return [3]DeviceDrop{
		{DeviceDropRingFull, s.RxRingFull},
		{DeviceDropNoFrame, s.RxNoFrame},
		{DeviceDropPort, s.RxDropped - min(kernel, s.RxDropped)},
	}
}
