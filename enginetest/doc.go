// Package enginetest is one scenario suite for the durable model, run against
// any storage backend: the in-memory [MemBackend] here and etcd in package
// cluster. A backend that passes [RunSuite] records every position at most
// once, fences writes on the claim, parks and resumes waits, and lets the
// engine resume an execution killed at any point without doing a finished step
// again.
//
// The suite gives scripts the real built-ins plus a test-only effect(name, ...)
// (see [Fixture]) that counts its invocations per idempotency key, so each
// scenario can assert how often the world was touched. Crashes are simulated by
// cancelling the run's context from inside an effect (killed before its
// checkpoint) or from a Journal wrapper after N appends (killed after one),
// then claiming and running the execution again.
//
// Its tests also hold runtime's tests that need the real built-ins
// (checkpointing, the replay and runbook-loading fuzz tests), so that nothing
// under runtime/ imports a package above it, tests included.
package enginetest
