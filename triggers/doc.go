// Package triggers turns the outside world's events into new executions:
// Alertmanager notifications, signed webhooks and cron schedules.
//
// It owns the trigger declarations runbooks make at top level
// (trigger.alert, trigger.cron, trigger.webhook, and a runbook's [Budget];
// see [Set]), their validation,
// matching, payload decoding, webhook authentication and cron tick
// computation. It imports no etcd: storage is the small interfaces it defines
// ([Starter], [Resolver], [CronStore], [Index]), implemented in package cluster.
//
// Invariants:
//   - A trigger never starts the same run twice: every start carries a dedup
//     identity (alert fingerprint and startsAt, webhook Idempotency-Key, cron
//     tick) that the Starter records in the same transaction as the execution.
//   - Nothing is lost silently: a start over a runbook's [Policy] is queued or
//     recorded as dropped, never discarded.
//   - Time comes from an injected [Clock]; tests never sleep.
package triggers
