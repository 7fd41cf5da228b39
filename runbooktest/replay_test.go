package runbooktest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/starbook/starbook/runbooktest"
	sbruntime "github.com/starbook/starbook/runtime"
)

// fixture is a recorded execution as GET /api/v1/executions/{id} returns it
// (its timeline aside): what `starbook replay` replays.
type fixture struct {
	Execution *sbruntime.Execution `json:"execution"`
	History   []*sbruntime.Event   `json:"history"`
	Waits     []*sbruntime.Wait    `json:"waits,omitempty"`
}

// histories holds the recorded executions and the versions of deploy.star
// replayed against them, shared with cmd/starbook's tests; the mocks they
// were recorded with and the replay reports stay in testdata/replay.
var histories = filepath.Join("..", "testdata", "replay")

// recordings are the golden histories: made offline from a runbook and
// mocks with -update, replayed on every test run.
var recordings = []struct {
	file        string // <histories>/<file>.json
	root, name  string // the runbook recorded
	mocks       []string
	input       string
	wantWaiting bool
}{
	{"deploy_completed", filepath.Join(histories, "v1"), "deploy.star", []string{"deploy_mocks.star"}, `{"service": "api"}`, false},
	{"deploy_waiting", filepath.Join(histories, "v1"), "deploy.star", []string{"deploy_waiting_mocks.star"}, `{"service": "api"}`, true},
	{"crashloop_completed", "../runbooks", "crashloop.star", []string{"crashloop_mocks.star", "approve_mocks.star"},
		`{"labels": {"namespace": "shop", "pod": "api-1"}, "annotations": {"k8s_api": "https://k8s.example.com"}}`, false},
	{"crashloop_waiting", "../runbooks", "crashloop.star", []string{"crashloop_mocks.star"},
		`{"labels": {"namespace": "shop", "pod": "api-1"}, "annotations": {"k8s_api": "https://k8s.example.com"}}`, true},
	{"hello_completed", "../runbooks", "hello.star", nil, `{"who": "replay"}`, false},
}

func loadFixture(t *testing.T, name string) *fixture {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(histories, name+".json"))
	if err != nil {
		t.Fatalf("%v (go test -update records it)", err)
	}
	var f fixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return &f
}

// TestRecord makes the golden histories with -update; without it, it checks
// they exist.
func TestRecord(t *testing.T) {
	for _, rec := range recordings {
		if !*update {
			loadFixture(t, rec.file)
			continue
		}
		b, err := runbooktest.LoadBundleFrom(rec.root, rec.name, std(t))
		if err != nil {
			t.Fatal(err)
		}
		m := runbooktest.NewMocks()
		for _, f := range rec.mocks {
			if err := m.LoadMocks(filepath.Join("testdata", "replay", f)); err != nil {
				t.Fatal(err)
			}
		}
		res, err := m.Execute(context.Background(), b, json.RawMessage(rec.input), sbruntime.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		want := sbruntime.StatusCompleted
		if rec.wantWaiting {
			want = sbruntime.StatusWaiting
			res.Execution.Error = ""
		}
		if res.Execution.Status != want {
			t.Fatalf("%s: recorded %s (%s), want %s", rec.file, res.Execution.Status, res.Execution.Error, want)
		}
		f := fixture{Execution: res.Execution, Waits: res.Waits}
		for _, s := range res.Steps {
			f.History = append(f.History, s.Event)
		}
		out, _ := json.MarshalIndent(f, "", "  ")
		if err := os.WriteFile(filepath.Join(histories, rec.file+".json"), append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestShippedRunbooksReplay: the shipped runbooks still replay the histories
// their previous versions recorded. A change that breaks this would get
// in-flight executions stuck; make it deliberately (and re-record).
func TestShippedRunbooksReplay(t *testing.T) {
	for _, rec := range recordings {
		if rec.root != "../runbooks" {
			continue
		}
		t.Run(rec.file, func(t *testing.T) {
			f := loadFixture(t, rec.file)
			b, err := runbooktest.LoadBundleFrom(rec.root, rec.name, std(t))
			if err != nil {
				t.Fatal(err)
			}
			r, err := runbooktest.Replay(context.Background(), b, f.Execution, f.History, f.Waits, sbruntime.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if !r.Compatible {
				var out bytes.Buffer
				r.Write(&out)
				t.Fatalf("runbooks/%s no longer replays %s.json:\n%s", rec.name, rec.file, out.String())
			}
		})
	}
}

func TestReplay(t *testing.T) {
	tests := []struct {
		golden     string
		fixture    string
		script     string // <histories>/<script>/deploy.star
		compatible bool
	}{
		{"same_completed", "deploy_completed", "v1", true},
		{"same_waiting", "deploy_waiting", "v1", true},
		{"diverges_completed", "deploy_completed", "diverges", false},
		{"diverges_waiting", "deploy_waiting", "diverges", false},
		{"args_waiting", "deploy_waiting", "args", false},
		{"extends_completed", "deploy_completed", "extends", true},
		{"extends_waiting", "deploy_waiting", "extends", true},
		{"shorter_completed", "deploy_completed", "shorter", false},
		{"shorter_waiting", "deploy_waiting", "shorter", false},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			f := loadFixture(t, tt.fixture)
			b, err := runbooktest.LoadBundle(filepath.Join(histories, tt.script), "deploy.star")
			if err != nil {
				t.Fatal(err)
			}
			r, err := runbooktest.Replay(context.Background(), b, f.Execution, f.History, f.Waits, sbruntime.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			r.Write(&out)
			golden(t, "replay/"+tt.golden+".golden", out.String())
			if r.Compatible != tt.compatible {
				t.Errorf("compatible = %v, want %v:\n%s", r.Compatible, tt.compatible, out.String())
			}
			m := r.Mismatch()
			complete := m.Position != "" && strings.Contains(m.Where, ".star:") && m.Expected != "" && m.Actual != ""
			if tt.compatible && m != (runbooktest.Mismatch{}) || !tt.compatible && !complete {
				t.Errorf("mismatch %+v of a replay compatible %v", m, tt.compatible)
			}
		})
	}
}
