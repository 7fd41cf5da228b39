package cluster

import (
	"encoding/json"
	"fmt"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"

	sbruntime "github.com/starbook/starbook/runtime"
)

// encodeWait is the value stored for w at k.wait(w.Execution, w.Position):
// w without its execution and position, which the key holds. At 100,000
// parked executions every stored byte counts (etcd's file is mapped into
// the process).
func encodeWait(w *sbruntime.Wait) ([]byte, error) {
	x := *w
	x.Execution, x.Position = "", ""
	data, err := json.Marshal(&x)
	if err != nil {
		return nil, fmt.Errorf("encode wait %s/%s: %w", w.Execution, w.Position, err)
	}
	return data, nil
}

// decodeWait decodes the wait stored at kv, a key under waits/. Its
// execution and position are taken from the key, which names them
// (waits/<execution>/<position>), whatever the value says: encodeWait
// leaves them out, and records from earlier versions that hold them decode
// the same. Every read of a wait goes through here.
func (k Keys) decodeWait(kv *mvccpb.KeyValue) (*sbruntime.Wait, error) {
	rest, ok := strings.CutPrefix(string(kv.Key), k.allWaits())
	id, pos, cut := strings.Cut(rest, "/") // execution ids hold no '/'
	if !ok || !cut || id == "" || pos == "" {
		return nil, fmt.Errorf("decode wait: %q is not a wait key", kv.Key)
	}
	var w sbruntime.Wait
	if err := json.Unmarshal(kv.Value, &w); err != nil {
		return nil, fmt.Errorf("decode wait %s/%s: %w", id, pos, err)
	}
	w.Execution, w.Position = id, pos
	return &w, nil
}
