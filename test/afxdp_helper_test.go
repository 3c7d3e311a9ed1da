package test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The traffic endpoints of the AF_XDP tests run as this test binary,
// started inside a namespace with the arguments
//
//	-test.run=^TestAFXDPHelperProcess$ -- ROLE ARGS...
//
// Roles:
//
//	http-server ADDR          serve GET / (a short body) and GET /big (256 KiB)
//	tcp-echo ADDR             echo every TCP connection
//	tcp-client ADDR BYTES     send BYTES pseudo-random bytes, check the echo
//	udp-recv ADDR             print "got PAYLOAD" for every datagram
//	udp-send ADDR PAYLOAD N   send PAYLOAD N times, 50ms apart
//	tcp-connect ADDR          print "connected" or "failed" (3 s)
//	udp-refused ADDR          send one datagram, print "refused" when an
//	                          ICMP port unreachable answers it, else "timeout"
//	tcp-raw SRC DST PORT FLAGS [SPORT SEQ ACK DATA]
//	                          send one TCP segment with FLAGS (e.g. SF)
//	                          from SRC:40000 (or SRC:SPORT, with SEQ, ACK and
//	                          payload DATA) to DST:PORT through a raw socket
//	whoami-server ADDR ID     answer every line of a TCP connection with
//	                          "ID PEER" (the peer address the server sees)
//	whoami-clients ADDR SPORT CONNS N
//	                          open CONNS connections at once (from ports
//	                          SPORT, SPORT+1, ... unless SPORT is 0), send N
//	                          lines on each, print "ok ANSWER via REMOTE" per
//	                          connection whose answers never changed, else
//	                          "error ..."
//	frame-send DEV HEX        send the Ethernet frame HEX on DEV through a
//	                          packet socket
//	tcp-hold SRC:SPORT DST    connect, print "held SEQ ACK" (its next
//	                          sequence number and the one it acknowledges),
//	                          keep the connection open
//
// Servers print "listening" once they accept traffic.

// helperArgs returns the command line that runs role in a namespace.
func helperArgs(t *testing.T, role string, args ...string) []string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{exe, "-test.run=^TestAFXDPHelperProcess$", "--", role}, args...)
}

// bigBody is what GET /big returns.
var bigBody = bytes.Repeat([]byte("ovsxdp-0123456789abcdef-"), 256<<10/24+1)[:256<<10]

// TestAFXDPHelperProcess is not a test: it runs a helper role when the
// binary is started as a helper, and does nothing otherwise.
func TestAFXDPHelperProcess(t *testing.T) {
	args := os.Args
	for len(args) > 0 && args[0] != "--" {
		args = args[1:]
	}
	if len(args) < 2 {
		return
	}
	if err := runHelper(args[1], args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func runHelper(role string, args []string) error {
	need := map[string]int{"http-server": 1, "tcp-echo": 1, "tcp-client": 2, "udp-recv": 1, "udp-send": 3,
		"tcp-connect": 1, "udp-refused": 1, "tcp-raw": 4, "whoami-server": 2, "whoami-clients": 4, "tcp-hold": 2, "frame-send": 2, "frame-burst": 3}
	n, ok := need[role]
	if !ok {
		return fmt.Errorf("unknown role %q", role)
	}
	if role == "tcp-raw" && len(args) == 8 {
		n = 8
	}
	if len(args) != n {
		return fmt.Errorf("%s: %d arguments, want %d", role, len(args), n)
	}
	switch role {
	case "http-server":
		return httpServer(args[0])
	case "tcp-echo":
		return tcpEcho(args[0])
	case "tcp-client":
		size, err := strconv.Atoi(args[1])
		if err != nil {
			return err
		}
		return tcpClient(args[0], size)
	case "udp-recv":
		return udpRecv(args[0])
	case "tcp-connect":
		return tcpConnect(args[0])
	case "udp-refused":
		return udpRefused(args[0])
	case "tcp-raw":
		return tcpRaw(args)
	case "whoami-server":
		return whoamiServer(args[0], args[1])
	case "whoami-clients":
		var v [3]int
		for i := range v {
			n, err := strconv.Atoi(args[1+i])
			if err != nil {
				return err
			}
			v[i] = n
		}
		return whoamiClients(args[0], v[0], v[1], v[2])
	case "tcp-hold":
		return tcpHold(args[0], args[1])
	case "frame-send":
		return frameSend(args[0], args[1])
	case "frame-burst":
		count, err := strconv.Atoi(args[2])
		if err != nil {
			return err
		}
		return frameBurst(args[0], args[1], count)
	default:
		count, err := strconv.Atoi(args[2])
		if err != nil {
			return err
		}
		return udpSend(args[0], args[1], count)
	}
}

func httpServer(addr string) error {
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ovsxdp ok\n") })
	mux.HandleFunc("GET /big", func(w http.ResponseWriter, r *http.Request) { w.Write(bigBody) })
	fmt.Println("listening")
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second}
	return srv.Serve(ln)
}

func tcpEcho(addr string) error {
	return serveTCP(addr, func(c net.Conn) { io.Copy(c, c) })
}

// serveTCP listens on addr, prints "listening", and runs handle on each
// connection in a goroutine of its own, closing the connection after.
func serveTCP(addr string, handle func(net.Conn)) error {
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		return err
	}
	fmt.Println("listening")
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			handle(c)
		}()
	}
}

func tcpClient(addr string, size int) error {
	c, err := net.DialTimeout("tcp4", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	data := make([]byte, size)
	rng := rand.NewChaCha8([32]byte{'o', 'v', 's'})
	rng.Read(data)
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		return fmt.Errorf("read echo after %d bytes: %w", len(got), err)
	}
	if err := <-werr; err != nil {
		return err
	}
	if sha256.Sum256(got) != sha256.Sum256(data) {
		return fmt.Errorf("echo of %d bytes differs (%d bytes back)", size, len(got))
	}
	fmt.Printf("ok %d\n", size)
	return nil
}

func udpRecv(addr string) error {
	la, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return err
	}
	c, err := net.ListenUDP("udp4", la)
	if err != nil {
		return err
	}
	fmt.Println("listening")
	buf := make([]byte, 2048)
	for {
		n, from, err := c.ReadFromUDP(buf)
		if err != nil {
			return err
		}
		fmt.Printf("got %s from %s\n", strings.TrimSpace(string(buf[:n])), from)
	}
}

func udpSend(addr, payload string, count int) error {
	c, err := net.Dial("udp4", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	for range count {
		if _, err := c.Write([]byte(payload)); err != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}
