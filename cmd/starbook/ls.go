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
		Short: "List executions, newest first (paused runbooks first, on stderr)",
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
			// Paused runbooks first, on stderr: what an on-call engineer
			// must see, kept out of the table a script reads.
			warnPauses(cmd.Context(), c, cmd.ErrOrStderr())
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

// walkPages follows an API listing's cursor from after to its end: page
// reads the page after a cursor and returns it with the next cursor ("" at
// the end). Cursors move one way (descending: each sorts before the last),
// so a server that does not move on is an error, not a loop.
func walkPages[T any](what, after string, descending bool, page func(after string) ([]T, string, error)) ([]T, error) {
	var out []T
	for {
		items, next, err := page(after)
		if err != nil {
			return nil, err
		}
		out = append(out, items...)
		if next == "" {
			return out, nil
		}
		if after != "" && (descending && next >= after || !descending && next <= after) {
			return nil, fmt.Errorf("list %s: cursor %s does not follow %s", what, next, after)
		}
		after = next
	}
}

// allExecutions lists every execution matching f, newest first, a page of
// f.Limit at a time.
func allExecutions(ctx context.Context, c *api.Client, f starbook.Filter) ([]*sbruntime.Execution, error) {
	return walkPages("executions", f.After, true, func(after string) ([]*sbruntime.Execution, string, error) {
		f.After = after
		return c.ExecutionsPage(ctx, f)
	})
}

// allWaits lists every pending wait, a page of f.Limit at a time, sorted
// as each page is (oldest first).
func allWaits(ctx context.Context, c *api.Client, f starbook.WaitFilter) ([]*starbook.PendingWait, error) {
	out, err := walkPages("waits", f.After, false, func(after string) ([]*starbook.PendingWait, string, error) {
		f.After = after
		return c.WaitsPage(ctx, f)
	})
	slices.SortStableFunc(out, func(a, b *starbook.PendingWait) int { return a.Since.Compare(b.Since) })
	return out, err
}

func printExecutions(w io.Writer, list []*sbruntime.Execution) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tRUNBOOK\tSTATUS\tTRIGGER\tSTARTED")
	for _, e := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.ID, e.Runbook, e.Status, triggerString(e.Trigger), formatTime(e.CreatedAt))
	}
	return tw.Flush()
}
