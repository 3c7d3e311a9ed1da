package vport

import (
	"errors"
	"strings"
	"testing"
)

func TestUMEMBudget(t *testing.T) {
	b := NewUMEMBudget(1 << 30)
	steps := []struct {
		name      string
		inReserve int64 // > 0: reserve, < 0: release
		wantErr   string
		wantPin   int64
	}{
		{"first port", 512 << 20, "", 512 << 20},
		{"fills the budget", 512 << 20, "", 1 << 30},
		{"one byte over", 1, "1 bytes of UMEM asked, 1 GiB pinned already by other AF_XDP sockets, over the limit of 1 GiB", 1 << 30},
		{"release the first", -(512 << 20), "", 512 << 20},
		{"too big alone", 2 << 30, "2 GiB of UMEM asked, 512 MiB pinned already", 512 << 20},
		{"fits again", 256 << 20, "", 768 << 20},
		{"release all", -(768 << 20), "", 0},
	}
	for _, s := range steps {
		var err error
		if s.inReserve > 0 {
			err = b.reserve(s.inReserve)
		} else {
			b.release(-s.inReserve)
		}
		switch {
		case s.wantErr == "" && err != nil:
			t.Errorf("%s: %v", s.name, err)
		case s.wantErr != "" && (!errors.Is(err, ErrUMEMLimit) || !strings.Contains(err.Error(), s.wantErr)):
			t.Errorf("%s: error %v, want ErrUMEMLimit containing %q", s.name, err, s.wantErr)
		}
		if got := b.Pinned(); got != s.wantPin {
			t.Errorf("%s: pinned %d, want %d", s.name, got, s.wantPin)
		}
	}
}

func TestXSKConfigFramesBound(t *testing.T) {
	tests := []struct {
		name     string
		inFrames int
		wantErr  bool
	}{
		{"default", 0, false},
		{"the most", MaxXSKFrames, false},
		{"over the most", MaxXSKFrames * 2, true},
		{"2 GiB", 1 << 20, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := XSKConfig{Device: "x", Frames: tt.inFrames}.withDefaults()
			if (err != nil) != tt.wantErr {
				t.Errorf("Frames %d: error %v, want error %v", tt.inFrames, err, tt.wantErr)
			}
		})
	}
}
