package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api"
)

var usageCmd = func() *cobra.Command {
	var (
		days   int
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "usage [RUNBOOK]",
		Short: "What runbooks did per UTC day: steps, retries, HTTP calls, fan_out items, wall time, budgets",
		Long: `Usage lists, per runbook and UTC day (newest first, the last --days days),
what its executions did: executions, steps (recorded durable calls), retries
(attempts beyond the first), HTTP requests sent, fan_out items, wall time (of
the executions that ended that day, from creation to end), and where each day
budget the runbook declares with budget(...) stands (units taken / limit).
'starbook show ID' gives the same counts for one execution.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			if days < 1 || days > api.MaxUsageDays {
				return fmt.Errorf("--days %d: want 1 to %d", days, api.MaxUsageDays)
			}
			runbook := ""
			if len(args) == 1 {
				runbook = args[0]
			}
			list, err := c.Usage(cmd.Context(), runbook, days)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), api.UsageResponse{Usage: nonNil(list)})
			}
			return printUsage(cmd.OutOrStdout(), list)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&days, "days", api.DefaultUsageDays, "UTC days to report, today included")
	fl.BoolVar(&asJSON, "json", false, `print {"usage": [{"runbook", "day", "executions", "steps", ...}]} as JSON`)
	return cmd
}()

func init() { rootCmd.AddCommand(usageCmd) }

func printUsage(w io.Writer, list []*starbook.DayUsage) error {
	if len(list) == 0 {
		_, err := fmt.Fprintln(w, "No usage recorded.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DAY\tRUNBOOK\tEXECUTIONS\tSTEPS\tRETRIES\tHTTP CALLS\tFAN_OUT ITEMS\tWALL TIME\tBUDGETS")
	for _, u := range list {
		var budgets []string
		for _, b := range u.Budgets {
			budgets = append(budgets, fmt.Sprintf("%s %d/%d", b.Budget, b.Used, b.Limit))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", u.Day, u.Runbook, u.Executions, u.Steps, u.Retries,
			u.HTTPCalls, u.FanOutItems, humanDuration(time.Duration(u.WallTimeMS)*time.Millisecond), dash(strings.Join(budgets, ", ")))
	}
	return tw.Flush()
}
