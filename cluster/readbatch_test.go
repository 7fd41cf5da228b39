package cluster

import (
	"context"
	"fmt"
	"sync"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestReadBatcher sends many fenced reads at once, some of whose fences
// fail: each gets its own answer (its fence's outcome, its reads' results)
// however they were batched, within etcd's op limits.
func TestReadBatcher(t *testing.T) {
	emb := startSuiteEtcd(t)
	ctx := context.Background()
	const n = 60
	for i := range n {
		if _, err := emb.Client.Put(ctx, fmt.Sprintf("/readbatch/%02d", i), fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, maxOps := range []int{8, 128} {
		t.Run(fmt.Sprintf("max %d ops", maxOps), func(t *testing.T) {
			b := &readBatcher{cli: emb.Client, maxOps: maxOps}
			var wg sync.WaitGroup
			errs := make([]error, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					key := fmt.Sprintf("/readbatch/%02d", i)
					want := fmt.Sprint(i)
					if i%3 == 0 {
						want = "other" // this fence fails
					}
					res, err := b.read(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.Value(key), "=", want)},
						[]clientv3.Op{clientv3.OpGet(key), clientv3.OpGet("/readbatch/", clientv3.WithPrefix(), clientv3.WithCountOnly())})
					switch {
					case err != nil:
						errs[i] = err
					case res.ok != (i%3 != 0):
						errs[i] = fmt.Errorf("read %d: fence held %v", i, res.ok)
					case !res.ok:
					case len(res.resps) != 2 || string(res.resps[0].GetResponseRange().Kvs[0].Value) != fmt.Sprint(i) ||
						res.resps[1].GetResponseRange().Count != n:
						errs[i] = fmt.Errorf("read %d: got %v", i, res.resps)
					case res.rev == 0:
						errs[i] = fmt.Errorf("read %d: no revision", i)
					}
				}()
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
}
