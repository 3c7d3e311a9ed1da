package ovsdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Stats counts what a Client's connections saw. Read it with Client.Stats.
type Stats struct {
	MessagesIn     uint64 // messages received
	MessagesOut    uint64 // messages sent
	ProtocolErrors uint64 // connections closed for malformed or oversized input
	Inactivity     uint64 // connections closed because the peer stayed silent
	EchoesAnswered uint64 // the server's echo requests we answered
	EchoesSent     uint64 // our inactivity probes
	Ignored        uint64 // well-formed messages we had no use for
	Connects       uint64 // successful connections, the first included
}

type counters struct {
	messagesIn, messagesOut, protocolErrors, inactivity atomic.Uint64
	echoesAnswered, echoesSent, ignored, connects       atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		MessagesIn: c.messagesIn.Load(), MessagesOut: c.messagesOut.Load(),
		ProtocolErrors: c.protocolErrors.Load(), Inactivity: c.inactivity.Load(),
		EchoesAnswered: c.echoesAnswered.Load(), EchoesSent: c.echoesSent.Load(),
		Ignored: c.ignored.Load(), Connects: c.connects.Load(),
	}
}

// RPCError is the error member of a response.
type RPCError struct {
	Method string
	Err    string // the "error" string, or the raw error member
	Detail string // the "details" string, if any
}

func (e *RPCError) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("%s: server error: %s (%s)", e.Method, e.Err, e.Detail)
	}
	return fmt.Sprintf("%s: server error: %s", e.Method, e.Err)
}

func rpcError(method string, raw json.RawMessage) *RPCError {
	var w struct {
		Error   string `json:"error"`
		Details string `json:"details"`
	}
	if json.Unmarshal(raw, &w) == nil && w.Error != "" {
		return &RPCError{Method: method, Err: w.Error, Detail: w.Details}
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return &RPCError{Method: method, Err: s}
	}
	return &RPCError{Method: method, Err: string(raw)}
}

// parseRemote turns "unix:PATH" or "tcp:HOST:PORT" into a network and
// address for net.Dial.
func parseRemote(remote string) (network, addr string, err error) {
	kind, rest, ok := strings.Cut(remote, ":")
	if !ok || rest == "" {
		return "", "", fmt.Errorf("remote %q: want unix:PATH or tcp:HOST:PORT", remote)
	}
	switch kind {
	case "unix":
		return "unix", rest, nil
	case "tcp":
		if _, _, err := net.SplitHostPort(rest); err != nil {
			return "", "", fmt.Errorf("remote %q: %w", remote, err)
		}
		return "tcp", rest, nil
	}
	return "", "", fmt.Errorf("remote %q: unsupported kind %q (want unix or tcp)", remote, kind)
}

// call is a request waiting for its response.
type call struct {
	method string
	// onReply, if set, runs on the reader goroutine before the reader looks
	// at the next message, so that no notification overtakes it.
	onReply func(*Message) error
	done    chan *Message // buffered 1
}

// conn is one JSON-RPC connection. Its reader goroutine decodes messages,
// answers echo requests, completes calls and hands notifications to notify.
type conn struct {
	nc           net.Conn
	log          *slog.Logger
	cnt          *counters
	maxMsg       int
	writeTimeout time.Duration
	notify       func(*Message) error // runs on the reader goroutine
	trace        func(received bool, raw []byte)

	wmu sync.Mutex // serialises writes on nc

	mu      sync.Mutex // guards the fields below
	pending map[string]*call
	nextID  uint64
	err     error // why the connection closed

	closed   chan struct{}
	lastRecv atomic.Int64  // unix nanoseconds of the last message received
	done     chan struct{} // closed when the reader and prober have exited
}

func newConn(nc net.Conn, log *slog.Logger, cnt *counters, o *Options, notify func(*Message) error) *conn {
	c := &conn{
		nc: nc, log: log, cnt: cnt, maxMsg: o.MaxMessageSize, writeTimeout: o.WriteTimeout, trace: o.Trace,
		notify: notify, pending: make(map[string]*call),
		closed: make(chan struct{}), done: make(chan struct{}),
	}
	c.lastRecv.Store(time.Now().UnixNano())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); c.readLoop() }()
	if o.InactivityProbe > 0 {
		wg.Add(1)
		go func() { defer wg.Done(); c.probeLoop(o.InactivityProbe) }()
	}
	go func() { wg.Wait(); close(c.done) }()
	return c
}

// close closes the connection for the given reason (first reason wins).
func (c *conn) close(reason error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = reason
	c.mu.Unlock()
	c.nc.Close()
	close(c.closed)
}

// Err returns why the connection closed, or nil while it is open.
func (c *conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *conn) readLoop() {
	fr := newFrameReader(c.nc, c.maxMsg)
	for {
		raw, err := fr.next()
		if err != nil {
			if isProtocol(err) {
				c.cnt.protocolErrors.Add(1)
			}
			c.close(fmt.Errorf("read: %w", err))
			return
		}
		c.lastRecv.Store(time.Now().UnixNano())
		c.cnt.messagesIn.Add(1)
		if c.trace != nil {
			c.trace(true, raw)
		}
		m, err := DecodeMessage(raw)
		if err == nil {
			err = c.handle(m)
		}
		if err != nil {
			if isProtocol(err) {
				c.cnt.protocolErrors.Add(1)
			}
			c.close(err)
			return
		}
	}
}

