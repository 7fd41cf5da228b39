package main

import (
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/starbook/starbook/reference"
)

var docCmd = func() *cobra.Command {
	return &cobra.Command{
		Use:   "doc [NAME]",
		Short: "Print the reference of a built-in or @std function (http.post, trigger.alert, k8s.rollout_restart)",
		Long: `Doc prints the documentation of NAME: a built-in (call, sleep), a member of
a built-in module (http.post, trigger.alert), or a module of the @std library
and its functions (k8s, k8s.rollout_restart). A module's entry is followed by
the list of its members. Without NAME it lists every name with its summary.
The text is the one the language server shows on hover and docs/builtins.md
holds.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			if len(args) == 0 {
				w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				for _, e := range reference.All() {
					fmt.Fprintf(w, "%s\t%s\n", e.Name, e.Summary)
				}
				return w.Flush()
			}
			e, ok := reference.Lookup(args[0])
			if !ok {
				return fmt.Errorf("doc %s: no such built-in or @std name (starbook doc lists them)%s", args[0], suggest(args[0]))
			}
			fmt.Fprint(out, e.Text())
			if members := reference.Members(e.Name); len(members) > 0 {
				fmt.Fprintln(out, "\nMembers:")
				w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				for _, m := range members {
					fmt.Fprintf(w, "  %s\t%s\n", m.Name, m.Summary)
				}
				return w.Flush()
			}
			return nil
		},
	}
}()

// suggest names the entries that end like name ("post" -> http.post).
func suggest(name string) string {
	var near []string
	for _, e := range reference.All() {
		if strings.HasSuffix(e.Name, "."+name) {
			near = append(near, e.Name)
		}
	}
	if len(near) == 0 {
		return ""
	}
	slices.Sort(near)
	return "; did you mean " + strings.Join(near, ", ") + "?"
}

func init() { rootCmd.AddCommand(docCmd) }
