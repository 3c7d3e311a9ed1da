package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// A target is one func FuzzX(f *testing.F) of a package.
type target struct {
	pkg   *goPackage
	name  string // FuzzX
	file  string // the test file that declares it
	xtest bool   // declared in the external test package (package p_test)
}

// binName is the name of the target's libFuzzer binary: the package's last
// path element and the function, e.g. openflow_FuzzDecode.
func (t *target) binName() string {
	return filepath.Base(t.pkg.ImportPath) + "_" + t.name
}

// goPackage is what go list says of a package.
type goPackage struct {
	Dir          string
	ImportPath   string
	Name         string
	TestGoFiles  []string
	XTestGoFiles []string
	Error        *struct{ Err string }
}

// ErrNoTarget reports a pattern that names no fuzz target.
var ErrNoTarget = errors.New("no fuzz target")

// listPackages runs go list on the patterns in dir.
func listPackages(dir string, patterns []string) ([]*goPackage, error) {
	args := append([]string{"list", "-e", "-json=Dir,ImportPath,Name,TestGoFiles,XTestGoFiles,Error"}, patterns...)
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %w\n%s", err, stderr.Bytes())
	}
	var pkgs []*goPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		p := &goPackage{}
		if err := dec.Decode(p); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("go list output: %w", err)
		}
		if p.Error != nil {
			return nil, fmt.Errorf("go list %s: %s", p.ImportPath, p.Error.Err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}

// findTargets returns the fuzz targets of the packages, in package and
// source order.
func findTargets(pkgs []*goPackage) ([]*target, error) {
	var out []*target
	for _, p := range pkgs {
		for _, set := range []struct {
			files []string
			xtest bool
		}{{p.TestGoFiles, false}, {p.XTestGoFiles, true}} {
			for _, name := range set.files {
				fset := token.NewFileSet()
				f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, parser.SkipObjectResolution)
				if err != nil {
					return nil, err
				}
				for _, fn := range fuzzFuncs(f) {
					out = append(out, &target{pkg: p, name: fn, file: name, xtest: set.xtest})
				}
			}
		}
	}
	return out, nil
}

// fuzzFuncs lists the func FuzzX(f *testing.F) declarations of a file.
func fuzzFuncs(f *ast.File) []string {
	tname := testingName(f)
	if tname == "" {
		return nil
	}
	var out []string
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Recv != nil || !strings.HasPrefix(fd.Name.Name, "Fuzz") {
			continue
		}
		if r, _ := utf8.DecodeRuneInString(fd.Name.Name[len("Fuzz"):]); unicode.IsLower(r) {
			continue // FuzzyThing is not a fuzz target, as for go test
		}
		if fd.Type.TypeParams != nil || fd.Type.Results != nil || len(fd.Type.Params.List) != 1 || len(fd.Type.Params.List[0].Names) > 1 {
			continue
		}
		star, ok := fd.Type.Params.List[0].Type.(*ast.StarExpr)
		if !ok {
			continue
		}
		sel, ok := star.X.(*ast.SelectorExpr)
		if !ok || sel.Sel.Name != "F" {
			continue
		}
		if id, ok := sel.X.(*ast.Ident); ok && id.Name == tname {
			out = append(out, fd.Name.Name)
		}
	}
	return out
}

// testingName is the name under which a file imports "testing", "" if it
// does not.
func testingName(f *ast.File) string {
	for _, im := range f.Imports {
		if p, _ := strconv.Unquote(im.Path.Value); p == "testing" {
			if im.Name != nil {
				return im.Name.Name
			}
			return "testing"
		}
	}
	return ""
}

// parseMatch matches a command-line argument against the targets:
// PKG.FuzzName names one target (PKG an import path or a ./ path), anything
// else is a package pattern for go list.
func splitArg(arg string) (pattern, fuzz string) {
	base := arg[strings.LastIndex(arg, "/")+1:]
	if i := strings.LastIndex(base, "."); i >= 0 && strings.HasPrefix(base[i+1:], "Fuzz") {
		cut := len(arg) - len(base) + i
		return arg[:cut], arg[cut+1:]
	}
	return arg, ""
}

// selectTargets lists the targets the arguments name, in order, without
// duplicates.
func selectTargets(modDir string, args []string) ([]*target, error) {
	if len(args) == 0 {
		args = []string{"./..."}
	}
	seen := map[string]bool{}
	var out []*target
	for _, a := range args {
		pattern, fuzz := splitArg(a)
		pkgs, err := listPackages(modDir, []string{pattern})
		if err != nil {
			return nil, err
		}
		ts, err := findTargets(pkgs)
		if err != nil {
			return nil, err
		}
		n := 0
		for _, t := range ts {
			if fuzz != "" && t.name != fuzz {
				continue
			}
			n++
			key := t.pkg.ImportPath + "." + t.name
			if !seen[key] {
				seen[key] = true
				out = append(out, t)
			}
		}
		if n == 0 && (fuzz != "" || len(args) > 1 || pattern != "./...") {
			return nil, fmt.Errorf("%s: %w", a, ErrNoTarget)
		}
	}
	names := map[string]string{}
	for _, t := range out {
		if prev, ok := names[t.binName()]; ok {
			return nil, fmt.Errorf("%s.%s and %s have the same binary name %s", t.pkg.ImportPath, t.name, prev, t.binName())
		}
		names[t.binName()] = t.pkg.ImportPath + "." + t.name
	}
	return out, nil
}
