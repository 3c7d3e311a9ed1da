package daemon

import (
	"log/slog"
	"testing"
)

func TestVlog(t *testing.T) {
	lv := new(slog.LevelVar)
	d, err := New(Config{NoLocalPort: true, Version: "test", Logger: quietLogger(), LogLevel: lv})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	list := func(level string) string {
		return "                 console    syslog    file\n" +
			"                 -------    ------    ------\n" +
			"ovsxdp            " + level + "        OFF        OFF\n"
	}
	if got := run(t, d, "vlog/list"); got != list("INFO") {
		t.Errorf("vlog/list at the start:\n%q\nwant\n%q", got, list("INFO"))
	}
	tests := []struct {
		name    string
		in      []string
		want    slog.Level
		wantErr string
	}{
		{"level", []string{"dbg"}, slog.LevelDebug, ""},
		{"module, destination, level", []string{"ANY:console:warn"}, slog.LevelWarn, ""},
		{"no level: dbg", []string{"ovsxdp:console"}, slog.LevelDebug, ""},
		{"spaces, case", []string{"any CONSOLE Info"}, slog.LevelInfo, ""},
		{"the last wins", []string{"err", "emer"}, slog.LevelError, ""},
		{"off", []string{"off"}, slog.LevelError + 100, ""},
		{"unknown word", []string{"dpif_netdev:dbg"}, slog.LevelError + 100, `no destination, level, or module "dpif_netdev"`},
		{"a bad spec changes nothing", []string{"dbg", "nosuch"}, slog.LevelError + 100, `no destination, level, or module "nosuch"`},
		{"two levels", []string{"dbg:info"}, slog.LevelError + 100, "cannot specify multiple levels"},
		{"syslog", []string{"syslog:dbg"}, slog.LevelError + 100, "ovsxdp logs to the console (standard error) only: it has no syslog destination"},
		{"nothing", nil, slog.LevelError + 100, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runFlags(d, "vlog/set", nil, tt.in...)
			if (err == nil) != (tt.wantErr == "") || (err != nil && err.Error() != tt.wantErr) {
				t.Fatalf("error %v; want %q", err, tt.wantErr)
			}
			if lv.Level() != tt.want {
				t.Errorf("level %v; want %v", lv.Level(), tt.want)
			}
		})
	}
	run(t, d, "vlog/set", "emer")
	if got := run(t, d, "vlog/list"); got != list("EMER") {
		t.Errorf("vlog/list after vlog/set emer:\n%q", got)
	}
	// Without a level to change, vlog/set is refused.
	if _, err := runFlags(newTestDaemon(t, ""), "vlog/set", nil, "dbg"); err == nil {
		t.Error("vlog/set changed a fixed level")
	}
}
