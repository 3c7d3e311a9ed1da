package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// vlog/set and vlog/list, as Open vSwitch's: ovsxdp's log is one module
// ("ovsxdp") with one destination, the console (standard error), so a
// level set for any module or for the console is the log's level.
func init() {
	register(
		&verb{VerbInfo: VerbInfo{Name: "vlog/set", Usage: "[SPEC...]", Short: "Set the log's level: SPEC is words joined by colons or spaces, a level (off, emer, err, warn, info, dbg; dbg if none), console or ANY, ANY or ovsxdp", Max: -1}, run: (*Daemon).vlogSet},
		&verb{VerbInfo: VerbInfo{Name: "vlog/list", Short: "Print the log's level by destination", Max: 0}, run: (*Daemon).vlogList},
	)
}

// vlogLevels are Open vSwitch's log levels and the slog level each sets:
// emer is as severe as ovsxdp's errors get, and off is above them all.
var vlogLevels = map[string]slog.Level{
	"off":  slog.LevelError + 100,
	"emer": slog.LevelError,
	"err":  slog.LevelError,
	"warn": slog.LevelWarn,
	"info": slog.LevelInfo,
	"dbg":  slog.LevelDebug,
}

// parseVlogSpec reads one vlog/set SPEC as Open vSwitch does: words
// separated by colons, spaces or tabs, each ANY, a destination, a level or
// a module; the level is dbg when none is given.
func parseVlogSpec(spec string) (string, error) {
	level, dest := "", ""
	for _, w := range strings.FieldsFunc(spec, func(r rune) bool { return r == ':' || r == ' ' || r == '\t' }) {
		lw := strings.ToLower(w)
		_, isLevel := vlogLevels[lw]
		switch {
		case lw == "any" || lw == "ovsxdp":
		case lw == "console" || lw == "syslog" || lw == "file":
			if dest != "" {
				return "", errors.New("cannot specify multiple destinations")
			}
			if dest = lw; dest != "console" {
				return "", fmt.Errorf("ovsxdp logs to the console (standard error) only: it has no %s destination", dest)
			}
		case isLevel:
			if level != "" {
				return "", errors.New("cannot specify multiple levels")
			}
			level = lw
		default:
			return "", fmt.Errorf(`no destination, level, or module "%s"`, w)
		}
	}
	if level == "" {
		level = "dbg"
	}
	return level, nil
}

// vlogSet applies each SPEC in turn; none is applied if one is wrong.
func (d *Daemon) vlogSet(c *call) (string, error) {
	if d.cfg.LogLevel == nil {
		return "", errors.New("the daemon's log level cannot be changed while it runs")
	}
	level := ""
	for _, spec := range c.args {
		l, err := parseVlogSpec(spec)
		if err != nil {
			return "", err
		}
		level = l
	}
	if level == "" {
		return "", nil
	}
	d.cfg.LogLevel.Set(vlogLevels[level])
	d.vlogLevel = level
	d.log.Info("log level set", "level", level)
	return "", nil
}

// vlogList prints the one module's levels in Open vSwitch's table: the
// console's is the log's, and there is no syslog or file.
func (d *Daemon) vlogList(*call) (string, error) {
	level := d.vlogLevel
	if level == "" { // as --log-level set it
		level = "info"
		if d.cfg.LogLevel != nil {
			level = vlogName(d.cfg.LogLevel.Level())
		}
	}
	var s strings.Builder
	s.WriteString("                 console    syslog    file\n")
	s.WriteString("                 -------    ------    ------\n")
	fmt.Fprintf(&s, "%-16s  %4s       %4s       %4s\n", "ovsxdp", strings.ToUpper(level), "OFF", "OFF")
	return s.String(), nil
}

// vlogName is a slog level in Open vSwitch's words.
func vlogName(l slog.Level) string {
	switch {
	case l > slog.LevelError:
		return "off"
	case l >= slog.LevelError:
		return "err"
	case l >= slog.LevelWarn:
		return "warn"
	case l >= slog.LevelInfo:
		return "info"
	}
	return "dbg"
}
