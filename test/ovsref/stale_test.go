package ovsref

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// TestSweepStaleDaemons leaves run directories as killed test processes
// leave them, their owner records naming a PID no process can have, beside
// ones that must stay, and checks that the sweep kills only the daemon
// that runs on a stale directory, by its pidfile, and removes only the
// stale directories: a live owner's daemon, a daemon of another directory
// and a process that is no daemon, whose PIDs stale pidfiles name, keep
// running.
func TestSweepStaleDaemons(t *testing.T) {
	RequireDB(t)
	dead, err := testenv.ImpossiblePID()
	if err != nil {
		t.Fatal(err)
	}
	gone := testenv.Owner{PID: dead, Start: 1}
	base := t.TempDir()
	mkdir := func(name string, owner *testenv.Owner) string {
		t.Helper()
		dir := filepath.Join(base, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if owner != nil {
			if err := testenv.WriteOwnerOf(filepath.Join(dir, ownerFile), *owner); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	self, err := testenv.Self()
	if err != nil {
		t.Fatal(err)
	}
	staleDir := mkdir("ovsref-stale", &gone)
	liveDir := mkdir("ovsdb-live", &self)
	forgedDir := mkdir("ovsref-forged", &gone)
	unrecordedDir := mkdir("ovsref-norec", nil)

	staleDB := startTestDB(t, staleDir)
	liveDB := startTestDB(t, liveDir)
	decoy := exec.Command("sleep", "600")
	if err := decoy.Start(); err != nil {
		t.Fatal(err)
	}
	decoyExit := waitIn(decoy)
	t.Cleanup(func() { decoy.Process.Kill(); <-decoyExit })
	// The forged directory's pidfiles name the live directory's
	// ovsdb-server and a process that is no daemon.
	for name, pid := range map[string]int{"ovsdb-server": liveDB.cmd.Process.Pid, "ovs-vswitchd": decoy.Process.Pid} {
		if err := os.WriteFile(filepath.Join(forgedDir, name+".pid"), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	if err := sweepStaleDaemons(base); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-staleDB.exit:
		staleDB.exit <- err // for the cleanup
		if ws, ok := err.(*exec.ExitError); !ok || ws.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("the stale directory's ovsdb-server ended with %v, want killed", err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("the stale directory's ovsdb-server (pid %d) still runs after the sweep", staleDB.cmd.Process.Pid)
	}
	for _, p := range []struct {
		what string
		pid  int
	}{{"the live directory's ovsdb-server", liveDB.cmd.Process.Pid}, {"the decoy process", decoy.Process.Pid}} {
		if testenv.Exited(p.pid) {
			t.Errorf("%s (pid %d) was killed", p.what, p.pid)
		}
	}
	tests := []struct {
		name    string
		inDir   string
		wantDir bool
	}{
		{name: "owner gone", inDir: staleDir},
		{name: "owner gone, pidfiles name others", inDir: forgedDir},
		{name: "owner alive", inDir: liveDir, wantDir: true},
		{name: "no owner record", inDir: unrecordedDir, wantDir: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := os.Stat(tt.inDir)
			if got := err == nil; got != tt.wantDir {
				t.Errorf("%s there: %v, want %v", tt.inDir, got, tt.wantDir)
			}
		})
	}
}

// testDB is an ovsdb-server the test started, as a switch's run
// directory holds one.
type testDB struct {
	cmd  *exec.Cmd
	exit chan error
}

// startTestDB starts ovsdb-server on a new database in dir, with its
// pidfile there, in a process group of its own as Start's daemons, and
// waits for the pidfile; it is killed when the test ends.
func startTestDB(t *testing.T, dir string) *testDB {
	t.Helper()
	db := filepath.Join(dir, "conf.db")
	if out, err := exec.Command("ovsdb-tool", "create", db, Schema).CombinedOutput(); err != nil {
		t.Fatalf("ovsdb-tool create: %v\n%s", err, out)
	}
	pidfile := filepath.Join(dir, "ovsdb-server.pid")
	cmd := exec.Command("ovsdb-server", db, "--no-chdir", "--pidfile="+pidfile,
		"--unixctl="+filepath.Join(dir, "ovsdb-server.ctl"), "--log-file="+filepath.Join(dir, "ovsdb-server.log"))
	cmd.Env = append(os.Environ(), "OVS_RUNDIR="+dir, "OVS_DBDIR="+dir, "OVS_LOGDIR="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &testDB{cmd: cmd, exit: waitIn(cmd)}
	t.Cleanup(func() {
		cmd.Process.Kill()
		select {
		case <-d.exit:
		case <-time.After(10 * time.Second):
			t.Errorf("ovsdb-server (pid %d) does not exit after SIGKILL", cmd.Process.Pid)
		}
	})
	want := fmt.Sprint(cmd.Process.Pid)
	deadline := time.Now().Add(StartTimeout)
	for {
		if b, _ := os.ReadFile(pidfile); strings.TrimSpace(string(b)) == want {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("ovsdb-server (pid %d) wrote no pidfile %s in %v", cmd.Process.Pid, pidfile, StartTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitIn waits for cmd in a goroutine; the channel receives its end.
func waitIn(cmd *exec.Cmd) chan error {
	exit := make(chan error, 1)
	go func() { exit <- cmd.Wait() }()
	return exit
}
