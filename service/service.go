package service

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"maps"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
	"go.starlark.net/starlark"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/check"
	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/node"
	"github.com/starbook/starbook/policy"
	"github.com/starbook/starbook/quota"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/stdlib"
)

// Service is the node's starbook.Service: what the HTTP API and the CLI drive.
type Service struct {
	Store *cluster.Store
	// Node is the local node, which claims and runs the executions this
	// service starts in their create txn while it has a worker free, and
	// whose session is the node's readiness; nil for none.
	Node     *node.Node
	Builtins starlark.StringDict
	Now      func() time.Time
	// Storage, when set, refuses new executions while the store is nearly
	// full (a *quota.FullError, runtime.ErrStorageFull); nil admits all.
	Storage *quota.Guard
	// Libraries serves the library modules runbooks load at apply
	// (load("@std/k8s.star")); nil serves the embedded @std.
	Libraries *stdlib.Set

	idMu     sync.Mutex
	entropy  *ulid.MonotonicEntropy
	policies atomic.Pointer[policy.Set] // the stored set, loaded (currentPolicies)
	// beforeRepin, when set (tests only), runs between an execution's
	// replay and its re-pin.
	beforeRepin func(ctx context.Context, id string)

	// replayStore is the trigger store dead letters are replayed through,
	// made on first use (replayTriggers).
	replayOnce  sync.Once
	replayStore *cluster.Triggers
}

var _ starbook.Service = (*Service)(nil)

// New returns the service over store, compiling runbooks against builtins.
func New(store *cluster.Store, builtins starlark.StringDict) *Service {
	return &Service{Store: store, Builtins: builtins, Now: time.Now, entropy: ulid.Monotonic(rand.Reader, 0)}
}

// NewID returns a new time-sortable execution id.
func (s *Service) NewID() string {
	s.idMu.Lock()
	defer s.idMu.Unlock()
	return ulid.MustNew(ulid.Timestamp(s.Now()), s.entropy).String()
}

// Apply checks every runbook in files as starbook check does (package
// check) and stores the new versions, all or nothing. Any error found is
// refused as one *InputError, a file:line finding per line, and so is a
// runbook a policy's on_apply denies (see judge); warnings (a secret not
// set in this node's environment) are returned with the versions.
func (s *Service) Apply(ctx context.Context, files map[string]string) ([]starbook.RunbookVersion, error) {
	res, err := s.check(ctx, files)
	if err != nil {
		return nil, err
	}
	unchanged, created, err := s.Store.PutBundles(ctx, res.Bundles)
	if err != nil {
		return nil, err
	}
	return versions(res, unchanged, created), nil
}

// check checks files as starbook check does, then judges them by the
// policies' on_apply; any error or denial refuses them all.
func (s *Service) check(ctx context.Context, files map[string]string) (*check.Result, error) {
	res, err := s.checkFiles(files)
	if err != nil {
		return nil, err
	}
	if err := res.Err(); err != nil {
		return nil, err
	}
	if err := s.judge(ctx, files, res); err != nil {
		return nil, err
	}
	return res, nil
}

// checkFiles checks files as starbook check does, with the node's
// libraries. @std modules come from the node only: a request that sends
// one is refused.
func (s *Service) checkFiles(files map[string]string) (*check.Result, error) {
	for name := range files {
		if strings.HasPrefix(name, stdlib.Std+"/") {
			return nil, sbruntime.Inputf("%s: @std modules are the node's own and cannot be uploaded (a team's library is @NAME, given with apply --lib NAME=DIR)", name)
		}
	}
	libs := s.Libraries
	if libs == nil {
		var err error
		if libs, err = stdlib.Default(func(string) string { return "" }); err != nil {
			return nil, err
		}
	}
	return check.Files(files, check.Options{Builtins: s.Builtins, LookupEnv: os.LookupEnv, Libraries: libs}), nil
}

// versions describes the checked bundles of res as apply answers them.
func versions(res *check.Result, unchanged []bool, created time.Time) []starbook.RunbookVersion {
	bundles := res.Bundles
	warnings := map[string][]string{}
	for _, w := range res.Warnings() {
		for _, b := range bundles {
			if _, ok := b.Files[w.File]; ok {
				warnings[b.Name] = append(warnings[b.Name], w.String())
			}
		}
	}
	out := make([]starbook.RunbookVersion, len(bundles))
	for i, b := range bundles {
		out[i] = starbook.RunbookVersion{Name: b.Name, Version: b.Version, Files: b.FileNames(), CreatedAt: created,
			Unchanged: unchanged[i], Warnings: warnings[b.Name], Libraries: b.Libraries}
	}
	return out
}

