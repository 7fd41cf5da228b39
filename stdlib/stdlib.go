package stdlib

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/starbook/starbook/buildinfo"
	sbruntime "github.com/starbook/starbook/runtime"
)

//go:embed std/*.star
var embedded embed.FS

// Std is the standard library's name in a load: load("@std/k8s.star", ...).
const Std = "@std"

// EnvDir is the environment variable that serves @std from a directory.
const EnvDir = "STARBOOK_STD_DIR"

// Set is the libraries known by name ("@std", "@team"), each a tree of
// .star files. Its methods are safe for concurrent use.
type Set struct {
	libs map[string]fs.FS
	// fixed are the libraries whose files cannot change (embedded): their
	// release is computed once. A directory's is computed at each call, so
	// that a module changed under a running node is a new release.
	fixed    map[string]bool
	mu       sync.Mutex
	releases map[string]string
}

// Embedded returns the standard library built into this binary.
func Embedded() fs.FS {
	sub, err := fs.Sub(embedded, "std")
	if err != nil {
		panic(err) // fixed at build time
	}
	return sub
}

// Default returns the set with @std only: the embedded modules, or those of
// the directory $STARBOOK_STD_DIR names.
func Default(getenv func(string) string) (*Set, error) {
	s := NewSet()
	std := Embedded()
	if dir := getenv(EnvDir); dir != "" {
		st, err := os.Stat(dir)
		if err != nil || !st.IsDir() {
			return nil, fmt.Errorf("%s=%s: not a directory", EnvDir, dir)
		}
		std = os.DirFS(dir)
	} else {
		s.fixed[Std] = true
	}
	if err := s.Add(Std, std); err != nil {
		return nil, err
	}
	return s, nil
}

// NewSet returns an empty set.
func NewSet() *Set {
	return &Set{libs: map[string]fs.FS{}, fixed: map[string]bool{}, releases: map[string]string{}}
}

// Add adds library name ("@team") with its files.
func (s *Set) Add(name string, files fs.FS) error {
	if !strings.HasPrefix(name, "@") || !sbruntime.ValidLibraryName(name[1:]) {
		return fmt.Errorf("library %q: a library is @ and a lower-case name (@std, @team)", name)
	}
	if _, dup := s.libs[name]; dup {
		return fmt.Errorf("library %s is given twice", name)
	}
	s.libs[name] = files
	return nil
}

// AddDir adds the library a --lib flag gives: "team=DIR" (or "@team=DIR").
// @std cannot be replaced this way.
func (s *Set) AddDir(spec string) error {
	name, dir, ok := strings.Cut(spec, "=")
	if !ok || name == "" || dir == "" {
		return fmt.Errorf("--lib %q: want NAME=DIR", spec)
	}
	if !strings.HasPrefix(name, "@") {
		name = "@" + name
	}
	if name == Std {
		return fmt.Errorf("--lib %q: @std is starbook's own library (%s serves it from a directory)", spec, EnvDir)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("--lib %q: %s is not a directory", spec, dir)
	}
	return s.Add(name, os.DirFS(dir))
}

// Names lists the libraries, sorted.
func (s *Set) Names() []string {
	if s == nil {
		return nil
	}
	names := make([]string, 0, len(s.libs))
	for n := range s.libs {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Has reports whether s holds library lib ("@std").
func (s *Set) Has(lib string) bool {
	if s == nil {
		return false
	}
	_, ok := s.libs[lib]
	return ok
}

// Module returns the source of a library module by its bundle file name
// ("@std/k8s.star", as runtime.ResolveLoad names it).
func (s *Set) Module(file string) (string, error) {
	lib, rest, ok := strings.Cut(file, "/")
	if !ok || !strings.HasPrefix(lib, "@") {
		return "", fmt.Errorf("%s: not a library module (@LIBRARY/FILE.star)", file)
	}
	files, ok := s.lib(lib)
	if !ok {
		return "", fmt.Errorf("no library %s here (there is %s; a team's library is given with --lib NAME=DIR)", lib, strings.Join(s.Names(), ", "))
	}
	src, err := fs.ReadFile(files, rest)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("library %s has no module %s (it has %s)", lib, rest, strings.Join(s.modules(lib), ", "))
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", file, err)
	}
	return string(src), nil
}

func (s *Set) lib(name string) (fs.FS, bool) {
	if s == nil {
		return nil, false
	}
	f, ok := s.libs[name]
	return f, ok
}

// Files returns every module of library lib by bundle file name
// ("@team/payments.star" -> source): what `apply --lib` sends.
func (s *Set) Files(lib string) (map[string]string, error) {
	files, ok := s.lib(lib)
	if !ok {
		return nil, fmt.Errorf("no library %s", lib)
	}
	out := map[string]string{}
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".star") {
			return nil
		}
		src, err := fs.ReadFile(files, p)
		if err != nil {
			return err
		}
		out[lib+"/"+p] = string(src)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("library %s: %w", lib, err)
	}
	return out, nil
}

// modules lists the module files of lib (tests excluded), for an error.
func (s *Set) modules(lib string) []string {
	files, err := s.Files(lib)
	if err != nil {
		return nil
	}
	var out []string
	for name := range files {
		if !strings.HasSuffix(name, "_test.star") {
			out = append(out, strings.TrimPrefix(name, lib+"/"))
		}
	}
	slices.Sort(out)
	return out
}

// Release names the release of library lib: for @std, this binary's version
// and a hash of the modules' sources ("v1.4.0+3f2a9c01b7de", "dev+..."); for
// another, the hash. A bundle records it for each library it holds modules
// of.
func (s *Set) Release(lib string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.releases[lib]; ok {
		return r
	}
	files, err := s.Files(lib)
	if err != nil {
		return ""
	}
	r := sbruntime.BundleVersion(files) // the hash a bundle of these files would have
	if lib == Std {
		v := buildinfo.Read().Version
		if v == "" || v == "(devel)" {
			v = "dev"
		}
		r = path.Clean(v) + "+" + r
	}
	if s.fixed[lib] {
		s.releases[lib] = r
	}
	return r
}
