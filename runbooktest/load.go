package runbooktest

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"go.starlark.net/syntax"

	sbruntime "github.com/starbook/starbook/runtime"
)

// Libraries is where library modules come from (a *stdlib.Set).
type Libraries interface {
	// Module returns the source of a module by bundle file name ("@std/k8s.star").
	Module(file string) (string, error)
}

// LoadBundle reads the runbook in file name (a '/'-separated path relative
// to the directory root) and every file it loads, transitively, into a
// bundle whose file names are relative to root, as `starbook apply root`
// would name them. It loads no library module: see LoadBundleFrom.
func LoadBundle(root, name string) (*sbruntime.Bundle, error) {
	return LoadBundleFrom(root, name, nil)
}

// readModule reads the file a bundle names: a library module from libs,
// another from under root.
func readModule(root, name string, libs Libraries) ([]byte, error) {
	if lib, ok := sbruntime.LibraryOf(name); ok {
		if libs == nil {
			return nil, fmt.Errorf("no library %s here", lib)
		}
		src, err := libs.Module(name)
		return []byte(src), err
	}
	return os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
}

// LoadBundleFrom is LoadBundle with the library modules the runbook loads,
// transitively, read from libs.
func LoadBundleFrom(root, name string, libs Libraries) (*sbruntime.Bundle, error) {
	name = path.Clean(name)
	if !strings.HasSuffix(name, ".star") || strings.HasSuffix(name, "_test.star") {
		return nil, fmt.Errorf("%s: a runbook is a .star file (not *_test.star)", name)
	}
	files := map[string]string{}
	var read func(name string) error
	read = func(name string) error {
		if _, done := files[name]; done {
			return nil
		}
		if strings.HasPrefix(name, "../") || name == ".." || path.IsAbs(name) {
			return fmt.Errorf("%s: outside %s", name, root)
		}
		src, err := readModule(root, name, libs)
		if err != nil {
			return err
		}
		files[name] = string(src)
		f, err := sbruntime.FileOptions.Parse(name, src, 0)
		if err != nil {
			return err
		}
		for _, st := range f.Stmts {
			load, ok := st.(*syntax.LoadStmt)
			if !ok {
				continue
			}
			target, err := sbruntime.ResolveLoad(name, load.ModuleName(), nil)
			if err != nil {
				pos, _ := load.Span()
				return fmt.Errorf("%s: %w", pos, err)
			}
			if err := read(target); err != nil {
				if _, lib := sbruntime.LibraryOf(target); lib {
					pos, _ := load.Span()
					return fmt.Errorf("%s: load %q: %w", pos, load.ModuleName(), err)
				}
				return err
			}
		}
		return nil
	}
	if err := read(name); err != nil {
		return nil, err
	}
	return &sbruntime.Bundle{Name: strings.TrimSuffix(path.Base(name), ".star"), Main: name, Files: files,
		Version: sbruntime.BundleVersion(files)}, nil
}

// LoadFile reads the runbook at a file path: LoadBundle with root its
// directory.
func LoadFile(file string) (*sbruntime.Bundle, error) {
	return LoadBundle(filepath.Dir(file), filepath.Base(file))
}
