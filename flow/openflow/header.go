package openflow

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// OpenFlow wire versions this package speaks.
const (
	Version10 uint8 = 0x01
	Version13 uint8 = 0x04
	Version14 uint8 = 0x05
	Version15 uint8 = 0x06
)

// HeaderLen is the size of struct ofp_header.
const HeaderLen = 8

// MaxMessageLen is the largest message the 16-bit length field allows.
const MaxMessageLen = 0xffff

// Header is struct ofp_header.
type Header struct {
	Version uint8
	Type    uint8
	Length  uint16
	Xid     uint32
}

// SupportedVersion reports whether v is one of the versions above.
func SupportedVersion(v uint8) bool {
	switch v {
	case Version10, Version13, Version14, Version15:
		return true
	}
	return false
}

// ParseHeader decodes the first HeaderLen bytes of b.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, badLen("header")
	}
	h := Header{
		Version: b[0],
		Type:    b[1],
		Length:  binary.BigEndian.Uint16(b[2:]),
		Xid:     binary.BigEndian.Uint32(b[4:]),
	}
	if h.Length < HeaderLen {
		return h, newErr(ErrBadLength, ErrTypeBadRequest, CodeBadRequestLen, "header length %d is shorter than the header", h.Length)
	}
	return h, nil
}

// Reader splits a byte stream into OpenFlow messages.
type Reader struct {
	r   io.Reader
	max int
	buf []byte
}

// NewReader returns a Reader that rejects messages longer than max bytes
// (max <= 0 or above MaxMessageLen means MaxMessageLen). Its buffer is
// allocated once, so a peer cannot make it allocate more than max bytes.
func NewReader(r io.Reader, max int) *Reader {
	if max <= 0 || max > MaxMessageLen {
		max = MaxMessageLen
	}
	if max < HeaderLen {
		max = HeaderLen
	}
	return &Reader{r: r, max: max, buf: make([]byte, max)}
}

// ReadMessage returns the next whole message, header included. The slice is
// valid until the next call. A length field below the header size or above
// the bound is an error wrapping ErrBadLength or ErrTooLong; the stream is
// then out of step and the connection should be closed after the error
// reply. A clean end of stream between messages is io.EOF; inside a message,
// io.ErrUnexpectedEOF.
func (r *Reader) ReadMessage() ([]byte, error) {
	if _, err := io.ReadFull(r.r, r.buf[:HeaderLen]); err != nil {
		return nil, err
	}
	h, err := ParseHeader(r.buf[:HeaderLen])
	if err != nil {
		return r.buf[:HeaderLen], err
	}
	if int(h.Length) > r.max {
		return r.buf[:HeaderLen], &Error{Type: ErrTypeBadRequest, Code: CodeBadRequestLen, Sentinel: ErrTooLong,
			Detail: fmt.Sprintf("message length %d exceeds the limit %d", h.Length, r.max)}
	}
	if _, err := io.ReadFull(r.r, r.buf[HeaderLen:h.Length]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("openflow: read message body: %w", err)
	}
	return r.buf[:h.Length], nil
}
