package cluster

import (
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

func TestDecodeExecution(t *testing.T) {
	k := Keys{prefix: "/sb/"}
	tests := []struct {
		name, key, value string
		id, err          string // err: a substring of the error, "" for none
	}{
		{"id from the key", "/sb/executions/E1", `{"runbook":"r","status":"waiting"}`, "E1", ""},
		{"earlier format", "/sb/executions/E1", `{"id":"E1","runbook":"r","status":"waiting"}`, "E1", ""},
		{"the key wins", "/sb/executions/E1", `{"id":"E9","runbook":"r","status":"waiting"}`, "E1", ""},
		{"not JSON", "/sb/executions/E1", `{"runbook":`, "", "decode execution E1"},
		{"no id", "/sb/executions/", `{"runbook":"r"}`, "", "not an execution key"},
		{"below an execution", "/sb/executions/E1/x", `{"runbook":"r"}`, "", "not an execution key"},
		{"other collection", "/sb/runnable/E1", `{"runbook":"r"}`, "", "not an execution key"},
		{"other prefix", "/other/executions/E1", `{"runbook":"r"}`, "", "not an execution key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := k.decodeExecution(&mvccpb.KeyValue{Key: []byte(tt.key), Value: []byte(tt.value)})
			if wantedError(t, err, tt.err) {
				return
			}
			if e.ID != tt.id || e.Runbook != "r" || e.Status != "waiting" {
				t.Errorf("decoded %+v, want id %q and the value's runbook and status", e, tt.id)
			}
		})
	}
}

// FuzzDecodeExecution: an execution record that decodes names exactly the
// key it came from.
func FuzzDecodeExecution(f *testing.F) {
	f.Add("/sb/executions/E1", `{"id":"E9","status":"waiting"}`)
	f.Add("/sb/executions/", `{}`)
	k := Keys{prefix: "/sb/"}
	f.Fuzz(func(t *testing.T, key, value string) {
		e, err := k.decodeExecution(&mvccpb.KeyValue{Key: []byte(key), Value: []byte(value)})
		if err != nil {
			return
		}
		if got := k.execution(e.ID); got != key {
			t.Errorf("decoded id %q from key %q, which builds %q", e.ID, key, got)
		}
	})
}
