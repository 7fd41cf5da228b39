package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api"
	"github.com/starbook/starbook/api/apitest"
	sbruntime "github.com/starbook/starbook/runtime"
)

// observed is a fake service with the optional log, runbook and wait parts.
type observed struct {
	apitest.Service
	lines []*sbruntime.LogLine
	waits []*sbruntime.Wait
}

func (o *observed) Logs(_ context.Context, id string, after int64, limit int) ([]*sbruntime.LogLine, error) {
	if id != "e1" {
		return nil, errNotFound
	}
	var out []*sbruntime.LogLine
	for _, l := range o.lines {
		if l.Seq > after && (limit <= 0 || len(out) < limit) {
			out = append(out, l)
		}
	}
	return out, nil
}

func (o *observed) FollowLogs(ctx context.Context, id string, after int64, send func(*sbruntime.LogLine) error) error {
	lines, err := o.Logs(ctx, id, after, 0)
	if err != nil {
		return err
	}
	for _, l := range lines {
		if err := send(l); err != nil {
			return err
		}
	}
	return nil
}

func (o *observed) Runbook(_ context.Context, name string) (*starbook.RunbookInfo, error) {
	return &starbook.RunbookInfo{Name: name, Current: "v2", Versions: []starbook.RunbookVersionInfo{{Version: "v2", Current: true}, {Version: "v1"}}}, nil
}

func (o *observed) RunbookVersion(_ context.Context, name, version string) (*sbruntime.Bundle, time.Time, error) {
	if version != "v1" && version != "v2" {
		return nil, time.Time{}, errNotFound
	}
	return &sbruntime.Bundle{Name: name, Version: version, Main: name + ".star", Files: map[string]string{name + ".star": "def main(event):\n    pass\n"}}, t0, nil
}

func (o *observed) ExecutionWaits(context.Context, string) ([]*sbruntime.Wait, error) {
	return o.waits, nil
}

func newObserved() *observed {
	o := &observed{lines: []*sbruntime.LogLine{
		{Seq: 7, Execution: "e1", Time: t0, Level: "INFO", Msg: "one", Position: "0", Index: 1},
		{Seq: 9, Execution: "e1", Time: t0, Level: "WARN", Msg: "two", Position: "1", Index: 1, Attrs: map[string]string{"k": "v"}},
	}}
	o.ExecutionFunc = func(context.Context, string) (*sbruntime.Execution, []*sbruntime.Event, error) {
		return exec1, history1, nil
	}
	return o
}

func get(t *testing.T, url string, hdr map[string]string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

func TestLogsRoutes(t *testing.T) {
	srv := httptest.NewServer(api.NewHandler(newObserved(), nil))
	defer srv.Close()
	base := srv.URL + "/api/v1/executions/e1/logs"
	tests := []struct {
		name, path string
		hdr        map[string]string
		status     int
		ctype      string
		want       []string
	}{
		{name: "all", path: "", status: 200, ctype: "application/json",
			want: []string{`"msg":"one"`, `"msg":"two"`, `"next":9`}},
		{name: "after", path: "?after=7", status: 200, ctype: "application/json",
			want: []string{`{"logs":[{"seq":9,`, `"next":9`}},
		{name: "limit", path: "?limit=1", status: 200, want: []string{`"next":7`}},
		{name: "ndjson", path: "?follow=1", status: 200, ctype: "application/x-ndjson",
			want: []string{"{\"seq\":7,", "}\n{\"seq\":9,", `"attrs":{"k":"v"}}` + "\n"}},
		{name: "sse", path: "?follow=1", hdr: map[string]string{"Accept": "text/event-stream"}, status: 200,
			ctype: "text/event-stream", want: []string{"id: 7\nevent: log\ndata: {\"seq\":7,", "id: 9\n", "event: end\n"}},
		{name: "sse resumes", path: "?follow=1", hdr: map[string]string{"Accept": "text/event-stream", "Last-Event-ID": "7"},
			status: 200, want: []string{"id: 9\n"}},
		{name: "bad after", path: "?after=x", status: 400, want: []string{`invalid after`}},
		{name: "bad limit", path: "?limit=0", status: 400, want: []string{`invalid limit`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, ctype, body := get(t, base+tt.path, tt.hdr)
			if status != tt.status || (tt.ctype != "" && ctype != tt.ctype) {
				t.Fatalf("%d %s: %s", status, ctype, body)
			}
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("body lacks %q:\n%s", w, body)
				}
			}
			if tt.name == "sse resumes" && strings.Contains(body, "id: 7\n") {
				t.Errorf("resumed stream repeats line 7:\n%s", body)
			}
		})
	}
	for _, follow := range []string{"", "?follow=1"} {
		if status, _, body := get(t, srv.URL+"/api/v1/executions/nope/logs"+follow, nil); status != 404 {
			t.Errorf("unknown execution%s: %d %s", follow, status, body)
		}
	}
}

