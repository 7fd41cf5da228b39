package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api"
	"github.com/starbook/starbook/api/apitest"
	sbruntime "github.com/starbook/starbook/runtime"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type result struct {
	stdout, stderr string
	code           int
	requests       int32 // HTTP requests the server received
}

// cli runs the starbook command line args against an API server backed by
// svc. The root command is shared, so flags are reset first and tests using
// cli must not run in parallel.
func cli(t *testing.T, svc starbook.Service, stdin string, args ...string) result {
	t.Helper()
	var requests atomic.Int32
	h := api.NewHandler(svc, nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	resetFlags(rootCmd)
	var stdout, stderr bytes.Buffer
	code := execute(context.Background(), append([]string{"--server", srv.URL}, args...),
		strings.NewReader(stdin), &stdout, &stderr)
	return result{stdout.String(), stderr.String(), code, requests.Load()}
}

func resetFlags(cmd *cobra.Command) {
	reset := func(f *pflag.Flag) {
		if sv, ok := f.Value.(pflag.SliceValue); ok { // Set would append "[]"
			_ = sv.Replace(nil)
		} else {
			_ = f.Value.Set(f.DefValue)
		}
		f.Changed = false
	}
	cmd.Flags().VisitAll(reset)
	cmd.PersistentFlags().VisitAll(reset)
	for _, sub := range cmd.Commands() {
		resetFlags(sub)
	}
}

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, src := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestApply(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"rb/crashloop.star":        "crashloop",
		"rb/lib.star":              "lib",
		"rb/crashloop_test.star":   "test",
		"rb/crashloop.schema.json": "{}",
		"rb/README.md":             "readme",
		"rb/k8s/pods.star":         "pods",
		"rb/k8s/deep/nodes.star":   "nodes",
		"rb/k8s/pods_test.star":    "test",
		"rb/.git/hooks/x.star":     "hidden",
		"other/deploy.star":        "deploy",
		"other/lib.star":           "other lib",
		"empty/notes.txt":          "",
		"single/only.star":         "only",
		"single/sub/ignored.star":  "not a sibling",
	})
	p := func(name string) string { return filepath.Join(root, filepath.FromSlash(name)) }

	tests := []struct {
		name    string
		args    []string
		want    map[string]string // files sent; nil: nothing is sent
		wantErr string
	}{
		{name: "directory", args: []string{p("rb")}, want: map[string]string{
			"crashloop.star": "crashloop", "crashloop.schema.json": "{}", "lib.star": "lib", "k8s/pods.star": "pods", "k8s/deep/nodes.star": "nodes",
			"crashloop_test.star": "test", "k8s/pods_test.star": "test"}},
		{name: "file with siblings", args: []string{p("rb/crashloop.star")}, want: map[string]string{
			"crashloop.star": "crashloop", "crashloop.schema.json": "{}", "lib.star": "lib", "crashloop_test.star": "test"}},
		{name: "file without siblings", args: []string{p("single/only.star")}, want: map[string]string{
			"only.star": "only"}},
		{name: "file and its directory", args: []string{p("rb/lib.star"), p("rb")}, want: map[string]string{
			"crashloop.star": "crashloop", "crashloop.schema.json": "{}", "lib.star": "lib", "k8s/pods.star": "pods", "k8s/deep/nodes.star": "nodes",
			"crashloop_test.star": "test", "k8s/pods_test.star": "test"}},
		{name: "two files", args: []string{p("single/only.star"), p("rb/k8s/pods.star")}, want: map[string]string{
			"only.star": "only", "pods.star": "pods", "pods_test.star": "test"}},
		{name: "name clash", args: []string{p("rb"), p("other")}, wantErr: "would both be applied as lib.star"},
		{name: "not a star file", args: []string{p("rb/README.md")}, wantErr: "not a .star file"},
		{name: "test file", args: []string{p("rb/crashloop_test.star")}, wantErr: "test files"},
		{name: "empty directory", args: []string{p("empty")}, wantErr: "no .star files"},
		{name: "missing", args: []string{p("nope")}, wantErr: "no such file"},
		{name: "no args", args: nil, wantErr: "requires at least 1 arg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got map[string]string
			svc := &apitest.Service{ApplyFunc: func(_ context.Context, files map[string]string) ([]starbook.RunbookVersion, error) {
				got = files
				return []starbook.RunbookVersion{
					{Name: "crashloop", Version: "v2", CreatedAt: t0},
					{Name: "lib", Version: "v1", CreatedAt: t0, Unchanged: true},
				}, nil
			}}
			res := cli(t, svc, "", append([]string{"apply"}, tt.args...)...)
			if tt.wantErr != "" {
				if res.code != 1 || !strings.HasPrefix(res.stderr, "starbook: ") || !strings.Contains(res.stderr, tt.wantErr) {
					t.Errorf("exit %d, stderr %q; want 1 and %q", res.code, res.stderr, tt.wantErr)
				}
				if res.requests != 0 {
					t.Errorf("%d requests sent, want none", res.requests)
				}
				return
			}
			if res.code != 0 {
				t.Fatalf("exit %d: %s", res.code, res.stderr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("applied %v, want %v", got, tt.want)
			}
			if want := "applied crashloop v2\nunchanged lib v1\n"; res.stdout != want {
				t.Errorf("stdout = %q, want %q", res.stdout, want)
			}
		})
	}
}

