package nldump

import (
	"errors"
	"fmt"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestRetry(t *testing.T) {
	other := errors.New("permission denied")
	tests := []struct {
		name      string
		inErrs    []error // what the dump returns on each try; the last repeats
		wantTries int
		wantErr   error
	}{
		{"first try", []error{nil}, 1, nil},
		{"other error", []error{other}, 1, other},
		{"interrupted twice", []error{netlink.ErrDumpInterrupted, netlink.ErrDumpInterrupted, nil}, 3, nil},
		{"wrapped interruption", []error{fmt.Errorf("dump: %w", netlink.ErrDumpInterrupted), nil}, 2, nil},
		{"always interrupted", []error{netlink.ErrDumpInterrupted}, Tries, netlink.ErrDumpInterrupted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tries := 0
			got, err := Retry(func() (int, error) {
				err := tt.inErrs[min(tries, len(tt.inErrs)-1)]
				tries++
				return tries, err
			})
			if tries != tt.wantTries || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("%d tries, error %v; want %d, %v", tries, err, tt.wantTries, tt.wantErr)
			}
			if got != tries {
				t.Errorf("result of try %d; want the last try's, %d", got, tries)
			}
		})
	}
}
