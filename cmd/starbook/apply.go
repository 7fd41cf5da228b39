package main

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/schema"
)

var applyCmd = &cobra.Command{
	Use:   "apply PATH...",
	Short: "Store the runbooks in .star files and directories as new versions",
	Long: `Apply sends every runbook file found in PATH... to the server in one request;
the server stores them all or none.

A directory contributes each *.star file in it and in its subdirectories (not
hidden ones), keyed by its path relative to the directory. A file contributes
itself and the other *.star files beside it, keyed by base name, so that its
load() of a sibling resolves. NAME.schema.json beside NAME.star is sent with
it: the runbook's input schema. *_test.star files found the same way are sent
too, so that policies can see which runbooks have tests (runbook.tests_present);
the server never stores them.

The server checks the runbooks as starbook check does and refuses them all
when it finds an error (each printed as file:line:col: message); warnings,
such as a secret not set on the node, are printed and do not refuse.

With --migrate, every execution of an applied runbook that has not ended and
runs another version is replayed against the applied version, offline; each
one that replays is re-pinned to it (it resumes on the new code), each one
that does not stays and is listed with its first divergence. A running one
(a node holds it) or one that moved on during its replay is skipped: apply
--migrate again once it waits. With --dry-run the server stores nothing, no
version and no re-pin, and the table says what would happen.

With --canary, each changed runbook's new version takes that share of new
runs (chosen by execution id) while its current version stays current; the
leader promotes it once --canary-runs of its runs ended within
--max-failure-rate, and rolls it back as soon as more fail. See starbook
rollout. A runbook with a rollout in progress refuses a plain apply.`,
	Args: cobra.MinimumNArgs(1),
	RunE: func(cmd *cobra.Command, args []string) error {
		migrate, _ := cmd.Flags().GetBool("migrate")
		dryRun, _ := cmd.Flags().GetBool("dry-run")
		if dryRun && !migrate {
			return fmt.Errorf("--dry-run needs --migrate")
		}
		spec, canary, err := canaryFlags(cmd)
		if err != nil {
			return err
		}
		if canary && migrate {
			return fmt.Errorf("--canary and --migrate do not go together: roll the new version out first, then migrate the runs left behind")
		}
		files, err := collectFiles(args)
		if err != nil {
			return err
		}
		libs, err := librariesOf(cmd)
		if err != nil {
			return err
		}
		team, err := teamLibraryFiles(libs)
		if err != nil {
			return err
		}
		maps.Copy(files, team)
		c, err := newClient(cmd)
		if err != nil {
			return err
		}
		if migrate {
			return applyMigrate(cmd, c, files, dryRun)
		}
		var versions []starbook.RunbookVersion
		if canary {
			versions, err = c.ApplyCanary(cmd.Context(), files, spec)
		} else {
			versions, err = c.Apply(cmd.Context(), files)
		}
		if err != nil {
			return err
		}
		for _, v := range versions {
			state := "applied"
			switch {
			case v.Unchanged:
				state = "unchanged"
			case v.Rollout != nil:
				state = fmt.Sprintf("canary %v%% of", v.Rollout.Percent)
			}
			libs := ""
			if len(v.Libraries) > 0 {
				libs = " (" + starbook.LibrariesString(v.Libraries) + ")"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s %s%s\n", state, v.Name, v.Version, libs)
			for _, w := range v.Warnings {
				fmt.Fprintf(cmd.ErrOrStderr(), "starbook: %s\n", w)
			}
		}
		return nil
	},
}

func init() {
	addLibFlag(applyCmd)
	applyCmd.Flags().Bool("migrate", false, "move in-flight executions of the applied runbooks onto the new versions where their histories replay")
	applyCmd.Flags().Bool("dry-run", false, "with --migrate: store nothing, report what would happen")
	applyCmd.Flags().String("canary", "", "apply changed runbooks as canaries taking this share of new runs (10% or 10; 0 < share < 100)")
	applyCmd.Flags().Int("canary-runs", starbook.DefaultCanaryRuns, "with --canary: canary runs that must end before the leader promotes it (>= 1)")
	applyCmd.Flags().Float64("max-failure-rate", starbook.DefaultMaxFailureRate, "with --canary: the share of failed canary runs that rolls it back, in [0, 1)")
	rootCmd.AddCommand(applyCmd)
}

// canaryFlags reads --canary and its bounds; canary is false without it.
// A bad value is an error before anything is sent.
func canaryFlags(cmd *cobra.Command) (spec starbook.CanarySpec, canary bool, err error) {
	fl := cmd.Flags()
	share, _ := fl.GetString("canary")
	if !fl.Changed("canary") {
		if fl.Changed("canary-runs") || fl.Changed("max-failure-rate") {
			return spec, false, errors.New("--canary-runs and --max-failure-rate need --canary")
		}
		return spec, false, nil
	}
	if spec.Percent, err = starbook.ParsePercent(share); err != nil {
		return spec, false, fmt.Errorf("--canary: %w", err)
	}
	spec.Runs, _ = fl.GetInt("canary-runs")
	spec.MaxFailureRate, _ = fl.GetFloat64("max-failure-rate")
	if err := spec.Validate(); err != nil {
		return spec, false, err
	}
	return spec, true, nil
}

// collectFiles reads the runbook files named by paths (see apply's help) into
// a map from '/'-separated name to source. Two different files that would get
// the same name are an error; the same file reached twice is not.
func collectFiles(paths []string) (map[string]string, error) {
	c := &collector{files: map[string]string{}, from: map[string]string{}, tests: true}
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if info.IsDir() {
			err = c.addDir(p)
		} else {
			err = c.addFile(p)
		}
		if err != nil {
			return nil, err
		}
	}
	return c.files, nil
}

