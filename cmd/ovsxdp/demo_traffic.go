package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ovsxdp/ovsxdp/vport/topo"
)

// The demo's traffic: an HTTP server in the server namespace, HTTP clients
// and ICMP echo in the client namespace, and a UDP stream from the server to
// the client. The sockets are the demo's own, created inside the
// namespaces (topo.Namespace.Do); every loop is bounded in time and count.

// demoBigBody is what GET /big returns: 256 KiB, for the throughput figure.
var demoBigBody = bytes.Repeat([]byte("ovsxdp-demo-0123456789ab"), 256<<10/24+1)[:256<<10]

// demoHTTPServer serves GET / (a short body) and GET /big in ns on addr.
type demoHTTPServer struct {
	srv  *http.Server
	done chan struct{}
}

func startDemoHTTPServer(ns *topo.Namespace, addr string) (*demoHTTPServer, error) {
	var ln net.Listener
	if err := ns.Do(func() (err error) {
		ln, err = net.Listen("tcp4", addr)
		return err
	}); err != nil {
		return nil, fmt.Errorf("http server in %s: %w", ns.Name, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ovsxdp ok\n") })
	mux.HandleFunc("GET /big", func(w http.ResponseWriter, _ *http.Request) { w.Write(demoBigBody) })
	s := &demoHTTPServer{
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 2 * time.Second, IdleTimeout: 2 * time.Second, WriteTimeout: 5 * time.Second},
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		s.srv.Serve(ln) //nolint:errcheck // ends with http.ErrServerClosed at Close
	}()
	return s, nil
}

// Close closes the listener and every connection, and waits for Serve.
func (s *demoHTTPServer) Close() {
	s.srv.Close()
	<-s.done
}

// demoHTTPClient is an HTTP client whose connections are dialed inside a
// namespace. Close closes every connection it dialed, and any that a dial
// still under way completes later, which lets a deleted namespace go: an
// open socket keeps its namespace, and so the namespace's veth, alive. (The
// transport finishes a dial whose request was cancelled and keeps the
// connection, so closing the idle connections alone is not enough.)
type demoHTTPClient struct {
	tr *http.Transport
	c  *http.Client

	mu     sync.Mutex // protects the fields below
	conns  map[net.Conn]struct{}
	closed bool
}

func newDemoHTTPClient(ns *topo.Namespace) *demoHTTPClient {
	hc := &demoHTTPClient{conns: make(map[net.Conn]struct{})}
	d := &net.Dialer{Timeout: 2 * time.Second}
	hc.tr = &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := ns.Do(func() (err error) {
				c, err = d.DialContext(ctx, network, addr)
				return err
			})
			if err != nil {
				return nil, err
			}
			if !hc.track(c) {
				c.Close()
				return nil, net.ErrClosed
			}
			return c, nil
		},
		MaxIdleConnsPerHost: 16,
		DisableCompression:  true,
	}
	hc.c = &http.Client{Transport: hc.tr, Timeout: 3 * time.Second}
	return hc
}

// track records c, unless the client is closed.
func (c *demoHTTPClient) track(conn net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.conns[conn] = struct{}{}
	return true
}

// Close closes every connection the client dialed; later dials fail.
func (c *demoHTTPClient) Close() {
	c.mu.Lock()
	c.closed = true
	conns := c.conns
	c.conns = nil
	c.mu.Unlock()
	for conn := range conns {
		conn.Close()
	}
	c.tr.CloseIdleConnections()
}

// get fetches url and returns the body's length.
func (c *demoHTTPClient) get(ctx context.Context, url string) (int64, error) {
	return c.getTo(ctx, url, io.Discard)
}

// getTo fetches url, copies the body to w as it arrives and returns its
// length.
func (c *demoHTTPClient) getTo(ctx context.Context, url string, w io.Writer) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return n, err
}

// demoLoad is the outcome of a load run: requests answered whole and
// failed, and the body bytes received (of partial answers too) in elapsed.
type demoLoad struct {
	ok, failed uint64
	bytes      uint64
	elapsed    time.Duration
}

// Mbps is the load's goodput in megabits per second.
func (l demoLoad) Mbps() float64 {
	if l.elapsed <= 0 {
		return 0
	}
	return float64(l.bytes) * 8 / l.elapsed.Seconds() / 1e6
}

