// Package downstream protects the hosts runbooks call over HTTP: per host, a
// rate and a concurrency limit shared out between the live nodes, a retry
// budget, and a circuit breaker whose state every node shares.
//
// A [Limit] is declared with http_limit(...) at a runbook's top level, or
// node-wide (serve --http-limit); two declarations of one host combine field
// by field, the strictest winning ([Merge]). A node holds one [Guards]: the
// HTTP built-ins ask it for a host's [Host] (one map lookup; nil for a host
// nobody limits, which then pays nothing more) and route each request
// through it.
//
// Invariants:
//   - Rate and concurrency are cluster-wide figures: each node enforces its
//     share, the rate divided by the live nodes and the concurrency divided
//     by them (at least 1 per node), recomputed when membership changes.
//   - Retries (any request after the first of an HTTP call, and every request
//     of a call()-level retry) are at most RetryRatio of the first requests
//     in a sliding window, per node and so cluster-wide: requests to a host
//     stay within (1 + RetryRatio) x calls, however many layers retry.
//   - The breaker opens after Failures consecutive failures (5xx, transport
//     errors and timeouts; never a 4xx) seen by one node, stays open for
//     Cooldown, then lets one probe through cluster-wide (claimed by a
//     compare-and-swap); the probe's success closes it, its failure opens it
//     again. Transitions are written through [Circuits] (etcd) and every
//     node applies the others' through [Guards.Observe], so all fail fast
//     without sending. Without a Circuits the breaker is local to the node.
package downstream
