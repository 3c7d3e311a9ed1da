package testenv

import (
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// FileWatch follows, with inotify, the files that appear in a directory and
// the changes of their attributes.
type FileWatch struct{ fd int }

// WatchDir starts watching dir for files created or renamed into it and
// for attribute changes; the watch ends with the test.
func WatchDir(t testing.TB, dir string) *FileWatch {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatalf("inotify: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_ATTRIB); err != nil {
		t.Fatalf("inotify: %v", err)
	}
	return &FileWatch{fd: fd}
}

// CheckAppearedFinal fails the test unless the file name appeared in the
// directory (created or renamed there) and its attributes did not change
// afterwards: it was never reachable with other attributes than its final
// ones.
func (w *FileWatch) CheckAppearedFinal(t testing.TB, name string) {
	t.Helper()
	buf := make([]byte, 64<<10)
	n, err := unix.Read(w.fd, buf)
	if err != nil {
		t.Fatalf("inotify read: %v", err)
	}
	appeared := false
	for off := 0; off+unix.SizeofInotifyEvent <= n; {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
		evName := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)]), "\x00")
		off += unix.SizeofInotifyEvent + int(ev.Len)
		if evName != name {
			continue
		}
		switch {
		case ev.Mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0:
			appeared = true
		case ev.Mask&unix.IN_ATTRIB != 0 && appeared:
			t.Errorf("the mode of %s changed after it appeared: it was reachable with another mode first", name)
		}
	}
	if !appeared {
		t.Errorf("inotify saw no creation of %s", name)
	}
}
