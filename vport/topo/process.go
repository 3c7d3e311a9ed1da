package topo

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is a background process started in a namespace, in a process
// group of its own, which its Topology kills at Close.
type Process struct {
	Cmd  *exec.Cmd
	out  SyncBuffer
	done chan struct{}
	err  error // set before done is closed
}

// Start starts args inside the namespace in the background, with its
// output collected (Output).
func (n *Namespace) Start(args ...string) (*Process, error) {
	switch {
	case len(args) == 0:
		return nil, fmt.Errorf("start in %s: no command", n.Name)
	case n.Deleted():
		return nil, fmt.Errorf("start %s in %s: %w", args[0], n.Name, ErrNamespaceDeleted)
	}
	cmd := n.Command(context.Background(), args...)
	p := &Process{Cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.out, &p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	t := n.topo
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrClosed
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s in %s: %w", strings.Join(args, " "), n.Name, err)
	}
	t.procs = append(t.procs, p)
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Kill kills the process's group with SIGKILL and waits for the process.
func (p *Process) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL) // it may be gone already
	<-p.done
}

// Wait waits for the process to exit, up to ctx, and returns its error
// (ctx's error when ctx ends first).
func (p *Process) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Output is what the process wrote so far (stdout and stderr).
func (p *Process) Output() string { return p.out.String() }

// WaitOutput waits until the process's output contains s, up to timeout.
func (p *Process) WaitOutput(s string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.Output(), s) {
		if p.Exited() {
			return fmt.Errorf("process exited (%v) before printing %q: %s", p.err, s, p.Output())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %q after %v: %s", s, timeout, p.Output())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// SyncBuffer collects a command's output: a bytes.Buffer safe for
// concurrent writers (such as exec's copying goroutines for stdout and
// stderr) and readers that look at the output while the command runs.
// The zero value is ready to use.
type SyncBuffer struct {
	mu sync.Mutex // protects b
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
