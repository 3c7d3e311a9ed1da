package main

import (
	"archive/zip"
	"bytes"
	"crypto/sha1"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/ovsxdp/ovsxdp/test/libfuzzer/shim"
)

// ErrCorpus reports a go test corpus file that cannot be read back.
var ErrCorpus = errors.New("bad corpus file")

const corpusHeader = "go test fuzz v1"

// parseCorpusFile reads a go test corpus file ("go test fuzz v1" and one
// Go expression a line, e.g. []byte("\x01"), uint8(8), math.Float64frombits(0x7ff8000000000001))
// into typed values.
func parseCorpusFile(b []byte) ([]any, error) {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) == 0 || strings.TrimSpace(lines[0]) != corpusHeader {
		return nil, fmt.Errorf("first line is not %q: %w", corpusHeader, ErrCorpus)
	}
	var vals []any
	for i, l := range lines[1:] {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		v, err := parseCorpusValue(l)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+2, err)
		}
		vals = append(vals, v)
	}
	return vals, nil
}

func parseCorpusValue(s string) (any, error) {
	e, err := parser.ParseExpr(s)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", s, ErrCorpus)
	}
	call, ok := e.(*ast.CallExpr)
	if !ok || len(call.Args) != 1 {
		return nil, fmt.Errorf("%q: not T(value): %w", s, ErrCorpus)
	}
	typ := exprString(call.Fun)
	arg := call.Args[0]
	switch typ {
	case "[]byte", "string":
		lit, ok := arg.(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return nil, fmt.Errorf("%q: %w", s, ErrCorpus)
		}
		str, err := strconv.Unquote(lit.Value)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", s, ErrCorpus)
		}
		if typ == "string" {
			return str, nil
		}
		return []byte(str), nil
	case "bool":
		id, ok := arg.(*ast.Ident)
		if !ok || (id.Name != "true" && id.Name != "false") {
			return nil, fmt.Errorf("%q: %w", s, ErrCorpus)
		}
		return id.Name == "true", nil
	case "math.Float64frombits", "math.Float32frombits":
		u, err := strconv.ParseUint(exprString(arg), 0, 64)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", s, ErrCorpus)
		}
		if typ == "math.Float32frombits" {
			return math.Float32frombits(uint32(u)), nil
		}
		return math.Float64frombits(u), nil
	case "float32", "float64":
		f, err := strconv.ParseFloat(exprString(arg), 64)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", s, ErrCorpus)
		}
		if typ == "float32" {
			return float32(f), nil
		}
		return f, nil
	}
	// Integers: a (possibly negative) integer or a character literal.
	text := exprString(arg)
	var n int64
	var u uint64
	var neg bool
	if lit, ok := arg.(*ast.BasicLit); ok && lit.Kind == token.CHAR {
		r, _, tail, err := strconv.UnquoteChar(lit.Value[1:len(lit.Value)-1], '\'')
		if err != nil || tail != "" {
			return nil, fmt.Errorf("%q: %w", s, ErrCorpus)
		}
		u = uint64(r)
		n = int64(u)
	} else if strings.HasPrefix(text, "-") {
		if n, err = strconv.ParseInt(text, 0, 64); err != nil {
			return nil, fmt.Errorf("%q: %w", s, ErrCorpus)
		}
		neg = true
	} else {
		if u, err = strconv.ParseUint(text, 0, 64); err != nil {
			return nil, fmt.Errorf("%q: %w", s, ErrCorpus)
		}
		n = int64(u)
	}
	switch typ {
	case "int":
		return int(n), nil
	case "int8":
		return int8(n), nil
	case "int16":
		return int16(n), nil
	case "int32", "rune":
		return int32(n), nil
	case "int64":
		return n, nil
	}
	if neg {
		return nil, fmt.Errorf("%q: negative unsigned: %w", s, ErrCorpus)
	}
	switch typ {
	case "uint":
		return uint(u), nil
	case "uint8", "byte":
		return uint8(u), nil
	case "uint16":
		return uint16(u), nil
	case "uint32":
		return uint32(u), nil
	case "uint64":
		return u, nil
	}
	return nil, fmt.Errorf("%q: type %s: %w", s, typ, ErrCorpus)
}

func exprString(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.Ident:
		return x.Name
	case *ast.BasicLit:
		return x.Value
	case *ast.SelectorExpr:
		return exprString(x.X) + "." + x.Sel.Name
	case *ast.ArrayType:
		if x.Len == nil {
			return "[]" + exprString(x.Elt)
		}
	case *ast.UnaryExpr:
		if x.Op == token.SUB {
			return "-" + exprString(x.X)
		}
	case *ast.ParenExpr:
		return exprString(x.X)
	}
	return ""
}

// typeName is the reflect name of a corpus value's type, as the harness
// writes them to its types file.
func typeName(v any) string {
	if _, ok := v.([]byte); ok {
		return "[]uint8"
	}
	return fmt.Sprintf("%T", v)
}

// writeSeedCorpus collects a target's seeds, the f.Add ones (the binary
// writes them) and those of testdata/fuzz/FuzzX, into a zip of raw
// libFuzzer inputs, one entry per distinct input. It returns the count.
func writeSeedCorpus(t *target, bin, work, zipPath string) (int, error) {
	dir := filepath.Join(work, "seeds")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	cmd := exec.Command(bin)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), shim.EnvSeeds+"="+dir)
	if err := run(cmd); err != nil {
		return 0, err
	}
	types, err := os.ReadFile(filepath.Join(dir, shim.TypesFile))
	if err != nil {
		return 0, err
	}
	want := strings.Fields(string(types))
	corpusDir := filepath.Join(t.pkg.Dir, "testdata", "fuzz", t.name)
	ents, err := os.ReadDir(corpusDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(corpusDir, e.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			return 0, err
		}
		vals, err := parseCorpusFile(b)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
		var got []string
		for _, v := range vals {
			got = append(got, typeName(v))
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			return 0, fmt.Errorf("%s: values (%s), the fuzz function takes (%s): %w", path, strings.Join(got, ", "), strings.Join(want, ", "), ErrCorpus)
		}
		in, err := shim.Encode(vals)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%x", sha1.Sum(in))), in, 0o644); err != nil {
			return 0, err
		}
	}
	return zipDir(dir, zipPath, shim.TypesFile)
}

// zipDir writes the regular files of dir, but skip, into a zip, sorted by
// name with no timestamps so that the same seeds give the same zip.
func zipDir(dir, zipPath, skip string) (int, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	n := 0
	for _, e := range ents {
		if e.Name() == skip || !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return 0, err
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e.Name(), Method: zip.Deflate})
		if err != nil {
			return 0, err
		}
		if _, err := w.Write(b); err != nil {
			return 0, err
		}
		n++
	}
	if err := zw.Close(); err != nil {
		return 0, err
	}
	return n, os.WriteFile(zipPath, buf.Bytes(), 0o644)
}
