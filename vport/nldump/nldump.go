// Package nldump runs netlink dumps again when the kernel reports them
// interrupted.
//
// A dump (of links, addresses, routes, neighbours) spans several
// messages; when the table changes between two of them the kernel flags
// the reply NLM_F_DUMP_INTR, and the netlink library returns what it read
// together with netlink.ErrDumpInterrupted. That result may miss entries
// or hold stale ones, so it is read again.
package nldump

import (
	"errors"
	"time"

	"github.com/vishvananda/netlink"
)

// Tries bounds how many times Retry runs a dump that keeps being
// interrupted.
const Tries = 10

// Retry runs the dump f until it is not interrupted, at most Tries times,
// pausing a little longer before each try so that a burst of changes can
// end. It returns the last try's result and error, which is still
// netlink.ErrDumpInterrupted (with the partial result) if every try was
// interrupted.
func Retry[T any](f func() (T, error)) (T, error) {
	v, err := f()
	for i := 1; i < Tries && errors.Is(err, netlink.ErrDumpInterrupted); i++ {
		time.Sleep(time.Duration(i) * time.Millisecond)
		v, err = f()
	}
	return v, err
}
