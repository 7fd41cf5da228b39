package runtime

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"
)

func checkEventJSON(t *testing.T, e *Event) {
	t.Helper()
	want, wantErr := json.Marshal(e)
	got, err := e.EncodeJSON()
	if (err != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
		t.Fatalf("EncodeJSON of %#v:\n got %s, %v\nwant %s, %v", e, got, err, want, wantErr)
	}
}

func checkExecutionJSON(t *testing.T, x *Execution) {
	t.Helper()
	want, wantErr := json.Marshal(x)
	got, err := x.EncodeJSON()
	if (err != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
		t.Fatalf("EncodeJSON of %#v:\n got %s, %v\nwant %s, %v", x, got, err, want, wantErr)
	}
}

func TestExecutionJSONIsEncodingJSONs(t *testing.T) {
	at := time.Date(2026, 11, 25, 21, 59, 40, 511851601, time.UTC)
	end := at.Add(3 * time.Millisecond)
	far := time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		x    Execution
	}{
		{"started", Execution{ID: "01M8ABHEQ0DQHTPR5K2MP9ZH58", Runbook: "bench", Version: "87ad07bba195", Status: StatusRunning,
			Trigger: Trigger{Type: "bench"}, Input: json.RawMessage(`{"kind":"steps","n":2}`), CreatedAt: at, UpdatedAt: at, Node: "n1"}},
		{"ended", Execution{ID: "x", Runbook: "r", Version: "v", Status: StatusCompleted, Trigger: Trigger{Type: "alert", Source: "fp123"},
			Result: json.RawMessage(`null`), CreatedAt: at, UpdatedAt: end, EndedAt: &end, TraceParent: "00-abc-def-01"}},
		{"empty", Execution{}},
		{"failed with a message", Execution{ID: "x", Status: StatusFailed, Error: "boom\n  at r.star:3: <nil> & \"x\"", CreatedAt: at, UpdatedAt: at, EndedAt: &end}},
		{"trigger attributes", Execution{ID: "x", Trigger: Trigger{Type: "webhook", Attrs: map[string]string{"b": "2", "a": "1"}}, CreatedAt: at, UpdatedAt: at}},
		{"input with spaces", Execution{ID: "x", Input: json.RawMessage(`{"kind": "steps", "n": 5}`), CreatedAt: at, UpdatedAt: at}},
		{"input not JSON", Execution{ID: "x", Input: json.RawMessage(`{"kind"`), CreatedAt: at, UpdatedAt: at}},
		{"end in year 12000", Execution{ID: "x", CreatedAt: at, UpdatedAt: at, EndedAt: &far}},
		{"migrated", Execution{ID: "x", Version: "v2", Status: StatusWaiting, CreatedAt: at, UpdatedAt: end,
			Migrations: []Migration{{From: "v1", To: "v2", At: end, By: "alice"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkExecutionJSON(t, &tt.x) })
	}
}

func TestEventJSONIsEncodingJSONs(t *testing.T) {
	at := time.Date(2026, 11, 25, 21, 59, 40, 514550088, time.UTC)
	paris := time.FixedZone("CET", 3600)
	odd := time.FixedZone("odd", 3600+7)  // an offset in seconds: written to the minute
	far := time.FixedZone("far", 25*3600) // encoding/json refuses it
	tests := []struct {
		name string
		e    Event
	}{
		{"a step", Event{Position: "1", Kind: KindCall, Name: "noop", ArgsHash: "64eeab62fe290cb4", Result: json.RawMessage(`null`),
			Attempts: 1, StartedAt: at, EndedAt: at.Add(2574), Where: "bench.star:9:17"}},
		{"empty", Event{}},
		{"an error", Event{Position: "3/0/1", Kind: KindCall, Error: "boom: 500 from https://x/y?a=1", Attempts: 3, StartedAt: at, EndedAt: at}},
		{"result with strings and numbers", Event{Position: "2", Kind: KindCall, Result: json.RawMessage(`{"a":[1,2.5e3,true,null],"b":"c"}`), StartedAt: at, EndedAt: at}},
		{"result with spaces", Event{Position: "2", Result: json.RawMessage(`{ "a" : [1, 2] }`), StartedAt: at, EndedAt: at}},
		{"result with HTML", Event{Position: "2", Result: json.RawMessage(`"<b>&</b>"`), StartedAt: at, EndedAt: at}},
		{"result not JSON", Event{Position: "2", Result: json.RawMessage(`{"a":`), StartedAt: at, EndedAt: at}},
		{"result non-ASCII", Event{Position: "2", Result: json.RawMessage(`"é\u2028"`), StartedAt: at, EndedAt: at}},
		{"error with quotes, newline, HTML, unicode", Event{Position: "1", Error: "say \"hi\"\n<x> & é \u2028 \x01 \xff", StartedAt: at, EndedAt: at}},
		{"negative attempts", Event{Position: "1", Attempts: -2, StartedAt: at, EndedAt: at}},
		{"http calls and items", Event{Position: "4", Kind: KindFanOut, Attempts: 2, HTTPCalls: 7, Items: 1000, StartedAt: at, EndedAt: at}},
		{"zero times", Event{Position: "1", Kind: KindSleep}},
		{"whole seconds", Event{Position: "1", StartedAt: at.Truncate(time.Second), EndedAt: at.Truncate(time.Millisecond)}},
		{"another zone", Event{Position: "1", StartedAt: at.In(paris), EndedAt: at}},
		{"an offset in seconds", Event{Position: "1", StartedAt: at.In(odd), EndedAt: at}},
		{"an offset of 25 hours", Event{Position: "1", StartedAt: at, EndedAt: at.In(far)}},
		{"year 10000", Event{Position: "1", StartedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), EndedAt: at}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkEventJSON(t, &tt.e) })
	}
}

