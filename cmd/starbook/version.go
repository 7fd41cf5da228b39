package main

import (
	"fmt"
	"os"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/starbook/starbook/buildinfo"
	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/stdlib"
)

var versionCmd = func() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, build time, Go and etcd versions and @std release of this binary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := buildinfo.Read()
			std, err := stdRelease()
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), versionJSON{Info: info, StoreFormat: cluster.CurrentFormat, StdRelease: std})
			}
			return printVersion(cmd, info, std)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}()

func init() { rootCmd.AddCommand(versionCmd) }

// versionJSON is what version --json prints: the build, and the store
// format this binary writes (it refuses a newer one; README "Upgrades").
type versionJSON struct {
	buildinfo.Info
	StoreFormat int `json:"store_format"`
	// StdRelease is the release of @std this binary applies runbooks with
	// (stdlib.Set.Release): the embedded modules', or $STARBOOK_STD_DIR's.
	StdRelease string `json:"std_release"`
}

// stdRelease names the @std release apply pins with this binary, and where
// it comes from when $STARBOOK_STD_DIR overrides the embedded modules.
func stdRelease() (string, error) {
	set, err := stdlib.Default(os.Getenv)
	if err != nil {
		return "", err
	}
	r := set.Release(stdlib.Std)
	if dir := os.Getenv(stdlib.EnvDir); dir != "" {
		r += " (" + stdlib.EnvDir + "=" + dir + ")"
	}
	return r, nil
}

// printVersion writes info as aligned "name: value" lines, leaving out what
// the build did not record.
func printVersion(cmd *cobra.Command, info buildinfo.Info, std string) error {
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 1, ' ', 0)
	commit := info.Commit
	if info.Modified {
		commit += " (modified)"
	}
	for _, kv := range [][2]string{
		{"version", info.Version},
		{"commit", commit},
		{"commit time", info.CommitTime},
		{"build time", info.BuildTime},
		{"go", info.GoVersion},
		{"platform", info.Platform},
		{"etcd", info.EtcdVersion},
		{"store format", strconv.Itoa(cluster.CurrentFormat)},
		{"@std", std},
	} {
		if kv[1] == "" {
			continue
		}
		fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("print version: %w", err)
	}
	return nil
}
