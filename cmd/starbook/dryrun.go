package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/starbook/starbook/runbooktest"
	sbruntime "github.com/starbook/starbook/runtime"
)

// dryRun is run --dry-run: the runbook runs in the CLI process on the real
// replay engine over an in-memory history, in a world that agrees to
// everything: HTTP answers 200 {} unless --mocks says otherwise, Slack
// posts succeed, approvals are approved, signals time out, sleeps pass at
// once on a virtual clock. Nothing is sent and nothing is stored; the
// server, when NAME is not a file, only provides the current version.
type dryRun struct {
	on    bool
	mocks string
}

func (d *dryRun) flags(fl *pflag.FlagSet) {
	fl.BoolVar(&d.on, "dry-run", false, "run here with every effect mocked and print the steps; nothing is started or stored")
	fl.StringVar(&d.mocks, "mocks", "", "with --dry-run: a Starlark file of mock.* calls that override the defaults")
	fl.StringArray("lib", nil, "with --dry-run of a file: "+libFlagUsage)
}

func (d *dryRun) run(cmd *cobra.Command, name string, input json.RawMessage) error {
	var b *sbruntime.Bundle
	if info, err := os.Stat(name); err == nil && !info.IsDir() || strings.HasSuffix(name, ".star") {
		libs, err := librariesOf(cmd)
		if err != nil {
			return err
		}
		if b, err = runbooktest.LoadBundleFrom(filepath.Dir(name), filepath.Base(name), libs); err != nil {
			return err
		}
	} else {
		c, err := newClient(cmd)
		if err != nil {
			return err
		}
		v, err := c.RunbookVersion(cmd.Context(), name, "current")
		if err != nil {
			return err
		}
		b = &sbruntime.Bundle{Name: v.Name, Version: v.Version, Main: v.Main, Files: v.Files}
	}
	m := runbooktest.NewMocks()
	if d.mocks != "" {
		if err := m.LoadMocks(d.mocks); err != nil {
			return fmt.Errorf("--mocks: %w", err)
		}
	}
	res, err := runbooktest.DryRun(cmd.Context(), b, input, m, sbruntime.Limits{})
	if err != nil {
		return err
	}
	if err := runbooktest.WritePlan(cmd.OutOrStdout(), b, res); err != nil {
		return err
	}
	if res.Execution.Status != sbruntime.StatusCompleted {
		return fmt.Errorf("dry run of %s ended %s", b.Name, res.Execution.Status)
	}
	return nil
}
