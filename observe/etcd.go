package observe

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// InstrumentEtcd makes cli's KV requests (Get, Put, Delete, Txn, Compact and
// Do) count in m's latency and error metrics. Call it before cli is used:
// it replaces cli.KV, which every KV method of the client goes through.
func InstrumentEtcd(cli *clientv3.Client, m *Metrics) {
	cli.KV = &instrumentedKV{KV: cli.KV, m: m}
}

type instrumentedKV struct {
	clientv3.KV
	m *Metrics
}

func (k *instrumentedKV) observe(op string, start time.Time, err error) {
	k.m.etcdLatency.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil && err != context.Canceled {
		k.m.etcdErrors.WithLabelValues(op).Inc()
	}
}

func (k *instrumentedKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	start := time.Now()
	resp, err := k.KV.Get(ctx, key, opts...)
	k.observe("get", start, err)
	return resp, err
}

func (k *instrumentedKV) Put(ctx context.Context, key, val string, opts ...clientv3.OpOption) (*clientv3.PutResponse, error) {
	start := time.Now()
	resp, err := k.KV.Put(ctx, key, val, opts...)
	k.observe("put", start, err)
	return resp, err
}

func (k *instrumentedKV) Delete(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.DeleteResponse, error) {
	start := time.Now()
	resp, err := k.KV.Delete(ctx, key, opts...)
	k.observe("delete", start, err)
	return resp, err
}

func (k *instrumentedKV) Compact(ctx context.Context, rev int64, opts ...clientv3.CompactOption) (*clientv3.CompactResponse, error) {
	start := time.Now()
	resp, err := k.KV.Compact(ctx, rev, opts...)
	k.observe("compact", start, err)
	return resp, err
}

func (k *instrumentedKV) Do(ctx context.Context, op clientv3.Op) (clientv3.OpResponse, error) {
	start := time.Now()
	resp, err := k.KV.Do(ctx, op)
	k.observe("do", start, err)
	return resp, err
}

func (k *instrumentedKV) Txn(ctx context.Context) clientv3.Txn {
	return &instrumentedTxn{Txn: k.KV.Txn(ctx), kv: k}
}

type instrumentedTxn struct {
	clientv3.Txn
	kv *instrumentedKV
}

func (t *instrumentedTxn) If(cs ...clientv3.Cmp) clientv3.Txn {
	t.Txn = t.Txn.If(cs...)
	return t
}

func (t *instrumentedTxn) Then(ops ...clientv3.Op) clientv3.Txn {
	t.Txn = t.Txn.Then(ops...)
	return t
}

func (t *instrumentedTxn) Else(ops ...clientv3.Op) clientv3.Txn {
	t.Txn = t.Txn.Else(ops...)
	return t
}

func (t *instrumentedTxn) Commit() (*clientv3.TxnResponse, error) {
	start := time.Now()
	resp, err := t.Txn.Commit()
	t.kv.observe("txn", start, err)
	return resp, err
}
