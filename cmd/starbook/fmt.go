package main

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pmezard/go-difflib/difflib"
	"github.com/spf13/cobra"

	"github.com/starbook/starbook/starfmt"
)

var fmtCmd = func() *cobra.Command {
	var write, diff, check bool
	cmd := &cobra.Command{
		Use:   "fmt [-w] [-d] [--check] [PATH...]",
		Short: "Format .star files as buildifier does",
		Long: `Fmt formats Starlark files (runbooks, their tests, policies, library
modules) with bazelbuild/buildtools' printer, the one buildifier uses for
.star files: four-space indents, one element per line in a list that does
not fit or was split, double quotes, sorted load() symbols. Formatting only
moves whitespace, quotes and commas; it never changes what a runbook does.

PATH... defaults to "."; a directory is walked for *.star files, skipping
hidden and testdata directories unless PATH names them. With one file and
no flag, the formatted file is printed to stdout, like gofmt.

  -w        write the formatted files in place (temp file and rename,
            keeping the mode); unchanged files are not touched
  -d        print a unified diff of each file that would change
  --check   list the files that are not formatted and exit 1 if any

A file that does not parse is refused with "file:line:col: message" and
left untouched; the exit status is then 1.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{"."}
			}
			files, err := starFiles(args)
			if err != nil {
				return err
			}
			if !write && !diff && !check && len(files) != 1 {
				return fmt.Errorf("fmt prints one file; with %d, use -w, -d or --check", len(files))
			}
			out := cmd.OutOrStdout()
			var bad, unformatted int
			for _, name := range files {
				changed, err := fmtFile(out, name, write, diff, check)
				if err != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), err)
					bad++
					continue
				}
				if changed {
					unformatted++
				}
			}
			switch {
			case bad > 0:
				return fmt.Errorf("%s refused: does not parse", count(bad, "file"))
			case check && unformatted > 0:
				return fmt.Errorf("%s not formatted", count(unformatted, "file"))
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&write, "write", "w", false, "write the formatted files in place")
	cmd.Flags().BoolVarP(&diff, "diff", "d", false, "print a unified diff of the changes")
	cmd.Flags().BoolVar(&check, "check", false, "list unformatted files; exit 1 if any")
	return cmd
}()

func init() { rootCmd.AddCommand(fmtCmd) }

// fmtFile formats one file as the flags say and reports whether it was not
// formatted already.
func fmtFile(out io.Writer, name string, write, diff, check bool) (bool, error) {
	src, err := os.ReadFile(name)
	if err != nil {
		return false, err
	}
	res, err := starfmt.Format(name, src)
	if err != nil {
		return false, err
	}
	changed := !bytes.Equal(src, res)
	if !write && !diff && !check {
		_, err := out.Write(res)
		return changed, err
	}
	if !changed {
		return false, nil
	}
	if check {
		fmt.Fprintln(out, name)
	}
	if diff {
		d, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
			A: lines(src), B: lines(res),
			FromFile: name + ".orig", ToFile: name, Context: 3,
		})
		if err != nil {
			return true, fmt.Errorf("diff %s: %w", name, err)
		}
		fmt.Fprint(out, d)
	}
	if write {
		if err := writeAtomic(name, res); err != nil {
			return true, err
		}
	}
	return true, nil
}

// writeAtomic replaces name with data through a temp file in the same
// directory and a rename, so a reader never sees half a file; the file keeps
// its mode.
func writeAtomic(name string, data []byte) error {
	info, err := os.Stat(name)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".fmt*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename, a no-op
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := tmp.Chmod(info.Mode().Perm()); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// starFiles expands paths: a file is taken as named, a directory is walked
// for *.star files, skipping hidden and testdata directories below it.
func starFiles(paths []string) ([]string, error) {
	var files []string
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			files = append(files, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if path != p && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
					return filepath.SkipDir
				}
				return nil
			}
			if strings.HasSuffix(d.Name(), ".star") && d.Type().IsRegular() {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return files, nil
}

// lines splits src after each newline, as a unified diff wants its lines.
func lines(src []byte) []string {
	l := strings.SplitAfter(string(src), "\n")
	if l[len(l)-1] == "" {
		l = l[:len(l)-1]
	}
	return l
}
