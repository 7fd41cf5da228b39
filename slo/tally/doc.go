// Package tally counts ended runs without keeping them: a [Bucket] is the
// runs of a span of time that ended, by outcome, with a [Histogram] of their
// durations. The store keeps one bucket per runbook per minute or hour
// (cluster's rollups) so that an SLO is computed from the buckets of its
// window, not from every run in it; slo.ComputeBuckets reads them.
//
// Invariants: buckets add and subtract exactly (counts are integers, and a
// histogram is a count per fixed bin), so folding many small buckets into
// one, in any order and with retractions, gives the same totals. Only the
// durations lose precision: a [Histogram] answers a quantile with the
// largest value of the bin that holds it, within [RelativeError] of the
// exact nearest-rank value (or 1 ms, whichever is larger) and never under it.
//
// It imports only runtime (for the statuses): both the store and the slo
// package use it.
package tally
