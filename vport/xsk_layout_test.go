package vport

import (
	"reflect"
	"strings"
	"testing"

	"github.com/asavie/xdp"
)

// TestSocketLayout checks that the mirror of the library's socket matches
// the library this module builds with.
func TestSocketLayout(t *testing.T) {
	if err := checkSocketLayout(); err != nil {
		t.Fatal(err)
	}
}

// TestSameLayout checks that the comparison catches the differences that
// would make the mirror read the wrong memory.
func TestSameLayout(t *testing.T) {
	type ring struct {
		Producer *uint32
		Consumer *uint32
		Descs    []uint64
	}
	type base struct {
		fd   int
		ring ring
		opts xdp.SocketOptions
	}
	for _, tc := range []struct {
		name    string
		inType  any
		wantErr string // "" for a match
	}{
		{name: "same", inType: struct {
			fd   int
			ring ring
			opts xdp.SocketOptions
		}{}},
		{name: "renamed field", inType: struct {
			fdx  int
			ring ring
			opts xdp.SocketOptions
		}{}, wantErr: "field 0 is fd"},
		{name: "extra field", inType: struct {
			fd   int
			ring ring
			opts xdp.SocketOptions
			more int
		}{}, wantErr: "bytes"},
		{name: "narrower field", inType: struct {
			fd   int32
			ring ring
			opts xdp.SocketOptions
		}{}, wantErr: "base.fd"},
		{name: "ring descriptors of another type", inType: struct {
			fd   int
			ring struct {
				Producer *uint32
				Consumer *uint32
				Descs    []uint32
			}
			opts xdp.SocketOptions
		}{}, wantErr: "base.ring.Descs[]"},
		{name: "pointer to another width", inType: struct {
			fd   int
			ring struct {
				Producer *uint64
				Consumer *uint32
				Descs    []uint64
			}
			opts xdp.SocketOptions
		}{}, wantErr: "base.ring.Producer[]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := sameLayout(reflect.TypeOf(tc.inType), reflect.TypeFor[base](), "base")
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected difference: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("got %v, want an error mentioning %q", err, tc.wantErr)
			}
		})
	}
}

// TestParseSocketMapping checks the /proc/self/maps parser on the lines an
// AF_XDP socket's rings and other mappings produce.
func TestParseSocketMapping(t *testing.T) {
	for _, tc := range []struct {
		name   string
		inLine string
		want   socketMapping
		wantOK bool
	}{
		{
			name:   "fill ring",
			inLine: "7f0c2a000000-7f0c2a021000 rw-s 100000000 00:08 1234 socket:[1234]",
			want:   socketMapping{start: 0x7f0c2a000000, end: 0x7f0c2a021000, offset: 0x100000000, ino: 1234},
			wantOK: true,
		},
		{
			name:   "rx ring",
			inLine: "7f0c2b000000-7f0c2b001000 rw-s 00000000 00:08 99 socket:[99]",
			want:   socketMapping{start: 0x7f0c2b000000, end: 0x7f0c2b001000, offset: 0, ino: 99},
			wantOK: true,
		},
		{name: "anonymous", inLine: "7f0c2a000000-7f0c2a021000 rw-p 00000000 00:00 0"},
		{name: "file", inLine: "00400000-00452000 r-xp 00000000 08:02 173521 /usr/bin/dbus-daemon"},
		{name: "bad range", inLine: "zz-7f0c2a021000 rw-s 0 00:08 1 socket:[1]"},
		{name: "empty range", inLine: "1000-1000 rw-s 0 00:08 1 socket:[1]"},
		{name: "short", inLine: "1000-2000 rw-s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseSocketMapping([]byte(tc.inLine))
			if ok != tc.wantOK || got != tc.want {
				t.Errorf("parse(%q) = %+v, %v; want %+v, %v", tc.inLine, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

// TestParseXDPMode checks the mode names against OVS's options:xdp-mode.
func TestParseXDPMode(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    XDPMode
		wantErr bool
	}{
		{in: "best-effort", want: XDPBestEffort},
		{in: "native", want: XDPNative},
		{in: "generic", want: XDPGeneric},
		{in: "native-with-zerocopy", wantErr: true},
		{in: "", wantErr: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseXDPMode(tc.in)
			if (err != nil) != tc.wantErr || (err == nil && got != tc.want) {
				t.Fatalf("ParseXDPMode(%q) = %v, %v", tc.in, got, err)
			}
			if err == nil && got.String() != tc.in {
				t.Errorf("%v.String() = %q", got, got.String())
			}
		})
	}
}

// TestXSKConfigDefaults checks defaults and the validation of sizes.
func TestXSKConfigDefaults(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      XSKConfig
		want    XSKConfig
		wantErr string
	}{
		{name: "defaults", in: XSKConfig{Device: "d"},
			want: XSKConfig{Device: "d", Frames: 16384, FrameSize: 2048, RingSize: 8192, BatchSize: MaxBatch, BindTimeout: DefaultXSKBindTimeout}},
		{name: "no device", in: XSKConfig{}, wantErr: "empty device"},
		{name: "frames not a power of two", in: XSKConfig{Device: "d", Frames: 1000}, wantErr: "1000 frames"},
		{name: "frame size", in: XSKConfig{Device: "d", FrameSize: 3000}, wantErr: "frame size 3000"},
		{name: "ring too large", in: XSKConfig{Device: "d", Frames: 256, RingSize: 256}, wantErr: "ring size 256"},
		{name: "batch", in: XSKConfig{Device: "d", BatchSize: MaxBatch + 1}, wantErr: "batch size"},
		{name: "mode", in: XSKConfig{Device: "d", Mode: 7}, wantErr: "xdp-mode(7)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.in.withDefaults()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}