func TestApplyRejected(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.star": "def"})
	svc := &apitest.Service{ApplyFunc: func(context.Context, map[string]string) ([]starbook.RunbookVersion, error) {
		return nil, sbruntime.Inputf("a.star:1:4: got end of file, want identifier")
	}}
	res := cli(t, svc, "", "apply", dir)
	if want := "starbook: a.star:1:4: got end of file, want identifier\n"; res.code != 1 || res.stderr != want {
		t.Errorf("exit %d, stderr %q; want 1, %q", res.code, res.stderr, want)
	}
}

// startService records Start's arguments and serves the execution it creates
// with the statuses in seq, one per Execution call (the last one repeats).
type startService struct {
	apitest.Service
	runbook string
	input   json.RawMessage
	trigger sbruntime.Trigger
	calls   atomic.Int32
}

func newStartService(seq ...sbruntime.Status) *startService {
	s := &startService{}
	e := func(st sbruntime.Status) *sbruntime.Execution {
		ex := &sbruntime.Execution{ID: "01JEXEC", Runbook: "crashloop", Version: "v1", Status: st, CreatedAt: t0}
		if st == sbruntime.StatusFailed {
			ex.Error = "step check failed: pod web-1 not found"
		}
		return ex
	}
	s.StartFunc = func(_ context.Context, runbook string, input json.RawMessage, tr sbruntime.Trigger) (*sbruntime.Execution, error) {
		s.runbook, s.input, s.trigger = runbook, input, tr
		return e(sbruntime.StatusPending), nil
	}
	s.AwaitEndFunc = func(context.Context, string) (*sbruntime.Execution, error) { return nil, nil }
	s.ExecutionFunc = func(context.Context, string) (*sbruntime.Execution, []*sbruntime.Event, error) {
		n := int(s.calls.Add(1))
		return e(seq[min(n, len(seq))-1]), nil, nil
	}
	return s
}

