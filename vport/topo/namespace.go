package topo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ovsxdp/ovsxdp/vport/internal/nsthread"
	"github.com/ovsxdp/ovsxdp/vport/nldump"
)

// RunDir holds the files that name network namespaces, where iproute2
// keeps them too ("ip netns list" shows the package's namespaces).
const RunDir = "/var/run/netns"

// Namespace is a named network namespace of a Topology.
type Namespace struct {
	Name string
	topo *Topology

	mu      sync.Mutex // protects deleted and ino
	deleted bool
	ino     uint64 // the namespace's inode, recorded by Delete for Holders
}

// Path is the namespace's file, as vport.XSKConfig.Netns and
// vport.LinkMonitorConfig.Netns want it.
func (n *Namespace) Path() string { return filepath.Join(RunDir, n.Name) }

// runDirMu serialises making RunDir a shared mount point within the
// process.
var runDirMu sync.Mutex

// createNamed creates a network namespace named name: a new namespace
// bind-mounted on RunDir/name, as "ip netns add" makes it.
func createNamed(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return fmt.Errorf("namespace %q: not a valid name", name)
	}
	if err := shareRunDir(); err != nil {
		return err
	}
	path := filepath.Join(RunDir, name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	f.Close()
	if err := bindNewNetns(path); err != nil {
		return errors.Join(fmt.Errorf("create namespace %s: %w", name, err), os.Remove(path))
	}
	return nil
}

// shareRunDir makes RunDir a mount point with shared propagation, as
// iproute2 does. A process started in a namespace (Command, Start) runs in
// a mount namespace of its own that holds copies of the mounts under
// RunDir; with shared propagation, deleting a namespace's name unmounts
// the copies too (as removing the file does on kernels since 3.18), so the
// namespace and its devices go away while such processes run on.
func shareRunDir() error {
	runDirMu.Lock()
	defer runDirMu.Unlock()
	if err := os.MkdirAll(RunDir, 0o755); err != nil {
		return fmt.Errorf("namespace directory: %w", err)
	}
	err := unix.Mount("", RunDir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if errors.Is(err, unix.EINVAL) { // not a mount point yet: make it one
		if err := unix.Mount(RunDir, RunDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind-mount %s on itself: %w", RunDir, err)
		}
		err = unix.Mount("", RunDir, "none", unix.MS_SHARED|unix.MS_REC, "")
	}
	if err != nil {
		return fmt.Errorf("make %s a shared mount: %w", RunDir, err)
	}
	return nil
}

// bindNewNetns creates a network namespace on a locked thread, bind-mounts
// it on path and takes the thread back to its own namespace. A thread that
// stayed in the new namespace would keep it alive for good if it were the
// process's main thread, which the Go runtime never ends; so only a thread
// that cannot go back is discarded (it stays locked and ends with its
// goroutine).
func bindNewNetns(path string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("current network namespace: %w", err)
			return
		}
		defer unix.Close(orig)
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		err = unix.Mount("/proc/thread-self/ns/net", path, "none", unix.MS_BIND, "")
		if err != nil {
			err = fmt.Errorf("bind-mount on %s: %w", path, err)
		}
		if serr := unix.Setns(orig, unix.CLONE_NEWNET); serr != nil {
			// Discarded with its goroutine.
			errc <- errors.Join(err, fmt.Errorf("return to the original network namespace: %w", serr))
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

// Delete deletes the namespace's name. The namespace itself, with its
// devices (a veth's peer too), goes away once no process or socket holds
// it. Delete is idempotent.
func (n *Namespace) Delete() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.deleted {
		return nil
	}
	n.deleted = true
	var st unix.Stat_t
	if unix.Stat(n.Path(), &st) == nil {
		n.ino = st.Ino
	}
	if err := unix.Unmount(n.Path(), unix.MNT_DETACH); err != nil {
		return fmt.Errorf("delete namespace %s: unmount %s: %w", n.Name, n.Path(), err)
	}
	if err := os.Remove(n.Path()); err != nil {
		return fmt.Errorf("delete namespace %s: %w", n.Name, err)
	}
	return nil
}

// Deleted reports whether Delete was called.
func (n *Namespace) Deleted() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.deleted
}