func TestRunbookRoutesAndTimeline(t *testing.T) {
	o := newObserved()
	deadline := t0.Add(time.Hour)
	o.waits = []*sbruntime.Wait{{Execution: "e1", Position: "2", Kind: sbruntime.KindSleep, Since: t0.Add(2 * time.Second), Deadline: &deadline}}
	srv := httptest.NewServer(api.NewHandler(o, nil))
	defer srv.Close()
	if status, _, body := get(t, srv.URL+"/api/v1/runbooks/crashloop", nil); status != 200 || !strings.Contains(body, `"current":"v2"`) {
		t.Errorf("runbook: %d %s", status, body)
	}
	status, _, body := get(t, srv.URL+"/api/v1/runbooks/crashloop/versions/v1", nil)
	var b api.BundleResponse
	if status != 200 || json.Unmarshal([]byte(body), &b) != nil || b.Files["crashloop.star"] == "" || b.Main != "crashloop.star" {
		t.Errorf("version: %d %s", status, body)
	}
	if status, _, _ := get(t, srv.URL+"/api/v1/runbooks/crashloop/versions/v9", nil); status != 404 {
		t.Errorf("unknown version: %d", status)
	}
	c := &api.Client{BaseURL: srv.URL}
	d, err := c.ExecutionDetail(context.Background(), "e1")
	if err != nil || len(d.Waits) != 1 || len(d.Timeline) != 2 || d.Timeline[1].State != api.StateWaiting {
		t.Errorf("detail = %+v, %v", d, err)
	}
	var seen []int64
	last, err := c.FollowLogs(context.Background(), "e1", 0, func(l *sbruntime.LogLine) error {
		seen = append(seen, l.Seq)
		return nil
	})
	if err != nil || last != 9 || len(seen) != 2 {
		t.Errorf("FollowLogs = %d, %v, saw %v", last, err, seen)
	}
}

func TestTimeline(t *testing.T) {
	e := &sbruntime.Execution{ID: "e", CreatedAt: t0}
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	history := []*sbruntime.Event{
		{Position: "3", Kind: sbruntime.KindUndo, Name: "rollback", Attempts: 1, StartedAt: at(5), EndedAt: at(6)},
		{Position: "1", Kind: sbruntime.KindCompensate, Name: "rollback", StartedAt: at(0), EndedAt: at(0)},
		{Position: "2", Kind: sbruntime.KindFanOut, Name: "probe", StartedAt: at(1), EndedAt: at(4),
			Error: "fan_out item 1 (\"b\"): Traceback (most recent call last):\n  x.star:3:5: in probe\nError: boom"},
		{Position: "2/1/1", Kind: sbruntime.KindCall, Name: "get", Attempts: 3, StartedAt: at(1), EndedAt: at(4), Error: "503"},
		{Position: "2/0/1", Kind: sbruntime.KindCall, Name: "get", Attempts: 1, StartedAt: at(1), EndedAt: at(2), Result: json.RawMessage(`1`), Where: "x.star:3:9"},
	}
	rows := api.Timeline(e, history, nil, at(10))
	var got []string
	for _, r := range rows {
		got = append(got, strings.Join([]string{r.Position, r.Parent, itoa(r.Item), itoa(r.Depth), r.State, itoa(r.Retries),
			map[bool]string{true: "comp", false: ""}[r.Compensation]}, ","))
	}
	want := []string{"1,,-1,0,ok,0,", "2,,-1,0,failed,0,", "2/0/1,2,0,1,ok,0,", "2/1/1,2,1,1,failed,2,", "3,,-1,0,ok,0,comp"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("rows = %v\nwant   %v", got, want)
	}
	if rows[1].Error != `fan_out item 1 ("b"): Error: boom` || rows[2].Where != "x.star:3:9" || rows[3].OffsetMS != 1000 || rows[3].DurationMS != 3000 {
		t.Errorf("details: %+v %+v %+v", rows[1], rows[2], rows[3])
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestTimelineChildren: a run_runbook step's row and its wait's (recorded
// or pending) name the child execution.
func TestTimelineChildren(t *testing.T) {
	e := &sbruntime.Execution{ID: "parent", CreatedAt: t0}
	history := []*sbruntime.Event{
		{Position: "1", Kind: sbruntime.KindCall, Name: "run_runbook", Result: json.RawMessage(`{"id":"C1","runbook":"child"}`), StartedAt: t0, EndedAt: t0},
		{Position: "2", Kind: sbruntime.KindSignal, Name: "child.C1", StartedAt: t0, EndedAt: t0},
		{Position: "3", Kind: sbruntime.KindCall, Name: "other", Result: json.RawMessage(`{"id":"X"}`), StartedAt: t0, EndedAt: t0},
	}
	waits := []*sbruntime.Wait{{Position: "4", Kind: sbruntime.KindSignal, Name: "child.C2", Since: t0}}
	var got []string
	for _, r := range api.Timeline(e, history, waits, t0) {
		got = append(got, r.Position+"="+r.Child)
	}
	if want := "1=C1 2=C1 3= 4=C2"; strings.Join(got, " ") != want {
		t.Errorf("children %v, want %s", got, want)
	}
}
