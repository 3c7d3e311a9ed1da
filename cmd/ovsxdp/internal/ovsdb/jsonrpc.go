package ovsdb

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Errors that callers test with errors.Is.
var (
	// ErrProtocol: the peer sent something that is not a JSON-RPC 1.0
	// message of the expected shape; the connection is closed.
	ErrProtocol = errors.New("ovsdb protocol error")
	// ErrMessageTooLarge: one message exceeded Options.MaxMessageSize.
	ErrMessageTooLarge = errors.New("ovsdb message too large")
	// ErrInactivity: the peer stayed silent through an echo probe.
	ErrInactivity = errors.New("ovsdb peer inactive")
	// ErrClosed: the client or connection is closed.
	ErrClosed = errors.New("ovsdb connection closed")
	// ErrNotConnected: the client is between connections (reconnecting).
	ErrNotConnected = errors.New("ovsdb not connected")
	// ErrBadDatum: a value does not fit OVSDB's data model or the schema.
	ErrBadDatum = errors.New("bad ovsdb datum")
	// ErrBadSchema: a schema cannot be parsed.
	ErrBadSchema = errors.New("bad ovsdb schema")
	// ErrTransaction: a transact operation failed; see *TransactError.
	ErrTransaction = errors.New("ovsdb transaction failed")
)

// MessageKind tells a request, a notification and a response apart.
type MessageKind int

// The kinds of JSON-RPC 1.0 message.
const (
	KindRequest      MessageKind = iota + 1 // method, params, non-null id
	KindNotification                        // method, params, null id
	KindResponse                            // result, error, id
)

// Message is one JSON-RPC 1.0 message. Raw members are compact JSON.
type Message struct {
	Kind   MessageKind
	Method string          // request or notification
	Params json.RawMessage // request or notification: a JSON array
	Result json.RawMessage // response: null when Error is not
	Error  json.RawMessage // response: null on success
	ID     json.RawMessage // null for a notification
}

// IsError reports whether a response carries an error.
func (m *Message) IsError() bool { return m.Kind == KindResponse && !isNull(m.Error) }

func isNull(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }

// DecodeMessage decodes and checks one JSON-RPC 1.0 message.
func DecodeMessage(raw []byte) (*Message, error) {
	var w map[string]json.RawMessage
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, fmt.Errorf("%w: not a JSON object: %w", ErrProtocol, err)
	}
	if w == nil {
		return nil, fmt.Errorf("%w: message is null", ErrProtocol)
	}
	m := &Message{}
	var err error
	compact := func(name string) json.RawMessage {
		v, ok := w[name]
		if !ok || err != nil {
			return nil
		}
		var b bytes.Buffer
		if e := json.Compact(&b, v); e != nil {
			err = fmt.Errorf("%w: member %q: %w", ErrProtocol, name, e)
			return nil
		}
		return b.Bytes()
	}
	m.ID = compact("id")
	if rawMethod, ok := w["method"]; ok {
		if err := json.Unmarshal(rawMethod, &m.Method); err != nil {
			return nil, fmt.Errorf("%w: method is not a string", ErrProtocol)
		}
		if _, ok := w["result"]; ok {
			return nil, fmt.Errorf("%w: message has both method and result", ErrProtocol)
		}
		m.Params = compact("params")
		if err != nil {
			return nil, err
		}
		if len(m.Params) == 0 || m.Params[0] != '[' {
			return nil, fmt.Errorf("%w: %s params are not an array", ErrProtocol, m.Method)
		}
		m.Kind = KindRequest
		if isNull(m.ID) {
			m.Kind = KindNotification
			m.ID = json.RawMessage("null")
		}
		return m, err
	}
	_, hasResult := w["result"]
	_, hasError := w["error"]
	if !hasResult && !hasError {
		return nil, fmt.Errorf("%w: message has neither method nor result nor error", ErrProtocol)
	}
	if isNull(m.ID) {
		return nil, fmt.Errorf("%w: response without an id", ErrProtocol)
	}
	m.Kind = KindResponse
	m.Result = compact("result")
	m.Error = compact("error")
	if err != nil {
		return nil, err
	}
	if len(m.Result) == 0 {
		m.Result = json.RawMessage("null")
	}
	if len(m.Error) == 0 {
		m.Error = json.RawMessage("null")
	}
	return m, nil
}

