package vport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ovsxdp/ovsxdp/vport/internal/nsthread"
)

// GSO describes a TCP segment or UDP datagram longer than the device's
// MTU that a GSOSender hands to the kernel as one packet standing for
// several segments (datagrams) of MSS payload bytes (generic segmentation
// offload).
type GSO struct {
	// IPv6 tells IPv6 from IPv4, and UDP tells UDP from TCP.
	IPv6, UDP bool
	// L4 is the offset of the TCP or UDP header in the frame, and
	// HeaderLen the length of all the headers (Ethernet, IP, TCP or UDP).
	L4, HeaderLen int
	// MSS is the payload length of every segment but the last.
	MSS int
}

// A GSOSender is a port that can transmit a GSO packet. The kernel
// delivers it whole to a stack on the other end of a veth (as GRO would
// have built it there) and cuts it into its MSS-sized segments wherever
// it must (a device without segmentation offload, a forwarding path).
type GSOSender interface {
	// TransmitGSO sends frame, described by g. Its IPv4 header checksum
	// must be right, and its TCP or UDP checksum field must hold the
	// pseudo-header sum (not complemented): the kernel completes the
	// checksum of each segment. It returns ErrPortDown, as Transmit does,
	// while the device is not running; any other error means the kernel
	// did not take the packet, and the caller should send its segments
	// the ordinary way.
	TransmitGSO(frame []byte, g GSO) error
}

// virtio-net header constants (linux/virtio_net.h): a packet socket with
// PACKET_VNET_HDR takes this header before each frame.
const (
	vnetHdrLen        = 10
	vnetFlagNeedsCsum = 1
	vnetGSOTCPv4      = 1
	vnetGSOTCPv6      = 4
	vnetGSOUDPL4      = 5
	tcpCsumOffset     = 16
	udpCsumOffset     = 6
)

// gsoSocket is a packet socket bound to one device that sends GSO packets.
//
// A packet that it sends takes the kernel's dev_queue_xmit path, which
// picks the tx queue by skb_tx_hash (see DESIGN.md, "the race"). It
// cannot loop there: the skb is built by the packet socket and carries no
// recorded rx queue, and the packet socket refuses a device that is not
// up (ENETDOWN) or was unregistered (ENXIO, the socket is unbound) before
// the kernel gets that far.
type gsoSocket struct {
	mu  sync.Mutex // serializes the header and iovec buffers
	fd  int
	hdr [vnetHdrLen]byte
	iov [2]unix.Iovec
	// sys is the writev system call; tests replace it.
	sys func(fd int, iov []unix.Iovec) unix.Errno
}

// sysWritev is writev(2) on fd, which never blocks (SOCK_NONBLOCK): it
// is made raw for the reason rawKick is.
func sysWritev(fd int, iov []unix.Iovec) unix.Errno {
	_, _, errno := unix.RawSyscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	return errno
}

// gsoSendBuffer is the socket's send buffer. The kernel charges each
// packet in flight (up to 64 KiB) to it until the receiver consumes it;
// the default (about 200 KiB) holds only three.
const gsoSendBuffer = 4 << 20

// openGSOSocket opens a packet socket on ifindex in the namespace at
// netns ("" for the caller's).
func openGSOSocket(netns string, ifindex int) (*gsoSocket, error) {
	var fd int
	err := nsthread.Do(netns, func() error {
		var err error
		// Protocol 0: the socket only sends, it receives nothing.
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("packet socket: %w", err)
	}
	s := &gsoSocket{fd: fd, sys: sysWritev}
	if err := s.setup(ifindex); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return s, nil
}

func (s *gsoSocket) setup(ifindex int) error {
	if err := unix.SetsockoptInt(s.fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
		return fmt.Errorf("packet socket: PACKET_VNET_HDR: %w", err)
	}
	if err := unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, gsoSendBuffer); err != nil {
		// Without CAP_NET_ADMIN the buffer stays capped by wmem_max.
		if err := unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_SNDBUF, gsoSendBuffer); err != nil {
			return fmt.Errorf("packet socket: SO_SNDBUF: %w", err)
		}
	}
	if err := unix.Bind(s.fd, &unix.SockaddrLinklayer{Ifindex: ifindex}); err != nil {
		return fmt.Errorf("packet socket: bind to ifindex %d: %w", ifindex, err)
	}
	return nil
}

// errGSOShape is returned for a GSO description that does not fit its
// frame.
var errGSOShape = errors.New("gso: description does not fit the frame")

// gsoMaxEINTR is how many writes a signal may interrupt in a row before
// send gives up on the packet.
const gsoMaxEINTR = 8

// send writes the virtio-net header and frame as one packet.
func (s *gsoSocket) send(frame []byte, g GSO) error {
	gsoType, csumOffset, minL4 := byte(vnetGSOTCPv4), tcpCsumOffset, 20
	switch {
	case g.UDP:
		gsoType, csumOffset, minL4 = vnetGSOUDPL4, udpCsumOffset, 8
	case g.IPv6:
		gsoType = vnetGSOTCPv6
	}
	if g.MSS <= 0 || g.MSS > 0xffff || g.L4 < 14 || g.HeaderLen < g.L4+minL4 || g.HeaderLen >= len(frame) || len(frame)-g.HeaderLen <= g.MSS {
		return errGSOShape
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hdr[0] = vnetFlagNeedsCsum
	s.hdr[1] = gsoType
	// The legacy virtio-net header is in the host's byte order.
	binary.NativeEndian.PutUint16(s.hdr[2:], uint16(g.HeaderLen))
	binary.NativeEndian.PutUint16(s.hdr[4:], uint16(g.MSS))
	binary.NativeEndian.PutUint16(s.hdr[6:], uint16(g.L4))
	binary.NativeEndian.PutUint16(s.hdr[8:], uint16(csumOffset))
	s.iov[0].Base = &s.hdr[0]
	s.iov[0].SetLen(vnetHdrLen)
	s.iov[1].Base = &frame[0]
	s.iov[1].SetLen(len(frame))
	defer func() { s.iov[1].Base = nil }() // keep no reference to frame
	return s.writev(gsoMaxEINTR)
}

// writev writes s.iov as one packet, retrying a write that a signal
// interrupted up to tries times in all. Past that the packet is not sent
// (an error: the caller sends its segments the ordinary way).
func (s *gsoSocket) writev(tries int) error {
	var errno unix.Errno
	for range tries {
		errno = s.sys(s.fd, s.iov[:])
		switch errno {
		case 0:
			return nil
		case unix.EINTR:
			continue
		case unix.ENETDOWN, unix.ENXIO:
			return ErrPortDown
		}
		return fmt.Errorf("gso send: %w", errno)
	}
	return fmt.Errorf("gso send: interrupted %d times: %w", tries, errno)
}

func (s *gsoSocket) close() error { return unix.Close(s.fd) }
