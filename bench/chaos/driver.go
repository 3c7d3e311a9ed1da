package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	vtopo "github.com/ovsxdp/ovsxdp/vport/topo"
)

// ErrUnsupported is returned by a driver for an operation its datapath
// cannot do; the step is counted as skipped for that driver.
var ErrUnsupported = errors.New("not supported by this datapath")

// Driver runs a datapath under a schedule. The runner does the
// operations on links and namespaces itself; the driver does what only
// the datapath can (ports, restarts) and checks the datapath's own
// invariants.
type Driver interface {
	// Name is the driver's name in the results.
	Name() string
	// Start starts the datapath in e.SW with every slot's host end as a
	// port (OpenFlow port OFPort(i), where it has port numbers) and
	// forwarding between the slots' MACs.
	Start(e *Env) error
	// Stop stops the datapath and removes what it left on the devices.
	Stop() error
	AddPort(e *Env, slot int) error
	DelPort(e *Env, slot int) error
	// Relink is called after slot's veth pair was created again, for
	// datapaths that do not take a device of a port's name back by
	// themselves (as a network manager would redo it).
	Relink(e *Env, slot int, st slotState) error
	// Restart stops the datapath with sig and starts it again with its
	// configuration.
	Restart(e *Env, sig syscall.Signal) error
	// Answers returns an error unless the datapath answers its control
	// interface within ctx.
	Answers(ctx context.Context) error
	// Check runs the datapath's own invariants in state st and returns
	// how many it checked and what failed.
	Check(ctx context.Context, e *Env, st []slotState) (int, []Violation)
	// Footprint is what the datapath's process holds, for leak checks;
	// ok is false for a datapath without a process of its own.
	Footprint(ctx context.Context) (f Footprint, ok bool, err error)
}

// Violation is one broken invariant.
type Violation struct {
	Kind   string `json:"kind"`
	Step   int    `json:"step"` // -1: setup; len(steps): the final heal
	Detail string `json:"detail"`
}

func (v Violation) String() string { return fmt.Sprintf("step %d: %s: %s", v.Step, v.Kind, v.Detail) }

// The kinds of violation.
const (
	KindSetup     = "setup"      // the topology or the datapath could not be set up
	KindNoAnswer  = "no-answer"  // the datapath did not answer its control interface in time
	KindRecovery  = "recovery"   // traffic between surviving slots did not come back in time
	KindLockup    = "lockup"     // a poll thread stalled past the watchdog's threshold
	KindLedger    = "ledger"     // received != sent + dropped by reason
	KindTxQueue   = "tx-queue"   // a transmit on a tx queue at or above the device's tx queue count
	KindLinkState = "link-state" // the datapath's view of a link is not the kernel's
	KindFDLeak    = "fd-leak"
	KindXSKLeak   = "xsk-leak" // AF_XDP sockets or their ring mappings outlived their port
	KindBPFLeak   = "bpf-leak" // XDP programs or BPF links outlived their port
	KindXDPLeak   = "xdp-leak" // an XDP program on a device that is not a port
	KindGoroutine = "goroutine-leak"
	KindHeld      = "netns-held" // a deleted namespace's devices stayed
	KindCrash     = "crash"      // the datapath process exited by itself
	KindOp        = "op-failed"  // an operation that must work failed
	// KindStall is not a violation: a poll thread that took longer than
	// the watchdog's threshold over a batch without spinning in output
	// (a busy machine descheduled it). Results count stalls apart.
	KindStall = "stall"
)

// Footprint is what a datapath process holds.
type Footprint struct {
	FDs        int
	XSK        int // AF_XDP sockets: sockets with ring mappings
	Mappings   int // ring mappings of sockets
	Orphans    int // ring mappings of sockets the process no longer has open
	Progs      int // XDP program fds
	Links      int // BPF link fds
	Goroutines int // -1 if unknown
}

func (f Footprint) String() string {
	return fmt.Sprintf("fds %d, xsk sockets %d, ring mappings %d (orphaned %d), xdp programs %d, bpf links %d, goroutines %d",
		f.FDs, f.XSK, f.Mappings, f.Orphans, f.Progs, f.Links, f.Goroutines)
}

// procFootprint reads pid's fds, maps and fdinfo.
func procFootprint(pid int) (Footprint, error) {
	f := Footprint{Goroutines: -1}
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	ents, err := os.ReadDir(filepath.Join(dir, "fd"))
	if err != nil {
		return f, fmt.Errorf("fds of pid %d: %w", pid, err)
	}
	open := map[string]bool{}
	for _, ent := range ents {
		target, err := os.Readlink(filepath.Join(dir, "fd", ent.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		f.FDs++
		if strings.HasPrefix(target, "socket:[") {
			open[target] = true
		}
		if strings.HasPrefix(target, "anon_inode:bpf") {
			info, err := os.ReadFile(filepath.Join(dir, "fdinfo", ent.Name()))
			if err != nil {
				continue
			}
			s := string(info)
			switch {
			case strings.Contains(s, "link_type:\txdp"):
				f.Links++
			case strings.Contains(s, "prog_type:\t6\n"):
				f.Progs++
			}
		}
	}
	maps, err := os.ReadFile(filepath.Join(dir, "maps"))
	if err != nil {
		return f, fmt.Errorf("maps of pid %d: %w", pid, err)
	}
	mapped := map[string]bool{}
	for _, line := range strings.Split(string(maps), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 6 || !strings.HasPrefix(fields[5], "socket:[") {
			continue
		}
		f.Mappings++
		if !mapped[fields[5]] {
			mapped[fields[5]] = true
			if open[fields[5]] {
				f.XSK++
			}
		}
		if !open[fields[5]] {
			f.Orphans++
		}
	}
	return f, nil
}

// stopProcess sends sig to p and waits up to 20 s for it to exit; SIGKILL
// kills its process group at once. A process that outlives the wait is
// killed, and the error says so, naming it name.
func stopProcess(p *vtopo.Process, sig syscall.Signal, name string) error {
	if sig == syscall.SIGKILL {
		p.Kill()
		return nil
	}
	if err := p.Cmd.Process.Signal(sig); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if errors.Is(p.Wait(ctx), context.DeadlineExceeded) {
		p.Kill()
		return fmt.Errorf("%s ignored %v for 20s; killed", name, sig)
	}
	return nil
}
