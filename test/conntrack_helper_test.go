package test

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
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
// FSRPAU) from src:40000 (or args[4], with sequence number args[5],
// acknowledgement number args[6] and payload args[7]) to dst:port through
// a raw IPv4 socket; the kernel adds the IP header.
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
	sport, seq, ack := uint64(40000), uint64(0x01020304), uint64(0)
	var data []byte
	if len(args) == 8 {
		data = []byte(args[7])
		if sport, err = strconv.ParseUint(args[4], 10, 16); err != nil {
			return err
		}
		if seq, err = strconv.ParseUint(args[5], 10, 32); err != nil {
			return err
		}
		if ack, err = strconv.ParseUint(args[6], 10, 32); err != nil {
			return err
		}
	}
	seg := make([]byte, 20)
	binary.BigEndian.PutUint16(seg[0:], uint16(sport))
	binary.BigEndian.PutUint16(seg[2:], uint16(port))
	binary.BigEndian.PutUint32(seg[4:], uint32(seq))
	binary.BigEndian.PutUint32(seg[8:], uint32(ack))
	seg[12] = 5 << 4
	seg[13] = flags
	binary.BigEndian.PutUint16(seg[14:], 8192)
	seg = append(seg, data...)
	binary.BigEndian.PutUint16(seg[16:], transportChecksum4(src, dst, syscall.IPPROTO_TCP, seg))

	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_TCP)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: src.As4()}); err != nil {
		return err
	}
	return syscall.Sendto(fd, seg, 0, &syscall.SockaddrInet4{Addr: dst.As4()})
}

// whoamiServer answers every line a TCP connection sends with "ID PEER",
// PEER being the connection's remote address as the server sees it.
func whoamiServer(addr, id string) error {
	return serveTCP(addr, func(c net.Conn) {
		r := bufio.NewReader(c)
		for {
			if _, err := r.ReadString('\n'); err != nil {
				return
			}
			if _, err := fmt.Fprintf(c, "%s %s\n", id, c.RemoteAddr()); err != nil {
				return
			}
		}
	})
}

// whoamiConn opens one connection to addr (from local port sport unless
// it is 0), sends n requests 50ms apart on it and returns the answer, or
// an error when the answers differ: a connection that changed server or
// address on the way.
func whoamiConn(addr string, sport, n int) (string, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if sport != 0 {
		d.LocalAddr = &net.TCPAddr{Port: sport}
	}
	c, err := d.Dial("tcp4", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	var first string
	for i := range n {
		if i > 0 {
			time.Sleep(50 * time.Millisecond)
		}
		if _, err := fmt.Fprintf(c, "request %d\n", i); err != nil {
			return "", err
		}
		line, err := r.ReadString('\n')
		if err != nil {
			return "", fmt.Errorf("answer %d: %w", i, err)
		}
		line = strings.TrimSpace(line)
		if i == 0 {
			first = line
		} else if line != first {
			return "", fmt.Errorf("answer %d is %q, the first was %q", i, line, first)
		}
	}
	return first + " via " + c.RemoteAddr().String(), nil
}

// whoamiClients opens conns connections to addr at once, each sending n
// requests, and prints one line per connection: "ok ID PEER via REMOTE"
// or "error ...".
func whoamiClients(addr string, sport, conns, n int) error {
	out := make([]string, conns)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() {
			p := sport
			if p != 0 {
				p += i
			}
			s, err := whoamiConn(addr, p, n)
			if err != nil {
				out[i] = "error " + err.Error()
			} else {
				out[i] = "ok " + s
			}
		})
	}
	wg.Wait()
	for _, l := range out {
		fmt.Println(l)
	}
	return nil
}

// tcpHold connects from src (IP:PORT) to dst, prints "held SEQ ACK" (the
// sequence number of its next byte and the one it acknowledges, read from
// the SYN+ACK through a raw socket) and keeps the connection open until
// killed.
func tcpHold(src, dst string) error {
	la, err := net.ResolveTCPAddr("tcp4", src)
	if err != nil {
		return err
	}
	ra, err := net.ResolveTCPAddr("tcp4", dst)
	if err != nil {
		return err
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_TCP)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &syscall.Timeval{Sec: 1})
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: la}
	c, err := d.Dial("tcp4", dst)
	if err != nil {
		return err
	}
	defer c.Close()
	buf := make([]byte, 2048)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		n, _, err := syscall.Recvfrom(fd, buf, 0)
		if err != nil || n < 20 {
			continue
		}
		ihl := int(buf[0]&0x0f) * 4
		if n < ihl+20 || !net.IP(buf[12:16]).Equal(ra.IP.To4()) {
			continue
		}
		seg := buf[ihl:n]
		if int(binary.BigEndian.Uint16(seg[0:])) != ra.Port || int(binary.BigEndian.Uint16(seg[2:])) != la.Port || seg[13]&0x12 != 0x12 {
			continue
		}
		fmt.Printf("held %d %d\n", binary.BigEndian.Uint32(seg[8:]), binary.BigEndian.Uint32(seg[4:])+1)
		// Hold the connection until the test kills the process.
		_, err = io.Copy(io.Discard, c)
		return err
	}
	return errors.New("no SYN+ACK seen on the raw socket")
}

// transportChecksum4 is the TCP or UDP checksum of segment seg (its
// checksum field zero) from src to dst over IPv4: the one's complement of
// the one's complement sum of the pseudo-header and the segment.
func transportChecksum4(src, dst netip.Addr, proto byte, seg []byte) uint16 {
	var sum uint32
	s4, d4 := src.As4(), dst.As4()
	for _, b := range [][]byte{s4[:], d4[:], {0, proto, byte(len(seg) >> 8), byte(len(seg))}, seg} {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
