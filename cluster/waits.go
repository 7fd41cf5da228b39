package cluster

import (
	"encoding/json"
	"fmt"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"

	sbruntime "github.com/starbook/starbook/runtime"
)

// decodeWait decodes the wait stored at kv, a key under waits/. Its
// execution and position are taken from the key, which names them
// (waits/<execution>/<position>), whatever the value says: every read of
// a wait goes through here, so that the value need not repeat them.
func (k keys) decodeWait(kv *mvccpb.KeyValue) (*sbruntime.Wait, error) {
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
