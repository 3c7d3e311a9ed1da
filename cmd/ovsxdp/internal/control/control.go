// Package control is the protocol between the ovsxdp command-line tool and
// its daemon: one JSON request per line over a unix socket, answered by one
// JSON response per line.
//
// A request names a verb (the command, such as "add-flow"), its positional
// arguments, its flags, and for commands that read a file on the client
// side (add-flows) the file's lines. A response carries the command's
// output text or an error message.
//
// The same server speaks Open vSwitch's unixctl protocol, ovs-appctl's
// (appctl.go), on a socket of its own.
package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"
)

// DefaultSocket is where the daemon listens unless told otherwise.
const DefaultSocket = "/run/ovsxdp/ovsxdp.sock"

// SocketEnv is the environment variable that overrides DefaultSocket.
const SocketEnv = "OVSXDP_SOCKET"

// MaxRequestSize bounds one request line (add-flows sends a whole file).
const MaxRequestSize = 16 << 20

// Limits of the server. No set of clients can starve another: a
// connection that sends nothing is dropped after idleTimeout, a request
// must keep arriving (a pause of gapTimeout ends it) and arrive whole
// within requestTimeout, and when maxConns connections are open a new one
// evicts the connection that has waited longest for its next request.
const (
	// maxConns bounds the connections open at once.
	maxConns = 32
	// idleTimeout bounds the wait for the first byte of a request.
	idleTimeout = 5 * time.Second
	// gapTimeout bounds a pause in the middle of a request.
	gapTimeout = 5 * time.Second
	// requestTimeout bounds the reading of one whole request.
	requestTimeout = time.Minute
	// writeTimeout bounds the sending of a response.
	writeTimeout = time.Minute
	// drainLimit bounds what the server reads and discards of an
	// oversized request after answering it, so that a client that is
	// still sending it can finish and read the answer.
	drainLimit = 4 * MaxRequestSize
)

// Errors of the protocol.
var (
	ErrTooLarge   = errors.New("request too large")
	ErrDaemonDown = errors.New("cannot reach the daemon")
)

// Request is one command.
type Request struct {
	Verb  string            `json:"verb"`
	Args  []string          `json:"args,omitempty"`
	Flags map[string]string `json:"flags,omitempty"`
	// Input is the content of a file the client read for the command,
	// one element per line.
	Input []string `json:"input,omitempty"`
	// Appctl marks a request that came from ovs-appctl: Verb is an Open
	// vSwitch command name and Args its arguments as ovs-appctl passed
	// them, options included.
	Appctl bool `json:"-"`
}

