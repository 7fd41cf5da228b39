// Package node is starbook's worker: a [Node] joins the cluster with an etcd
// session, watches the runnable executions, claims them (package cluster's
// fenced claim) and replays them on the runtime engine, up to its workers.
// The node elected leader also runs the work only one node may do: it fires
// durable timers, runs the cron scheduler and promotes queued runs of
// bounded runbooks, and runs the configured leader tasks (retention,
// compaction, Slack notices, the reaping of stale circuit records).
//
// # Invariants
//
//   - Every claim is bound to the node's session lease: when the session
//     expires (etcd unreachable past the TTL), the node stops its runs, since
//     their writes would be refused, and rejoins with a new session.
//   - Leader-only work starts in lead and stops when lead returns: on
//     resignation, a lost session or shutdown; leader tasks are waited for.
//   - A graceful stop claims nothing more, lets in-flight steps finish for
//     StopGrace, then releases its claims and closes its session, so other
//     nodes take over at once rather than after the TTL.
//   - Every goroutine the node starts is waited for by Run.
package node
