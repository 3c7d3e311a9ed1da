package main

import (
	"archive/zip"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// ErrCrash reports a libFuzzer run that found a failing input.
var ErrCrash = errors.New("fuzz target failed")

func runCmd(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	runs := fs.Int("runs", 2000, "inputs to run per binary, seed corpus included")
	crashDir := fs.String("artifacts", ".", "`dir`ectory for the crashing inputs")
	fs.Parse(args)
	if fs.NArg() == 0 {
		return errors.New("run: no binary")
	}
	for _, bin := range fs.Args() {
		res, _, err := runBinary(bin, *runs, *crashDir)
		if err != nil {
			return err
		}
		fmt.Printf("ok %s: %s\n", filepath.Base(bin), res)
	}
	return nil
}

var (
	doneLine  = regexp.MustCompile(`Done \d+ runs in \d+ second`)
	crashLine = regexp.MustCompile(`Test unit written to (\S+)`)
)

// crashFile is the crashing input's path in libFuzzer's output, "" if none.
func crashFile(out string) string {
	if m := crashLine.FindStringSubmatch(out); m != nil {
		return m[1]
	}
	return ""
}

// runBinary runs a libFuzzer binary for runs inputs on a copy of its seed
// corpus (BIN_seed_corpus.zip), with BIN.dict if there is one, and a fixed
// seed. It returns libFuzzer's closing line and its whole output; on a
// crash, an ErrCrash error with the output and the path of the crashing
// input, which is also returned as the output's "Test unit written to".
func runBinary(bin string, runs int, artifacts string) (summary, output string, err error) {
	corpus, err := os.MkdirTemp("", filepath.Base(bin)+"-corpus-")
	if err != nil {
		return "", "", err
	}
	defer os.RemoveAll(corpus)
	if err := unzipSeeds(bin+"_seed_corpus.zip", corpus); err != nil {
		return "", "", err
	}
	art, err := filepath.Abs(artifacts)
	if err != nil {
		return "", "", err
	}
	args := []string{fmt.Sprintf("-runs=%d", runs), "-seed=1", "-artifact_prefix=" + art + "/" + filepath.Base(bin) + "-"}
	if _, err := os.Stat(bin + ".dict"); err == nil {
		args = append(args, "-dict="+bin+".dict")
	}
	args = append(args, corpus)
	cmd := exec.Command(bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		crash := crashFile(out.String())
		return "", out.String(), fmt.Errorf("%s %s: %w (%v), crashing input: %s\n%s", bin, strings.Join(args, " "), ErrCrash, err, crash, out.Bytes())
	}
	line := doneLine.Find(out.Bytes())
	if line == nil {
		return "", out.String(), fmt.Errorf("%s: no %q line in libFuzzer's output:\n%s", bin, "Done N runs", out.Bytes())
	}
	return string(line), out.String(), nil
}

// unzipSeeds extracts a seed corpus zip (flat, as the builder writes it)
// into dir; a missing zip is an empty corpus.
func unzipSeeds(zipPath, dir string) error {
	zr, err := zip.OpenReader(zipPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer zr.Close()
	for _, f := range zr.File {
		if f.FileInfo().IsDir() {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return err
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f.Name)), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
