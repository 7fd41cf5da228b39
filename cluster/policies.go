package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// PolicySet is the stored policy set: its files (tests included) and who
// applied them when.
type PolicySet struct {
	Files     map[string]string `json:"files"`
	Version   string            `json:"version"`
	AppliedBy string            `json:"applied_by,omitempty"`
	AppliedAt time.Time         `json:"applied_at"`
}

// PutPolicies replaces the policy set with set (an empty one removes every
// policy); durable on return. The caller has checked it (policy.Load and
// policy.Test): the store does not.
func (s *Store) PutPolicies(ctx context.Context, set *PolicySet) error {
	if set.AppliedAt.IsZero() {
		set.AppliedAt = s.now().UTC()
	}
	data, err := json.Marshal(set)
	if err != nil {
		return err
	}
	if len(data) > maxPolicyBytes {
		return fmt.Errorf("policy set is %d bytes, over the %d-byte limit", len(data), maxPolicyBytes)
	}
	if _, err := s.cli.Put(ctx, s.k.policies(), string(data)); err != nil {
		return fmt.Errorf("store policies: %w", err)
	}
	return nil
}

// maxPolicyBytes keeps the policy set well under etcd's request limit.
const maxPolicyBytes = 1 << 20

// Policies returns the stored policy set (nil for none) and the store
// revision it was read at.
func (s *Store) Policies(ctx context.Context) (*PolicySet, int64, error) {
	resp, err := s.cli.Get(ctx, s.k.policies())
	if err != nil {
		return nil, 0, fmt.Errorf("read policies: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, resp.Header.Revision, nil
	}
	set, err := decodePolicies(resp.Kvs[0].Value)
	return set, resp.Header.Revision, err
}

func decodePolicies(data []byte) (*PolicySet, error) {
	var set PolicySet
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("decode policies: %w", err)
	}
	return &set, nil
}

// WatchPolicies calls fn with the stored policy set (nil for none), then
// with every change, until ctx is done; it returns ctx's error, or a read
// error before the first call. fn runs on the caller's goroutine, one call
// at a time.
func (s *Store) WatchPolicies(ctx context.Context, fn func(*PolicySet)) error {
	set, rev, err := s.Policies(ctx)
	if err != nil {
		return err
	}
	fn(set)
	for {
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		ch := s.cli.Watch(wctx, s.k.policies(), clientv3.WithRev(rev+1))
		for resp := range ch {
			if err := resp.Err(); err != nil {
				break
			}
			for _, ev := range resp.Events {
				rev = ev.Kv.ModRevision
				if ev.Type == clientv3.EventTypeDelete {
					fn(nil)
					continue
				}
				set, err := decodePolicies(ev.Kv.Value)
				if err != nil {
					continue // PutPolicies writes none such: keep the last set
				}
				fn(set)
			}
		}
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// Compacted or the watch broke: read again, then watch from there.
		for {
			set, rev, err = s.Policies(ctx)
			if err == nil || ctx.Err() != nil {
				break
			}
			select { // etcd is unreachable: try again shortly
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fn(set)
	}
}
