package ovsref

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// DB is a sandboxed ovsdb-server alone, with an initialised Open_vSwitch
// database and no ovs-vswitchd: for a test that puts another switch (or
// none) behind it. It is stopped by PID, and its directory removed, when
// the test ends.
type DB struct {
	s *Switch
}

// RequireDB skips the test (fails it under CI=true) unless it runs as
// root and ovsdb-server and ovs-vsctl are installed.
func RequireDB(t testing.TB) {
	t.Helper()
	testenv.RequireRoot(t)
	for _, tool := range []string{"ovsdb-tool", "ovsdb-server", "ovs-vsctl"} {
		testenv.RequireTool(t, tool, "openvswitch-common")
	}
	if _, err := os.Stat(Schema); err != nil {
		testenv.Missing(t, "Open vSwitch's database schema: %v (install openvswitch-common, or run `make deps`)", err)
	}
}

// StartDB creates the database, starts ovsdb-server on it and runs
// `ovs-vsctl --no-wait init`.
func StartDB(t testing.TB) *DB {
	t.Helper()
	RequireDB(t)
	if err := sweepStale(); err != nil {
		t.Fatal(err)
	}
	dir, err := makeRunDir("ovsdb-")
	if err != nil {
		t.Fatal(err)
	}
	s := &Switch{Dir: dir}
	s.env = append(os.Environ(), "OVS_RUNDIR="+dir, "OVS_DBDIR="+dir, "OVS_LOGDIR="+dir, "OVS_SYSCONFDIR="+dir)
	t.Cleanup(func() { s.stop(t) })
	if _, err := s.run(nil, "ovsdb-tool", "create", filepath.Join(dir, "conf.db"), Schema); err != nil {
		t.Fatal(err)
	}
	db := &DB{s: s}
	db.start(t)
	if _, err := db.Vsctl("--no-wait", "init"); err != nil {
		t.Fatal(err)
	}
	return db
}

func (db *DB) start(t testing.TB) {
	t.Helper()
	s := db.s
	s.db = exec.Command("ovsdb-server", filepath.Join(s.Dir, "conf.db"), "--remote=punix:"+s.dbSock(), "--no-chdir",
		"--pidfile="+filepath.Join(s.Dir, "ovsdb-server.pid"), "--unixctl="+s.ctl("ovsdb-server"),
		"--log-file="+filepath.Join(s.Dir, "ovsdb-server.log"))
	var err error
	if s.dbExit, err = s.startProc(s.db, "ovsdb-server"); err != nil {
		t.Fatal(err)
	}
	if err := s.waitCtl("ovsdb-server", s.dbExit); err != nil {
		t.Fatal(err)
	}
}

// Remote is the server's remote, "unix:DIR/db.sock".
func (db *DB) Remote() string { return "unix:" + db.s.dbSock() }

// Dir is the sandbox directory.
func (db *DB) Dir() string { return db.s.Dir }

// Vsctl runs ovs-vsctl against the server, bounded by CommandTimeout,
// and returns its standard output; the error includes its standard error.
func (db *DB) Vsctl(args ...string) (string, error) { return db.s.vsctl(args...) }

// VsctlStderr runs ovs-vsctl as Vsctl does and returns its standard
// error too (ovs-vsctl reports interfaces that failed there, with exit
// status 0).
func (db *DB) VsctlStderr(args ...string) (stdout, stderr string, err error) {
	return db.s.runStderr(nil, "ovs-vsctl", append([]string{"--db=" + db.Remote()}, args...)...)
}

// Restart stops ovsdb-server (SIGTERM, SIGKILL after 10 s) and starts it
// again on the same database and socket.
func (db *DB) Restart(t testing.TB) {
	t.Helper()
	s := db.s
	syscall.Kill(-s.db.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.dbExit:
	case <-time.After(10 * time.Second):
		syscall.Kill(-s.db.Process.Pid, syscall.SIGKILL)
		<-s.dbExit
	}
	db.start(t)
}