func TestRun(t *testing.T) {
	t.Setenv("STARBOOK_USER", "alice")
	tests := []struct {
		name       string
		args       []string
		stdin      string
		seq        []sbruntime.Status
		wantCode   int
		wantOut    string
		wantErr    string
		wantInput  string
		wantWaits  int32
		noRequests bool
	}{
		{name: "no input", args: []string{"crashloop"}, wantOut: "01JEXEC\n"},
		{name: "input", args: []string{"crashloop", "--input", `{"pod": "web-1"}`},
			wantOut: "01JEXEC\n", wantInput: `{"pod":"web-1"}`},
		{name: "input from stdin", args: []string{"crashloop", "--input-file", "-"}, stdin: "[1, 2]\n",
			wantOut: "01JEXEC\n", wantInput: `[1,2]`},
		{name: "bad input", args: []string{"crashloop", "--input", `{pod: web-1}`},
			wantCode: 1, wantErr: "starbook: invalid --input: invalid character 'p'", noRequests: true},
		{name: "empty input", args: []string{"crashloop", "--input", ``},
			wantCode: 1, wantErr: "starbook: invalid --input: unexpected end of JSON input", noRequests: true},
		{name: "bad input file", args: []string{"crashloop", "--input-file", "-"}, stdin: "{",
			wantCode: 1, wantErr: "starbook: invalid --input-file:", noRequests: true},
		{name: "both inputs", args: []string{"crashloop", "--input", "1", "--input-file", "-"},
			wantCode: 1, wantErr: "none of the others can be", noRequests: true},
		{name: "wait completed", args: []string{"crashloop", "--wait"},
			seq:     []sbruntime.Status{sbruntime.StatusRunning, sbruntime.StatusWaiting, sbruntime.StatusCompleted},
			wantOut: "01JEXEC\n01JEXEC completed\n", wantWaits: 3},
		{name: "wait failed", args: []string{"crashloop", "--wait"},
			seq:      []sbruntime.Status{sbruntime.StatusRunning, sbruntime.StatusFailed},
			wantCode: 1, wantOut: "01JEXEC\n01JEXEC failed\n", wantWaits: 2,
			wantErr: "starbook: execution 01JEXEC failed: step check failed: pod web-1 not found\n"},
		{name: "wait stuck", args: []string{"crashloop", "--wait"},
			seq:      []sbruntime.Status{sbruntime.StatusStuck},
			wantCode: 1, wantOut: "01JEXEC\n01JEXEC stuck\n", wantWaits: 1, wantErr: "starbook: execution 01JEXEC stuck\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := newStartService(append(tt.seq, sbruntime.StatusPending)...)
			res := cli(t, svc, tt.stdin, append([]string{"run"}, tt.args...)...)
			if res.code != tt.wantCode {
				t.Errorf("exit %d, want %d; stderr %q", res.code, tt.wantCode, res.stderr)
			}
			if res.stdout != tt.wantOut {
				t.Errorf("stdout = %q, want %q", res.stdout, tt.wantOut)
			}
			if !strings.Contains(res.stderr, tt.wantErr) || (tt.wantErr == "") != (res.stderr == "") {
				t.Errorf("stderr = %q, want %q", res.stderr, tt.wantErr)
			}
			if tt.noRequests {
				if res.requests != 0 {
					t.Errorf("%d requests sent, want none", res.requests)
				}
				return
			}
			if svc.runbook != "crashloop" || string(svc.input) != tt.wantInput {
				t.Errorf("Start(%q, %s), want input %s", svc.runbook, svc.input, tt.wantInput)
			}
			if want := (sbruntime.Trigger{Type: "manual", Source: "alice"}); !reflect.DeepEqual(svc.trigger, want) {
				t.Errorf("trigger = %+v, want %+v", svc.trigger, want)
			}
			if n := svc.calls.Load(); n != tt.wantWaits {
				t.Errorf("%d waits, want %d", n, tt.wantWaits)
			}
		})
	}
}

var (
	ended  = t0.Add(90 * time.Second)
	showed = &sbruntime.Execution{ID: "01JEXEC", Runbook: "crashloop", Version: "v3", Status: sbruntime.StatusFailed,
		Trigger: sbruntime.Trigger{Type: "manual", Source: "alice"}, Input: json.RawMessage("{\n  \"pod\": \"web-1\"\n}"),
		Error: "fan_out at position 2 failed:\nTraceback ...", CreatedAt: t0, UpdatedAt: ended, EndedAt: &ended}
	history = []*sbruntime.Event{
		{Position: "10", Kind: "call", Name: "notify", Attempts: 1, StartedAt: t0, EndedAt: t0.Add(time.Second)},
		{Position: "2/0/1", Kind: "call", Name: "restart", Attempts: 3, StartedAt: t0, EndedAt: t0.Add(1500 * time.Millisecond),
			Error: "http.post https://k8s/restart: 503 Service Unavailable " + strings.Repeat("x", 100) + "\nsecond line"},
		{Position: "1", Kind: "now", StartedAt: t0, EndedAt: t0},
		{Position: "2", Kind: "fan_out", StartedAt: t0, EndedAt: t0.Add(2 * time.Second), Error: "1 of 2 items failed"},
		{Position: "2/1/1", Kind: "call", Name: "restart", Attempts: 1, StartedAt: t0, EndedAt: t0.Add(20 * time.Millisecond)},
		{Position: "3", Kind: "call", Name: "check", Attempts: 1, StartedAt: t0, EndedAt: t0.Add(time.Minute + 1400*time.Millisecond),
			Error: "Traceback (most recent call last):\n  crashloop.star:5:9: in check\nError in fail: pod\tweb-1 is gone\n"},
	}
)

