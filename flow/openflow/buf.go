package openflow

import "encoding/binary"

// rd reads big-endian fields from a byte slice. A read past the end sets a
// sticky error and returns zeros, so decoders check rd.err once at the end
// instead of after every field, and can never index out of range.
type rd struct {
	b   []byte
	err error
}

func (r *rd) fail(what string) {
	if r.err == nil {
		r.err = badLen(what)
	}
}

func (r *rd) len() int { return len(r.b) }

func (r *rd) bytes(n int, what string) []byte {
	if r.err != nil || n < 0 || n > len(r.b) {
		r.fail(what)
		r.b = nil
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *rd) skip(n int, what string) { r.bytes(n, what) }

func (r *rd) u8(what string) uint8 {
	v := r.bytes(1, what)
	if v == nil {
		return 0
	}
	return v[0]
}

func (r *rd) u16(what string) uint16 {
	v := r.bytes(2, what)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint16(v)
}

func (r *rd) u32(what string) uint32 {
	v := r.bytes(4, what)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint32(v)
}

func (r *rd) u64(what string) uint64 {
	v := r.bytes(8, what)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// rest returns a copy of the remaining bytes (nil when none), so decoded
// messages never alias the caller's buffer.
func (r *rd) rest() []byte {
	if r.err != nil || len(r.b) == 0 {
		r.b = nil
		return nil
	}
	v := append([]byte(nil), r.b...)
	r.b = nil
	return v
}

// copyN returns a copy of the next n bytes.
func (r *rd) copyN(n int, what string) []byte {
	v := r.bytes(n, what)
	if v == nil || len(v) == 0 {
		return nil
	}
	return append([]byte(nil), v...)
}

// sub splits off the next n bytes as their own reader.
func (r *rd) sub(n int, what string) *rd {
	// Small enough to be inlined, so that a reader used only where it
	// is cut stays on the stack.
	v := r.bytes(n, what)
	return &rd{b: v, err: r.err}
}

// str reads a NUL-padded fixed-size string.
func (r *rd) str(n int, what string) string {
	v := r.bytes(n, what)
	for i, c := range v {
		if c == 0 {
			return string(v[:i])
		}
	}
	return string(v)
}

// wr appends big-endian fields to a byte slice.
type wr struct{ b []byte }

func (w *wr) u8(v uint8)             { w.b = append(w.b, v) }
func (w *wr) u16(v uint16)           { w.b = binary.BigEndian.AppendUint16(w.b, v) }
func (w *wr) u32(v uint32)           { w.b = binary.BigEndian.AppendUint32(w.b, v) }
func (w *wr) u64(v uint64)           { w.b = binary.BigEndian.AppendUint64(w.b, v) }
func (w *wr) bytes(v []byte)         { w.b = append(w.b, v...) }
func (w *wr) zeros(n int)            { w.b = append(w.b, make([]byte, n)...) }
func (w *wr) pos() int               { return len(w.b) }
func (w *wr) pad8(start int)         { w.zeros(pad8(len(w.b)-start) - (len(w.b) - start)) }
func (w *wr) put16(at int, v uint16) { binary.BigEndian.PutUint16(w.b[at:], v) }

// str writes s NUL-padded (and truncated) to n bytes.
func (w *wr) str(s string, n int) {
	if len(s) > n {
		s = s[:n]
	}
	w.b = append(w.b, s...)
	w.zeros(n - len(s))
}

func pad8(n int) int { return (n + 7) &^ 7 }
