package main

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/starbook/starbook/runbooktest"
)

var testCmd = &cobra.Command{
	Use:   "test [PATH...] [-run REGEX] [-v] [--lib NAME=DIR]",
	Short: "Run the test_* functions of *_test.star files, offline",
	Long: `Test finds the *_test.star files in PATH... (directories are searched
recursively, hidden and testdata directories skipped; default ".") and runs
each of their test_* functions with a fresh set of mocks. run("x.star", event)
executes a runbook on the real replay engine over an in-memory history:
no etcd, no network, time is virtual. Effects and waits are answered by the
mock module; any effect no mock matches fails the test.

The report follows go test: a "--- FAIL: test_x (file:line)" block per failed
test (every test with -v), "ok" or "FAIL" per file, then "N passed, N failed";
the exit status is 1 when a test failed.

  -run REGEX   run only the tests whose name matches
  -v           list every test and its output
  --lib NAME=DIR  a team's library, loaded as @NAME/FILE.star (repeatable);
               @std, starbook's own, is always there`,
	DisableFlagParsing: true, // -run and -v, spelled as go test spells them
	RunE: func(cmd *cobra.Command, args []string) error {
		r := &runbooktest.Runner{Out: cmd.OutOrStdout()}
		var paths, libs []string
		for i := 0; i < len(args); i++ {
			a := args[i]
			name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if !strings.HasPrefix(a, "-") || a == "-" {
				paths = append(paths, a)
				continue
			}
			if f := cmd.Root().PersistentFlags().Lookup(name); f != nil {
				// --server and the like mean nothing offline: skip them.
				if !hasValue && f.Value.Type() != "bool" {
					i++
				}
				continue
			}
			switch name {
			case "h", "help":
				return cmd.Help()
			case "v", "verbose":
				r.Verbose = !hasValue || value == "true"
			case "run":
				if !hasValue {
					if i+1 == len(args) {
						return fmt.Errorf("-run needs a regular expression")
					}
					i++
					value = args[i]
				}
				re, err := regexp.Compile(value)
				if err != nil {
					return fmt.Errorf("-run: %w", err)
				}
				r.Filter = re
			case "lib":
				if !hasValue {
					if i+1 == len(args) {
						return fmt.Errorf("--lib needs NAME=DIR")
					}
					i++
					value = args[i]
				}
				libs = append(libs, value)
			default:
				return fmt.Errorf("unknown flag %s (test takes -run REGEX, -v and --lib NAME=DIR)", a)
			}
		}
		set, err := libraries(libs)
		if err != nil {
			return err
		}
		r.Libraries = set
		sum, err := r.Run(cmd.Context(), paths)
		if err != nil {
			return err
		}
		if sum.Failed > 0 {
			return fmt.Errorf("%d of %d tests failed", sum.Failed, sum.Failed+sum.Passed)
		}
		return nil
	},
}

func init() { rootCmd.AddCommand(testCmd) }
