package main

import (
	"fmt"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/starbook/starbook/buildinfo"
	"github.com/starbook/starbook/cluster"
)

var versionCmd = func() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, build time, Go and etcd versions of this binary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := buildinfo.Read()
			if asJSON {
				return printJSON(cmd.OutOrStdout(), versionJSON{Info: info, StoreFormat: cluster.CurrentFormat})
			}
			return printVersion(cmd, info)
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
}

// printVersion writes info as aligned "name: value" lines, leaving out what
// the build did not record.
func printVersion(cmd *cobra.Command, info buildinfo.Info) error {
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
