package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/triggers"
)

var sloCmd = func() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "slo [RUNBOOK]",
		Short: "Show how runbooks meet the objectives they declare with slo()",
		Long: `Slo computes, from the executions stored on the server, how each runbook
that declares slo(...) meets it over its window: its success rate, latency
percentiles, the error budget left and the burn rates over 5m, 1h, 6h and 3d.
Completed runs are successes, failed and stuck ones failures; cancelled runs
are left out. With RUNBOOK, only that runbook's.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			report, err := c.SLOs(cmd.Context(), name)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(report)
			}
			if len(report.SLOs) == 0 {
				fmt.Fprintln(out, "no runbook declares slo()")
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RUNBOOK\tWINDOW\tTARGET\tSUCCESS\tRUNS\tBUDGET LEFT\tBURN 5m/1h/6h/3d\tLATENCY")
			for _, s := range report.SLOs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Runbook, s.Objective.Window, percent(s.Objective.Success),
					successCell(s), runsCell(s), percent(s.ErrorBudget.Remaining), burnCell(s.BurnRates), latencyCell(s.Latency))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON (the API's GET /api/v1/slo)")
	return cmd
}()

func init() { rootCmd.AddCommand(sloCmd) }

// percent writes a ratio as a percentage with up to two decimals: 99%, 99.9%, -400%.
func percent(r float64) string {
	s := strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", r*100), "0"), ".")
	return s + "%"
}

func successCell(s *starbook.SLOStatus) string {
	if s.SuccessRate == nil {
		return "-"
	}
	return percent(*s.SuccessRate)
}

func runsCell(s *starbook.SLOStatus) string {
	cell := fmt.Sprintf("%d (%d failed)", s.Runs, s.Failures)
	if s.Cancelled > 0 {
		cell += fmt.Sprintf(" +%d cancelled", s.Cancelled)
	}
	return cell
}

func burnCell(rates []starbook.BurnRate) string {
	parts := make([]string, len(rates))
	for i, b := range rates {
		parts[i] = strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", b.Rate), "0"), ".")
	}
	return strings.Join(parts, "/")
}

func latencyCell(ls []starbook.LatencyStatus) string {
	if len(ls) == 0 {
		return "-"
	}
	parts := make([]string, len(ls))
	for i, l := range ls {
		switch {
		case l.Seconds == nil:
			parts[i] = fmt.Sprintf("%s -/%s", l.Percentile, l.Objective)
		case l.Met:
			parts[i] = fmt.Sprintf("%s %s/%s ok", l.Percentile, seconds(*l.Seconds), l.Objective)
		default:
			parts[i] = fmt.Sprintf("%s %s/%s MISSED", l.Percentile, seconds(*l.Seconds), l.Objective)
		}
	}
	return strings.Join(parts, ", ")
}

// seconds writes a duration in seconds as objectives are written, rounded
// to the second above a minute: 2m, 1m30s, 1.5s.
func seconds(s float64) string {
	d := time.Duration(s * float64(time.Second))
	if d >= time.Minute {
		d = d.Round(time.Second)
	}
	return triggers.FormatDuration(d)
}
