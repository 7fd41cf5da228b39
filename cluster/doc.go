// Package cluster is starbook's etcd storage: runbook versions, execution
// records, histories, claims, waits, timers, signals, approvals, logs, the
// audit log, dead letters and trigger admission, each written by a fenced
// transaction;
// and the embedded etcd member a single node runs by default (compaction,
// defragmentation, TLS).
//
// It knows no HTTP and no Starlark: it stores what package runtime defines
// (a [Claim] is the runtime's Journal over etcd) and the root package's
// domain types. The worker that claims and runs executions is package node;
// the use cases behind the HTTP API are package service.
//
// # Files
//
//   - keys.go builds every key ([Keys]); the layout is written down there.
//   - store.go, start.go: runbook versions, creating and reading executions.
//     A start costs one txn: the create checks the cached current version
//     and, through a [Runner], claims the execution for a free local worker.
//   - claim.go, batch.go, pbops.go: a claim's fenced writes and the group
//     commit that batches many executions' writes into one txn.
//   - waits.go, timers.go, signals.go, approvals.go, notify.go: waits and
//     what resolves them.
//   - triggers.go: trigger admission ([Triggers]): dedup, bounded runbooks'
//     gates, slots and queues, cron ticks, resolved alerts.
//   - logs.go, audit.go, limits.go, ends.go, observe.go, nodes.go: log lines,
//     the audit log, active limits, end notification, watches for metrics,
//     node registrations and the cluster's status.
//   - retention.go, compaction.go, defrag.go, embed.go, tls.go: keeping etcd
//     small and running it.
//   - format.go: the store's format marker ([Store.OpenFormat]): a node
//     marks an empty store, migrates an older one and refuses a newer one.
//   - budget.go, usage.go: runbooks' day budgets, counted cluster-wide in
//     chunks a node leases ([Budgets]), and usage per execution per day,
//     written with each run's outcome.
//   - rollups.go: what SLOs and usage reports read instead of executions:
//     each end writes a key of its own in its txn; the leader folds them
//     into per-runbook minute, hour and day rollups ([Store.FoldRollups],
//     [Store.RollupTask]); [Store.BuildRollups] counts a store's past ends.
//   - schema.go: runbook versions' input schemas, compiled once per
//     runbook@version; StartCurrent and the trigger index check inputs
//     against them before anything is stored.
//   - redrive.go, migrate.go: moving executions between attempts and
//     versions; a re-pin onto a new version ([Store.Repin]) is fenced on
//     everything its replay read, and never touches an owned execution.
//   - pauses.go: runbooks' pauses ([Store.PutPause], [Store.PauseOf]),
//     each written with its audit record; the trigger index reads them with
//     the runbooks, the leader resumes those past their until
//     ([Store.ResumeDue]); a trigger event's dead letter replayed once
//     ([Triggers.Replay]).
//
// # Invariants
//
//   - An event is recorded at most once per position: its append requires
//     the position's key to be absent and the claim's owner key to be the one
//     the claim created (fencing), in the same txn.
//   - "running" is never stored: it is derived from owners/<id>, a key bound
//     to the owning node's session lease, so a dead node's claims vanish with
//     its lease.
//   - A batch's requests succeed or fail one by one: a failed fence fails only
//     its own request; its neighbours are committed again without it.
//   - Only this package builds keys (keys.go); other packages use the Store's
//     methods, or [Keys]' exported prefixes to watch.
//   - Every end writes its SLO end key in its own txn, and a redrive of an
//     ended execution its retraction: a rollup read counts each ended
//     execution once, at its latest end, folded or not.
package cluster
