package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"

	sbruntime "github.com/starbook/starbook/runtime"
)

func TestDecodeWait(t *testing.T) {
	k := Keys{prefix: "/sb/"}
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
			if wantedError(t, err, tt.err) {
				return
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
	k := Keys{prefix: "/sb/"}
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

// TestStoredWaitLeavesOutWhatItsKeyHolds: a registered wait's value does
// not repeat the execution and position its key names; the store's reads
// (the API's among them) give both back, for a record in the earlier
// format that holds them too, and a signal resolves either at its position.
func TestStoredWaitLeavesOutWhatItsKeyHolds(t *testing.T) {
	emb := startSuiteEtcd(t)
	const pos = "2/0/1"
	tests := []struct {
		name    string
		earlier bool // rewrite the record as earlier versions stored it
	}{
		{"current format", false},
		{"earlier format", true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFencingFixture(t, emb, fmt.Sprintf("/waitformat/%d/", i))
			c := f.claim(t, f.s, "a", f.grant(t))
			w := signalWait(f.id, pos, "go")
			if _, err := c.Wait(f.ctx, w); err != nil {
				t.Fatal(err)
			}
			key := f.s.k.wait(f.id, pos)
			kvs := f.get(t, key).Kvs
			if len(kvs) != 1 {
				t.Fatalf("%d keys at %s, want the wait", len(kvs), key)
			}
			for _, field := range []string{`"execution"`, `"position"`} {
				if bytes.Contains(kvs[0].Value, []byte(field)) {
					t.Errorf("stored wait %s repeats %s", kvs[0].Value, field)
				}
			}
			if tt.earlier {
				old, err := json.Marshal(w)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Contains(old, []byte(`"execution":"race","position":"2/0/1"`)) {
					t.Fatalf("earlier-format record %s lacks execution and position", old)
				}
				if _, err := f.s.cli.Put(f.ctx, key, string(old)); err != nil {
					t.Fatal(err)
				}
			}

			waits, err := f.s.ExecutionWaits(f.ctx, f.id)
			if err != nil {
				t.Fatal(err)
			}
			if len(waits) != 1 || waits[0].Execution != f.id || waits[0].Position != pos ||
				waits[0].Kind != sbruntime.KindSignal || waits[0].Name != "go" {
				t.Fatalf("ExecutionWaits = %+v, want the signal wait of %s at %s", waits, f.id, pos)
			}
			shown, err := json.Marshal(waits[0])
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(shown, []byte(`"execution":"race","position":"2/0/1"`)) {
				t.Errorf("the API shows the wait as %s, without its execution and position", shown)
			}
			pending, err := f.s.PendingWaits(f.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(pending) != 1 || pending[0].Wait.Execution != f.id || pending[0].Wait.Position != pos {
				t.Fatalf("PendingWaits = %+v, want the wait of %s at %s", pending, f.id, pos)
			}

			if err := f.s.Signal(f.ctx, f.id, "go", json.RawMessage(`1`), "test"); err != nil {
				t.Fatal(err)
			}
			recorded, kept := f.delivered(t, "go")
			if recorded[pos] != "1" || len(recorded) != 1 || len(kept) != 0 {
				t.Errorf("recorded %v, kept %v; want the signal recorded at %s", recorded, kept, pos)
			}
			if n := len(f.get(t, key).Kvs); n != 0 {
				t.Errorf("the wait is still pending after its signal was recorded")
			}
		})
	}
}

// wantedError fails t unless err contains want, or is nil when want is
// empty; it reports whether an error was wanted (the case ends there).
func wantedError(t *testing.T, err error, want string) bool {
	t.Helper()
	if want != "" {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("error %v, want one containing %q", err, want)
		}
		return true
	}
	if err != nil {
		t.Fatal(err)
	}
	return false
}
