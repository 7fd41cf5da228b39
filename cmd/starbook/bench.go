package main

import (
	"errors"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/starbook/starbook/bench"
)

var benchCmd = func() *cobra.Command {
	var cfg bench.Config
	var scale []int
	var keep bool
	var jsonOut bool
	var nodeBinary string
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure starbook against its etcd floor, in one process and one run",
		Long: `Bench starts an embedded etcd (fsync on) and a node in this process and
measures each figure next to the raw cost of a fenced checkpoint txn on the same
etcd: sequential step latency, throughput with 50 in flight, a 1,000-item
fan_out, flatness over a 2,000-step execution, resume of 10,000 recorded steps,
start-up to ready, and memory with 100,000 parked executions (measured in a
fresh node process, as start-up is). It prints a table
(median and spread over repeats) and, last, one JSON line. --quick runs small
sizes in seconds.

--scale N[,N...] measures instead how a node grows with the executions it
keeps: for each N, a fresh node process on a fresh data dir is loaded with N
ended runs started by Alertmanager alerts (every tenth fails), then its list,
SLO, usage and dead-letter pages are timed through the HTTP API (medians of
--repeats, default 7 here), its store's keys and bytes per execution counted
(by key family), its RSS read and its restart timed. It prints a table with the
ratio between consecutive sizes and a JSON line (--json: one JSON document).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Out = cmd.OutOrStdout()
			if exe, err := os.Executable(); err == nil {
				cfg.Binary = exe
			}
			if len(scale) > 0 {
				sc := bench.ScaleConfig{Sizes: scale, Binary: cfg.Binary, Dir: cfg.Dir, Keep: keep, Out: cfg.Out, JSON: jsonOut}
				if nodeBinary != "" {
					sc.Binary = nodeBinary
				}
				if cmd.Flags().Changed("repeats") {
					sc.Repeats = cfg.Repeats
				}
				_, err := bench.RunScale(cmd.Context(), sc)
				return err
			}
			if jsonOut {
				return errors.New("--json goes with --scale (bench always ends with a JSON line)")
			}
			_, err := bench.Run(cmd.Context(), cfg)
			return err
		},
	}
	cmd.Flags().BoolVar(&cfg.Quick, "quick", false, "small sizes: a smoke run in seconds")
	cmd.Flags().IntVar(&cfg.Repeats, "repeats", 3, "repeats of each figure")
	cmd.Flags().StringVar(&cfg.Dir, "dir", "", "scratch directory (default: a temp dir)")
	cmd.Flags().BoolVar(&cfg.Budget, "budget", false, "declare a generous budget() and an slo() on the bench runbook: every run, step and fan_out item is counted")
	cmd.Flags().BoolVar(&cfg.Policy, "policy", false, "load one run-time policy (an on_effect reading the history) on the bench node")
	cmd.Flags().StringSliceVar(&cfg.Only, "only", nil, "run only these workloads (comma-separated: "+strings.Join(bench.Workloads, ", ")+"), e.g. --only step,throughput for a quick A/B of two builds")
	cmd.Flags().IntSliceVar(&scale, "scale", nil, "the scale bench instead (issue 25): load N ended executions on a fresh node process for each N (e.g. 10000,100000) and time its pages, size its store, restart it")
	cmd.Flags().StringVar(&nodeBinary, "node-binary", "", "with --scale: the starbook binary the nodes run (default: this one), e.g. another branch's build, measured by this bench")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "with --scale: one JSON document instead of the tables")
	cmd.Flags().BoolVar(&keep, "keep", false, "with --scale: keep each size's data dir and node log (stopped) for a look afterwards")
	cmd.Flags().BoolVar(&cfg.ParkedOnly, "parked-only", false, "measure only the RSS with parked executions, in this process (bench runs it as a fresh process)")
	_ = cmd.Flags().MarkHidden("parked-only")
	return cmd
}()

func init() { rootCmd.AddCommand(benchCmd) }
