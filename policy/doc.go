// Package policy loads and evaluates policies: Starlark files an admin
// applies to the cluster (starbook policy apply, or serve --policies DIR)
// that say which runbooks may be applied and which effects may run.
//
// A policy file defines on_apply(runbook) and/or on_effect(effect,
// history). Each returns None (or True) to allow, deny("why") to refuse, or
// a list of denials. on_apply is evaluated at every apply against a
// description of each runbook (see Runbook): a denial refuses the whole
// apply, naming the policy's file:line and the runbook's. on_effect is
// evaluated inside a new step before each effect (an HTTP request, a Slack
// message) with the execution's history so far: a denial fails the step
// with a runtime.PolicyError, which is not retried and is audited.
//
// Invariants:
//   - Policies are sandboxed: they see only deny, json, struct and the
//     values they are given (no effects, no clock, no secrets), and every
//     evaluation is bounded (MaxSteps), so a looping policy fails instead
//     of hanging an apply or a step.
//   - A policy that raises, or returns anything else, refuses: an apply
//     names its file:line; at run time the effect is refused (fail closed).
//   - on_effect is never asked during a replay (runtime.Policy): the
//     decision taken when the step first ran is the one its recorded event
//     holds.
//   - A Set is immutable once loaded and safe for concurrent use.
//
// Files named *_test.star are tests, run offline by Test (starbook policy
// test): each test_* function they define is called with the assert module
// and the helpers runbook(...), effect(...) and step(...), which build the
// same values apply and the engine pass.
package policy
