package cluster

import (
	"context"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// retryReadOnlyTxn retries a txn that only reads (no put or delete, nested
// txns included) while etcd answers Unavailable ("leader changed", "no leader"), for
// up to readRetryFor. clientv3 retries ranges but never a txn: in a cluster
// whose member died with the raft leader, an API read would fail for the
// length of an election though it has no effect to repeat.
func retryReadOnlyTxn(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	txn, ok := req.(*pb.TxnRequest)
	if err == nil || !ok || !readOnly(txn) {
		return err
	}
	deadline := time.Now().Add(readRetryFor)
	for status.Code(err) == codes.Unavailable && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return err
		case <-time.After(readRetryEvery):
		}
		err = invoker(ctx, method, req, reply, cc, opts...)
	}
	return err
}

// How long and how often retryReadOnlyTxn retries: an election of embedded
// members takes one to two election timeouts.
const (
	readRetryFor   = 5 * time.Second
	readRetryEvery = 50 * time.Millisecond
)

func readOnly(txn *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{txn.Success, txn.Failure} {
		for _, op := range ops {
			if nested := op.GetRequestTxn(); nested != nil {
				if !readOnly(nested) {
					return false
				}
			} else if op.GetRequestRange() == nil {
				return false
			}
		}
	}
	return true
}
