package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/check"
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
names. It needs no server.

Each finding is printed as "file:line:col: message". A secret("NAME") whose
NAME is not set in this environment is a warning: the nodes' environment is
what counts, and apply reports it from there. The exit status is 1 when an
error (with --strict, also a warning) was found.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{"."}
			}
			c := &collector{files: map[string]string{}, from: map[string]string{}}
			for _, p := range args {
				info, err := os.Stat(p)
				if err != nil {
					return err
				}
				if info.IsDir() {
					err = c.addDir(p)
				} else {
					err = c.addFile(p)
				}
				if err != nil {
					return err
				}
			}
			res := check.Files(c.files, check.Options{Builtins: builtins.New(builtins.Options{}), LookupEnv: os.LookupEnv})
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
				return fmt.Errorf("%d errors, %d warnings", errs, warnings)
			}
			names := make([]string, len(res.Bundles))
			for i, b := range res.Bundles {
				names[i] = b.Name
			}
			fmt.Fprintf(out, "ok: %d runbooks (%s), %d warnings\n", len(names), strings.Join(names, ", "), warnings)
			return nil
		},
	}
	cmd.Flags().BoolVar(&strict, "strict", false, "treat warnings as errors")
	return cmd
}()

func init() { rootCmd.AddCommand(checkCmd) }
