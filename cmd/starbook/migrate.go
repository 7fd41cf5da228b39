package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api"
)

// applyMigrate is apply --migrate [--dry-run]: it prints the versions, then
// one row per in-flight execution and a count of each result.
func applyMigrate(cmd *cobra.Command, c *api.Client, files map[string]string, dryRun bool) error {
	res, err := c.ApplyMigrate(cmd.Context(), files, dryRun)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	for _, v := range res.Runbooks {
		state := "applied"
		switch {
		case v.Unchanged:
			state = "unchanged"
		case res.DryRun:
			state = "would apply"
		}
		fmt.Fprintf(out, "%s %s %s\n", state, v.Name, v.Version)
		for _, w := range v.Warnings {
			fmt.Fprintf(cmd.ErrOrStderr(), "starbook: %s\n", w)
		}
	}
	if len(res.Migration) == 0 {
		fmt.Fprintln(out, "no in-flight execution runs another version")
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tFROM\tRESULT\tPOSITION\tWHERE\tEXPECTED\tACTUAL")
	counts := map[string]int{}
	for _, m := range res.Migration {
		counts[m.Result]++
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Execution, m.Status, m.From, m.Result,
			dash(m.Position), dash(m.Where), dash(m.Expected), dash(m.Actual))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	summary := ""
	for _, k := range []string{starbook.MigrationMigrated, starbook.MigrationWouldMigrate, starbook.MigrationIncompatible,
		starbook.MigrationRunning, starbook.MigrationMoved} {
		if counts[k] > 0 {
			summary += fmt.Sprintf(", %d %s", counts[k], k)
		}
	}
	fmt.Fprintln(out, summary[2:])
	if counts[starbook.MigrationRunning]+counts[starbook.MigrationMoved] > 0 {
		fmt.Fprintln(out, "running and moved executions were skipped: apply --migrate again once they wait")
	}
	return nil
}