// maxLoadRequests bounds the requests of one load run.
const maxLoadRequests = 1 << 20

// loadBytes counts the body bytes a load run receives and closes first
// when the first of them arrives.
type loadBytes struct {
	n     atomic.Uint64
	once  sync.Once
	first chan struct{}
}

func newLoadBytes() *loadBytes { return &loadBytes{first: make(chan struct{})} }

func (b *loadBytes) Write(p []byte) (int, error) {
	if len(p) > 0 {
		b.n.Add(uint64(len(p)))
		b.once.Do(func() { close(b.first) })
	}
	return len(p), nil
}

// runDemoLoad GETs url from workers goroutines until ctx is done or
// maxLoadRequests were made, counts the body bytes in body (whose first
// tells the caller that answers arrive), and returns the tally. With window > 0 it
// also stops window after the first body byte arrives, and times the
// goodput from that byte: on a loaded machine the first answer may take
// longer than the whole window, and a rate taken from the start would
// then be zero.
func runDemoLoad(ctx context.Context, c *demoHTTPClient, url string, workers int, window time.Duration, body *loadBytes) demoLoad {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var ok, failed, issued atomic.Uint64
	start := time.Now()
	var from atomic.Int64 // when the first byte arrived, ns after start
	go func() {
		select {
		case <-body.first:
			from.Store(int64(time.Since(start)))
			if window > 0 {
				time.AfterFunc(window, cancel)
			}
		case <-ctx.Done():
		}
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil && issued.Add(1) <= maxLoadRequests {
				_, err := c.getTo(ctx, url, body)
				switch {
				case err == nil:
					ok.Add(1)
				case ctx.Err() == nil:
					failed.Add(1)
					time.Sleep(10 * time.Millisecond) // a dead peer does not get hammered
				}
			}
		})
	}
	wg.Wait()
	end := time.Since(start)
	cancel()
	l := demoLoad{ok: ok.Load(), failed: failed.Load(), bytes: body.n.Load(), elapsed: end}
	if window > 0 && l.bytes > 0 {
		l.elapsed = end - time.Duration(from.Load())
	}
	return l
}

// maxStreamDatagrams bounds the datagrams of one stream.
const maxStreamDatagrams = 1 << 24

// runDemoStream sends 64-byte UDP datagrams from ns to dst at rate packets
// per second until ctx is done or maxStreamDatagrams were offered, and
// returns how many were sent. Sends that fail are not counted.
func runDemoStream(ctx context.Context, ns *topo.Namespace, dst string, rate float64) (uint64, error) {
	var c net.Conn
	if err := ns.Do(func() (err error) {
		c, err = net.Dial("udp4", dst)
		return err
	}); err != nil {
		return 0, fmt.Errorf("udp stream from %s: %w", ns.Name, err)
	}
	defer c.Close()
	const tick = time.Millisecond
	perTick := max(1, int(rate*tick.Seconds()))
	payload := make([]byte, 64)
	var sent uint64
	t := time.NewTicker(tick)
	defer t.Stop()
	for offered := 0; offered < maxStreamDatagrams; offered += perTick {
		select {
		case <-ctx.Done():
			return sent, nil
		case <-t.C:
		}
		for range perTick {
			if _, err := c.Write(payload); err == nil {
				sent++
			}
		}
	}
	return sent, nil
}

// demoPing pings ip from ns count times, 10ms apart, waiting up to 1s for
// each reply, and returns the replies received and their average
// round-trip time.
func demoPing(ctx context.Context, ns *topo.Namespace, ip string, count int) (received int, avg time.Duration, err error) {
	st, err := ns.Ping(ctx, net.ParseIP(ip), count, 10*time.Millisecond, time.Second)
	return st.Received, st.AvgRTT, err
}

// demoReach pings ip from ns until a reply comes or timeout passes.
func demoReach(ctx context.Context, ns *topo.Namespace, ip string, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for ctx.Err() == nil {
		n, _, err := demoPing(ctx, ns, ip, 1)
		if n == 1 {
			return true
		}
		if err != nil && ctx.Err() == nil {
			return false // no socket in ns: no use trying again
		}
	}
	return false
}
