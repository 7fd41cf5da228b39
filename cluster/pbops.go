package cluster

import (
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Compares and ops of the hot path (checkpoints, creations, outcomes), built
// as the protobuf they are sent as. clientv3 would build each as a Cmp or an
// Op, copying its key and value, then convert it again as the txn is sent:
// about 25 allocations per execution of five steps.

// createRevision is the compare that key's create revision is rev (0: key
// does not exist).
func createRevision(key []byte, rev int64) *etcdserverpb.Compare {
	return &etcdserverpb.Compare{Result: etcdserverpb.Compare_EQUAL, Target: etcdserverpb.Compare_CREATE, Key: key,
		TargetUnion: &etcdserverpb.Compare_CreateRevision{CreateRevision: rev}}
}

// modRevision is the compare that key's mod revision is rev.
func modRevision(key []byte, rev int64) *etcdserverpb.Compare {
	return &etcdserverpb.Compare{Result: etcdserverpb.Compare_EQUAL, Target: etcdserverpb.Compare_MOD, Key: key,
		TargetUnion: &etcdserverpb.Compare_ModRevision{ModRevision: rev}}
}

// valueIs is the compare that key's value is value.
func valueIs(key []byte, value string) *etcdserverpb.Compare {
	return &etcdserverpb.Compare{Result: etcdserverpb.Compare_EQUAL, Target: etcdserverpb.Compare_VALUE, Key: key,
		TargetUnion: &etcdserverpb.Compare_Value{Value: []byte(value)}}
}

// putOp puts value at key.
func putOp(key, value []byte) *etcdserverpb.RequestOp {
	return &etcdserverpb.RequestOp{Request: &etcdserverpb.RequestOp_RequestPut{
		RequestPut: &etcdserverpb.PutRequest{Key: key, Value: value}}}
}

// deleteOp deletes key.
func deleteOp(key []byte) *etcdserverpb.RequestOp {
	return &etcdserverpb.RequestOp{Request: &etcdserverpb.RequestOp_RequestDeleteRange{
		RequestDeleteRange: &etcdserverpb.DeleteRangeRequest{Key: key}}}
}

// deletePrefixOp deletes every key under prefix.
func deletePrefixOp(prefix string) *etcdserverpb.RequestOp {
	return &etcdserverpb.RequestOp{Request: &etcdserverpb.RequestOp_RequestDeleteRange{
		RequestDeleteRange: &etcdserverpb.DeleteRangeRequest{Key: []byte(prefix), RangeEnd: []byte(clientv3.GetPrefixRangeEnd(prefix))}}}
}
