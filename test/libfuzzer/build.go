package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/template"
)

// shimPath is the package that the rewritten test files import as
// "testing".
const shimPath = "github.com/ovsxdp/ovsxdp/test/libfuzzer/shim"

// entryPath is the cgo package that exports the libFuzzer entry points.
const entryPath = "github.com/ovsxdp/ovsxdp/test/libfuzzer/entry"

// ErrNoClang reports that no clang is installed to link the binaries.
var ErrNoClang = errors.New("no clang found (Debian: apt-get install clang-14 libclang-rt-14-dev)")

// srcFile is a parsed test file and the names it declares and uses.
type srcFile struct {
	name  string // base name
	path  string
	src   []byte
	fset  *token.FileSet
	ast   *ast.File
	decls []string        // top-level names other than methods
	types []string        // top-level type names
	recvs []string        // receiver type names of its methods
	refs  map[string]bool // every identifier in it
}

func loadFiles(dir string, names []string) ([]*srcFile, error) {
	var out []*srcFile
	for _, n := range names {
		sf := &srcFile{name: n, path: filepath.Join(dir, n), fset: token.NewFileSet(), refs: map[string]bool{}}
		var err error
		if sf.src, err = os.ReadFile(sf.path); err != nil {
			return nil, err
		}
		if sf.ast, err = parser.ParseFile(sf.fset, sf.path, sf.src, parser.ParseComments|parser.SkipObjectResolution); err != nil {
			return nil, err
		}
		for _, d := range sf.ast.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil {
					sf.decls = append(sf.decls, d.Name.Name)
				} else if len(d.Recv.List) == 1 {
					sf.recvs = append(sf.recvs, recvType(d.Recv.List[0].Type))
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						sf.decls = append(sf.decls, s.Name.Name)
						sf.types = append(sf.types, s.Name.Name)
					case *ast.ValueSpec:
						for _, n := range s.Names {
							sf.decls = append(sf.decls, n.Name)
						}
					}
				}
			}
		}
		ast.Inspect(sf.ast, func(n ast.Node) bool {
			if id, ok := n.(*ast.Ident); ok {
				sf.refs[id.Name] = true
			}
			return true
		})
		out = append(out, sf)
	}
	return out, nil
}

// recvType is the type name of a method receiver: T, *T, T[P], *T[P].
func recvType(e ast.Expr) string {
	for {
		switch x := e.(type) {
		case *ast.StarExpr:
			e = x.X
		case *ast.IndexExpr:
			e = x.X
		case *ast.IndexListExpr:
			e = x.X
		case *ast.ParenExpr:
			e = x.X
		case *ast.Ident:
			return x.Name
		default:
			return ""
		}
	}
}

// fuzzFiles lists the files that declare fuzz targets. All the targets of
// a package get the files all of them need, so that the package compiles
// once (go build's cache) for all its targets.
func fuzzFiles(set []*srcFile) []*srcFile {
	var out []*srcFile
	for _, f := range set {
		if len(fuzzFuncs(f.ast)) > 0 {
			out = append(out, f)
		}
	}
	return out
}

// closure returns the files of set that start needs: start itself, the
// files declaring a name that an included file uses (or that refs lists),
// and the files with methods of an included type, until nothing changes.
// A name used only as a field or a local is taken for a top-level one, so
// it may include a file too many, never one too few, except for a file
// needed only for its init functions.
func closure(set []*srcFile, start []*srcFile, refs map[string]bool) []*srcFile {
	declBy := map[string][]*srcFile{}
	methodsOf := map[string][]*srcFile{}
	for _, f := range set {
		for _, d := range f.decls {
			declBy[d] = append(declBy[d], f)
		}
		for _, r := range f.recvs {
			methodsOf[r] = append(methodsOf[r], f)
		}
	}
	in := map[*srcFile]bool{}
	var queue []*srcFile
	add := func(fs []*srcFile) {
		for _, f := range fs {
			if !in[f] {
				in[f] = true
				queue = append(queue, f)
			}
		}
	}
	useNames := func(names map[string]bool) {
		for n := range names {
			add(declBy[n])
		}
	}
	add(start)
	useNames(refs)
	for len(queue) > 0 {
		f := queue[0]
		queue = queue[1:]
		useNames(f.refs)
		for _, t := range f.types {
			add(methodsOf[t])
		}
	}
	var out []*srcFile
	for _, f := range set { // keep go list's order
		if in[f] {
			out = append(out, f)
		}
	}
	return out
}

// rewrite turns a test file into an ordinary source file whose "testing"
// import is the shim. A //line comment keeps positions in panics and
// compiler errors pointing at the test file.
func rewrite(sf *srcFile) []byte {
	src := sf.src
	for _, im := range sf.ast.Imports {
		if p, _ := strconv.Unquote(im.Path.Value); p != "testing" {
			continue
		}
		start := sf.fset.Position(im.Path.Pos()).Offset
		end := sf.fset.Position(im.Path.End()).Offset
		repl := strconv.Quote(shimPath)
		if im.Name == nil {
			repl = "testing " + repl
		}
		src = append(append(append([]byte{}, src[:start]...), repl...), src[end:]...)
		break
	}
	return append([]byte("//line "+sf.path+":1\n"), src...)
}

