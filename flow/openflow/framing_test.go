package openflow

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
)

func TestReaderSplitsStream(t *testing.T) {
	var stream []byte
	var want [][]byte
	for i, m := range []Message{&Hello{}, &EchoRequest{Data: []byte("abc")}, &BarrierRequest{}} {
		b, err := Encode(Version13, uint32(i), m)
		if err != nil {
			t.Fatal(err)
		}
		stream = append(stream, b...)
		want = append(want, b)
	}
	r := NewReader(bytes.NewReader(stream), 0)
	for i, w := range want {
		got, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !bytes.Equal(got, w) {
			t.Fatalf("message %d: got %x, want %x", i, got, w)
		}
	}
	if _, err := r.ReadMessage(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last message: %v, want io.EOF", err)
	}
}

func TestReaderBadInput(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		max     int
		wantErr error
		wantOF  bool // an *Error with OFPBRC_BAD_LEN
	}{
		{name: "length-below-header", in: []byte{4, 0, 0, 4, 0, 0, 0, 1}, wantErr: ErrBadLength, wantOF: true},
		{name: "length-zero", in: []byte{4, 0, 0, 0, 0, 0, 0, 1}, wantErr: ErrBadLength, wantOF: true},
		{name: "over-bound", in: []byte{4, 0, 0x10, 0, 0, 0, 0, 1}, max: 1024, wantErr: ErrTooLong, wantOF: true},
		{name: "truncated-body", in: []byte{4, 2, 0, 12, 0, 0, 0, 1, 'a'}, wantErr: io.ErrUnexpectedEOF},
		{name: "truncated-header", in: []byte{4, 2, 0}, wantErr: io.ErrUnexpectedEOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewReader(bytes.NewReader(tc.in), tc.max).ReadMessage()
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			}
			var oe *Error
			if tc.wantOF && (!errors.As(err, &oe) || oe.Type != ErrTypeBadRequest || oe.Code != CodeBadRequestLen) {
				t.Fatalf("got %v, want an OFPBRC_BAD_LEN *Error", err)
			}
		})
	}
}

