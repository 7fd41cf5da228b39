package cluster

import (
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

func TestDecodeWait(t *testing.T) {
	k := keys{prefix: "/sb/"}
	tests := []struct {
		name, key, value string
		id, pos, err     string // err: a substring of the error, "" for none
	}{
		{"fields from the key", "/sb/waits/E1/3", `{"kind":"signal","name":"go"}`, "E1", "3", ""},
		{"nested position", "/sb/waits/E1/4/0/2", `{"kind":"sleep"}`, "E1", "4/0/2", ""},
		{"earlier format", "/sb/waits/E1/3", `{"execution":"E1","position":"3","kind":"signal","name":"go"}`, "E1", "3", ""},
		{"the key wins", "/sb/waits/E1/3", `{"execution":"E9","position":"7","kind":"signal","name":"go"}`, "E1", "3", ""},
		{"not JSON", "/sb/waits/E1/3", `{"kind":`, "", "", "decode wait E1/3"},
		{"no position", "/sb/waits/E1", `{"kind":"sleep"}`, "", "", "not a wait key"},
		{"empty position", "/sb/waits/E1/", `{"kind":"sleep"}`, "", "", "not a wait key"},
		{"other collection", "/sb/history/E1/3", `{"kind":"sleep"}`, "", "", "not a wait key"},
		{"other prefix", "/other/waits/E1/3", `{"kind":"sleep"}`, "", "", "not a wait key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := k.decodeWait(&mvccpb.KeyValue{Key: []byte(tt.key), Value: []byte(tt.value)})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if w.Execution != tt.id || w.Position != tt.pos || w.Kind == "" {
				t.Errorf("decoded %+v, want execution %q position %q and the value's kind", w, tt.id, tt.pos)
			}
		})
	}
}

// FuzzDecodeWait: a wait that decodes names exactly the key it came from.
func FuzzDecodeWait(f *testing.F) {
	f.Add("/sb/waits/E1/4/0/2", `{"execution":"E9","kind":"sleep"}`)
	f.Add("/sb/waits//", `{}`)
	k := keys{prefix: "/sb/"}
	f.Fuzz(func(t *testing.T, key, value string) {
		w, err := k.decodeWait(&mvccpb.KeyValue{Key: []byte(key), Value: []byte(value)})
		if err != nil {
			return
		}
		if got := k.wait(w.Execution, w.Position); got != key {
			t.Errorf("decoded %q / %q from key %q, which builds %q", w.Execution, w.Position, key, got)
		}
	})
}