// Response is the answer to one Request: Output on success, Error (one
// line) on failure.
type Response struct {
	Output string `json:"output,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Handler runs one request and returns its output. ctx ends when the server
// closes.
type Handler func(ctx context.Context, req *Request) (string, error)

// Server serves a Handler on a listener. It survives any request: a line
// that is not a JSON request, an oversized one, or a handler that panics
// gets an error response, and the server goes on. No client can keep
// another out: see maxConns and the timeouts above.
type Server struct {
	handler Handler
	proto   protocol
	log     *slog.Logger
	ctx     context.Context
	cancel  context.CancelFunc
	// Limits, the package's constants but for tests.
	limit          int // the largest request line, MaxRequestSize
	maxConns       int
	idleTimeout    time.Duration
	gapTimeout     time.Duration
	requestTimeout time.Duration

	mu     sync.Mutex // protects the fields below and every conn's state
	ln     net.Listener
	conns  map[*conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// conn is one client connection.
type conn struct {
	net.Conn
	// busy is true while a request is being read, run or answered; an idle
	// connection (busy false) waits for its next request and may be
	// evicted. idleSince is when it became idle. Guarded by Server.mu.
	busy      bool
	idleSince time.Time
}

// protocol is how requests and answers travel on a connection: the
// daemon's own (lines, below) or ovs-appctl's (appctl.go).
type protocol interface {
	// read reads one request of at most max bytes: ErrTooLarge past that
	// (errTooLargeWhole if it read the request to its end), a
	// *badRequestError if it is not one.
	read(r *bufio.Reader, max int) ([]byte, error)
	// answer runs the request msg and encodes its answer, with what to
	// run once the answer is sent (nil: nothing). ok false closes the
	// connection without an answer.
	answer(s *Server, msg []byte) (out []byte, after func(), ok bool)
	// failure encodes the answer to a request that could not be read (nil:
	// the connection closes without one).
	failure(text string) []byte
}

// badRequestError is a request the protocol cannot take; the connection
// closes after it.
type badRequestError struct{ Reason string }

func (e *badRequestError) Error() string { return e.Reason }

// NewServer returns a server for h that logs to log.
func NewServer(h Handler, log *slog.Logger) *Server {
	return newServer(h, lines{}, MaxRequestSize, log)
}

func newServer(h Handler, p protocol, limit int, log *slog.Logger) *Server {
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{handler: h, proto: p, log: log, ctx: ctx, cancel: cancel,
		limit: limit, maxConns: maxConns,
		idleTimeout: idleTimeout, gapTimeout: gapTimeout, requestTimeout: requestTimeout,
		conns: make(map[*conn]struct{})}
}

// Serve accepts connections on ln until Close, and returns nil then.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ln.Close()
	}
	s.ln = ln
	s.mu.Unlock()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("control socket: accept: %w", err)
		}
		c := &conn{Conn: nc, idleSince: time.Now()}
		switch s.admit(c) {
		case admitClosed:
			nc.Close()
			return nil
		case admitBusy:
			s.refuse(nc)
			continue
		}
		go func() {
			defer s.wg.Done()
			defer s.untrack(c)
			s.serveConn(c)
		}()
	}
}

// Outcomes of admit.
const (
	admitOK = iota
	admitBusy
	admitClosed
)

// admit tracks c. At the connection limit it evicts the connection that
// has been idle longest; if every connection is busy, it admits nothing
// (admitBusy).
func (s *Server) admit(c *conn) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return admitClosed
	}
	if len(s.conns) >= s.maxConns {
		var oldest *conn
		for o := range s.conns {
			if !o.busy && (oldest == nil || o.idleSince.Before(oldest.idleSince)) {
				oldest = o
			}
		}
		if oldest == nil {
			return admitBusy
		}
		delete(s.conns, oldest)
		oldest.Close()
		s.log.Debug("control: evicted an idle connection", "idle", time.Since(oldest.idleSince))
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return admitOK
}

// refuse answers a connection that came while every other one was busy,
// and closes it. The answer fits the new socket's empty buffer, so the
// write does not wait.
func (s *Server) refuse(c net.Conn) {
	s.log.Warn("control: refused a connection, every connection is busy", "limit", s.maxConns)
	if b := s.proto.failure(fmt.Sprintf("the daemon is busy: %d connections are sending or running requests (try again)", s.maxConns)); b != nil {
		c.SetWriteDeadline(time.Now().Add(time.Second))
		c.Write(b)
	}
	c.Close()
}

// setBusy marks c busy or idle. It returns false if c was evicted.
func (s *Server) setBusy(c *conn, busy bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[c]; !ok {
		return false
	}
	c.busy = busy
	if !busy {
		c.idleSince = time.Now()
	}
	return true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.Close()
}

// Close stops accepting, closes the connections, ends the handlers' context
// and waits for the connection goroutines to finish.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.cancel()
	var err error
	if s.ln != nil {
		err = s.ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// deadlineReader reads from a connection with a deadline set before each
// read: gap from now, but never later than end (if set). A client that
// keeps sending keeps the request alive, up to end.
type deadlineReader struct {
	c   net.Conn
	gap time.Duration
	end time.Time
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	dl := time.Now().Add(d.gap)
	if !d.end.IsZero() && d.end.Before(dl) {
		dl = d.end
	}
	d.c.SetReadDeadline(dl)
	return d.c.Read(p)
}

// serveConn answers the requests on c, one per line, until c closes, its
// client stays silent or stalls, it is evicted, or a request is too large
// (after which the stream cannot be resynchronised).
func (s *Server) serveConn(c *conn) {
	dr := &deadlineReader{c: c.Conn}
	r := bufio.NewReaderSize(dr, 64<<10)
	w := bufio.NewWriter(c)
	for {
		// Idle: wait for the first byte of the next request.
		dr.gap, dr.end = s.idleTimeout, time.Time{}
		if _, err := r.Peek(1); err != nil {
			if !errors.Is(err, io.EOF) {
				s.log.Debug("control: idle connection closed", "err", err)
			}
			return
		}
		if !s.setBusy(c, true) {
			return // evicted
		}
		dr.gap, dr.end = s.gapTimeout, time.Now().Add(s.requestTimeout)
		msg, err := s.proto.read(r, s.limit)
		var out []byte
		var after func()
		ok := true
		var ne net.Error
		var bad *badRequestError
		switch {
		case errors.Is(err, ErrTooLarge):
			s.log.Warn("control: request too large", "limit", s.limit)
			out = s.proto.failure(fmt.Sprintf("%v (the limit is %d bytes)", ErrTooLarge, s.limit))
		case errors.As(err, &ne) && ne.Timeout():
			out = s.proto.failure(fmt.Sprintf("request incomplete: no data for %v, or not whole after %v", s.gapTimeout, s.requestTimeout))
		case errors.As(err, &bad):
			s.log.Warn("control: bad request; connection closed", "reason", bad.Reason)
			out = s.proto.failure(bad.Reason)
		case err != nil && !errors.Is(err, io.EOF):
			s.log.Debug("control: read", "err", err)
			return
		case len(msg) == 0 && errors.Is(err, io.EOF):
			return
		default:
			out, after, ok = s.proto.answer(s, msg)
		}
		if !ok {
			return
		}
		if out != nil {
			c.SetWriteDeadline(time.Now().Add(writeTimeout))
			_, werr := w.Write(out)
			if werr == nil {
				werr = w.Flush()
			}
			if after != nil {
				after()
			}
			if werr != nil {
				s.log.Debug("control: write", "err", werr)
				return
			}
		}
		if errors.Is(err, ErrTooLarge) && err != errTooLargeWhole && out != nil {
			// Read the rest of the request (bounded) so that a client
			// still sending it can finish and read the answer, instead
			// of having its write fail.
			discardLine(r, drainLimit)
		}
		if err != nil { // too large, timed out, or the last line had no newline
			return
		}
		if !s.setBusy(c, false) {
			return
		}
	}
}

// discardLine reads and drops bytes up to the next newline, at most max.
func discardLine(r *bufio.Reader, max int) {
	for n := 0; n < max; {
		chunk, err := r.ReadSlice('\n')
		n += len(chunk)
		if !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// lines is the daemon's own protocol: one JSON Request per line, one JSON
// Response per line.
type lines struct{}

func (lines) read(r *bufio.Reader, max int) ([]byte, error) { return readLine(r, max) }

func (lines) failure(text string) []byte { return jsonLine(&Response{Error: text}) }

// answer decodes and runs one request. Whatever happens, it answers.
func (lines) answer(s *Server, line []byte) ([]byte, func(), bool) {
	var req Request
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return jsonLine(&Response{Error: "malformed request: " + err.Error()}), nil, true
	}
	if dec.More() {
		return jsonLine(&Response{Error: "malformed request: more than one JSON value on the line"}), nil, true
	}
	if req.Verb == "" {
		return jsonLine(&Response{Error: "malformed request: no verb"}), nil, true
	}
	out, after, err := s.run(&req)
	if err != nil {
		return jsonLine(&Response{Error: err.Error()}), after, true
	}
	return jsonLine(&Response{Output: out}), after, true
}

// afterKey is the context key of a request's after-answer function.
type afterKey struct{}

// AfterAnswer has f run once the answer to the request whose handler got
// ctx has been sent (or failed to be): a command that ends the daemon
// answers first.
func AfterAnswer(ctx context.Context, f func()) {
	if p, ok := ctx.Value(afterKey{}).(*func()); ok {
		*p = f
	}
}

// run runs req's handler: its output or error, never a panic, and what
// the handler asked to run after the answer.
func (s *Server) run(req *Request) (out string, after func(), err error) {
	ctx := context.WithValue(s.ctx, afterKey{}, &after)
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("control: handler panicked", "verb", req.Verb, "panic", r, "stack", string(debug.Stack()))
			out, err = "", fmt.Errorf("internal error in %s: %v", req.Verb, r)
		}
	}()
	start := time.Now()
	out, err = s.handler(ctx, req)
	s.log.Debug("control: request", "verb", req.Verb, "args", req.Args, "took", time.Since(start), "err", err)
	return out, after, err
}

// errTooLargeWhole is ErrTooLarge for a line that was read to its end.
var errTooLargeWhole = fmt.Errorf("%w", ErrTooLarge)

// readLine reads one line without its newline. A line longer than max bytes
// is ErrTooLarge, after reading max+1 bytes of it (errTooLargeWhole if
// that reached the newline). At the end of the stream
// it returns what it read and io.EOF.
//
// A long line (add-flows sends a whole file as one) is read in the
// reader's buffers and copied once into a line of its exact size, rather
// than appended to a line that grows and is copied again at each growth.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var full [][]byte // the buffers of a line longer than r's
	n := 0
	for {
		chunk, err := r.ReadSlice('\n')
		if n+len(chunk) > max+1 { // +1: the newline
			if err == nil {
				return nil, errTooLargeWhole
			}
			return nil, ErrTooLarge
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			full = append(full, bytes.Clone(chunk))
			n += len(chunk)
			continue
		}
		var line []byte // a copy: chunk is r's buffer
		if len(full) > 0 {
			line = make([]byte, 0, n+len(chunk))
			for _, b := range full {
				line = append(line, b...)
			}
		}
		line = append(line, chunk...)
		if err == nil {
			return bytes.TrimRight(line, "\r\n"), nil
		}
		return line, err
	}
}

// jsonLine encodes v as one JSON line.
func jsonLine(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil { // a Response always encodes
		panic(err)
	}
	return append(b, '\n')
}

// Listen creates the control socket at path: it creates the socket's
// directory (mode 0700) if it is missing, refuses to start next to a live
// daemon, and replaces a stale socket that no daemon answers on. The
// socket never exists at path with a mode wider than 0600, whatever the
// umask: it is bound inside a private directory (mode 0700), made 0600
// there, and renamed into place. Closing the listener removes the socket
// unless another has replaced it.
func Listen(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("control socket %s: exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("control socket %s: another daemon is listening on it", path)
		}
		// A stale socket: the rename below replaces it.
	}
	private, err := os.MkdirTemp(dir, ".s") // mode 0700
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	defer os.RemoveAll(private)
	tmp := filepath.Join(private, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false) // it is renamed: Close removes path instead
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return &listener{UnixListener: ln, path: path, fi: fi}, nil
}

// listener is the control socket's listener; Close removes the socket file
// it was renamed to.
type listener struct {
	*net.UnixListener
	path string
	fi   os.FileInfo // the socket file, to leave a newer one in place

	once sync.Once
}

func (l *listener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

func (l *listener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() {
		if fi, serr := os.Lstat(l.path); serr == nil && os.SameFile(fi, l.fi) {
			os.Remove(l.path)
		}
	})
	return err
}

// SizeText writes a byte count for people: "17.0 MiB", "16 MiB", "900 bytes".
func SizeText(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// Call sends req to the daemon listening at path and returns its output, or
// the daemon's error. It gives up after timeout. A request larger than
// MaxRequestSize is refused before anything is sent.
func Call(path string, req *Request, timeout time.Duration) (string, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return "", err
	}
	if len(b)+1 > MaxRequestSize {
		return "", fmt.Errorf("%w: %s, the daemon's limit is %s", ErrTooLarge, SizeText(len(b)+1), SizeText(MaxRequestSize))
	}
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return "", fmt.Errorf("%w at %s: %v (is `ovsxdp daemon` running?)", ErrDaemonDown, path, unwrapOp(err))
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	var resp Response
	if _, werr := c.Write(append(b, '\n')); werr != nil {
		// The daemon may have answered before it stopped reading (an
		// oversized request, a busy daemon): its answer says more than
		// the broken pipe.
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if err := json.NewDecoder(c).Decode(&resp); err != nil || (resp.Error == "" && resp.Output == "") {
			return "", fmt.Errorf("sending to the daemon at %s: %v", path, unwrapOp(werr))
		}
	} else if err := json.NewDecoder(c).Decode(&resp); err != nil {
		if errors.Is(err, io.EOF) {
			return "", fmt.Errorf("the daemon at %s closed the connection without answering", path)
		}
		return "", fmt.Errorf("reading the daemon's answer: %v", unwrapOp(err))
	}
	if resp.Error != "" {
		return "", errors.New(resp.Error)
	}
	return resp.Output, nil
}

// unwrapOp drops net.OpError's "dial unix /path:" prefix, which the caller
// already says.
func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		var sys *os.SyscallError
		if errors.As(op.Err, &sys) {
			return sys.Err
		}
		return op.Err
	}
	return err
}
