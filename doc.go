// Package starbook holds the application's domain types and the service
// interfaces a front end drives: what a runbook version, a pending wait, an
// audit record and the cluster's status are, and what the HTTP API ([api]),
// the CLI and Slack may ask of a node ([Service] and its optional parts).
//
// It depends on nothing of ours but package runtime (executions, events,
// decisions) and on no transport or store: package api serves these types
// over HTTP, package service implements the interfaces over etcd storage
// (package cluster) and the worker (package node). Like litestream's root
// package, it is where a newcomer starts reading.
//
// [api]: https://pkg.go.dev/github.com/starbook/starbook/api
package starbook
