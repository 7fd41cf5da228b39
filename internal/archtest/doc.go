// Package archtest checks a module's import graph against layering rules:
// each [Rule] names the packages it is about and the packages they must not
// import, directly or through others. The rules of this module are the table
// in imports_test.go, so `go test ./...` fails on a forbidden edge and names
// the chain of imports that leads to it.
//
// The graph comes from `go list -deps -test` (see [Load]): it holds every
// package the module's packages and their tests compile with, so a rule can
// forbid a package that arrives through a test-only import, or one outside the
// module (etcd, Slack). [Check] works on any [Graph], which is how the checker
// itself is tested on small synthetic graphs.
package archtest
