// Package slo computes how runbooks meet the objectives they declare with
// slo() ([Compute]), and writes the Prometheus rule file starbook ships
// ([Rules]): multi-window burn-rate alerts per runbook objective and alerts
// on starbook's own health.
//
// It reads nothing itself: the service hands it the store's rollups of a
// window ([ComputeBuckets] over tally.Bucket: counts per minute or hour and a
// latency histogram) and the declarations of the runbooks' current versions.
// [Compute] over the runs themselves is the exact definition, which the
// rollups are tested against. Counting, for both the computed status and
// the rules: a completed execution is a success, a failed or stuck one a
// failure, a cancelled one neither (someone stopped it, or a trigger policy
// dropped it).
package slo
