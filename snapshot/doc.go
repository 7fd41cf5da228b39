// Package snapshot saves and restores the whole store: every execution, its
// history, pending waits, runbooks and triggers, as one etcd snapshot file.
//
// A snapshot file is etcd's own format (the member's bbolt database as the
// maintenance API streams it) ending with a sha256 trailer of everything
// before it. [Save] and [WriteFile] write FILE.part, check the trailer, fsync
// and rename: a file at the final name is always complete and intact.
// [Restore] rebuilds, offline, the data dir of a node's embedded member from a
// file (etcd's restore, hash check on), and [RestoreMember] that of one member
// of a new cluster of embedded members (serve --initial-cluster), once per
// member from the same file; [Periodic] is the leader's task that
// saves a file every interval and keeps the newest few.
//
// # Invariants
//
//   - A file that fails its hash check ([ErrCorrupt]) is never saved at its
//     final name and never restored: nothing is written.
//   - Restore never writes into a data dir that holds anything: it builds the
//     member in a temporary dir beside it and renames it into place only once
//     the whole restore has succeeded.
package snapshot
