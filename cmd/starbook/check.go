package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"go.starlark.net/syntax"

	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/check"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/schema"
)

var checkCmd = func() *cobra.Command {
	var strict bool
	cmd := &cobra.Command{
		Use:   "check [PATH...]",
		Short: "Find what is wrong with runbooks before they run",
		Long: `Check reads runbooks as apply does (PATH... defaults to ".") and runs the
checks the server runs before it stores them: syntax and names, load()s,
main(event), trigger declarations, effects (http.*, slack.*) called outside
a step, durable calls inside one, unknown module members, reserved secret
names, input schemas (NAME.schema.json or input_schema = {...}), the
constant inputs *_test.star files give run(), and event.x reads of a field
the schema does not declare (a warning). It needs no server. A directory is
checked whole; a file with the files it load()s, its schema and its test
file, not the other files beside it.

Each finding is printed as "file:line:col: message". A secret("NAME") whose
NAME is not set in this environment is a warning: the nodes' environment is
what counts, and apply reports it from there. The exit status is 1 when an
error (with --strict, also a warning) was found.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{"."}
			}
			c := &collector{files: map[string]string{}, from: map[string]string{}, tests: true}
			for _, p := range args {
				info, err := os.Stat(p)
				if err != nil {
					return err
				}
				if info.IsDir() {
					err = c.addDir(p)
				} else {
					err = c.addLoaded(p)
				}
				if err != nil {
					return err
				}
			}
			libs, err := librariesOf(cmd)
			if err != nil {
				return err
			}
			res := check.Files(c.files, check.Options{Builtins: builtins.New(builtins.Options{}), LookupEnv: os.LookupEnv, Libraries: libs})
			out := cmd.OutOrStdout()
			errs, warnings := 0, 0
			for _, f := range res.Findings {
				if path, ok := c.from[f.File]; ok {
					f.File = path
				}
				fmt.Fprintln(out, f)
				if f.Severity == check.Warning {
					warnings++
				} else {
					errs++
				}
			}
			if errs > 0 || (strict && warnings > 0) {
				return fmt.Errorf("%s, %s", count(errs, "error"), count(warnings, "warning"))
			}
			names := make([]string, len(res.Bundles))
			for i, b := range res.Bundles {
				names[i] = b.Name
			}
			fmt.Fprintf(out, "ok: %s (%s), %s\n", count(len(names), "runbook"), strings.Join(names, ", "), count(warnings, "warning"))
			return nil
		},
	}
	cmd.Flags().BoolVar(&strict, "strict", false, "treat warnings as errors")
	addLibFlag(cmd)
	return cmd
}()

func init() { rootCmd.AddCommand(checkCmd) }

// count is "1 error", "0 errors", "2 errors".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// addLoaded adds the file at path and what it load()s, transitively, under
// the names apply gives them (see addFile). Apply sends a file's siblings
// too, but only so that its loads resolve: checking a file reports on what
// would run for it, not on the runbooks beside it.
func (c *collector) addLoaded(path string) error {
	dir := &collector{files: map[string]string{}, from: map[string]string{}, tests: c.tests}
	if err := dir.addFile(path); err != nil {
		return err
	}
	todo := []string{filepath.Base(path)}
	done := map[string]bool{}
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		if done[name] {
			continue
		}
		done[name] = true
		if err := c.add(name, dir.from[name]); err != nil {
			return err
		}
		// The runbook's schema and tests beside it, when there are.
		for _, extra := range []string{strings.TrimSuffix(name, ".star") + schema.FileSuffix, strings.TrimSuffix(name, ".star") + "_test.star"} {
			if from, ok := dir.from[extra]; ok && c.wants(extra) {
				if err := c.add(extra, from); err != nil {
					return err
				}
			}
		}
		f, err := sbruntime.FileOptions.Parse(name, dir.files[name], 0)
		if err != nil {
			continue // check reports it
		}
		for _, st := range f.Stmts {
			if load, ok := st.(*syntax.LoadStmt); ok {
				// A load apply could not resolve is left for check to report.
				if target, err := sbruntime.ResolveLoad(name, load.ModuleName(), dir.files); err == nil {
					todo = append(todo, target)
				}
			}
		}
	}
	return nil
}
