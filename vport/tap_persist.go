package vport

import (
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strconv"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ovsxdp/ovsxdp/vport/internal/nsthread"
)

// Persistent TAP devices. A persistent port's device (TapConfig.Persist)
// is made persistent (TUNSETPERSIST), owned by the process's effective
// uid (TUNSETOWNER: nobody else may attach to it while no port holds it)
// and marked with the alias TapAlias. When the port's descriptor closes
// without the port deleting it (a crash, or Close after Keep), the device
// stays, in whichever network namespace it was moved into, with its
// addresses, MTU and link state (its carrier goes off until a descriptor
// is attached again). A port with TapConfig.Reattach looks for it: in the
// process's own namespace, then in the namespaces that ip netns names
// (/run/netns) and those of the running processes (/proc/PID/ns/net), and
// attaches to a marked persistent TAP device of its name (TUNSETIFF on an
// existing device attaches to it). The name is looked up in the namespace
// /dev/net/tun was opened in, so the descriptor is opened from a thread
// that has entered that namespace (nsthread).

// TapAlias begins the alias (ip link set DEV alias) of the devices of
// persistent TAP ports; a port takes up only a device that carries it.
const TapAlias = "ovsxdp internal port"

// tapAlias is the alias of the devices that ports of owner make: TapAlias
// and a short hash of owner, so that a daemon takes up only the devices
// that it (the same configuration) left, never another daemon's.
func tapAlias(owner string) string {
	if owner == "" {
		return TapAlias
	}
	h := fnv.New32a()
	h.Write([]byte(owner))
	return fmt.Sprintf("%s %08x", TapAlias, h.Sum32())
}

// netnsRunDirs hold the namespaces that ip netns names (one is usually a
// link to the other); procDir the running processes.
var netnsRunDirs = []string{"/run/netns", "/var/run/netns"}

const procDir = "/proc"

// openTun opens /dev/net/tun, mapping a missing module or privilege to
// ErrNotSupported.
func openTun(name string) (int, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV):
		return -1, fmt.Errorf("tap %s: open /dev/net/tun: %w (load the tun module: modprobe tun)", name, ErrNotSupported)
	case errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES):
		return -1, fmt.Errorf("tap %s: open /dev/net/tun: %w (needs CAP_NET_ADMIN)", name, ErrNotSupported)
	case err != nil:
		return -1, fmt.Errorf("tap %s: open /dev/net/tun: %w", name, err)
	}
	return fd, nil
}

// createTap creates the TAP device name in the process's namespace and
// returns its descriptor; persist makes it persistent, owned and marked.
func createTap(name, owner string, persist bool) (int, error) {
	fd, err := openTun(name)
	if err != nil {
		return -1, err
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("tap %s: %w", name, err)
	}
	// IFF_TUN_EXCL: a device of that name that exists already is an
	// error, not a device to share.
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_TUN_EXCL)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EPERM) {
			return -1, fmt.Errorf("tap %s: create: %w (needs CAP_NET_ADMIN)", name, ErrNotSupported)
		}
		if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EEXIST) {
			return -1, fmt.Errorf("tap %s: create: a device of that name exists: %w", name, os.ErrExist)
		}
		return -1, fmt.Errorf("tap %s: create: %w", name, err)
	}
	if !persist {
		return fd, nil
	}
	// Persistent last: until then, closing the descriptor deletes it.
	if err := markTap(fd, name, owner); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// markTap makes the device of fd, just created in the process's
// namespace, persistent, owned by the process's effective uid and
// marked.
func markTap(fd int, name, owner string) error {
	if err := unix.IoctlSetInt(fd, unix.TUNSETOWNER, os.Geteuid()); err != nil {
		return fmt.Errorf("tap %s: set owner: %w", name, err)
	}
	lk, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("tap %s: %w", name, err)
	}
	if err := netlink.LinkSetAlias(lk, tapAlias(owner)); err != nil {
		return fmt.Errorf("tap %s: set alias: %w", name, err)
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETPERSIST, 1); err != nil {
		return fmt.Errorf("tap %s: make persistent: %w", name, err)
	}
	return nil
}

