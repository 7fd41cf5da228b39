package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api"
	sbruntime "github.com/starbook/starbook/runtime"
)

var lsCmd = func() *cobra.Command {
	var (
		status  string
		runbook string
		limit   int
		asJSON  bool
		waiting bool
		all     bool
	)
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List executions, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 0 {
				return fmt.Errorf("invalid --limit %d: want a positive number", limit)
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			if waiting {
				f := starbook.WaitFilter{Limit: limit}
				var waits []*starbook.PendingWait
				next := ""
				if all {
					if f.Limit == 0 {
						f.Limit = api.MaxLimit // fewest round trips
					}
					waits, err = allWaits(cmd.Context(), c, f)
				} else {
					waits, next, err = c.WaitsPage(cmd.Context(), f)
				}
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(cmd.OutOrStdout(), struct {
						Waits []*starbook.PendingWait `json:"waits"`
					}{nonNil(waits)})
				}
				if err := printWaits(cmd.OutOrStdout(), waits); err != nil {
					return err
				}
				if next != "" {
					// Before paging, --waiting listed every wait: say that
					// this is not all of them.
					fmt.Fprintln(cmd.ErrOrStderr(), "more executions are waiting: --all lists them all")
				}
				return nil
			}
			// The server checks status and limit and says what it accepts.
			f := starbook.Filter{Status: sbruntime.Status(status), Runbook: runbook, Limit: limit}
			var list []*sbruntime.Execution
			if all {
				if f.Limit == 0 {
					f.Limit = api.MaxLimit // fewest round trips
				}
				list, err = allExecutions(cmd.Context(), c, f)
			} else {
				list, err = c.Executions(cmd.Context(), f)
			}
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), struct {
					Executions []*sbruntime.Execution `json:"executions"`
				}{nonNil(list)})
			}
			return printExecutions(cmd.OutOrStdout(), list)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&status, "status", "", "only executions with this status")
	fl.StringVar(&runbook, "runbook", "", "only executions of this runbook")
	fl.IntVar(&limit, "limit", 0, fmt.Sprintf("at most this many (server default %d, max %d)", api.DefaultLimit, api.MaxLimit))
	fl.BoolVar(&asJSON, "json", false, `print {"executions": [...]} as JSON`)
	fl.BoolVar(&waiting, "waiting", false, "list pending approvals and signal waits instead")
	fl.BoolVar(&all, "all", false, fmt.Sprintf("every matching execution (or wait), a page of --limit at a time (default %d)", api.MaxLimit))
	return cmd
}()

func init() { rootCmd.AddCommand(lsCmd) }

// allExecutions follows the API's cursor from the newest execution matching
// f to the oldest, a page of f.Limit at a time.
func allExecutions(ctx context.Context, c *api.Client, f starbook.Filter) ([]*sbruntime.Execution, error) {
	var out []*sbruntime.Execution
	for {
		page, next, err := c.ExecutionsPage(ctx, f)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if next == "" {
			return out, nil
		}
		if f.After != "" && next >= f.After {
			// The list is newest first, so each cursor sorts before the last:
			// a server that does not move on would keep us here forever.
			return nil, fmt.Errorf("list executions: cursor %s does not follow %s", next, f.After)
		}
		f.After = next
	}
}

// allWaits follows the API's cursor from the first pending wait to the
// last, a page of f.Limit at a time (each page oldest first: the whole
// list is sorted again the same way).
func allWaits(ctx context.Context, c *api.Client, f starbook.WaitFilter) ([]*starbook.PendingWait, error) {
	var out []*starbook.PendingWait
	for {
		page, next, err := c.WaitsPage(ctx, f)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if next == "" {
			slices.SortStableFunc(out, func(a, b *starbook.PendingWait) int { return a.Since.Compare(b.Since) })
			return out, nil
		}
		if f.After != "" && next <= f.After {
			// Waits are listed in cursor order, so each cursor sorts after
			// the last: a server that does not move on would keep us here.
			return nil, fmt.Errorf("list waits: cursor %s does not follow %s", next, f.After)
		}
		f.After = next
	}
}

func printExecutions(w io.Writer, list []*sbruntime.Execution) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tRUNBOOK\tSTATUS\tTRIGGER\tSTARTED")
	for _, e := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.ID, e.Runbook, e.Status, triggerString(e.Trigger), formatTime(e.CreatedAt))
	}
	return tw.Flush()
}
