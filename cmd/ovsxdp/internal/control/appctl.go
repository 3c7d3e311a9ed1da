package control

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// MaxAppctlRequestSize bounds one ovs-appctl request: a command and its
// arguments (ofproto/trace's packet is the longest).
const MaxAppctlRequestSize = 1 << 20

// NewAppctlServer returns a server for h that speaks Open vSwitch's
// unixctl protocol, ovs-appctl's: JSON-RPC 1.0 requests, one JSON object
// after another on the stream with nothing between them, each a method
// (the command) with string parameters (its arguments), answered by a
// result or an error, a text each. h gets each as a Request with Appctl
// set. A message that is not such a request is logged and closes its
// connection, as Open vSwitch's server does; the limits of NewServer hold.
func NewAppctlServer(h Handler, log *slog.Logger) *Server {
	return newServer(h, appctl{}, MaxAppctlRequestSize, log.With("server", "ovs-appctl"))
}

type appctl struct{}

// failure closes the connection without an answer: ovs-appctl matches an
// answer to its request by id, and a request that could not be read has
// none.
func (appctl) failure(string) []byte { return nil }

// read reads one JSON object: from its opening brace to the brace that
// closes it, strings and their escapes skipped. What is not an object is
// refused at its first byte.
func (appctl) read(r *bufio.Reader, max int) ([]byte, error) {
	var msg []byte
	depth := 0
	inString, escaped := false, false
	for {
		c, err := r.ReadByte()
		if err != nil {
			if len(msg) > 0 && errors.Is(err, io.EOF) {
				return nil, &badRequestError{Reason: "received bad JSON-RPC message: the stream ended inside a message"}
			}
			return nil, err
		}
		if len(msg) == 0 {
			switch c {
			case ' ', '\t', '\n', '\r':
				continue
			case '{':
			default:
				return nil, &badRequestError{Reason: fmt.Sprintf("received bad JSON-RPC message: message is not a JSON object (it starts with %q)", c)}
			}
		}
		if len(msg) >= max {
			return nil, ErrTooLarge
		}
		msg = append(msg, c)
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			if depth--; depth == 0 {
				return msg, nil
			}
		}
	}
}

// appctlMembers are the members a JSON-RPC message may have.
var appctlMembers = []string{"method", "params", "result", "error", "id"}

// answer checks msg as Open vSwitch's unixctl server does (the reasons
// are its log's), runs it and encodes the reply: {"id":ID,"result":TEXT,
// "error":null} or {"id":ID,"error":TEXT}, TEXT ending in a newline
// unless empty.
func (appctl) answer(s *Server, msg []byte) ([]byte, func(), bool) {
	bad := func(reason string) ([]byte, func(), bool) {
		s.log.Warn("control: bad request; connection closed", "reason", "received bad JSON-RPC message: "+reason)
		return nil, nil, false
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(msg, &m); err != nil {
		return bad(err.Error())
	}
	for k := range m {
		if !slices.Contains(appctlMembers, k) {
			return bad(fmt.Sprintf("message has unexpected member %q", k))
		}
	}
	id, hasID := m["id"]
	_, hasResult := m["result"]
	_, hasError := m["error"]
	var method string
	switch {
	case hasResult || hasError:
		return bad("received unexpected reply message")
	case m["method"] == nil:
		return bad(`message has no "method"`)
	case json.Unmarshal(m["method"], &method) != nil:
		return bad(`"method" is not a JSON string`)
	case m["params"] == nil:
		return bad(`request must have "params"`)
	case !hasID || bytes.Equal(bytes.TrimSpace(id), []byte("null")):
		return bad("received unexpected notification message")
	}
	var params []json.RawMessage
	if err := json.Unmarshal(m["params"], &params); err != nil {
		return bad(`"params" must be JSON array`)
	}
	var out string
	var after func()
	var err error
	args := make([]string, len(params))
	for i, p := range params {
		if json.Unmarshal(p, &args[i]) != nil || !bytes.HasPrefix(bytes.TrimSpace(p), []byte(`"`)) {
			err = fmt.Errorf("%q command has non-string argument", method)
			break
		}
	}
	if err == nil {
		out, after, err = s.run(&Request{Verb: method, Args: args, Appctl: true})
	}
	reply := struct {
		ID     json.RawMessage `json:"id"`
		Result *string         `json:"result,omitempty"`
		Error  any             `json:"error"`
	}{ID: id}
	if err != nil {
		reply.Error = withNewline(err.Error())
	} else {
		text := withNewline(out)
		reply.Result = &text
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&reply); err != nil {
		return bad(err.Error()) // an id that is not valid JSON cannot get here
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), after, true
}

// withNewline ends a non-empty text in a newline, as Open vSwitch's
// replies are.
func withNewline(s string) string {
	if s != "" && !strings.HasSuffix(s, "\n") {
		return s + "\n"
	}
	return s
}

// AppctlListener is an ovs-appctl socket with its pidfile.
type AppctlListener struct {
	net.Listener
	pidfile *os.File
	pidPath string
	once    sync.Once
}

// ListenAppctl creates what ovs-appctl -t NAME looks for in dir (its
// OVS_RUNDIR): the pidfile dir/NAME.pid, holding the process's id under a
// write lock (fcntl), and the socket dir/NAME.PID.ctl (created as Listen
// creates sockets). A pidfile that another live process holds locked is
// an error that names it: two daemons cannot answer to one name. Close
// removes both.
func ListenAppctl(dir, name string) (*AppctlListener, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil { // as Listen makes it
		return nil, fmt.Errorf("appctl: %w", err)
	}
	pidPath := filepath.Join(dir, name+".pid")
	f, err := os.OpenFile(pidPath, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("appctl pidfile: %w", err)
	}
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: io.SeekStart}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) {
			held := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: io.SeekStart}
			if syscall.FcntlFlock(f.Fd(), syscall.F_GETLK, &held) == nil && held.Type != syscall.F_UNLCK {
				return nil, fmt.Errorf("appctl pidfile %s: locked by pid %d: another %s is running there (stop it, or give this daemon its own --rundir)", pidPath, held.Pid, name)
			}
		}
		return nil, fmt.Errorf("appctl pidfile %s: lock: %w", pidPath, err)
	}
	pid := os.Getpid()
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, fmt.Errorf("appctl pidfile %s: %w", pidPath, err)
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(pid)+"\n"), 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("appctl pidfile %s: %w", pidPath, err)
	}
	removeStaleAppctl(dir, name)
	ln, err := Listen(filepath.Join(dir, fmt.Sprintf("%s.%d.ctl", name, pid)))
	if err != nil {
		os.Remove(pidPath)
		f.Close()
		return nil, err
	}
	return &AppctlListener{Listener: ln, pidfile: f, pidPath: pidPath}, nil
}

// removeStaleAppctl removes the sockets dir/NAME.PID.ctl that a daemon
// killed before its Close left behind: with the pidfile locked, no other
// daemon of that name serves there, and a socket nothing answers on is
// removed (one that answers is left alone).
func removeStaleAppctl(dir, name string) {
	stale, _ := filepath.Glob(filepath.Join(dir, name+".*.ctl"))
	for _, path := range stale {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			continue
		}
		os.Remove(path)
	}
}

// Close removes the socket and the pidfile, and releases the pidfile's
// lock.
func (l *AppctlListener) Close() error {
	err := l.Listener.Close()
	l.once.Do(func() {
		os.Remove(l.pidPath) // while the lock is held: no other daemon's file
		l.pidfile.Close()
	})
	return err
}
