package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ovsxdp/ovsxdp/cmd/ovsxdp/internal/control"
	"github.com/ovsxdp/ovsxdp/cmd/ovsxdp/internal/daemon"
)

// callTimeout bounds one command's round trip to the daemon.
const callTimeout = 2 * time.Minute

// addRemoteCommands adds a command for each of the daemon's verbs: it
// checks the arguments, sends them and prints the daemon's output.
func addRemoteCommands(root *cobra.Command, g *globals) {
	for _, v := range daemon.Verbs() {
		root.AddCommand(newRemoteCmd(g, v))
	}
}

func newRemoteCmd(g *globals, v daemon.VerbInfo) *cobra.Command {
	min, max := v.Min, v.Max
	if v.File {
		min, max = min+1, max+1
	}
	use := strings.TrimSpace(v.Name + " " + v.Usage)
	if v.File && !strings.HasSuffix(v.Usage, "FILE") {
		use += " FILE"
	}
	args := func(_ *cobra.Command, args []string) error {
		n := len(args)
		if n >= min && (max < 0 || n <= max) {
			return nil
		}
		want := fmt.Sprintf("%d to %d", min, max)
		switch {
		case max < 0:
			want = fmt.Sprintf("at least %d", min)
		case min == max:
			want = fmt.Sprint(min)
		}
		return fmt.Errorf("%s: %d argument(s) given, want %s (usage: ovsxdp %s)", v.Name, n, want, use)
	}
	flags := map[string]*string{}
	bools := map[string]*bool{}
	cmd := &cobra.Command{
		Use:   use,
		Short: v.Short,
		Args:  args,
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &control.Request{Verb: v.Name, Flags: map[string]string{}}
			for name, p := range flags {
				if cmd.Flags().Changed(name) {
					req.Flags[name] = *p
				}
			}
			for name, p := range bools {
				if cmd.Flags().Changed(name) {
					req.Flags[name] = fmt.Sprint(*p)
				}
			}
			file := ""
			if v.File {
				file = args[len(args)-1]
				args = args[:len(args)-1]
				lines, err := readLines(file)
				if err != nil {
					return err
				}
				req.Input = lines
			}
			if v.Name == "add-port" {
				if err := absolutePaths(args[2:]); err != nil {
					return err
				}
			}
			req.Args = args
			out, err := control.Call(g.socket, req, callTimeout)
			if err != nil {
				if file != "" {
					return fmt.Errorf("%s: %w", file, err)
				}
				return err
			}
			fmt.Print(out)
			return nil
		},
	}
	for _, f := range v.Flags {
		if f.Bool {
			bools[f.Name] = cmd.Flags().BoolP(f.Name, f.Shorthand, false, f.Usage)
		} else {
			flags[f.Name] = cmd.Flags().StringP(f.Name, f.Shorthand, "", f.Usage)
		}
	}
	return cmd
}

// readLines reads the lines of a file, or of stdin for "-". A file larger
// than the daemon takes in one request is refused before it is read whole.
func readLines(path string) ([]string, error) {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() > control.MaxRequestSize {
			return nil, tooLarge(path, fi.Size())
		}
		r = f
	}
	cr := &countingReader{r: io.LimitReader(r, control.MaxRequestSize+1)}
	var lines []string
	sc := bufio.NewScanner(cr)
	sc.Buffer(make([]byte, 64<<10), control.MaxRequestSize+1)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if cr.n > control.MaxRequestSize { // read up to the limit only
		return nil, tooLarge(path, -1)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: line %d: %w", path, len(lines)+1, err)
	}
	return lines, nil
}

// tooLarge is the error for an input file of n bytes (-1: more than the
// limit) that is over the daemon's request limit.
func tooLarge(path string, n int64) error {
	size := "more than " + control.SizeText(control.MaxRequestSize)
	if n >= 0 {
		size = control.SizeText(int(n))
	}
	return fmt.Errorf("%s: %w: %s, the daemon's limit is %s", path, control.ErrTooLarge, size, control.SizeText(control.MaxRequestSize))
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// absolutePaths makes the file options of add-port (read=, write=)
// absolute, since the daemon does not run in the client's directory.
func absolutePaths(opts []string) error {
	for i, o := range opts {
		k, v, ok := strings.Cut(o, "=")
		if !ok || (k != "read" && k != "write") || v == "" || filepath.IsAbs(v) {
			continue
		}
		abs, err := filepath.Abs(v)
		if err != nil {
			return err
		}
		opts[i] = k + "=" + abs
	}
	return nil
}
