package enginetest_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/runtime"
)

// journal records appends; waits and statuses are accepted.
type journal struct{ events []*runtime.Event }

func (j *journal) Append(_ context.Context, ev *runtime.Event) error {
	j.events = append(j.events, ev)
	return nil
}
func (j *journal) Wait(context.Context, *runtime.Wait) (*runtime.Event, error) { return nil, nil }
func (j *journal) SetStatus(context.Context, runtime.Status) error             { return nil }

const replayScript = `
def main(event):
    v = call(lambda: "first run", name = "step")
    return {"got": v}
`

// FuzzHistoryEvent feeds stored history events, as etcd could hold them
// (any JSON), to the decoder and to a replay: decoding never panics, a
// replay of an event at the script's position returns its result or raises
// its error, and what main returns from it can be stored again.
func FuzzHistoryEvent(f *testing.F) {
	for _, s := range []string{
		`{"position":"1","kind":"call","name":"step","result":{"a":[1,2.5,null]}}`,
		`{"position":"1","kind":"call","name":"step","error":"boom"}`,
		`{"position":"3/0/1","kind":"approval","result":{"approved":true,"by":["a"],"decisions":[{"user":"a"}]}}`,
		`{"position":"","result":1e400}`, `{"result":"\ud800"}`, `{"position":"1/","kind":7}`, `[]`, `null`,
	} {
		f.Add([]byte(s))
	}
	bi := builtins.New(builtins.Options{})
	prog, err := runtime.Compile(&runtime.Bundle{Name: "r", Main: "r.star", Files: map[string]string{"r.star": replayScript}}, bi)
	if err != nil {
		f.Fatal(err)
	}
	eng := &runtime.Engine{Builtins: bi}
	first := &journal{}
	out := eng.Execute(context.Background(), prog, &runtime.Run{Execution: &runtime.Execution{ID: "e"}, Journal: first})
	if out.Status != runtime.StatusCompleted || len(first.events) != 1 {
		f.Fatalf("first run: %+v", out)
	}
	recorded := first.events[0]
	f.Fuzz(func(t *testing.T, data []byte) {
		var ev runtime.Event
		if err := json.Unmarshal(data, &ev); err != nil {
			return
		}
		_ = runtime.ComparePositions(ev.Position, "1/2/3")
		_ = runtime.ComparePositions("10", ev.Position)
		if _, err := runtime.Decode(ev.Result); err == nil {
			_, _ = builtins.NewApproval(ev.Result)
		}
		var w runtime.Wait
		if json.Unmarshal(data, &w) == nil {
			w.Kind, w.Detail = runtime.KindApproval, ev.Result
			_, _ = runtime.ParseApprovalRequest(&w)
		}
		// Replay: the fuzzed outcome at the position the script reaches.
		ev.Position, ev.Kind, ev.Name, ev.ArgsHash = recorded.Position, recorded.Kind, recorded.Name, recorded.ArgsHash
		j := &journal{}
		out := eng.Execute(context.Background(), prog, &runtime.Run{Execution: &runtime.Execution{ID: "e"},
			History: map[string]*runtime.Event{ev.Position: &ev}, Journal: j})
		if len(j.events) != 0 {
			t.Fatalf("a replay appended %d events", len(j.events))
		}
		switch out.Status {
		case runtime.StatusCompleted:
			if ev.Failed() || !json.Valid(out.Result) {
				t.Fatalf("completed from %s: %s", data, out.Result)
			}
		case runtime.StatusFailed:
			_, decodeErr := runtime.Decode(ev.Result)
			if !ev.Failed() && decodeErr == nil {
				t.Fatalf("failed from a good event %s: %s", data, out.Error)
			}
			if ev.Failed() && !strings.Contains(out.Error, "step at position 1 failed") {
				t.Fatalf("the recorded error is not raised: %s", out.Error)
			}
		default:
			t.Fatalf("replay of %s: %+v", data, out)
		}
		if out.Err != nil && !errors.Is(out.Err, context.Canceled) {
			t.Fatalf("replay aborted: %v", out.Err)
		}
	})
}

// FuzzRunbookLoading gives BundlesFromFiles and Compile arbitrary file names
// and sources (a main file and a file it may load): nothing panics, and a
// bundle that is found compiles or fails with an error.
func FuzzRunbookLoading(f *testing.F) {
	f.Add("deploy.star", "load(\"lib/util.star\", \"helper\")\ndef main(event):\n    return helper(event)\n",
		"lib/util.star", "def helper(x):\n    return x\n")
	f.Add("a.star", "def main(e, f): pass", "../b.star", "x = 1")
	f.Add("x/y.star", "load(\"../../etc/passwd\", \"root\")\ndef main(e):\n    pass", "b_test.star", "")
	f.Add("bad name.star", "def main(event):\n  while True:\n    pass", "b.star", "load('b.star', 'x')")
	f.Add("a.star", "def main(event):\n    return [x for x in range(10) if x]\n", "/abs.star", "\xff")
	bi := builtins.New(builtins.Options{})
	f.Fuzz(func(t *testing.T, name1, src1, name2, src2 string) {
		files := map[string]string{name1: src1, name2: src2}
		bundles, err := runtime.BundlesFromFiles(files)
		if err != nil {
			var ie *runtime.InputError
			if !errors.As(err, &ie) {
				t.Fatalf("error %T is not an InputError: %v", err, err)
			}
			return
		}
		for _, b := range bundles {
			if !runtime.ValidRunbookName(b.Name) || b.Files[b.Main] == "" && files[b.Main] != "" {
				t.Fatalf("bundle %+v", b)
			}
			for n := range b.Files {
				if strings.HasPrefix(n, "/") || strings.HasPrefix(n, "../") || n == ".." {
					t.Fatalf("bundle holds %q, outside its directory", n)
				}
			}
			if b.Version != runtime.BundleVersion(b.Files) {
				t.Fatalf("version %s", b.Version)
			}
			_, _ = runtime.Compile(b, bi)
		}
	})
}
