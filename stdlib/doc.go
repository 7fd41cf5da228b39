// Package stdlib is starbook's standard library of integrations: Starlark
// modules (std/*.star) that runbooks load as "@std/NAME.star", written on
// the built-ins (http.*, secret, sleep, ...) and embedded in the binary.
//
// A [Set] is the libraries a node or a command knows: "@std" and a team's
// own, given as directories (starbook apply --lib team=DIR). At apply the
// modules a runbook loads, transitively, are copied into its version's
// bundle (package check), so that a version replays the module source it was
// applied with, whatever release the node that replays it runs; the bundle
// names each library's [Set.Release].
//
// STARBOOK_STD_DIR, when set, serves @std from that directory instead of the
// embedded modules: for testing a change of the library, and for a site that
// pins its own.
package stdlib
