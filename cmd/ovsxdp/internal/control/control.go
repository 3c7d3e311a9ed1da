// Package control is the protocol between the ovsxdp command-line tool and
// its daemon: one JSON request per line over a unix socket, answered by one
// JSON response per line.
//
// A request names a verb (the command, such as "add-flow"), its positional
// arguments, its flags, and for commands that read a file on the client
// side (add-flows) the file's lines. A response carries the command's
// output text or an error message.
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

// Limits of the server.
const (
	// maxConns bounds the connections served at once; more wait in the
	// listen backlog.
	maxConns = 32
	// readTimeout bounds the wait for (the rest of) a request.
	readTimeout = 2 * time.Minute
	// writeTimeout bounds the sending of a response.
	writeTimeout = time.Minute
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
// gets an error response, and the server goes on.
type Server struct {
	handler Handler
	log     *slog.Logger
	ctx     context.Context
	cancel  context.CancelFunc
	slots   chan struct{} // one per connection being served
	limit   int           // the largest request line, MaxRequestSize

	mu     sync.Mutex // protects the fields below
	ln     net.Listener
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// NewServer returns a server for h that logs to log.
func NewServer(h Handler, log *slog.Logger) *Server {
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{handler: h, log: log, ctx: ctx, cancel: cancel, slots: make(chan struct{}, maxConns), limit: MaxRequestSize, conns: make(map[net.Conn]struct{})}
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
		select {
		case s.slots <- struct{}{}:
		case <-s.ctx.Done():
			return nil
		}
		c, err := ln.Accept()
		if err != nil {
			<-s.slots
			if s.ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("control socket: accept: %w", err)
		}
		if !s.track(c) {
			<-s.slots
			c.Close()
			return nil
		}
		go func() {
			defer s.wg.Done()
			defer func() { <-s.slots }()
			defer s.untrack(c)
			s.serveConn(c)
		}()
	}
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(c net.Conn) {
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

// serveConn answers the requests on c, one per line, until c closes or a
// request is too large (after which the stream cannot be resynchronised).
func (s *Server) serveConn(c net.Conn) {
	r := bufio.NewReaderSize(c, 64<<10)
	w := bufio.NewWriter(c)
	for {
		c.SetReadDeadline(time.Now().Add(readTimeout))
		line, err := readLine(r, s.limit)
		if errors.Is(err, io.EOF) && len(line) == 0 {
			return
		}
		var resp Response
		switch {
		case errors.Is(err, ErrTooLarge):
			resp.Error = fmt.Sprintf("%v (the limit is %d bytes)", ErrTooLarge, s.limit)
		case err != nil && !errors.Is(err, io.EOF):
			s.log.Debug("control: read", "err", err)
			return
		default:
			resp = s.handle(line)
		}
		c.SetWriteDeadline(time.Now().Add(writeTimeout))
		if werr := writeJSONLine(w, &resp); werr != nil {
			s.log.Debug("control: write", "err", werr)
			return
		}
		if err != nil { // too large, or the last line had no newline
			return
		}
	}
}

// handle decodes and runs one request. Whatever happens, it returns a
// response.
func (s *Server) handle(line []byte) (resp Response) {
	var req Request
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return Response{Error: "malformed request: " + err.Error()}
	}
	if dec.More() {
		return Response{Error: "malformed request: more than one JSON value on the line"}
	}
	if req.Verb == "" {
		return Response{Error: "malformed request: no verb"}
	}
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("control: handler panicked", "verb", req.Verb, "panic", r, "stack", string(debug.Stack()))
			resp = Response{Error: fmt.Sprintf("internal error in %s: %v", req.Verb, r)}
		}
	}()
	start := time.Now()
	out, err := s.handler(s.ctx, &req)
	s.log.Debug("control: request", "verb", req.Verb, "args", req.Args, "took", time.Since(start), "err", err)
	if err != nil {
		return Response{Error: err.Error()}
	}
	return Response{Output: out}
}

// readLine reads one line without its newline. A line longer than max bytes
// is ErrTooLarge, after reading max+1 bytes of it. At the end of the stream
// it returns what it read and io.EOF.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > max+1 { // +1: the newline
			return nil, ErrTooLarge
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			return bytes.TrimRight(line, "\r\n"), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return line, err
		}
	}
}

func writeJSONLine(w *bufio.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if _, err := w.Write(b); err != nil {
		return err
	}
	return w.Flush()
}

// Listen creates the control socket at path: it creates the socket's
// directory (mode 0700) if it is missing, replaces a stale socket that no
// daemon answers on, refuses to start next to a live daemon, and makes the
// socket mode 0600.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
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
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("control socket %s: removing a stale socket: %w", path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return ln, nil
}

// Call sends req to the daemon listening at path and returns its output, or
// the daemon's error. It gives up after timeout.
func Call(path string, req *Request, timeout time.Duration) (string, error) {
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return "", fmt.Errorf("%w at %s: %v (is `ovsxdp daemon` running?)", ErrDaemonDown, path, unwrapOp(err))
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	b, err := json.Marshal(req)
	if err != nil {
		return "", err
	}
	if _, err := c.Write(append(b, '\n')); err != nil {
		return "", fmt.Errorf("sending to the daemon at %s: %v", path, unwrapOp(err))
	}
	var resp Response
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
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