func (c *conn) handle(m *Message) error {
	switch m.Kind {
	case KindRequest:
		if m.Method == "echo" {
			c.cnt.echoesAnswered.Add(1)
			return c.write(&Message{Kind: KindResponse, Result: m.Params, Error: json.RawMessage("null"), ID: m.ID})
		}
		c.cnt.ignored.Add(1)
		c.log.Warn("ovsdb: request for an unknown method", "method", m.Method)
		errMember, _ := json.Marshal(map[string]string{"error": "unknown method", "details": m.Method})
		return c.write(&Message{Kind: KindResponse, Result: json.RawMessage("null"), Error: errMember, ID: m.ID})
	case KindNotification:
		if c.notify == nil {
			c.cnt.ignored.Add(1)
			return nil
		}
		return c.notify(m)
	}
	id := string(m.ID)
	c.mu.Lock()
	cl, ok := c.pending[id]
	delete(c.pending, id)
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: response with id %s matches no request", ErrProtocol, truncate(id, 64))
	}
	if cl.onReply != nil {
		if err := cl.onReply(m); err != nil {
			return err
		}
	}
	cl.done <- m
	return nil
}

func (c *conn) write(m *Message) error {
	b, err := m.Encode()
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.writeTimeout > 0 {
		c.nc.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	}
	if _, err := c.nc.Write(b); err != nil {
		err = fmt.Errorf("write: %w", err)
		c.close(err)
		return err
	}
	c.cnt.messagesOut.Add(1)
	if c.trace != nil {
		c.trace(false, b)
	}
	return nil
}

// start sends a request and returns the call that its response completes.
func (c *conn) start(method string, params any, onReply func(*Message) error) (*call, error) {
	p, err := json.Marshal(params)
	if err != nil {
		return nil, fmt.Errorf("%s: params: %w", method, err)
	}
	cl := &call{method: method, onReply: onReply, done: make(chan *Message, 1)}
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, fmt.Errorf("%s: %w: %w", method, ErrClosed, err)
	}
	c.nextID++
	id := strconv.FormatUint(c.nextID, 10)
	c.pending[id] = cl
	c.mu.Unlock()
	if err := c.write(&Message{Kind: KindRequest, Method: method, Params: p, ID: json.RawMessage(id)}); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", method, ErrClosed, err)
	}
	return cl, nil
}

// wait waits for a call's response. An error response is an *RPCError.
// If ctx ends first the call stays pending (its late response is
// discarded).
func (c *conn) wait(ctx context.Context, cl *call) (json.RawMessage, error) {
	select {
	case m := <-cl.done:
		if m.IsError() {
			return nil, rpcError(cl.method, m.Error)
		}
		return m.Result, nil
	case <-c.closed:
		// A response may have been delivered just before the close.
		select {
		case m := <-cl.done:
			if m.IsError() {
				return nil, rpcError(cl.method, m.Error)
			}
			return m.Result, nil
		default:
		}
		return nil, fmt.Errorf("%s: %w: %w", cl.method, ErrClosed, c.Err())
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: %w", cl.method, ctx.Err())
	}
}

// call sends a request and waits for its response.
func (c *conn) call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	cl, err := c.start(method, params, nil)
	if err != nil {
		return nil, err
	}
	return c.wait(ctx, cl)
}

// probeLoop sends an echo once the peer has been silent for interval and
// closes the connection if nothing comes for another interval after the
// echo, as Open vSwitch's reconnect state machine leaves its idle state a
// probe interval after it entered it. The second interval runs from the
// echo, not from the last message: a prober that runs late (a loaded
// machine, a stopped process) finds the peer silent for twice the interval
// or more, and must still ask before it drops a peer that was never asked.
func (c *conn) probeLoop(interval time.Duration) {
	tick := max(interval/4, 10*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	var (
		probedAt   time.Time // when the unanswered echo went out; zero if none
		probedLast int64     // lastRecv when it went out
	)
	for {
		select {
		case <-c.closed:
			return
		case <-t.C:
		}
		last := c.lastRecv.Load()
		if last != probedLast {
			probedAt = time.Time{} // the peer spoke since the echo
		}
		idle := time.Since(time.Unix(0, last))
		switch {
		case probedAt.IsZero() && idle >= interval:
			c.cnt.echoesSent.Add(1)
			if _, err := c.start("echo", []any{}, nil); err != nil {
				return
			}
			probedAt, probedLast = time.Now(), last
		case !probedAt.IsZero() && time.Since(probedAt) >= interval:
			c.cnt.inactivity.Add(1)
			c.close(fmt.Errorf("%w: nothing received for %v", ErrInactivity, idle.Round(time.Millisecond)))
			return
		}
	}
}

func isProtocol(err error) bool {
	return errors.Is(err, ErrProtocol) || errors.Is(err, ErrMessageTooLarge) || errors.Is(err, ErrBadDatum)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
