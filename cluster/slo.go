package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	sbruntime "github.com/starbook/starbook/runtime"
)

// Declarations are what a runbook's current version declares at top level
// (its triggers and slo(), as check collected them), undecoded.
type Declarations struct {
	Runbook string
	Version string
	Raw     json.RawMessage // runtime.Bundle.Triggers; nil when it declares nothing
}

// CurrentDeclarations returns the declarations of every runbook's current
// version, by name: one range read of runbooks/ (every stored version comes
// back with it; only the current ones are decoded).
func (s *Store) CurrentDeclarations(ctx context.Context) ([]Declarations, error) {
	resp, err := s.cli.Get(ctx, s.k.Runbooks(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list runbooks: %w", err)
	}
	current := map[string]string{}
	for _, kv := range resp.Kvs {
		if name, ok := cutSuffix(s.k.IDUnder(string(kv.Key), s.k.Runbooks()), "/current"); ok {
			current[name] = string(kv.Value)
		}
	}
	var out []Declarations
	for _, kv := range resp.Kvs {
		name, version, ok := strings.Cut(s.k.IDUnder(string(kv.Key), s.k.Runbooks()), "/versions/")
		if !ok || current[name] != version {
			continue
		}
		var sb struct {
			Triggers json.RawMessage `json:"triggers"`
		}
		if err := json.Unmarshal(kv.Value, &sb); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		out = append(out, Declarations{Runbook: name, Version: version, Raw: sb.Triggers})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Runbook < out[j].Runbook })
	return out, nil
}

// endedPage is how many execution records one read of EndedSince returns.
const endedPage = 1000

// EndedSince calls fn, oldest first, for every execution created at or after
// since that has ended. Ids sort by creation time, so this is one range read
// of executions/ from since's id on, paged endedPage records at a time at
// one revision (a consistent view). The executions fn gets carry only their
// id, runbook, status, trigger and timestamps: input, result and error are
// not decoded.
func (s *Store) EndedSince(ctx context.Context, since time.Time, fn func(*sbruntime.Execution)) error {
	var zero [10]byte
	from := s.k.execution(ulid.MustNew(ulid.Timestamp(since), bytesReader(zero[:])).String())
	end := clientv3.GetPrefixRangeEnd(s.k.executions())
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(endedPage)}
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.cli.Get(ctx, from, opts...)
		if err != nil {
			return fmt.Errorf("read executions since %s: %w", since.Format(time.RFC3339), err)
		}
		rev = resp.Header.Revision
		for _, kv := range resp.Kvs {
			var e struct {
				Runbook   string            `json:"runbook"`
				Status    sbruntime.Status  `json:"status"`
				Trigger   sbruntime.Trigger `json:"trigger"`
				CreatedAt time.Time         `json:"created_at"`
				UpdatedAt time.Time         `json:"updated_at"`
				EndedAt   *time.Time        `json:"ended_at"`
			}
			record, err := recordJSON(kv.Value)
			if err != nil {
				return fmt.Errorf("decode %s: %w", kv.Key, err)
			}
			if err := json.Unmarshal(record, &e); err != nil {
				return fmt.Errorf("decode %s: %w", kv.Key, err)
			}
			if !e.Status.Terminal() || e.EndedAt == nil {
				continue
			}
			fn(&sbruntime.Execution{ID: s.k.IDUnder(string(kv.Key), s.k.executions()), Runbook: e.Runbook, Status: e.Status,
				Trigger: e.Trigger, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt, EndedAt: e.EndedAt})
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}
