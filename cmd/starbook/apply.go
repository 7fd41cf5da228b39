package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

var applyCmd = &cobra.Command{
	Use:   "apply PATH...",
	Short: "Store the runbooks in .star files and directories as new versions",
	Long: `Apply sends every runbook file found in PATH... to the server in one request;
the server stores them all or none.

A directory contributes each *.star file in it and in its subdirectories (not
hidden ones), keyed by its path relative to the directory. A file contributes
itself and the other *.star files beside it, keyed by base name, so that its
load() of a sibling resolves. *_test.star files found the same way are sent
too, so that policies can see which runbooks have tests (runbook.tests_present);
the server never stores them.

The server checks the runbooks as starbook check does and refuses them all
when it finds an error (each printed as file:line:col: message); warnings,
such as a secret not set on the node, are printed and do not refuse.`,
	Args: cobra.MinimumNArgs(1),
	RunE: func(cmd *cobra.Command, args []string) error {
		files, err := collectFiles(args)
		if err != nil {
			return err
		}
		c, err := newClient(cmd)
		if err != nil {
			return err
		}
		versions, err := c.Apply(cmd.Context(), files)
		if err != nil {
			return err
		}
		for _, v := range versions {
			state := "applied"
			if v.Unchanged {
				state = "unchanged"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s %s\n", state, v.Name, v.Version)
			for _, w := range v.Warnings {
				fmt.Fprintf(cmd.ErrOrStderr(), "starbook: %s\n", w)
			}
		}
		return nil
	},
}

func init() { rootCmd.AddCommand(applyCmd) }

// collectFiles reads the runbook files named by paths (see apply's help) into
// a map from '/'-separated name to source. Two different files that would get
// the same name are an error; the same file reached twice is not.
func collectFiles(paths []string) (map[string]string, error) {
	c := &collector{files: map[string]string{}, from: map[string]string{}}
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if info.IsDir() {
			err = c.addDir(p)
		} else {
			err = c.addFile(p)
		}
		if err != nil {
			return nil, err
		}
	}
	return c.files, nil
}

type collector struct {
	files map[string]string // name -> source
	from  map[string]string // name -> the file it was read from
}

// isRunbookFile reports whether a file named name is sent by apply.
func isRunbookFile(name string) bool {
	return strings.HasSuffix(name, ".star") && !strings.HasSuffix(name, "_test.star")
}

func (c *collector) addDir(root string) error {
	found := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(d.Name(), ".star") {
			return nil
		}
		if isRunbookFile(d.Name()) {
			found++
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		return c.add(filepath.ToSlash(rel), path)
	})
	if err != nil {
		return err
	}
	if found == 0 {
		return fmt.Errorf("%s: no .star files", root)
	}
	return nil
}

func (c *collector) addFile(path string) error {
	name := filepath.Base(path)
	switch {
	case !strings.HasSuffix(name, ".star"):
		return fmt.Errorf("%s: not a .star file", path)
	case !isRunbookFile(name):
		return fmt.Errorf("%s: test files (*_test.star) are not applied", path)
	}
	if err := c.add(name, path); err != nil {
		return err
	}
	dir := filepath.Dir(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".star") || e.Name() == name {
			continue
		}
		if err := c.add(e.Name(), filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// add reads path as the file called name. Only regular files (or links to
// them) are read.
func (c *collector) add(name, path string) error {
	if prev, ok := c.from[name]; ok {
		if samePath(prev, path) {
			return nil
		}
		return fmt.Errorf("%s and %s would both be applied as %s", prev, path, name)
	}
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		if info.IsDir() {
			return nil
		}
		return fmt.Errorf("%s: not a regular file", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	c.files[name], c.from[name] = string(b), path
	return nil
}

func samePath(a, b string) bool {
	aa, errA := filepath.Abs(a)
	ba, errB := filepath.Abs(b)
	return errors.Join(errA, errB) == nil && aa == ba
}