// Encode returns the message's wire form.
func (m *Message) Encode() ([]byte, error) {
	var b bytes.Buffer
	raw := func(name string, v json.RawMessage) {
		appendString(&b, name)
		b.WriteByte(':')
		if len(v) == 0 {
			b.WriteString("null")
		} else {
			b.Write(v)
		}
	}
	b.WriteByte('{')
	switch m.Kind {
	case KindRequest, KindNotification:
		id := m.ID
		if m.Kind == KindNotification {
			id = nil
		} else if isNull(id) {
			return nil, fmt.Errorf("%w: request without an id", ErrProtocol)
		}
		raw("id", id)
		b.WriteString(`,"method":`)
		appendString(&b, m.Method)
		b.WriteByte(',')
		params := m.Params
		if len(params) == 0 {
			params = json.RawMessage("[]")
		}
		raw("params", params)
	case KindResponse:
		raw("error", m.Error)
		b.WriteByte(',')
		raw("id", m.ID)
		b.WriteByte(',')
		raw("result", m.Result)
	default:
		return nil, fmt.Errorf("%w: message kind %d", ErrProtocol, m.Kind)
	}
	b.WriteByte('}')
	if !json.Valid(b.Bytes()) {
		return nil, fmt.Errorf("%w: message members are not valid JSON", ErrProtocol)
	}
	return b.Bytes(), nil
}

// frameReader splits a byte stream into JSON objects, one per message,
// without decoding them: it tracks nesting depth and strings so that a
// message split across reads, or several in one read, come out whole. A
// message larger than max is an error as soon as that is known.
type frameReader struct {
	r   io.Reader
	max int
	buf []byte // buf[start:] is unconsumed input
	// Scan state of the message that starts at buf[start].
	start, pos int
	depth      int
	inString   bool
	escaped    bool
}

const readChunk = 64 << 10

func newFrameReader(r io.Reader, max int) *frameReader {
	return &frameReader{r: r, max: max}
}

// next returns the next whole message. The slice is valid until the next
// call.
func (f *frameReader) next() ([]byte, error) {
	for {
		for f.pos < len(f.buf) {
			c := f.buf[f.pos]
			if f.depth == 0 {
				// Between messages: skip white space; a message is an object.
				switch c {
				case ' ', '\t', '\r', '\n':
					f.pos++
					f.start = f.pos
					continue
				case '{':
				default:
					return nil, fmt.Errorf("%w: message starts with %q, not '{'", ErrProtocol, c)
				}
			}
			f.pos++
			if f.inString {
				switch {
				case f.escaped:
					f.escaped = false
				case c == '\\':
					f.escaped = true
				case c == '"':
					f.inString = false
				}
				continue
			}
			switch c {
			case '"':
				f.inString = true
			case '{', '[':
				f.depth++
			case '}', ']':
				f.depth--
				if f.depth == 0 {
					if f.pos-f.start > f.max {
						return nil, f.tooLarge()
					}
					msg := f.buf[f.start:f.pos]
					f.start = f.pos
					return msg, nil
				}
			}
		}
		if f.pos-f.start > f.max {
			return nil, f.tooLarge()
		}
		// Keep the unconsumed tail and read more.
		n := copy(f.buf, f.buf[f.start:])
		f.pos -= f.start
		f.start = 0
		f.buf = f.buf[:n]
		if cap(f.buf)-len(f.buf) < readChunk {
			nb := make([]byte, len(f.buf), 2*cap(f.buf)+readChunk)
			copy(nb, f.buf)
			f.buf = nb
		}
		m, err := f.r.Read(f.buf[len(f.buf):cap(f.buf)])
		f.buf = f.buf[:len(f.buf)+m]
		if m > 0 {
			continue
		}
		if err == io.EOF && f.pos > f.start {
			return nil, fmt.Errorf("%w: connection closed in the middle of a message", ErrProtocol)
		}
		if err != nil {
			return nil, err
		}
	}
}

func (f *frameReader) tooLarge() error {
	return fmt.Errorf("%w: a message exceeds %d bytes", ErrMessageTooLarge, f.max)
}
