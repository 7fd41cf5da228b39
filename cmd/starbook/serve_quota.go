package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/spf13/pflag"

	"github.com/starbook/starbook/quota"
)

// quotaFlags is serve --etcd-quota.
type quotaFlags struct{ spec string }

func (q *quotaFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&q.spec, "etcd-quota", "", "etcd's space quota, e.g. 512MiB, 2GiB, 8GB (MB, GB: powers of 1000; MiB, GiB: of 1024). "+
		"The embedded member's --quota-backend-bytes, 2GiB by default (etcd's default; its db file is mapped whole into memory, "+
		"so the quota is also what the file may take of the node's memory; etcd recommends at most 8GiB). "+
		"With --etcd-endpoints it declares the cluster's quota for etcd before 3.6, whose Status does not report it "+
		"(a newer etcd's reported quota wins). New runs are refused from 90% of it (see docs/operations.md, \"Storage quota\")")
}

// bytes returns the quota: for the embedded member what it is given, for an
// external cluster what is declared (0: none).
func (q *quotaFlags) bytes(embedded bool, logger *slog.Logger) (int64, error) {
	if q.spec == "" {
		if embedded {
			return quota.DefaultQuota, nil
		}
		return 0, nil
	}
	n, err := quota.ParseSize(q.spec)
	if err != nil {
		return 0, fmt.Errorf("--etcd-quota: %w", err)
	}
	if n > quota.MaxRecommended {
		logger.Warn("--etcd-quota is over the 8 GiB etcd recommends: its db file is mapped whole into memory, and a larger one takes longer to defragment and to snapshot",
			"quota", quota.FormatSize(n))
	}
	return n, nil
}

// startGuard starts the storage guard over cli; the returned func stops it
// and waits for it.
func startGuard(ctx context.Context, cli quota.Client, bytes int64, embedded bool, logger *slog.Logger) (*quota.Guard, func()) {
	g := quota.New(quota.Config{Client: cli, Quota: bytes, Disarm: embedded, Logger: logger.With("duty", "storage")})
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { g.Run(ctx) })
	return g, func() { cancel(); wg.Wait() }
}
