package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/oklog/ulid/v2"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook"
)

// RecordAudit stores rec under a new time-sortable id; durable on return.
func (s *Store) RecordAudit(ctx context.Context, rec *starbook.AuditRecord) error {
	op, err := s.auditOp(rec)
	if err != nil {
		return err
	}
	if _, err := s.cli.Do(ctx, op); err != nil {
		return fmt.Errorf("store audit record: %w", err)
	}
	return nil
}

// auditOp is the put that stores rec under a new time-sortable id (set on
// rec), for a txn that records an action with what it did.
func (s *Store) auditOp(rec *starbook.AuditRecord) (clientv3.Op, error) {
	if rec.Time.IsZero() {
		rec.Time = s.now().UTC()
	}
	rec.ID = ulid.MustNew(ulid.Timestamp(rec.Time), ulid.DefaultEntropy()).String()
	data, err := json.Marshal(rec)
	if err != nil {
		return clientv3.Op{}, fmt.Errorf("encode audit record: %w", err)
	}
	return clientv3.OpPut(s.k.auditRecord(rec.ID), string(data)), nil
}

// Audit returns up to limit records oldest first: those after the id after,
// or without it the newest ones.
func (s *Store) Audit(ctx context.Context, after string, limit int) ([]*starbook.AuditRecord, error) {
	if limit <= 0 {
		limit = starbook.DefaultAuditLimit
	}
	end := clientv3.GetPrefixRangeEnd(s.k.audit())
	var resp *clientv3.GetResponse
	var err error
	if after == "" {
		resp, err = s.cli.Get(ctx, s.k.audit(), clientv3.WithRange(end), clientv3.WithLimit(int64(limit)),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend))
	} else {
		resp, err = s.cli.Get(ctx, s.k.auditRecord(after)+"\x00", clientv3.WithRange(end), clientv3.WithLimit(int64(limit)),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	}
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	out, err := decodeAudit(resp.Kvs)
	if err != nil {
		return nil, err
	}
	if after == "" {
		slices.Reverse(out)
	}
	return out, nil
}

// AuditBefore returns up to limit records older than the id before, the
// newest of them, oldest first: one range read of limit keys, whatever
// the log holds.
func (s *Store) AuditBefore(ctx context.Context, before string, limit int) ([]*starbook.AuditRecord, error) {
	if limit <= 0 {
		limit = starbook.DefaultAuditLimit
	}
	resp, err := s.cli.Get(ctx, s.k.audit(), clientv3.WithRange(s.k.auditRecord(before)), clientv3.WithLimit(int64(limit)),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend))
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	out, err := decodeAudit(resp.Kvs)
	if err != nil {
		return nil, err
	}
	slices.Reverse(out)
	return out, nil
}

// decodeAudit decodes audit records as read.
func decodeAudit(kvs []*mvccpb.KeyValue) ([]*starbook.AuditRecord, error) {
	out := make([]*starbook.AuditRecord, 0, len(kvs))
	for _, kv := range kvs {
		var rec starbook.AuditRecord
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		out = append(out, &rec)
	}
	return out, nil
}

// PruneAudit deletes the audit records older than cutoff and returns how
// many it deleted.
func (s *Store) PruneAudit(ctx context.Context, cutoff time.Time) (int64, error) {
	var zero [10]byte
	bound := ulid.MustNew(ulid.Timestamp(cutoff), bytesReader(zero[:])).String()
	resp, err := s.cli.Delete(ctx, s.k.audit(), clientv3.WithRange(s.k.auditRecord(bound)))
	if err != nil {
		return 0, fmt.Errorf("prune audit log: %w", err)
	}
	return resp.Deleted, nil
}

// bytesReader is an entropy source of fixed bytes (the smallest id of a ms).
type bytesReader []byte

func (b bytesReader) Read(p []byte) (int, error) { return copy(p, b), nil }

// AuditRetentionTask returns a leader task that deletes audit records older
// than age every interval (defaults: DefaultRetention, 10 minutes).
func (s *Store) AuditRetentionTask(age, interval time.Duration, logger *slog.Logger) func(ctx context.Context) {
	if age <= 0 {
		age = DefaultRetention
	}
	if interval <= 0 {
		interval = 10 * time.Minute
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return func(ctx context.Context) {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			n, err := s.PruneAudit(ctx, s.now().Add(-age))
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				logger.Warn("audit retention", "err", err)
			case n > 0:
				logger.Info("audit retention: deleted old records", "deleted", n)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}
}
