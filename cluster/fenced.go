package cluster

import (
	"bytes"
	"cmp"
	"errors"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// errComparesFailed is a fenced write (fencedReq) whose own compares failed.
var errComparesFailed = errors.New("compares failed")

// fencedReq is a write of ops if cmps hold, for the committer: it shares a
// txn with the writes ready at the same moment, and when one of its own
// compares fails it fails with errComparesFailed, told apart from its
// neighbours' by reading what its compares compare.
func fencedReq(cmps []clientv3.Cmp, ops []clientv3.Op) *txnReq {
	return &txnReq{cmps: cmps, ops: ops, nreads: len(cmps), diagnostics: func() ([]clientv3.Op, func([]*etcdserverpb.ResponseOp) error) {
		reads := make([]clientv3.Op, len(cmps))
		for i := range cmps {
			c := cmps[i].GetCompare()
			var opts []clientv3.OpOption
			if len(c.RangeEnd) > 0 {
				opts = append(opts, clientv3.WithRange(string(c.RangeEnd)))
			}
			if c.Target != etcdserverpb.Compare_VALUE {
				opts = append(opts, clientv3.WithKeysOnly())
			}
			reads[i] = clientv3.OpGet(string(c.Key), opts...)
		}
		return reads, func(r []*etcdserverpb.ResponseOp) error {
			for i := range cmps {
				if !compareHolds(cmps[i].GetCompare(), r[i].GetResponseRange().Kvs) {
					return errComparesFailed
				}
			}
			return nil
		}
	}}
}

// compareHolds reports whether compare c holds for kvs, the keys it
// compares as read, as etcd decides it: every key of a range must satisfy
// it, and a missing key (or an empty range) compares as zero revisions,
// version and lease, and fails a value compare.
func compareHolds(c *etcdserverpb.Compare, kvs []*mvccpb.KeyValue) bool {
	if len(kvs) == 0 {
		if c.Target == etcdserverpb.Compare_VALUE {
			return false
		}
		return compareKV(c, &mvccpb.KeyValue{})
	}
	for _, kv := range kvs {
		if !compareKV(c, kv) {
			return false
		}
	}
	return true
}

// compareKV is etcd's compare of one key (server/etcdserver/txn).
func compareKV(c *etcdserverpb.Compare, kv *mvccpb.KeyValue) bool {
	var result int
	switch c.Target {
	case etcdserverpb.Compare_VALUE:
		result = bytes.Compare(kv.Value, c.GetValue())
	case etcdserverpb.Compare_CREATE:
		result = cmp.Compare(kv.CreateRevision, c.GetCreateRevision())
	case etcdserverpb.Compare_MOD:
		result = cmp.Compare(kv.ModRevision, c.GetModRevision())
	case etcdserverpb.Compare_VERSION:
		result = cmp.Compare(kv.Version, c.GetVersion())
	case etcdserverpb.Compare_LEASE:
		result = cmp.Compare(kv.Lease, c.GetLease())
	}
	switch c.Result {
	case etcdserverpb.Compare_EQUAL:
		return result == 0
	case etcdserverpb.Compare_NOT_EQUAL:
		return result != 0
	case etcdserverpb.Compare_GREATER:
		return result > 0
	case etcdserverpb.Compare_LESS:
		return result < 0
	}
	return true
}
