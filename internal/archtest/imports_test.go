package archtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/starbook/starbook/internal/archtest"
)

const module = "github.com/starbook/starbook"

// aboveRuntime is every package of ours that builds on runtime.
var aboveRuntime = []string{
	".", "cluster/...", "node/...", "service/...", "builtins/...", "triggers/...", "api/...", "cmd/...",
	"enginetest/...", "slackapp/...", "ui/...", "observe/...", "check/...", "runbooktest/...", "bench/...",
	"policy/...", "snapshot/...", "sso/...",
}

// rules is the layering of this module (DESIGN.md, "Packages"): dependencies
// point one way, from the commands down to runtime. A rule whose package does
// not exist (yet) is skipped.
var rules = []archtest.Rule{
	{
		Pkg: "runtime/...", Tests: true, Forbid: aboveRuntime,
		Why: "runtime is the bottom layer (replay interpreter, history model, the interfaces it needs); everything else builds on it, so it imports none of it, not even in tests (a test that needs the built-ins belongs in enginetest)",
	},
	{
		Pkg: "runtime/...", Tests: true, Forbid: []string{"go.etcd.io/...", "github.com/slack-go/..."},
		Why: "runtime imports neither etcd nor Slack: storage and chat are adapters that implement its interfaces",
	},
	{
		Pkg: "builtins/...", Tests: true, Forbid: []string{"cluster/...", "node/...", "service/..."},
		Why: "built-ins reach storage only through runtime's step API; they never touch etcd or the loops themselves",
	},
	{
		Pkg: "cluster/...", Forbid: []string{"builtins/..."},
		Why: "storage keeps histories, it does not run scripts (its tests may use the built-ins to run the engine suite)",
	},
	{
		Pkg: "cluster/...", Forbid: []string{"api/...", "ui/...", "slackapp/..."},
		Why: "storage imports no HTTP package of ours: handlers call storage, not the reverse",
	},
	{
		Pkg: "cluster/...", Forbid: []string{"node/...", "service/...", "cmd/..."},
		Why: "storage is below the loops, the application service and the commands that use it",
	},
	{
		Pkg: "snapshot/...", Forbid: []string{"builtins/...", "node/...", "service/...", "api/...", "ui/...", "slackapp/...", "cmd/..."},
		Why: "snapshots are files of the store: they build on cluster's etcd layout only, and the service, HTTP API, leader loop and commands call them (its tests may run a node)",
	},
	{
		Pkg: "downstream/...", Tests: true, Forbid: append([]string{"runtime/...", "go.etcd.io/..."}, aboveRuntime...),
		Why: "downstream protection is a leaf: builtins route requests through it, cluster stores its circuits and node feeds it membership, all through its types and its Circuits interface",
	},
	{
		Pkg: "quota/...", Forbid: []string{"cluster/...", "node/...", "service/...", "api/...", "builtins/...", "cmd/..."},
		Why: "the storage guard has one job: it reads etcd's size through its client and knows none of starbook's keys; service, node and the hooks ask it, and the embedded member's package-to-be sits beside it",
	},
	{
		Pkg: "node/...", Forbid: []string{"service/...", "api/..."},
		Why: "the worker and leader loops sit below the application service and the HTTP API, which drive them",
	},
	{
		Pkg: "service/...", Forbid: []string{"api/...", "ui/...", "slackapp/...", "cmd/..."},
		Why: "the use cases know no transport: the HTTP API, the UI and Slack drive the service, not the reverse",
	},
	{
		Pkg: "policy/...", Tests: true, Forbid: []string{"cluster/...", "node/...", "service/...", "api/...", "builtins/...", "check/...", "go.etcd.io/..."},
		Why: "policies are evaluated, not stored, here: policy knows runtime's values and nothing of storage, the loops or the runbooks' built-ins (a policy cannot make an effect); service and node feed it",
	},
	{
		Pkg: "sso/...", Forbid: []string{"cluster/...", "node/...", "service/...", "api/...", "ui/...", "slackapp/...", "builtins/...", "go.etcd.io/..."},
		Why: "single sign-on has one job, the OpenID Connect relying party: it knows the auth file and the audit record, not storage or the API; serve hands it its secret and the API asks it through api.Sessions (its tests may run a node)",
	},
	{
		Pkg: ".", Forbid: []string{"..."}, Except: []string{"runtime/..."},
		Why: "the root package holds domain types and service interfaces: of our packages it builds on runtime only, so any package can import it",
	},
	{
		Pkg: "...", Tests: true, Forbid: []string{"cmd/..."},
		Why: "cmd/ is wiring only: what a command needs and another package wants belongs in a package both import",
	},
}

// temporaryAllowlist holds forbidden imports that exist today and are being
// removed. Each entry goes when its edge does: the test fails on an entry that
// allows nothing, so none outlives its edge.
var temporaryAllowlist = []archtest.Allowed{}

func TestImports(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	g, err := archtest.Load(ctx, module+"/...")
	if err != nil {
		t.Fatal(err)
	}
	if g.Module != module || g.Packages[module+"/runtime"] == nil {
		t.Fatalf("loaded module %q without %s/runtime: the rules would check nothing", g.Module, module)
	}
	r := archtest.Check(g, rules, temporaryAllowlist)
	for _, rule := range r.Skipped {
		t.Logf("skipped: no package matches %q (rule: %s)", rule.Pkg, rule.Why)
	}
	for _, v := range r.Allowed {
		t.Logf("%v (allowed for now: %s)", v, v.Allowed.Why)
	}
	for _, v := range r.Violations {
		t.Error(v)
	}
	for _, k := range r.Stale {
		t.Errorf("allowed import %s -> %s is gone: delete its entry from temporaryAllowlist (%s)", k.From, k.To, k.Why)
	}
}
