package vport

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// The classic pcap file format, as tcpdump -w writes it: a 24-byte file
// header (magic number, version 2.4, time zone, accuracy, snapshot length,
// link type), then for each frame a 16-byte record header (seconds,
// microseconds or nanoseconds, captured length, length on the wire) and
// the captured bytes. Numbers are in the writer's byte order, which the
// magic number shows, as it shows the timestamps' resolution.
const (
	pcapMagicMicros  = 0xa1b2c3d4
	pcapMagicNanos   = 0xa1b23c4d
	pcapLinkEthernet = 1 // LINKTYPE_ETHERNET
	pcapFileHdrLen   = 24
	pcapRecordHdrLen = 16
	// pcapMaxCapture bounds one frame read, whatever snapshot length a
	// file claims: libpcap's own bound, so that a corrupt length is an
	// error rather than an allocation of up to 4 GiB.
	pcapMaxCapture = 262144
)

// errPcapFormat is wrapped by the errors of a stream that is not a pcap
// file or breaks its rules.
var errPcapFormat = errors.New("not a valid pcap file")

// pcapReader reads the frames of a pcap stream, gzip-compressed or not.
type pcapReader struct {
	r        io.Reader
	order    binary.ByteOrder
	snaplen  uint32
	linkType uint32
	hdr      [pcapRecordHdrLen]byte
	buf      []byte // the last frame read
}

// newPcapReader reads the file header from r. An empty stream is io.EOF.
func newPcapReader(r io.Reader) (*pcapReader, error) {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReader(r)
	}
	pr := &pcapReader{r: br}
	if m, err := br.Peek(2); err != nil {
		return nil, err
	} else if m[0] == 0x1f && m[1] == 0x8b { // gzip's magic
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, err
		}
		pr.r = zr
	}
	var h [pcapFileHdrLen]byte
	if _, err := io.ReadFull(pr.r, h[:]); err != nil {
		return nil, fmt.Errorf("pcap file header: %w", err)
	}
	switch binary.LittleEndian.Uint32(h[:4]) {
	case pcapMagicMicros, pcapMagicNanos:
		pr.order = binary.LittleEndian
	default:
		pr.order = binary.BigEndian
		if m := pr.order.Uint32(h[:4]); m != pcapMagicMicros && m != pcapMagicNanos {
			return nil, fmt.Errorf("%w: magic number %#08x", errPcapFormat, binary.LittleEndian.Uint32(h[:4]))
		}
	}
	if major := pr.order.Uint16(h[4:6]); major != 2 {
		return nil, fmt.Errorf("%w: version %d.%d, want 2.x", errPcapFormat, major, pr.order.Uint16(h[6:8]))
	}
	pr.snaplen = pr.order.Uint32(h[16:20])
	pr.linkType = pr.order.Uint32(h[20:24])
	return pr, nil
}

// checkEthernet refuses a file of another link type than Ethernet.
func (r *pcapReader) checkEthernet() error {
	if r.linkType != pcapLinkEthernet {
		return fmt.Errorf("link type %d, want Ethernet (%d)", r.linkType, pcapLinkEthernet)
	}
	return nil
}

// next returns the next frame, valid until the following call. At the
// end of the stream it returns io.EOF; a stream that ends inside a record
// is io.ErrUnexpectedEOF.
func (r *pcapReader) next() ([]byte, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		return nil, err
	}
	capLen, wireLen := r.order.Uint32(r.hdr[8:12]), r.order.Uint32(r.hdr[12:16])
	switch {
	case capLen > r.snaplen:
		return nil, fmt.Errorf("%w: a frame of %d bytes exceeds the snapshot length %d", errPcapFormat, capLen, r.snaplen)
	case capLen > pcapMaxCapture:
		return nil, fmt.Errorf("%w: a frame of %d bytes exceeds %d", errPcapFormat, capLen, pcapMaxCapture)
	case capLen > wireLen:
		return nil, fmt.Errorf("%w: %d bytes captured of a %d-byte frame", errPcapFormat, capLen, wireLen)
	}
	if cap(r.buf) < int(capLen) {
		r.buf = make([]byte, max(capLen, min(r.snaplen, pcapMaxCapture)))
	}
	r.buf = r.buf[:capLen]
	if _, err := io.ReadFull(r.r, r.buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return r.buf, nil
}

// pcapWriter writes a pcap stream of Ethernet frames, in little-endian
// order with microsecond timestamps, as tcpdump -w does on this machine.
type pcapWriter struct {
	w   io.Writer
	hdr [pcapRecordHdrLen]byte
}

// newPcapWriter writes the file header, with snapshot length snaplen.
func newPcapWriter(w io.Writer, snaplen uint32) (*pcapWriter, error) {
	var h [pcapFileHdrLen]byte
	le := binary.LittleEndian
	le.PutUint32(h[0:4], pcapMagicMicros)
	le.PutUint16(h[4:6], 2)
	le.PutUint16(h[6:8], 4)
	le.PutUint32(h[16:20], snaplen)
	le.PutUint32(h[20:24], pcapLinkEthernet)
	if _, err := w.Write(h[:]); err != nil {
		return nil, err
	}
	return &pcapWriter{w: w}, nil
}

// write writes one frame of wireLen bytes, of which data was captured.
func (w *pcapWriter) write(ts time.Time, data []byte, wireLen int) error {
	le := binary.LittleEndian
	le.PutUint32(w.hdr[0:4], uint32(ts.Unix()))
	le.PutUint32(w.hdr[4:8], uint32(ts.Nanosecond()/1000))
	le.PutUint32(w.hdr[8:12], uint32(len(data)))
	le.PutUint32(w.hdr[12:16], uint32(wireLen))
	if _, err := w.w.Write(w.hdr[:]); err != nil {
		return err
	}
	_, err := w.w.Write(data)
	return err
}