// overlayName is the name a rewritten test file gets: foo_test.go becomes
// foo_libfuzzer.go, which go build compiles into the package.
func overlayName(testFile string) string {
	return strings.TrimSuffix(testFile, "_test.go") + "_libfuzzer.go"
}

var mainTemplate = template.Must(template.New("main").Parse(`// Code generated by test/libfuzzer for {{.Import}}.{{.Func}}. DO NOT EDIT.

package main

import (
	"{{.Entry}}"
	"{{.Shim}}"
	target "{{.Import}}"
)

var _ = entry.Register(shim.NewHarness({{printf "%q" .Name}}, {{printf "%q" .SrcDir}}, target.{{.Func}}))

func main() {}
`))

// overlay builds the go build -overlay map of a target: its package's test
// files that the target needs, rewritten, and a main package in a new
// directory under the package's (so that internal imports stay legal). It
// writes the files into work and returns the main package's directory.
func overlay(t *target, work string) (mainDir string, replace map[string]string, err error) {
	replace = map[string]string{}
	put := func(path string, content []byte) error {
		name := filepath.Join(work, fmt.Sprintf("%03d_%s", len(replace), filepath.Base(path)))
		if err := os.WriteFile(name, content, 0o644); err != nil {
			return err
		}
		replace[path] = name
		return nil
	}
	internal, err := loadFiles(t.pkg.Dir, t.pkg.TestGoFiles)
	if err != nil {
		return "", nil, err
	}
	importPath := t.pkg.ImportPath
	var need []*srcFile
	if !t.xtest {
		need = closure(internal, fuzzFiles(internal), nil)
	} else {
		external, err := loadFiles(t.pkg.Dir, t.pkg.XTestGoFiles)
		if err != nil {
			return "", nil, err
		}
		xneed := closure(external, fuzzFiles(external), nil)
		refs := map[string]bool{}
		for _, f := range xneed {
			for r := range f.refs {
				refs[r] = true
			}
		}
		need = closure(internal, nil, refs)
		xdir := filepath.Join(t.pkg.Dir, "zz_libfuzzer_xtest")
		for _, f := range xneed {
			if err := put(filepath.Join(xdir, overlayName(f.name)), rewrite(f)); err != nil {
				return "", nil, err
			}
		}
		importPath += "/zz_libfuzzer_xtest"
	}
	for _, f := range need {
		if err := put(filepath.Join(t.pkg.Dir, overlayName(f.name)), rewrite(f)); err != nil {
			return "", nil, err
		}
	}
	var buf bytes.Buffer
	err = mainTemplate.Execute(&buf, map[string]string{
		"Import": importPath, "Func": t.name, "Name": t.binName(), "SrcDir": t.pkg.Dir, "Shim": shimPath, "Entry": entryPath,
	})
	if err != nil {
		return "", nil, err
	}
	mainDir = filepath.Join(t.pkg.Dir, "zz_libfuzzer_main_"+t.name)
	if err := put(filepath.Join(mainDir, "main.go"), buf.Bytes()); err != nil {
		return "", nil, err
	}
	return mainDir, replace, nil
}

// linker is the command that links a C archive into a libFuzzer binary.
type linker struct {
	cmd  string
	args []string // before the archive
}

// findLinker picks the link command. Under OSS-Fuzz and ClusterFuzzLite
// ($LIB_FUZZING_ENGINE set) it is $CXX $CXXFLAGS $LIB_FUZZING_ENGINE, as
// their build scripts link; else cc (or the first clang in PATH) with
// -fsanitize=fuzzer.
func findLinker(cc string) (*linker, error) {
	if engine := os.Getenv("LIB_FUZZING_ENGINE"); engine != "" && cc == "" {
		cxx := os.Getenv("CXX")
		if cxx == "" {
			cxx = "clang++"
		}
		args := append(strings.Fields(os.Getenv("CXXFLAGS")), strings.Fields(engine)...)
		return &linker{cmd: cxx, args: args}, nil
	}
	if cc == "" {
		for _, c := range clangNames() {
			if _, err := exec.LookPath(c); err == nil {
				cc = c
				break
			}
		}
		if cc == "" {
			return nil, ErrNoClang
		}
	}
	return &linker{cmd: cc, args: []string{"-fsanitize=fuzzer"}}, nil
}

// clangNames are the names clang is installed under, unversioned first,
// then Debian's versioned ones, newest first.
func clangNames() []string {
	names := []string{"clang"}
	for v := 21; v >= 14; v-- {
		names = append(names, "clang-"+strconv.Itoa(v))
	}
	return names
}

// buildOptions are the build subcommand's settings.
type buildOptions struct {
	modDir string
	out    string
	work   string
	link   *linker
	bundle bool
	log    func(format string, args ...any)
}

