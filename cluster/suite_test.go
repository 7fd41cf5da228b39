package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook/enginetest"
	sbruntime "github.com/starbook/starbook/runtime"
)

// TestSuiteEtcd runs the runtime scenario suite on the etcd store: one
// embedded member, a fresh key prefix per backend.
func TestSuiteEtcd(t *testing.T) {
	emb := startSuiteEtcd(t)
	var n atomic.Int64
	enginetest.RunSuite(t, func(t *testing.T) enginetest.Backend {
		return newEtcdBackend(NewStore(emb.Client, fmt.Sprintf("/suite/%d/", n.Add(1))))
	})
}

// startSuiteEtcd starts an embedded etcd in a temporary directory, stopped
// when t's subtests are done.
func startSuiteEtcd(t *testing.T) *Embedded {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	emb, err := StartEmbedded(ctx, EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	return emb
}

// etcdBackend is enginetest.Backend over Store: each claim gets its own
// lease, so expiring a claim is revoking its lease.
type etcdBackend struct {
	s   *Store
	seq atomic.Int64

	mu      sync.Mutex
	leases  map[*Claim]clientv3.LeaseID // claim -> its lease
	current map[string]*Claim           // execution -> its latest claim
}

var _ enginetest.Backend = (*etcdBackend)(nil)

func newEtcdBackend(s *Store) *etcdBackend {
	return &etcdBackend{s: s, leases: map[*Claim]clientv3.LeaseID{}, current: map[string]*Claim{}}
}

func (b *etcdBackend) Create(ctx context.Context, bundle *sbruntime.Bundle, input json.RawMessage) (string, error) {
	if _, _, err := b.s.PutBundles(ctx, []*sbruntime.Bundle{bundle}); err != nil {
		return "", err
	}
	now := time.Now().UTC()
	e := &sbruntime.Execution{ID: fmt.Sprintf("x%05d", b.seq.Add(1)), Runbook: bundle.Name, Version: bundle.Version,
		Status: sbruntime.StatusPending, Trigger: sbruntime.Trigger{Type: "manual"}, Input: input,
		CreatedAt: now, UpdatedAt: now}
	if err := b.s.CreateExecution(ctx, e); err != nil {
		return "", err
	}
	return e.ID, nil
}

func (b *etcdBackend) Claim(ctx context.Context, id string) (*sbruntime.Run, error) {
	lease, err := b.s.cli.Grant(ctx, 60)
	if err != nil {
		return nil, fmt.Errorf("grant lease: %w", err)
	}
	c, err := b.s.Claim(ctx, id, "suite-node", lease.ID)
	if err != nil {
		_, _ = b.s.cli.Revoke(context.WithoutCancel(ctx), lease.ID)
		return nil, err
	}
	b.mu.Lock()
	b.leases[c], b.current[id] = lease.ID, c
	b.mu.Unlock()
	// As a node runs it: the last step's event may come back in the outcome.
	return &sbruntime.Run{Execution: c.Execution, History: c.History, Waits: c.Waits, Journal: c, DeferCheckpoint: true}, nil
}

func (b *etcdBackend) Finish(ctx context.Context, r *sbruntime.Run, o sbruntime.Outcome) (*sbruntime.Execution, error) {
	c, ok := r.Journal.(*Claim)
	if !ok {
		return nil, fmt.Errorf("finish: run's journal is a %T, not a *Claim", r.Journal)
	}
	_, finishErr := c.Finish(ctx, o)
	if finishErr != nil && !errors.Is(finishErr, sbruntime.ErrNotOwner) {
		return nil, finishErr
	}
	b.mu.Lock()
	lease, ok := b.leases[c]
	delete(b.leases, c)
	b.mu.Unlock()
	if ok {
		// The claim's key is gone; its lease held nothing else.
		if _, err := b.s.cli.Revoke(ctx, lease); err != nil {
			return nil, fmt.Errorf("revoke lease: %w", err)
		}
	}
	e, _, err := b.s.Execution(ctx, c.Execution.ID)
	if err != nil {
		return nil, err
	}
	return e, finishErr
}

func (b *etcdBackend) Expire(ctx context.Context, id string) error {
	b.mu.Lock()
	lease, ok := b.leases[b.current[id]]
	delete(b.leases, b.current[id])
	b.mu.Unlock()
	if !ok {
		return fmt.Errorf("expire %s: no live claim", id)
	}
	_, err := b.s.cli.Revoke(ctx, lease)
	return err
}

func (b *etcdBackend) FireWaits(ctx context.Context, id string) (int, error) {
	resp, err := b.s.cli.Get(ctx, b.s.k.waits(id), clientv3.WithPrefix())
	if err != nil {
		return 0, err
	}
	fired := 0
	for _, kv := range resp.Kvs {
		w, err := b.s.k.decodeWait(kv)
		if err != nil {
			return fired, err
		}
		if w.Deadline != nil {
			// The leader's path: the timer key resolves the wait.
			if err := b.s.FireTimer(ctx, b.s.k.timer(*w.Deadline, id, w.Position)); err != nil {
				return fired, err
			}
			fired++
			continue
		}
		ok, err := b.s.ResolveWait(ctx, id, w.Position, w.OnTimeout, w.TimeoutError)
		if err != nil {
			return fired, err
		}
		if ok {
			fired++
		}
	}
	return fired, nil
}

// countFolded counts the writes of the events an end folded into the
// record (fold.go): their keys' versions as they were just before the end's
// txn deleted them, and one write for an event folded without a key (the
// end's own checkpoint).
func (b *etcdBackend) countFolded(ctx context.Context, id string, h *enginetest.History) error {
	rec, err := b.s.cli.Get(ctx, b.s.k.execution(id))
	if err != nil || len(rec.Kvs) == 0 {
		return err
	}
	folded, err := unfold(rec.Kvs[0].Value)
	if err != nil || len(folded) == 0 {
		return err
	}
	before, err := b.s.cli.Get(ctx, b.s.k.history(id), clientv3.WithPrefix(), clientv3.WithRev(rec.Kvs[0].ModRevision-1))
	if err != nil {
		return err
	}
	versions := map[string]int{}
	for _, kv := range before.Kvs {
		versions[b.s.k.IDUnder(string(kv.Key), b.s.k.history(id))] = int(kv.Version)
	}
	for _, ev := range folded {
		h.Writes[ev.Position] += max(versions[ev.Position], 1)
	}
	return nil
}

func (b *etcdBackend) History(ctx context.Context, id string) (*enginetest.History, error) {
	e, events, err := b.s.Execution(ctx, id)
	if err != nil {
		return nil, err
	}
	h := &enginetest.History{Execution: e, Events: events, Writes: map[string]int{}}
	resp, err := b.s.cli.Txn(ctx).Then(
		clientv3.OpGet(b.s.k.history(id), clientv3.WithPrefix()),
		clientv3.OpGet(b.s.k.waits(id), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, err
	}
	// A key's version counts its writes since it was created.
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		h.Writes[b.s.k.IDUnder(string(kv.Key), b.s.k.history(id))] = int(kv.Version)
	}
	if err := b.countFolded(ctx, id, h); err != nil {
		return nil, err
	}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		w, err := b.s.k.decodeWait(kv)
		if err != nil {
			return nil, err
		}
		h.Waits = append(h.Waits, w)
	}
	slices.SortFunc(h.Waits, func(x, y *sbruntime.Wait) int { return sbruntime.ComparePositions(x.Position, y.Position) })
	return h, nil
}

func (b *etcdBackend) Signal(ctx context.Context, id, name string, data json.RawMessage) error {
	return b.s.Signal(ctx, id, name, data, "test")
}
