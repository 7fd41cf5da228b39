package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/starbook/starbook/api"
	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/check"
	"github.com/starbook/starbook/runbooktest"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/schema"
)

var replayCmd = func() *cobra.Command {
	var script string
	cmd := &cobra.Command{
		Use:   "replay ID [--script PATH]",
		Short: "Check that a script replays an execution's recorded history",
		Long: `Replay fetches execution ID and its history from the server and replays it
here, offline, against the runbook version it runs (or, with --script, a new
version: a .star file, or a directory holding the runbook), with no side
effect: every durable call must find its recorded result.

It prints "compatible" when the script reaches the end of the history
without diverging (it would then run new steps, park on the pending wait, or
end as the execution did), or "incompatible" with the first diverging
position, what the history and the script each have there and the file:line
of both, and exits with status 1. Run it against in-flight executions before
applying a new version: executions keep their version, but a version that
cannot replay them would get them stuck if they were moved onto it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			d, err := c.ExecutionDetail(ctx, args[0])
			if err != nil {
				return err
			}
			e := d.Execution
			var b *sbruntime.Bundle
			if script != "" {
				b, err = scriptBundle(cmd, script, e.Runbook)
			} else {
				var v *api.BundleResponse
				if v, err = c.RunbookVersion(ctx, e.Runbook, e.Version); err == nil {
					b = &sbruntime.Bundle{Name: v.Name, Version: v.Version, Main: v.Main, Files: v.Files}
				}
			}
			if err != nil {
				return err
			}
			r, err := runbooktest.Replay(ctx, b, e, d.History, d.Waits, sbruntime.Limits{})
			if err != nil {
				return err
			}
			r.Write(cmd.OutOrStdout())
			if !r.Compatible {
				return fmt.Errorf("execution %s does not replay on %s@%s", e.ID, b.Name, b.Version)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&script, "script", "", "replay against this .star file or directory instead of the execution's version")
	return cmd
}()

func init() {
	addLibFlag(replayCmd)
	rootCmd.AddCommand(replayCmd)
}

// scriptBundle reads the runbook called name from path: a .star file (with
// the files it loads, beside it), or a directory read as apply reads it.
func scriptBundle(cmd *cobra.Command, path, name string) (*sbruntime.Bundle, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	libs, err := librariesOf(cmd) // @std and --lib, as apply would bundle them
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return runbooktest.LoadBundleFrom(filepath.Dir(path), filepath.Base(path), libs)
	}
	files, err := collectFiles([]string{path})
	if err != nil {
		return nil, err
	}
	for n := range files {
		if strings.HasSuffix(n, schema.FileSuffix) {
			delete(files, n) // a replay runs the script on its recorded input
		}
	}
	// As apply would bundle them, the library modules they load included.
	res := check.Files(files, check.Options{Builtins: builtins.New(builtins.Options{}), Libraries: libs})
	if err := res.Err(); err != nil {
		return nil, err
	}
	bundles := res.Bundles
	var names []string
	for _, b := range bundles {
		if b.Name == name {
			return b, nil
		}
		names = append(names, b.Name)
	}
	return nil, fmt.Errorf("%s has no runbook %s (it has %s)", path, name, strings.Join(names, ", "))
}