func TestNegotiate(t *testing.T) {
	ours := []uint8{Version10, Version13, Version14, Version15}
	bitmap := func(vs ...uint8) *Hello { h, _ := NewHello(vs...); return h }
	tests := []struct {
		name     string
		inOurs   []uint8
		inPeerV  uint8
		inPeer   *Hello
		want     uint8
		wantFail bool
	}{
		{name: "bitmap-highest-common", inOurs: ours, inPeerV: 6, inPeer: bitmap(1, 4, 6), want: 6},
		{name: "bitmap-only-13", inOurs: ours, inPeerV: 4, inPeer: bitmap(4), want: 4},
		{name: "bitmap-gap", inOurs: []uint8{1, 4}, inPeerV: 6, inPeer: bitmap(1, 5, 6), want: 1},
		{name: "bitmap-none-common", inOurs: ours, inPeerV: 3, inPeer: bitmap(2, 3), wantFail: true},
		{name: "no-bitmap-10", inOurs: ours, inPeerV: 1, inPeer: &Hello{}, want: 1},
		{name: "no-bitmap-newer-peer", inOurs: ours, inPeerV: 7, inPeer: &Hello{}, want: 6},
		{name: "no-bitmap-unsupported", inOurs: ours, inPeerV: 2, inPeer: &Hello{}, wantFail: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Negotiate(tc.inOurs, tc.inPeerV, tc.inPeer)
			if tc.wantFail {
				var oe *Error
				if !errors.Is(err, ErrIncompatible) || !errors.As(err, &oe) || oe.Type != ErrTypeHelloFailed {
					t.Fatalf("got %d, %v; want an OFPET_HELLO_FAILED error", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

// TestDecodeBadInput: malformed or unknown content decodes to a value or an
// error carrying the OpenFlow error a switch replies with, never a panic.
func TestDecodeBadInput(t *testing.T) {
	fm13 := func(actions ...byte) []byte {
		// OF1.3 flow mod with an empty match and one apply_actions
		// instruction holding the given action bytes.
		b, _ := Encode(Version13, 1, &FlowMod{BufferID: NoBuffer, OutPort: PortAny, OutGroup: GroupAny})
		inst := append([]byte{0, 4, 0, byte(8 + len(actions)), 0, 0, 0, 0}, actions...)
		b = append(b, inst...)
		b[2], b[3] = byte(len(b)>>8), byte(len(b))
		return b
	}
	tests := []struct {
		name         string
		in           []byte
		wantType     uint16
		wantCode     uint16
		wantSentinel error
		wantMsg      any
	}{
		{name: "unknown-type", in: []byte{4, 99, 0, 8, 0, 0, 0, 1}, wantMsg: &Unknown{}},
		{name: "unknown-experimenter", in: []byte{4, 4, 0, 16, 0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 1}, wantMsg: &Experimenter{}},
		{name: "unknown-nicira-subtype", in: []byte{1, 4, 0, 16, 0, 0, 0, 1, 0, 0, 0x23, 0x20, 0, 0, 0x7f, 0}, wantMsg: &Experimenter{}},
		{name: "unknown-multipart", in: []byte{4, 18, 0, 16, 0, 0, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0}, wantMsg: &MultipartRaw{}},
		{name: "bad-version", in: []byte{3, 2, 0, 8, 0, 0, 0, 1}, wantType: ErrTypeBadRequest, wantCode: CodeBadRequestVersion, wantSentinel: ErrBadVersion},
		{name: "length-mismatch", in: []byte{4, 2, 0, 9, 0, 0, 0, 1}, wantType: ErrTypeBadRequest, wantCode: CodeBadRequestLen, wantSentinel: ErrBadLength},
		{name: "short-features-reply", in: []byte{4, 6, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0}, wantType: ErrTypeBadRequest, wantCode: CodeBadRequestLen, wantSentinel: ErrBadLength},
		{name: "unknown-action", in: fm13(0, 200, 0, 8, 0, 0, 0, 0), wantType: ErrTypeBadAction, wantCode: CodeBadActionType, wantSentinel: ErrBadAction},
		{name: "bad-action-len", in: fm13(0, 0, 0, 24, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0), wantType: ErrTypeBadAction, wantCode: CodeBadActionLen, wantSentinel: ErrBadAction},
		{name: "unknown-action-experimenter", in: fm13(0xff, 0xff, 0, 16, 0, 0, 0, 9, 0, 1, 0, 0, 0, 0, 0, 0), wantType: ErrTypeBadAction, wantCode: CodeBadActionExperimenter, wantSentinel: ErrBadAction},
		{name: "unknown-nicira-action", in: fm13(0xff, 0xff, 0, 16, 0, 0, 0x23, 0x20, 0, 0xf0, 0, 0, 0, 0, 0, 0), wantType: ErrTypeBadAction, wantCode: CodeBadActionExpType, wantSentinel: ErrBadAction},
		{name: "truncated-nicira-resubmit", in: fm13(0xff, 0xff, 0, 8, 0, 0, 0x23, 0x20), wantType: ErrTypeBadAction, wantCode: CodeBadActionLen, wantSentinel: ErrBadAction},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, m, err := Decode(tc.in)
			if tc.wantMsg != nil {
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				if got, want := fmt.Sprintf("%T", m), fmt.Sprintf("%T", tc.wantMsg); got != want {
					t.Fatalf("decoded %s, want %s", got, want)
				}
				return
			}
			var oe *Error
			if !errors.Is(err, tc.wantSentinel) || !errors.As(err, &oe) || oe.Type != tc.wantType || oe.Code != tc.wantCode {
				t.Fatalf("got %v (%+v), want type %d code %d wrapping %v", err, oe, tc.wantType, tc.wantCode, tc.wantSentinel)
			}
		})
	}
}

// loopReader serves the same bytes forever.
type loopReader struct {
	b   []byte
	off int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := copy(p, l.b[l.off:])
	l.off = (l.off + n) % len(l.b)
	return n, nil
}

// TestReaderNoAllocation: the reader's one buffer is reused, so a peer
// cannot make it allocate per message.
func TestReaderNoAllocation(t *testing.T) {
	b, err := Encode(Version13, 1, &EchoRequest{Data: make([]byte, 1000)})
	if err != nil {
		t.Fatal(err)
	}
	r := NewReader(&loopReader{b: b}, 0)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := r.ReadMessage(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("ReadMessage allocates %.1f times per message", allocs)
	}
}