// isLeftTap reports whether lk is a device a persistent TAP port of
// owner made.
func isLeftTap(lk netlink.Link, owner string) bool {
	tt, ok := lk.(*netlink.Tuntap)
	return ok && tt.Mode == netlink.TUNTAP_MODE_TAP && !tt.NonPersist && lk.Attrs().Alias == tapAlias(owner)
}

// reattachTap attaches to the persistent TAP device name that a port
// left, wherever it is, and returns its descriptor and the namespace it
// is in; -1 when there is none. A device of that name in the process's
// namespace that is not such a device is an os.ErrExist, as creating it
// would be.
func reattachTap(name, owner string) (int, string, error) {
	path, where, err := findLeftTap(name, owner)
	if err != nil || where == "" {
		return -1, "", err
	}
	// The descriptor is opened from inside the namespace (path "": the
	// process's own).
	fd := -1
	err = nsthread.Do(path, func() error {
		var err error
		fd, err = openTun(name)
		return err
	})
	if err != nil {
		return -1, "", fmt.Errorf("tap %s: in netns %s: %w", name, where, err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return -1, "", fmt.Errorf("tap %s: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EBUSY) {
			return -1, "", fmt.Errorf("tap %s: attach in netns %s: another process holds the device: %w", name, where, os.ErrExist)
		}
		return -1, "", fmt.Errorf("tap %s: attach in netns %s: %w", name, where, err)
	}
	// The device may have gone between the look-up and the attach, and
	// the attach then created a new one there (not persistent): closing
	// the descriptor deletes it, and the port creates its own.
	got, err := unix.NewIfreq("")
	if err == nil {
		err = unix.IoctlIfreq(fd, unix.TUNGETIFF, got)
	}
	if err != nil || got.Uint16()&unix.IFF_PERSIST == 0 {
		unix.Close(fd)
		return -1, "", nil
	}
	return fd, where, nil
}

// findLeftTap looks for the persistent TAP device name that a port left:
// in the process's namespace first, then in the others it can name. It
// returns the path of the namespace it is in ("" for the process's own)
// and a name for that namespace, or "" when there is none.
func findLeftTap(name, owner string) (string, string, error) {
	switch lk, err := netlink.LinkByName(name); {
	case err == nil && isLeftTap(lk, owner):
		return "", "(own)", nil
	case err == nil:
		return "", "", fmt.Errorf("tap %s: create: a device of that name exists: %w", name, os.ErrExist)
	}
	self, err := netns.Get()
	if err != nil {
		return "", "", fmt.Errorf("tap %s: own netns: %w", name, err)
	}
	seen := map[[2]uint64]bool{}
	if id, ok := nsID(int(self)); ok {
		seen[id] = true
	}
	self.Close()
	for _, path := range netnsPaths() {
		ns, err := netns.GetFromPath(path.path)
		if err != nil {
			continue // gone meanwhile, or not a namespace
		}
		id, ok := nsID(int(ns))
		found := ok && !seen[id] && hasLeftTap(ns, name, owner)
		seen[id] = true
		ns.Close()
		if found {
			return path.path, path.name, nil
		}
	}
	return "", "", nil
}

// hasLeftTap reports whether namespace ns holds the persistent TAP
// device name that a port left.
func hasLeftTap(ns netns.NsHandle, name, owner string) bool {
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return false
	}
	defer h.Close()
	lk, err := h.LinkByName(name)
	return err == nil && isLeftTap(lk, owner)
}

type netnsPath struct{ path, name string }

// netnsPaths lists the namespaces that ip netns names, then those of the
// running processes.
func netnsPaths() []netnsPath {
	var out []netnsPath
	for _, dir := range netnsRunDirs {
		if ents, err := os.ReadDir(dir); err == nil {
			for _, e := range ents {
				out = append(out, netnsPath{filepath.Join(dir, e.Name()), e.Name()})
			}
		}
	}
	if ents, err := os.ReadDir(procDir); err == nil {
		for _, e := range ents {
			if _, err := strconv.Atoi(e.Name()); err != nil {
				continue
			}
			out = append(out, netnsPath{filepath.Join(procDir, e.Name(), "ns", "net"), "of pid " + e.Name()})
		}
	}
	return out
}

// nsID identifies the namespace of an open handle: its device and inode.
func nsID(fd int) ([2]uint64, bool) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return [2]uint64{}, false
	}
	return [2]uint64{st.Dev, st.Ino}, true
}
