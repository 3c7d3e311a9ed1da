package test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"time"
)

// tcpConnect tries one TCP connection to addr and prints whether it was
// established.
func tcpConnect(addr string) error {
	c, err := net.DialTimeout("tcp4", addr, 3*time.Second)
	if err != nil {
		fmt.Println("failed")
		return nil
	}
	c.Close()
	fmt.Println("connected")
	return nil
}

// udpRefused sends one datagram to addr, where nothing listens, and prints
// "refused" when the ICMP port unreachable that answers it comes back.
func udpRefused(addr string) error {
	c, err := net.Dial("udp4", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Write([]byte("ovsxdp")); err != nil {
		return err
	}
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err = c.Read(make([]byte, 64))
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		fmt.Println("refused")
	case err == nil:
		fmt.Println("reply")
	default:
		fmt.Println("timeout")
	}
	return nil
}

// tcpRaw sends one TCP segment with the given flags (letters of
// FSRPAU) from src:40000 to dst:port through a raw IPv4 socket; the
// kernel adds the IP header.
func tcpRaw(args []string) error {
	src, err := netip.ParseAddr(args[0])
	if err != nil {
		return err
	}
	dst, err := netip.ParseAddr(args[1])
	if err != nil {
		return err
	}
	port, err := strconv.ParseUint(args[2], 10, 16)
	if err != nil {
		return err
	}
	var flags byte
	for _, c := range args[3] {
		bit := map[rune]byte{'F': 0x01, 'S': 0x02, 'R': 0x04, 'P': 0x08, 'A': 0x10, 'U': 0x20}[c]
		if bit == 0 {
			return fmt.Errorf("unknown TCP flag %q", c)
		}
		flags |= bit
	}
	seg := make([]byte, 20)
	binary.BigEndian.PutUint16(seg[0:], 40000)
	binary.BigEndian.PutUint16(seg[2:], uint16(port))
	binary.BigEndian.PutUint32(seg[4:], 0x01020304)
	seg[12] = 5 << 4
	seg[13] = flags
	binary.BigEndian.PutUint16(seg[14:], 8192)
	// The checksum over the pseudo-header and the segment.
	var sum uint32
	s4, d4 := src.As4(), dst.As4()
	for _, b := range [][]byte{s4[:], d4[:], {0, syscall.IPPROTO_TCP, 0, byte(len(seg))}, seg} {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(seg[16:], ^uint16(sum))

	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_TCP)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: s4}); err != nil {
		return err
	}
	return syscall.Sendto(fd, seg, 0, &syscall.SockaddrInet4{Addr: d4})
}
