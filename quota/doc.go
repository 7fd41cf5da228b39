// Package quota keeps starbook out of etcd's NOSPACE. etcd refuses every
// write that would take its db file past its quota (--quota-backend-bytes,
// serve --etcd-quota) and then raises a NOSPACE alarm under which every write
// with a put, in the whole cluster, fails until someone frees space and
// disarms the alarm: no run could start, step or end.
//
// A [Guard] reads the members' maintenance Status every few seconds and
// refuses new starts (API, CLI, webhooks, alerts, cron) once the db file is
// at [DefaultFullAt] of the quota or a NOSPACE alarm is raised, with a
// [*FullError] that says what to do; running executions go on, so that what
// is in flight ends and retention can free what ended. [Starter] and
// [CronStore] put the guard in front of the triggers' starts and keep what
// they refuse as dead letters (reason storage). [IsNoSpace] recognises etcd's
// own refusal wherever a write meets it, and [Free] is the way out: compact,
// defragment, disarm.
//
// What etcd 3.7.3 compares (server/storage/quota.go): the backend's Size,
// the high-water mark of bbolt's pages (Status.DbSize), plus the request's
// cost (256 bytes + key + value per put), against the quota. Freed pages
// (after deletes and compaction) are reused but do not lower Size: only a
// defragmentation does. A txn with no put costs nothing and is never
// refused, so deletes (retention) and compaction work under the alarm.
//
// The guard has one job and knows nothing of starbook's keys; it sits beside
// package cluster, which stores, and reads the member through its client.
package quota