func TestEventJSONMatchesEncodingJSONOnRandomEvents(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "Z", "0", "/", ":", " ", ".", "-", "_", "\"", "\\", "<", ">", "&", "é", "\n", "\t", "\x00", "\u2028", "\xff"}
	str := func() string {
		var b []byte
		for range r.IntN(12) {
			if r.IntN(4) > 0 {
				b = append(b, alphabet[r.IntN(6)]...) // mostly plain
			} else {
				b = append(b, alphabet[r.IntN(len(alphabet))]...)
			}
		}
		return string(b)
	}
	results := []string{"", "null", "1", "-2.5e-3", `"x"`, `"a b"`, `[1,{"k":"v"}]`, `{"k":[true,false]}`, `{ "k" : 1 }`, `"<>"`, `"é"`, `{"k":`, `tru`}
	for i := range 5000 {
		e := Event{Position: str(), Kind: str(), Name: str(), ArgsHash: str(), Error: str(), Where: str(),
			Result:    json.RawMessage(results[r.IntN(len(results))]),
			Attempts:  r.IntN(5) - 1,
			HTTPCalls: r.IntN(3) - 1, Items: r.IntN(3) * 500,
			StartedAt: time.Unix(r.Int64N(1<<35), r.Int64N(1e9)).UTC(), EndedAt: time.Unix(0, r.Int64N(1<<62)).UTC()}
		if i%7 == 0 {
			e.StartedAt = e.StartedAt.Local()
		}
		checkEventJSON(t, &e)
		x := Execution{ID: str(), Runbook: str(), Version: str(), Status: Status(str()), Trigger: Trigger{Type: str(), Source: str()},
			Input: e.Result, Result: json.RawMessage(results[r.IntN(len(results))]), Error: str(), Node: str(), TraceParent: str(),
			CreatedAt: e.StartedAt, UpdatedAt: e.EndedAt}
		if i%3 == 0 {
			x.EndedAt = &e.EndedAt
		}
		if i%11 == 0 {
			x.Trigger.Attrs = map[string]string{str(): str()}
		}
		checkExecutionJSON(t, &x)
	}
}

// FuzzEventJSON: any event and any execution record encode as encoding/json
// encodes them.
func FuzzEventJSON(f *testing.F) {
	f.Add("1", "call", "noop", "boom", []byte(`null`), 1, int64(1764107980514550088))
	f.Add("3/0/1", "approval", "<a&b>", "é\n", []byte(`{ "a": "\u2028" }`), -1, int64(-62135596800000000000/1e3))
	f.Fuzz(func(t *testing.T, position, kind, name, errMsg string, result []byte, attempts int, nanos int64) {
		at := time.Unix(0, nanos).UTC()
		e := Event{Position: position, Kind: kind, Name: name, Error: errMsg, Where: name + ":1:2",
			Result: result, Attempts: attempts, StartedAt: at, EndedAt: at.Add(time.Millisecond)}
		checkEventJSON(t, &e)
		x := Execution{ID: position, Runbook: kind, Version: name, Status: Status(kind), Trigger: Trigger{Type: kind, Source: errMsg},
			Input: result, Result: result, Error: errMsg, CreatedAt: at, UpdatedAt: at, EndedAt: &at}
		checkExecutionJSON(t, &x)
	})
}