type collector struct {
	files map[string]string // name -> source
	from  map[string]string // name -> the file it was read from
	tests bool              // collect *_test.star files too (check validates their inputs)
}

// isRunbookFile reports whether a file named name is sent by apply: a
// runbook file or a runbook's input schema (NAME.schema.json).
func isRunbookFile(name string) bool {
	return strings.HasSuffix(name, ".star") && !strings.HasSuffix(name, "_test.star") || strings.HasSuffix(name, schema.FileSuffix)
}

// wants reports whether c collects a file named name.
func (c *collector) wants(name string) bool {
	return isRunbookFile(name) || c.tests && strings.HasSuffix(name, "_test.star")
}

func (c *collector) addDir(root string) error {
	found := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if !c.wants(d.Name()) {
			return nil
		}
		if strings.HasSuffix(d.Name(), ".star") {
			found++
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		return c.add(filepath.ToSlash(rel), path)
	})
	if err != nil {
		return err
	}
	if found == 0 {
		return fmt.Errorf("%s: no .star files", root)
	}
	return nil
}

func (c *collector) addFile(path string) error {
	name := filepath.Base(path)
	switch {
	case !strings.HasSuffix(name, ".star"):
		return fmt.Errorf("%s: not a .star file", path)
	case !isRunbookFile(name):
		return fmt.Errorf("%s: test files (*_test.star) are not applied", path)
	}
	if err := c.add(name, path); err != nil {
		return err
	}
	dir := filepath.Dir(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() || !c.wants(e.Name()) || e.Name() == name {
			continue
		}
		if err := c.add(e.Name(), filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// add reads path as the file called name. Only regular files (or links to
// them) are read.
func (c *collector) add(name, path string) error {
	if prev, ok := c.from[name]; ok {
		if samePath(prev, path) {
			return nil
		}
		return fmt.Errorf("%s and %s would both be applied as %s", prev, path, name)
	}
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		if info.IsDir() {
			return nil
		}
		return fmt.Errorf("%s: not a regular file", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	c.files[name], c.from[name] = string(b), path
	return nil
}

func samePath(a, b string) bool {
	aa, errA := filepath.Abs(a)
	ba, errB := filepath.Abs(b)
	return errors.Join(errA, errB) == nil && aa == ba
}