// buildTarget builds one target's binary, seed corpus, dictionary and
// testdata bundle into o.out.
func buildTarget(o *buildOptions, t *target) error {
	work, err := os.MkdirTemp(o.work, t.binName()+"-")
	if err != nil {
		return err
	}
	mainDir, replace, err := overlay(t, work)
	if err != nil {
		return fmt.Errorf("%s: %w", t.binName(), err)
	}
	ovPath := filepath.Join(work, "overlay.json")
	if err := writeOverlay(ovPath, replace); err != nil {
		return err
	}
	rel, err := filepath.Rel(o.modDir, mainDir)
	if err != nil {
		return err
	}
	// Test helpers of the module (test/testenv and the like) take a
	// testing.TB: their "testing" becomes the shim too.
	if err := overlayHelpers(o.modDir, "./"+filepath.ToSlash(rel), t.pkg.ImportPath, ovPath, replace, work); err != nil {
		return fmt.Errorf("%s: %w", t.binName(), err)
	}
	archive := filepath.Join(work, t.binName()+".a")
	bin := filepath.Join(o.out, t.binName())
	goBuild := exec.Command("go", "build", "-overlay", ovPath, "-buildmode=c-archive",
		"-gcflags=all=-d=libfuzzer", "-tags=libfuzzer", "-o", archive, "./"+filepath.ToSlash(rel))
	goBuild.Dir = o.modDir
	goBuild.Env = append(os.Environ(), "CGO_ENABLED=1")
	if err := run(goBuild); err != nil {
		return fmt.Errorf("%s: %w", t.binName(), err)
	}
	link := exec.Command(o.link.cmd, append(append(append([]string{}, o.link.args...), archive), "-lpthread", "-o", bin)...)
	if err := run(link); err != nil {
		return fmt.Errorf("%s: link: %w", t.binName(), err)
	}
	n, err := writeSeedCorpus(t, bin, work, filepath.Join(o.out, t.binName()+"_seed_corpus.zip"))
	if err != nil {
		return fmt.Errorf("%s: seed corpus: %w", t.binName(), err)
	}
	dict := filepath.Join(o.modDir, "test", "libfuzzer", "dict", t.binName()+".dict")
	if b, err := os.ReadFile(dict); err == nil {
		if err := os.WriteFile(filepath.Join(o.out, t.binName()+".dict"), b, 0o644); err != nil {
			return err
		}
	}
	if o.bundle {
		if err := bundleTestdata(t.pkg.Dir, bin+".pkg"); err != nil {
			return fmt.Errorf("%s: testdata: %w", t.binName(), err)
		}
	}
	o.log("built %s (%s.%s, %d seeds)", bin, t.pkg.ImportPath, t.name, n)
	return nil
}

// run runs cmd and returns its output with the error when it fails.
func run(cmd *exec.Cmd) error {
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return nil
}

// bundleTestdata copies the package's testdata, but for testdata/fuzz (the
// seed corpus is in the zip), to dst/testdata, where the harness runs the
// target's setup when the sources are not there (ClusterFuzzLite's runner).
// A package without other testdata gets nothing.
func bundleTestdata(pkgDir, dst string) error {
	src := filepath.Join(pkgDir, "testdata")
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	return filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if errors.Is(err, os.ErrNotExist) && path == src {
			return filepath.SkipDir
		}
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(pkgDir, path)
		if d.IsDir() {
			if rel == filepath.Join("testdata", "fuzz") {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o644)
	})
}

func writeOverlay(path string, replace map[string]string) error {
	ov, err := json.Marshal(map[string]any{"Replace": replace})
	if err != nil {
		return err
	}
	return os.WriteFile(path, ov, 0o644)
}

// overlayHelpers adds to the overlay the non-test files of the main
// module's other packages in the build that import "testing", rewritten
// to import the shim, and writes the overlay again.
func overlayHelpers(modDir, mainPkg, targetPkg, ovPath string, replace map[string]string, work string) error {
	cmd := exec.Command("go", "list", "-deps", "-overlay", ovPath, "-tags=libfuzzer",
		"-f", "{{if .Module}}{{if .Module.Main}}{{.ImportPath}}\t{{.Dir}}\t{{join .GoFiles \" \"}}\t{{join .Imports \" \"}}{{end}}{{end}}", mainPkg)
	cmd.Dir = modDir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("go list -deps: %w\n%s", err, stderr.Bytes())
	}
	changed := false
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 4 || f[0] == targetPkg || f[0] == shimPath || !slices.Contains(strings.Fields(f[3]), "testing") {
			continue
		}
		files, err := loadFiles(f[1], strings.Fields(f[2]))
		if err != nil {
			return err
		}
		for _, sf := range files {
			if testingName(sf.ast) == "" {
				continue
			}
			if _, done := replace[sf.path]; done {
				continue
			}
			name := filepath.Join(work, fmt.Sprintf("%03d_%s", len(replace), sf.name))
			if err := os.WriteFile(name, rewrite(sf), 0o644); err != nil {
				return err
			}
			replace[sf.path] = name
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return writeOverlay(ovPath, replace)
}
