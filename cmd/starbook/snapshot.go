package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/snapshot"
)

var snapshotCmd = func() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Save the whole store to a file, or restore a node's data dir from one",
		Long: `A snapshot is etcd's own snapshot of the whole store (every execution, its
history, pending approvals and timers, runbooks, triggers), ending with a
sha256 of its contents that save and restore check.

  starbook snapshot save FILE                   from a running node (admin token)
  starbook snapshot restore FILE --data-dir DIR offline, into a new data dir
    [--name M --initial-cluster M=URL,...]      as member M of a new cluster
  starbook snapshot verify FILE                 check a file's sha256

Periodic snapshots are taken by the leader: see serve --snapshot-dir.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(snapshotSaveCmd(), snapshotRestoreCmd(), snapshotVerifyCmd())
	return cmd
}()

func init() { rootCmd.AddCommand(snapshotCmd) }

func snapshotSaveCmd() *cobra.Command {
	var (
		force    bool
		endpoint string
		etcdTLS  cluster.EtcdTLS
	)
	cmd := &cobra.Command{
		Use:   "save FILE",
		Short: "Save a snapshot of the whole store to FILE",
		Long: `Save streams a snapshot from the node at --server (GET /api/v1/snapshot, which
needs an admin token) to FILE.part, checks its sha256, fsyncs it and renames it
to FILE: FILE is complete or not there. With --etcd-endpoint it asks that etcd
member directly instead (a cluster on an external etcd).`,
		Args: exactArgs(1, "FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := args[0]
			if _, err := os.Stat(file); err == nil && !force {
				return fmt.Errorf("%s exists: choose another name, or --force to replace it", file)
			}
			var n int64
			if endpoint != "" {
				if strings.Contains(endpoint, ",") {
					return fmt.Errorf("--etcd-endpoint %q: name one member (a snapshot is of one member's copy)", endpoint)
				}
				cli, err := cluster.DialEtcd([]string{endpoint}, &etcdTLS)
				if err != nil {
					return err
				}
				defer cli.Close()
				n, err = snapshot.Save(cmd.Context(), cli, file)
				if err != nil {
					return err
				}
			} else {
				c, err := newClient(cmd)
				if err != nil {
					return err
				}
				pr, pw := io.Pipe()
				done := make(chan struct{})
				go func() {
					defer close(done)
					_, err := c.Snapshot(cmd.Context(), pw)
					pw.CloseWithError(err)
				}()
				n, err = snapshot.WriteFile(file, pr)
				pr.Close() // a download still running stops at its next write
				<-done
				if err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "saved %s (%d bytes, sha256 checked)\n", file, n)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&force, "force", false, "replace FILE if it exists")
	fl.StringVar(&endpoint, "etcd-endpoint", "", "save from this etcd member instead of the node at --server")
	fl.StringVar(&etcdTLS.CertFile, "etcd-cert", "", "PEM client certificate for --etcd-endpoint")
	fl.StringVar(&etcdTLS.KeyFile, "etcd-key", "", "PEM private key of --etcd-cert")
	fl.StringVar(&etcdTLS.CAFile, "etcd-ca", "", "PEM CA that signed etcd's certificate")
	return cmd
}

func snapshotRestoreCmd() *cobra.Command {
	var dataDir, name, nodeID, initialCluster string
	cmd := &cobra.Command{
		Use:   "restore FILE --data-dir DIR [--name NAME --initial-cluster NAME=URL,...]",
		Short: "Restore FILE into a new data dir for `starbook serve --data-dir DIR`",
		Long: `Restore checks FILE's sha256, then builds the embedded etcd of a node in DIR
from it, offline: DIR must not exist or be empty (a node's data dir is never
overwritten), and a corrupt FILE changes nothing. Then start a node on it:

  starbook serve --data-dir DIR

It comes back with every execution and its history, pending approvals (they
can still be decided), timers, runbooks and triggers as they were when FILE
was saved; runs that were running are claimed and replayed once the old
node's claims expire (--session-ttl). The node gets a new id unless you pass
--node-id.

A cluster of embedded members (serve --initial-cluster) is restored as a new
cluster: run restore once per member, from the same FILE, each into its own
new data dir, with the same --initial-cluster (new peer URLs are fine) and
that member's --name (serve's --node-id; --node-id is accepted here too):

  starbook snapshot restore FILE --data-dir DIR1 --name m1 --initial-cluster m1=URL1,m2=URL2,m3=URL3
  starbook snapshot restore FILE --data-dir DIR2 --name m2 --initial-cluster m1=URL1,m2=URL2,m3=URL3
  starbook snapshot restore FILE --data-dir DIR3 --name m3 --initial-cluster m1=URL1,m2=URL2,m3=URL3

then start each member on its dir, with the same --node-id and
--initial-cluster (a member with data ignores --initial-cluster-state):

  starbook serve --data-dir DIR1 --node-id m1 --initial-cluster m1=URL1,... --peer-listen HOST:PORT1

The cluster forms once a quorum of them runs. An unknown --name, a malformed
--initial-cluster, or one without the other is refused before anything is
written.`,
		Args: exactArgs(1, "FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dataDir == "" {
				return fmt.Errorf("--data-dir is required: the new data dir to restore into")
			}
			if nodeID != "" {
				if name != "" && name != nodeID {
					return fmt.Errorf("--name %s and --node-id %s differ: --node-id is another name for --name, give one", name, nodeID)
				}
				name = nodeID
			}
			var err error
			start := "starbook serve --data-dir " + dataDir
			if name == "" && initialCluster == "" {
				err = snapshot.Restore(args[0], dataDir)
			} else {
				err = snapshot.RestoreMember(args[0], dataDir, snapshot.Member{Name: name, InitialCluster: initialCluster})
				start += " --node-id " + name + " --initial-cluster " + initialCluster + " --peer-listen HOST:PORT"
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restored %s into %s; start it with: %s\n", args[0], dataDir, start)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&dataDir, "data-dir", "", "new data dir to restore into (must not exist or be empty)")
	fl.StringVar(&name, "name", "", "restore DIR as this member of --initial-cluster (serve's --node-id): a member of a new cluster of embedded members")
	fl.StringVar(&nodeID, "node-id", "", "same as --name")
	fl.StringVar(&initialCluster, "initial-cluster", "", "name=peerURL,... of every member of the new cluster (as serve's --initial-cluster), with --name")
	return cmd
}

func snapshotVerifyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "verify FILE",
		Short: "Check FILE's sha256 trailer",
		Args:  exactArgs(1, "FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := snapshot.Verify(args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: sha256 ok\n", args[0])
			return nil
		},
	}
}

// exactArgs is cobra.ExactArgs with a message naming what is missing.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("want %s, got %d arguments", what, len(args))
		}
		return nil
	}
}
