// Package dashboards builds starbook's Grafana dashboards as code with the
// Grafana Foundation SDK: Executive (success rate, throughput, top failing
// runbooks, SLO burn), On-call (burn rates, failures, queued and dropped
// runs, dead letters, waits, health) and Debug (step latency heatmap,
// retries, replays, etcd, with links to the node's execution page).
//
// The JSON files beside this package are generated; regenerate them with
//
//	cd deploy/grafana && go generate
//
// This is a module of its own so that the SDK and Prometheus' PromQL parser
// (which its test uses to parse every query) stay out of starbook's go.mod.
package dashboards

//go:generate go run ./gen