// Runbooks lists every runbook's current version.
func (s *Service) Runbooks(ctx context.Context) ([]starbook.RunbookVersion, error) {
	current, err := s.Store.CurrentVersions(ctx)
	if err != nil {
		return nil, err
	}
	pauses, err := s.Store.Pauses(ctx)
	if err != nil {
		return nil, err
	}
	now := s.Now()
	out := make([]starbook.RunbookVersion, 0, len(current))
	for name, version := range current {
		b, created, err := s.Store.Bundle(ctx, name, version)
		if err != nil {
			return nil, err
		}
		rv := starbook.RunbookVersion{Name: name, Version: version, Files: b.FileNames(), CreatedAt: created, Libraries: b.Libraries}
		if p := cluster.EffectivePause(name, pauses, now); p.Paused {
			rv.Pause = p
		}
		out = append(out, rv)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Start creates an execution of the runbook's current version. While the
// store is nearly full it creates nothing and returns a *quota.FullError;
// while the runbook is paused, a *starbook.PausedError (409), unless the
// trigger is forced (its starbook.AttrForced attribute set, to any value:
// Start records the pause's holder there).
func (s *Service) Start(ctx context.Context, runbook string, input json.RawMessage, trigger sbruntime.Trigger) (*sbruntime.Execution, error) {
	if err := s.Storage.Admit(); err != nil {
		return nil, err
	}
	if _, force := trigger.Attrs[starbook.AttrForced]; force {
		trigger.Attrs = maps.Clone(trigger.Attrs) // the caller's stays as given
		holder, err := s.pauseHolder(ctx, runbook)
		if err != nil {
			return nil, err
		}
		if holder == "" {
			delete(trigger.Attrs, starbook.AttrForced) // nothing to force past
		} else {
			trigger.Attrs[starbook.AttrForced] = holder
		}
	} // else the store refuses it while paused, on the start's pin (no read)
	if len(input) > 0 {
		// Compact, as it is stored: the record then encodes without
		// reflection (Execution.EncodeJSON).
		var compact bytes.Buffer
		if err := json.Compact(&compact, input); err != nil {
			return nil, sbruntime.Inputf("input is not valid JSON")
		}
		input = compact.Bytes()
	}
	now := s.Now().UTC()
	return s.Store.StartCurrent(ctx, runbook, s.runner(), func(version string) *sbruntime.Execution {
		return &sbruntime.Execution{ID: s.NewID(), Runbook: runbook, Version: version, Status: sbruntime.StatusPending,
			Trigger: trigger, Input: input, CreatedAt: now, UpdatedAt: now, TraceParent: cluster.TraceParent(ctx)}
	})
}

// runner is the node that may claim new executions in their create txn.
func (s *Service) runner() cluster.Runner {
	if s.Node == nil {
		return nil // not a typed nil in the interface
	}
	return s.Node
}

// Executions lists executions newest first.
func (s *Service) Executions(ctx context.Context, f starbook.Filter) ([]*sbruntime.Execution, error) {
	return s.Store.Executions(ctx, cluster.ListFilter{Status: f.Status, Runbook: f.Runbook, Limit: f.Limit, After: f.After})
}

// Execution returns an execution and its history.
func (s *Service) Execution(ctx context.Context, id string) (*sbruntime.Execution, []*sbruntime.Event, error) {
	return s.Store.Execution(ctx, id)
}

// Cancel cancels an execution.
func (s *Service) Cancel(ctx context.Context, id string) (*sbruntime.Execution, error) {
	e, err := s.Store.Cancel(ctx, id)
	if err != nil {
		return e, err
	}
	// Its children go with it (run_runbook): they are cancelled too.
	if err := s.cancelChildren(ctx, id); err != nil {
		return e, err
	}
	return e, nil
}

// AwaitEnd watches the execution until it is terminal or ctx is done.
func (s *Service) AwaitEnd(ctx context.Context, id string) (*sbruntime.Execution, error) {
	return s.Store.AwaitEnd(ctx, id)
}

var _ starbook.UsageService = (*Service)(nil)

// Usage reports what runbook ("" for all) did on each of the last days UTC
// days, with its day budgets.
func (s *Service) Usage(ctx context.Context, runbook string, days int) ([]*starbook.DayUsage, error) {
	return s.Store.Usage(ctx, runbook, days)
}

// Health checks that etcd answers.
func (s *Service) Health(ctx context.Context) error {
	return s.Store.Health(ctx)
}
