package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/check"
	"github.com/starbook/starbook/slo"
	"github.com/starbook/starbook/triggers"
)

var rulesCmd = func() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "rules [--runbooks DIR]",
		Short: "Print the Prometheus alert rules for the runbooks' SLOs and starbook's health",
		Long: `Rules prints a Prometheus rule file: the error ratio of every runbook over
5m, 30m, 1h, 6h and 3d (recording rules); for each runbook that declares
slo(...), multi-window burn-rate alerts (page at 14.4x over 1h and 5m, page
at 6x over 6h and 30m, ticket at 1x over 3d and 6h) and an alert per
latency objective; and alerts on starbook's own health (no leader, etcd
errors, dead letters growing, queued runs, an approval pending for hours,
a node gone).

With --runbooks, the objectives are read from runbook files, checked as
starbook check does (no server needed: CI uses this); without it, from the
server's current versions (GET /api/v1/slo).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var objectives []slo.Objective
			var err error
			if dir != "" {
				objectives, err = fileObjectives(dir)
			} else {
				objectives, err = serverObjectives(cmd)
			}
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(slo.Rules(objectives))
			return err
		},
	}
	cmd.Flags().StringVar(&dir, "runbooks", "", "read the objectives from the runbooks in this directory (or file) instead of the server")
	return cmd
}()

func init() { rootCmd.AddCommand(rulesCmd) }

// fileObjectives checks the runbooks at path (a directory, or a file and
// what it loads) as check does and returns their objectives by runbook
// name; any error refuses them all.
func fileObjectives(path string) ([]slo.Objective, error) {
	c := &collector{files: map[string]string{}, from: map[string]string{}}
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if info.IsDir() {
		err = c.addDir(path)
	} else {
		err = c.addLoaded(path)
	}
	if err != nil {
		return nil, err
	}
	libs, err := libraries(nil) // @std: shipped runbooks load it
	if err != nil {
		return nil, err
	}
	res := check.Files(c.files, check.Options{Builtins: builtins.New(builtins.Options{}), Libraries: libs})
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("runbooks do not check (starbook check says why):\n%w", err)
	}
	var out []slo.Objective
	for _, b := range res.Bundles {
		set, err := triggers.DecodeSet(b.Triggers)
		if err != nil {
			return nil, fmt.Errorf("runbook %s: %w", b.Name, err)
		}
		if set.SLO != nil {
			out = append(out, slo.Objective{Runbook: b.Name, SLO: set.SLO})
		}
	}
	return out, nil
}

// serverObjectives asks the server for the objectives of the runbooks'
// current versions.
func serverObjectives(cmd *cobra.Command) ([]slo.Objective, error) {
	c, err := newClient(cmd)
	if err != nil {
		return nil, err
	}
	report, err := c.SLOs(cmd.Context(), "")
	if err != nil {
		return nil, err
	}
	var out []slo.Objective
	for _, s := range report.SLOs {
		window, err := triggers.ParseDuration(s.Objective.Window)
		if err != nil {
			return nil, fmt.Errorf("runbook %s: %w", s.Runbook, err)
		}
		latency := map[string]time.Duration{}
		for name, v := range s.Objective.Latency {
			if latency[name], err = triggers.ParseDuration(v); err != nil {
				return nil, fmt.Errorf("runbook %s: latency %s: %w", s.Runbook, name, err)
			}
		}
		o, err := triggers.NewSLO(s.Objective.Success, latency, window)
		if err != nil {
			return nil, fmt.Errorf("runbook %s: %w", s.Runbook, err)
		}
		out = append(out, slo.Objective{Runbook: s.Runbook, SLO: o})
	}
	return out, nil
}