// List returns the names of every network namespace that has one (as
// "ip netns list" does).
func List() ([]string, error) {
	ents, err := os.ReadDir(RunDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names, nil
}

// withNetlink runs fn with a netlink handle in the namespace. The handle
// is closed when fn returns, so that it does not keep a deleted namespace
// alive.
func (n *Namespace) withNetlink(fn func(h *netlink.Handle) error) error {
	ns, err := netns.GetFromPath(n.Path())
	if err != nil {
		return fmt.Errorf("namespace %s: %w", n.Name, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", n.Name, err)
	}
	defer h.Close()
	return fn(h)
}

// linkByName looks dev up through h, with the namespace in the error.
func (n *Namespace) linkByName(h *netlink.Handle, dev string) (netlink.Link, error) {
	l, err := h.LinkByName(dev)
	if err != nil {
		return nil, fmt.Errorf("device %s in %s: %w", dev, n.Name, err)
	}
	return l, nil
}

// SetLinkUp brings dev up.
func (n *Namespace) SetLinkUp(dev string) error {
	return n.withNetlink(func(h *netlink.Handle) error {
		l, err := n.linkByName(h, dev)
		if err != nil {
			return err
		}
		if err := h.LinkSetUp(l); err != nil {
			return fmt.Errorf("set %s up in %s: %w", dev, n.Name, err)
		}
		return nil
	})
}

// AddAddr adds the address cidr (such as 10.0.0.1/24) to dev.
func (n *Namespace) AddAddr(dev, cidr string) error {
	addr, err := netlink.ParseAddr(cidr)
	if err != nil {
		return fmt.Errorf("address %q for %s in %s: %w", cidr, dev, n.Name, err)
	}
	return n.withNetlink(func(h *netlink.Handle) error {
		l, err := n.linkByName(h, dev)
		if err != nil {
			return err
		}
		if err := h.AddrAdd(l, addr); err != nil {
			return fmt.Errorf("add address %s to %s in %s: %w", cidr, dev, n.Name, err)
		}
		return nil
	})
}

// SetNeigh adds (or replaces) a permanent neighbour entry ip → mac on dev.
func (n *Namespace) SetNeigh(dev string, ip net.IP, mac net.HardwareAddr) error {
	family := netlink.FAMILY_V6
	if ip.To4() != nil {
		family = netlink.FAMILY_V4
	}
	return n.withNetlink(func(h *netlink.Handle) error {
		l, err := n.linkByName(h, dev)
		if err != nil {
			return err
		}
		err = h.NeighSet(&netlink.Neigh{LinkIndex: l.Attrs().Index, Family: family,
			State: netlink.NUD_PERMANENT, IP: ip, HardwareAddr: mac})
		if err != nil {
			return fmt.Errorf("neighbour %s lladdr %s on %s in %s: %w", ip, mac, dev, n.Name, err)
		}
		return nil
	})
}

// Neigh returns the hardware address and state (netlink.NUD_*) of the
// neighbour entry for ip on dev.
func (n *Namespace) Neigh(dev string, ip net.IP) (mac net.HardwareAddr, state int, err error) {
	err = n.withNetlink(func(h *netlink.Handle) error {
		l, err := n.linkByName(h, dev)
		if err != nil {
			return err
		}
		neighs, err := nldump.Retry(func() ([]netlink.Neigh, error) { return h.NeighList(l.Attrs().Index, netlink.FAMILY_ALL) })
		if err != nil {
			return fmt.Errorf("neighbours of %s in %s: %w", dev, n.Name, err)
		}
		for _, ne := range neighs {
			if ne.IP.Equal(ip) {
				mac, state = ne.HardwareAddr, ne.State
				return nil
			}
		}
		return fmt.Errorf("no neighbour %s on %s in %s", ip, dev, n.Name)
	})
	return mac, state, err
}

// Addrs returns dev's addresses in CIDR notation (such as 10.0.0.1/24).
func (n *Namespace) Addrs(dev string) ([]string, error) {
	var cidrs []string
	err := n.withNetlink(func(h *netlink.Handle) error {
		l, err := n.linkByName(h, dev)
		if err != nil {
			return err
		}
		addrs, err := nldump.Retry(func() ([]netlink.Addr, error) { return h.AddrList(l, netlink.FAMILY_ALL) })
		if err != nil {
			return fmt.Errorf("addresses of %s in %s: %w", dev, n.Name, err)
		}
		for _, a := range addrs {
			cidrs = append(cidrs, a.IPNet.String())
		}
		return nil
	})
	return cidrs, err
}

// IP runs "ip -n NAME args" and returns its output. It is the one method
// that needs iproute2, for tests that drive a device as an operator would;
// the package itself does not use it.
func (n *Namespace) IP(args ...string) (string, error) {
	return run("ip", append([]string{"-n", n.Name}, args...)...)
}

// Output runs args inside the namespace, bounded by ctx and
// CommandTimeout, and returns its combined output.
func (n *Namespace) Output(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, CommandTimeout)
	defer cancel()
	out, err := n.Command(ctx, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in %s: %s: %w: %s", n.Name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Exec runs args inside the namespace as Output does, for a command whose
// output does not matter when it succeeds.
func (n *Namespace) Exec(ctx context.Context, args ...string) error {
	_, err := n.Output(ctx, args...)
	return err
}

// sysctl writes value to /proc/sys/KEY inside the namespace.
func (n *Namespace) sysctl(key, value string) error {
	return n.Do(func() error {
		return os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0o644)
	})
}

// Do runs fn on an OS thread that has entered the namespace, and returns
// its error. Sockets that fn creates belong to the namespace and stay
// there after Do returns; they keep the namespace alive until closed. If
// the thread cannot go back to its own namespace it is discarded, so no
// other code runs in the wrong namespace.
func (n *Namespace) Do(fn func() error) error {
	return nsthread.Do(n.Path(), fn)
}
