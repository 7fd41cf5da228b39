package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.starlark.net/starlark"

	"github.com/starbook/starbook/api"
	"github.com/starbook/starbook/check"
	sbruntime "github.com/starbook/starbook/runtime"
)

// Service is the node's api.Service: what the HTTP API and the CLI drive.
type Service struct {
	Store    *Store
	Node     *Node // the local node, for readiness; may be nil
	Builtins starlark.StringDict
	Now      func() time.Time

	idMu    sync.Mutex
	entropy *ulid.MonotonicEntropy
}

var _ api.Service = (*Service)(nil)

// NewService returns the service over store, compiling runbooks against builtins.
func NewService(store *Store, builtins starlark.StringDict) *Service {
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
// refused as one *InputError, a file:line finding per line; warnings (a
// secret not set in this node's environment) are returned with the versions.
func (s *Service) Apply(ctx context.Context, files map[string]string) ([]api.RunbookVersion, error) {
	res := check.Files(files, check.Options{Builtins: s.Builtins, LookupEnv: os.LookupEnv})
	if err := res.Err(); err != nil {
		return nil, err
	}
	bundles := res.Bundles
	unchanged, created, err := s.Store.PutBundles(ctx, bundles)
	if err != nil {
		return nil, err
	}
	warnings := map[string][]string{}
	for _, w := range res.Warnings() {
		for _, b := range bundles {
			if _, ok := b.Files[w.File]; ok {
				warnings[b.Name] = append(warnings[b.Name], w.String())
			}
		}
	}
	out := make([]api.RunbookVersion, len(bundles))
	for i, b := range bundles {
		out[i] = api.RunbookVersion{Name: b.Name, Version: b.Version, Files: fileNames(b), CreatedAt: created,
			Unchanged: unchanged[i], Warnings: warnings[b.Name]}
	}
	return out, nil
}

func fileNames(b *sbruntime.Bundle) []string {
	names := make([]string, 0, len(b.Files))
	for n := range b.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Runbooks lists every runbook's current version.
func (s *Service) Runbooks(ctx context.Context) ([]api.RunbookVersion, error) {
	current, err := s.Store.CurrentVersions(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.RunbookVersion, 0, len(current))
	for name, version := range current {
		b, created, err := s.Store.Bundle(ctx, name, version)
		if err != nil {
			return nil, err
		}
		out = append(out, api.RunbookVersion{Name: name, Version: version, Files: fileNames(b), CreatedAt: created})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Start creates an execution of the runbook's current version.
func (s *Service) Start(ctx context.Context, runbook string, input json.RawMessage, trigger sbruntime.Trigger) (*sbruntime.Execution, error) {
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
	return s.Store.startCurrent(ctx, runbook, s.Node, func(version string) *sbruntime.Execution {
		return &sbruntime.Execution{ID: s.NewID(), Runbook: runbook, Version: version, Status: sbruntime.StatusPending,
			Trigger: trigger, Input: input, CreatedAt: now, UpdatedAt: now, TraceParent: TraceParent(ctx)}
	})
}

// Executions lists executions newest first, those older than f.After when set.
func (s *Service) Executions(ctx context.Context, f api.Filter) ([]*sbruntime.Execution, error) {
	return s.Store.Executions(ctx, ListFilter{Status: f.Status, Runbook: f.Runbook, Limit: f.Limit, After: f.After})
}

// Execution returns an execution and its history.
func (s *Service) Execution(ctx context.Context, id string) (*sbruntime.Execution, []*sbruntime.Event, error) {
	return s.Store.Execution(ctx, id)
}

// Cancel cancels an execution.
func (s *Service) Cancel(ctx context.Context, id string) (*sbruntime.Execution, error) {
	return s.Store.Cancel(ctx, id)
}

// AwaitEnd watches the execution until it is terminal or ctx is done.
func (s *Service) AwaitEnd(ctx context.Context, id string) (*sbruntime.Execution, error) {
	return s.Store.AwaitEnd(ctx, id)
}

// Health checks that etcd answers.
func (s *Service) Health(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := s.Store.cli.Get(ctx, s.Store.k.prefix+"health", clientv3.WithCountOnly()); err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	return nil
}

// AwaitEnd blocks until execution id is terminal or ctx is done, and returns
// it as it is then. A done ctx is not an error. An end committed through this
// store (the execution ran here) is seen at once; one committed elsewhere
// through a watch of the record.
func (s *Store) AwaitEnd(ctx context.Context, id string) (*sbruntime.Execution, error) {
	local, stop := s.ends.await(id) // before the reads: no end after them is missed
	defer stop()
	for {
		e, _, err := s.Execution(ctx, id)
		if err != nil {
			if ctx.Err() != nil && !errors.Is(err, sbruntime.ErrNotFound) {
				return s.lastKnown(id)
			}
			return nil, err
		}
		if e.Status.Terminal() {
			return e, nil
		}
		resp, err := s.cli.Get(ctx, s.k.execution(id))
		if err != nil {
			return e, nil
		}
		if len(resp.Kvs) > 0 {
			if x, err := s.k.decodeExecution(resp.Kvs[0]); err == nil && x.Status.Terminal() {
				return x, nil
			}
		}
		if end := s.watchEnd(ctx, id, resp.Header.Revision+1, local); end != nil {
			return end, nil
		}
		if ctx.Err() != nil {
			return s.lastKnown(id)
		}
	}
}

// watchEnd returns id's terminal record once local delivers it or a watch of
// the record from rev sees it; nil if ctx is done or the watch fails first.
func (s *Store) watchEnd(ctx context.Context, id string, rev int64, local <-chan *sbruntime.Execution) *sbruntime.Execution {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := s.cli.Watch(wctx, s.k.execution(id), clientv3.WithRev(rev))
	for {
		select {
		case e := <-local:
			return e
		case <-ctx.Done():
			return nil
		case wr, ok := <-ch:
			if !ok || wr.Err() != nil {
				return nil
			}
			for _, ev := range wr.Events {
				if ev.Type != clientv3.EventTypePut {
					continue
				}
				if x, err := s.k.decodeExecution(ev.Kv); err == nil && x.Status.Terminal() {
					return x
				}
			}
		}
	}
}

func (s *Store) lastKnown(id string) (*sbruntime.Execution, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e, _, err := s.Execution(ctx, id)
	return e, err
}