func showService() *apitest.Service {
	return &apitest.Service{ExecutionFunc: func(_ context.Context, id string) (*sbruntime.Execution, []*sbruntime.Event, error) {
		if id != "01JEXEC" {
			return nil, nil, &notFound{id}
		}
		return showed, history, nil
	}}
}

type notFound struct{ id string }

func (e *notFound) Error() string { return "execution " + e.id + ": not found" }
func (e *notFound) Unwrap() error { return sbruntime.ErrNotFound }

func TestShowJSON(t *testing.T) {
	res := cli(t, showService(), "", "show", "01JEXEC", "--json")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	if !strings.HasPrefix(res.stdout, "{\n  \"execution\": {\n") {
		t.Errorf("stdout does not start with an indented execution:\n%s", res.stdout)
	}
	var got map[string]json.RawMessage
	if err := json.Unmarshal([]byte(res.stdout), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got["execution"] == nil || got["history"] == nil || got["usage"] == nil {
		t.Fatalf("keys of %s, want exactly execution, history and usage", res.stdout)
	}
	var u sbruntime.Usage
	if err := json.Unmarshal(got["usage"], &u); err != nil {
		t.Fatal(err)
	}
	if want := (sbruntime.Usage{Steps: 6, Retries: 2, WallTimeMS: 90_000}); u != want {
		t.Errorf("usage %+v, want %+v", u, want)
	}
	var e sbruntime.Execution
	var h []*sbruntime.Event
	if err := json.Unmarshal(got["execution"], &e); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(got["history"], &h); err != nil {
		t.Fatal(err)
	}
	if e.ID != "01JEXEC" || e.Error != showed.Error || len(h) != len(history) || h[1].Position != "2/0/1" {
		t.Errorf("show --json = %+v, %+v", e, h)
	}
}

func TestShowText(t *testing.T) {
	res := cli(t, showService(), "", "show", "01JEXEC")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	want := `ID:       01JEXEC
Runbook:  crashloop@v3
Status:   failed
Trigger:  manual:alice
Created:  ` + t0.Local().Format(time.RFC3339) + `
Ended:    ` + ended.Local().Format(time.RFC3339) + `
Duration: 1m30s
Input:    {"pod":"web-1"}
Error:    fan_out at position 2 failed:
          Traceback ...
Usage:    6 steps, 2 retries, 0 HTTP calls, 0 fan_out items, 1m30s wall time

POSITION    KIND     NAME     STATE   RETRIES  DURATION  WATERFALL                   ERROR / DETAIL
1           now      -        ok      -        0s        |=                       |  -
2           fan_out  -        failed  -        2s        |x                       |  1 of 2 items failed
  · item 0
  2/0/1     call     restart  failed  2        1.5s      |x                       |  http.post https://k8s/restart: 503 Service Unavailable xxxxxxxxxxxxxxxxxxxxxx...
  · item 1
  2/1/1     call     restart  ok      -        20ms      |=                       |  -
3           call     check    failed  -        1m1s      |xxxxxxxxxxxxxxxx        |  Error in fail: pod web-1 is gone
10          call     notify   ok      -        1s        |=                       |  -
`
	if res.stdout != want {
		t.Errorf("stdout =\n%s\nwant\n%s", res.stdout, want)
	}
}

func TestShowNotFound(t *testing.T) {
	res := cli(t, showService(), "", "show", "nope")
	if want := "starbook: execution nope: not found\n"; res.code != 1 || res.stderr != want {
		t.Errorf("exit %d, stderr %q; want 1, %q", res.code, res.stderr, want)
	}
}

func TestLs(t *testing.T) {
	var filter starbook.Filter
	svc := &apitest.Service{ExecutionsFunc: func(_ context.Context, f starbook.Filter) ([]*sbruntime.Execution, error) {
		filter = f
		return []*sbruntime.Execution{
			{ID: "01JLONGEREXECUTIONID", Runbook: "crashloop", Status: sbruntime.StatusFailed,
				Trigger: sbruntime.Trigger{Type: "manual", Source: "alice"}, CreatedAt: t0.Add(time.Hour)},
			{ID: "01JB", Runbook: "disk-full-cleanup", Status: sbruntime.StatusCompleted,
				Trigger: sbruntime.Trigger{Type: "api"}, CreatedAt: t0},
		}, nil
	}}

	res := cli(t, svc, "", "ls", "--status", "failed", "--runbook", "crashloop", "--limit", "5")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	// The server asks its service for one more than the limit, to know
	// whether there is a next page.
	if want := (starbook.Filter{Status: sbruntime.StatusFailed, Runbook: "crashloop", Limit: 6}); filter != want {
		t.Errorf("filter = %+v, want %+v", filter, want)
	}
	lines := strings.Split(strings.TrimSuffix(res.stdout, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("stdout =\n%s\nwant a header and 2 rows", res.stdout)
	}
	header := regexp.MustCompile(`\S+`).FindAllStringIndex(lines[0], -1)
	if got := strings.Fields(lines[0]); !reflect.DeepEqual(got, []string{"ID", "RUNBOOK", "STATUS", "TRIGGER", "STARTED"}) {
		t.Errorf("header = %q", got)
	}
	rows := [][]string{
		{"01JLONGEREXECUTIONID", "crashloop", "failed", "manual:alice", t0.Add(time.Hour).Local().Format(time.RFC3339)},
		{"01JB", "disk-full-cleanup", "completed", "api", t0.Local().Format(time.RFC3339)},
	}
	for i, want := range rows {
		cells := regexp.MustCompile(`\S+`).FindAllStringIndex(lines[i+1], -1)
		if got := strings.Fields(lines[i+1]); !reflect.DeepEqual(got, want) {
			t.Errorf("row %d = %q, want %q", i, got, want)
			continue
		}
		for j := range cells {
			if cells[j][0] != header[j][0] {
				t.Errorf("row %d column %d starts at %d, header at %d:\n%s", i, j, cells[j][0], header[j][0], res.stdout)
			}
		}
	}

	res = cli(t, svc, "", "ls", "--json")
	var got struct{ Executions []*sbruntime.Execution }
	if err := json.Unmarshal([]byte(res.stdout), &got); err != nil || len(got.Executions) != 2 {
		t.Errorf("ls --json = %s (%v)", res.stdout, err)
	}
	if filter != (starbook.Filter{Limit: api.DefaultLimit + 1}) {
		t.Errorf("filter = %+v, want the server defaults", filter)
	}
}

func TestLsUnknownStatus(t *testing.T) {
	res := cli(t, &apitest.Service{}, "", "ls", "--status", "done")
	if res.code != 1 || !strings.HasPrefix(res.stderr, `starbook: unknown status "done" (want one of pending,`) {
		t.Errorf("exit %d, stderr %q", res.code, res.stderr)
	}
}

func TestCancel(t *testing.T) {
	svc := &apitest.Service{CancelFunc: func(_ context.Context, id string) (*sbruntime.Execution, error) {
		st := sbruntime.StatusCancelled
		if id == "done" {
			st = sbruntime.StatusCompleted
		}
		return &sbruntime.Execution{ID: id, Status: st}, nil
	}}
	for id, want := range map[string]string{"01JEXEC": "01JEXEC cancelled\n", "done": "done completed\n"} {
		res := cli(t, svc, "", "cancel", id)
		if res.code != 0 || res.stdout != want {
			t.Errorf("cancel %s: exit %d, stdout %q, stderr %q; want %q", id, res.code, res.stdout, res.stderr, want)
		}
	}
}

func TestBadServer(t *testing.T) {
	resetFlags(rootCmd)
	var stdout, stderr bytes.Buffer
	code := execute(context.Background(), []string{"--server", "localhost:7070", "ls"}, nil, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), `starbook: invalid --server "localhost:7070"`) {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}
