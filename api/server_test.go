package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api"
	"github.com/starbook/starbook/api/apitest"
	sbruntime "github.com/starbook/starbook/runtime"
)

var (
	t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	exec1 = &sbruntime.Execution{ID: "e1", Runbook: "crashloop", Version: "v1",
		Status: sbruntime.StatusRunning, Trigger: sbruntime.Trigger{Type: "api"},
		Input: json.RawMessage(`{"pod":"web-1"}`), CreatedAt: t0, UpdatedAt: t0}
	history1 = []*sbruntime.Event{
		{Position: "1", Kind: sbruntime.KindCall, Name: "check", Result: json.RawMessage(`true`),
			Attempts: 1, StartedAt: t0, EndedAt: t0.Add(time.Second)},
	}
	errNotFound = fmt.Errorf("execution nope: %w", sbruntime.ErrNotFound)
)

// strict returns a fake whose every method fails the test: a case overrides
// only the methods the request may reach, so a refused request that still
// reaches the service is caught.
func strict(t *testing.T) *apitest.Service {
	unexpected := func(name string) error {
		t.Helper()
		t.Errorf("unexpected call to Service.%s", name)
		return errors.New("unexpected call")
	}
	return &apitest.Service{
		ApplyFunc: func(context.Context, map[string]string) ([]starbook.RunbookVersion, error) {
			return nil, unexpected("Apply")
		},
		RunbooksFunc: func(context.Context) ([]starbook.RunbookVersion, error) { return nil, unexpected("Runbooks") },
		StartFunc: func(context.Context, string, json.RawMessage, sbruntime.Trigger) (*sbruntime.Execution, error) {
			return nil, unexpected("Start")
		},
		ExecutionsFunc: func(context.Context, starbook.Filter) ([]*sbruntime.Execution, error) {
			return nil, unexpected("Executions")
		},
		ExecutionFunc: func(context.Context, string) (*sbruntime.Execution, []*sbruntime.Event, error) {
			return nil, nil, unexpected("Execution")
		},
		CancelFunc:   func(context.Context, string) (*sbruntime.Execution, error) { return nil, unexpected("Cancel") },
		AwaitEndFunc: func(context.Context, string) (*sbruntime.Execution, error) { return nil, unexpected("AwaitEnd") },
		HealthFunc:   func(context.Context) error { return unexpected("Health") },
	}
}

// startRecorder makes svc.Start record its arguments into *got and succeed.
type startCall struct {
	runbook string
	input   json.RawMessage
	trigger sbruntime.Trigger
}

func recordStart(svc *apitest.Service, got *startCall) {
	svc.StartFunc = func(_ context.Context, runbook string, input json.RawMessage, tr sbruntime.Trigger) (*sbruntime.Execution, error) {
		*got = startCall{runbook, input, tr}
		return &sbruntime.Execution{ID: "new", Runbook: runbook, Status: sbruntime.StatusPending,
			Trigger: tr, Input: input, CreatedAt: t0, UpdatedAt: t0}, nil
	}
}

func TestHandler(t *testing.T) {
	bigRunbooks := `{"files":{"a.star":"` + strings.Repeat("x", api.MaxRunbooksBody) + `"}}`
	nearlyBigRunbooks := `{"files":{"a.star":"` + strings.Repeat("x", 2*api.MaxBody) + `"}}`
	bigStart := `{"runbook":"a","input":"` + strings.Repeat("x", api.MaxBody) + `"}`

	type tc struct {
		name    string
		method  string
		path    string
		header  http.Header
		body    string
		setup   func(t *testing.T, svc *apitest.Service) // nil: the request must not reach svc
		status  int
		want    string // exact JSON body, when set
		wantErr string // substring of the "error" field, when set
		check   func(t *testing.T, rec *httptest.ResponseRecorder)
	}
	var started startCall
	tests := []tc{
		// health
		{name: "health ok", method: "GET", path: "/healthz",
			setup:  func(t *testing.T, s *apitest.Service) { s.HealthFunc = func(context.Context) error { return nil } },
			status: 200, want: `{"status":"ok"}`},
		{name: "health unhealthy", method: "GET", path: "/healthz",
			setup: func(t *testing.T, s *apitest.Service) {
				s.HealthFunc = func(context.Context) error { return errors.New("etcd: no leader") }
			},
			status: 503, want: `{"status":"unhealthy","error":"etcd: no leader"}`},

		// apply
		{name: "apply", method: "POST", path: "/api/v1/runbooks",
			body: `{"files":{"crashloop.star":"def main(input): pass","lib/util.star":"x = 1"}}`,
			setup: func(t *testing.T, s *apitest.Service) {
				s.ApplyFunc = func(_ context.Context, files map[string]string) ([]starbook.RunbookVersion, error) {
					want := map[string]string{"crashloop.star": "def main(input): pass", "lib/util.star": "x = 1"}
					if !reflect.DeepEqual(files, want) {
						t.Errorf("Apply files = %v, want %v", files, want)
					}
					return []starbook.RunbookVersion{{Name: "crashloop", Version: "v2", Files: []string{"crashloop.star", "lib/util.star"}, CreatedAt: t0}}, nil
				}
			},
			status: 200, want: `{"runbooks":[{"name":"crashloop","version":"v2","files":["crashloop.star","lib/util.star"],"created_at":"2026-03-01T12:00:00Z"}]}`},
		{name: "apply malformed json", method: "POST", path: "/api/v1/runbooks", body: `{"files":`,
			status: 400, wantErr: "invalid request body"},
		{name: "apply wrong type", method: "POST", path: "/api/v1/runbooks", body: `{"files":["a.star"]}`,
			status: 400, wantErr: `field "files": want an object, got array`},
		{name: "apply wrong source type", method: "POST", path: "/api/v1/runbooks", body: `{"files":{"a.star":1}}`,
			status: 400, wantErr: "want a string, got number"},
		{name: "apply body not an object", method: "POST", path: "/api/v1/runbooks", body: `"a.star"`,
			status: 400, wantErr: "want an object, got string"},
		{name: "apply unknown field", method: "POST", path: "/api/v1/runbooks", body: `{"file":{"a.star":"x"}}`,
			status: 400, wantErr: `unknown field "file"`},
		{name: "apply trailing garbage", method: "POST", path: "/api/v1/runbooks", body: `{"files":{"a.star":"x"}} {}`,
			status: 400, wantErr: "unexpected data after the JSON object"},
		{name: "apply no files", method: "POST", path: "/api/v1/runbooks", body: `{"files":{}}`,
			status: 400, wantErr: "no files"},
		{name: "apply empty body", method: "POST", path: "/api/v1/runbooks",
			status: 400, wantErr: "empty request body"},
		{name: "apply over 8MiB", method: "POST", path: "/api/v1/runbooks", body: bigRunbooks,
			status: 413, wantErr: "too large"},
		{name: "apply over 1MiB is fine", method: "POST", path: "/api/v1/runbooks", body: nearlyBigRunbooks,
			setup: func(t *testing.T, s *apitest.Service) {
				s.ApplyFunc = func(context.Context, map[string]string) ([]starbook.RunbookVersion, error) { return nil, nil }
			},
			status: 200, want: `{"runbooks":[]}`},
		{name: "apply input error", method: "POST", path: "/api/v1/runbooks", body: `{"files":{"a.star":"def"}}`,
			setup: func(t *testing.T, s *apitest.Service) {
				s.ApplyFunc = func(context.Context, map[string]string) ([]starbook.RunbookVersion, error) {
					return nil, sbruntime.Inputf("a.star:1:4: got end of file, want identifier")
				}
			},
			status: 400, want: `{"error":"a.star:1:4: got end of file, want identifier"}`},
		{name: "apply wrapped input error", method: "POST", path: "/api/v1/runbooks", body: `{"files":{"a.star":"def"}}`,
			setup: func(t *testing.T, s *apitest.Service) {
				s.ApplyFunc = func(context.Context, map[string]string) ([]starbook.RunbookVersion, error) {
					return nil, fmt.Errorf("apply: %w", sbruntime.Inputf("bad"))
				}
			},
			status: 400, wantErr: "bad"},
		{name: "apply internal error", method: "POST", path: "/api/v1/runbooks", body: `{"files":{"a.star":"x"}}`,
			setup: func(t *testing.T, s *apitest.Service) {
				s.ApplyFunc = func(context.Context, map[string]string) ([]starbook.RunbookVersion, error) {
					return nil, errors.New("store: etcd timeout")
				}
			},
			status: 500, want: `{"error":"store: etcd timeout"}`},

		// runbooks
		{name: "runbooks", method: "GET", path: "/api/v1/runbooks",
			setup: func(t *testing.T, s *apitest.Service) {
				s.RunbooksFunc = func(context.Context) ([]starbook.RunbookVersion, error) {
					return []starbook.RunbookVersion{{Name: "a", Version: "v1", Files: []string{"a.star"}, CreatedAt: t0}}, nil
				}
			},
			status: 200, want: `{"runbooks":[{"name":"a","version":"v1","files":["a.star"],"created_at":"2026-03-01T12:00:00Z"}]}`},
		{name: "runbooks empty", method: "GET", path: "/api/v1/runbooks",
			setup: func(t *testing.T, s *apitest.Service) {
				s.RunbooksFunc = func(context.Context) ([]starbook.RunbookVersion, error) { return nil, nil }
			},
			status: 200, want: `{"runbooks":[]}`},

		// start
		{name: "start", method: "POST", path: "/api/v1/executions", body: `{"runbook":"crashloop","input":{"pod":"web-1"}}`,
			setup:  func(t *testing.T, s *apitest.Service) { recordStart(s, &started) },
			status: 201,
			check: func(t *testing.T, rec *httptest.ResponseRecorder) {
				want := startCall{"crashloop", json.RawMessage(`{"pod":"web-1"}`), sbruntime.Trigger{Type: "api"}}
				if !reflect.DeepEqual(started, want) {
					t.Errorf("Start(%+v), want %+v", started, want)
				}
				var resp struct{ Execution sbruntime.Execution }
				decode(t, rec, &resp)
				if resp.Execution.ID != "new" || resp.Execution.Runbook != "crashloop" {
					t.Errorf("execution = %+v", resp.Execution)
				}
			}},
		{name: "start manual", method: "POST", path: "/api/v1/executions", body: `{"runbook":"crashloop"}`,
			header: http.Header{"X-Starbook-Trigger": {"manual"}, "X-Starbook-User": {"alice"}},
			setup:  func(t *testing.T, s *apitest.Service) { recordStart(s, &started) },
			status: 201,
			check: func(t *testing.T, rec *httptest.ResponseRecorder) {
				want := startCall{"crashloop", nil, sbruntime.Trigger{Type: "manual", Source: "alice"}}
				if !reflect.DeepEqual(started, want) {
					t.Errorf("Start(%+v), want %+v", started, want)
				}
			}},
		{name: "start other trigger header is api", method: "POST", path: "/api/v1/executions", body: `{"runbook":"crashloop"}`,
			header: http.Header{"X-Starbook-Trigger": {"cron"}, "X-Starbook-User": {"mallory"}},
			setup:  func(t *testing.T, s *apitest.Service) { recordStart(s, &started) },
			status: 201,
			check: func(t *testing.T, rec *httptest.ResponseRecorder) {
				if want := (sbruntime.Trigger{Type: "api"}); !reflect.DeepEqual(started.trigger, want) {
					t.Errorf("trigger = %+v, want %+v", started.trigger, want)
				}
			}},
		{name: "start null input", method: "POST", path: "/api/v1/executions", body: `{"runbook":"a","input":null}`,
			setup:  func(t *testing.T, s *apitest.Service) { recordStart(s, &started) },
			status: 201,
			check: func(t *testing.T, rec *httptest.ResponseRecorder) {
				if started.input != nil {
					t.Errorf("input = %s, want none", started.input)
				}
			}},
		{name: "start scalar input", method: "POST", path: "/api/v1/executions", body: `{"runbook":"a","input":[1,"two"]}`,
			setup:  func(t *testing.T, s *apitest.Service) { recordStart(s, &started) },
			status: 201,
			check: func(t *testing.T, rec *httptest.ResponseRecorder) {
				if string(started.input) != `[1,"two"]` {
					t.Errorf("input = %s", started.input)
				}
			}},
		{name: "start invalid input json", method: "POST", path: "/api/v1/executions", body: `{"runbook":"a","input":{pod:1}}`,
			status: 400, wantErr: "invalid request body"},
		{name: "start truncated input", method: "POST", path: "/api/v1/executions", body: `{"runbook":"a","input":[1,`,
			status: 400, wantErr: "invalid request body"},
		{name: "start runbook wrong type", method: "POST", path: "/api/v1/executions", body: `{"runbook":3}`,
			status: 400, wantErr: `field "runbook": want a string, got number`},
		{name: "start missing runbook", method: "POST", path: "/api/v1/executions", body: `{"input":1}`,
			status: 400, wantErr: "runbook is required"},
		{name: "start trailing garbage", method: "POST", path: "/api/v1/executions", body: `{"runbook":"a"}x`,
			status: 400, wantErr: "unexpected data"},
		{name: "start over 1MiB", method: "POST", path: "/api/v1/executions", body: bigStart,
			status: 413, wantErr: "too large"},
		{name: "start unknown runbook", method: "POST", path: "/api/v1/executions", body: `{"runbook":"nope"}`,
			setup: func(t *testing.T, s *apitest.Service) {
				s.StartFunc = func(context.Context, string, json.RawMessage, sbruntime.Trigger) (*sbruntime.Execution, error) {
					return nil, fmt.Errorf("runbook nope: %w", sbruntime.ErrNotFound)
				}
			},
			status: 404, want: `{"error":"runbook nope: not found"}`},
		{name: "start input error", method: "POST", path: "/api/v1/executions", body: `{"runbook":"a","input":1}`,
			setup: func(t *testing.T, s *apitest.Service) {
				s.StartFunc = func(context.Context, string, json.RawMessage, sbruntime.Trigger) (*sbruntime.Execution, error) {
					return nil, sbruntime.Inputf("input: want an object")
				}
			},
			status: 400, want: `{"error":"input: want an object"}`},
		{name: "start named", method: "POST", path: "/api/v1/runbooks/crashloop/executions", body: `{"input":{"pod":"x"}}`,
			header: http.Header{"X-Starbook-Trigger": {"manual"}},
			setup:  func(t *testing.T, s *apitest.Service) { recordStart(s, &started) },
			status: 201,
			check: func(t *testing.T, rec *httptest.ResponseRecorder) {
				want := startCall{"crashloop", json.RawMessage(`{"pod":"x"}`), sbruntime.Trigger{Type: "manual"}}
				if !reflect.DeepEqual(started, want) {
					t.Errorf("Start(%+v), want %+v", started, want)
				}
			}},
		{name: "start named empty body", method: "POST", path: "/api/v1/runbooks/crashloop/executions",
			setup:  func(t *testing.T, s *apitest.Service) { recordStart(s, &started) },
			status: 201,
			check: func(t *testing.T, rec *httptest.ResponseRecorder) {
				if started.runbook != "crashloop" || started.input != nil {
					t.Errorf("Start(%+v)", started)
				}
			}},
		{name: "start named rejects runbook field", method: "POST", path: "/api/v1/runbooks/a/executions", body: `{"runbook":"b"}`,
			status: 400, wantErr: `unknown field "runbook"`},
		{name: "start named invalid input", method: "POST", path: "/api/v1/runbooks/a/executions", body: `{"input":tru}`,
			status: 400, wantErr: "invalid request body"},

		// list; the handler asks for one more than the limit, to know whether
		// there is a next page
		{name: "executions default", method: "GET", path: "/api/v1/executions",
			setup: func(t *testing.T, s *apitest.Service) {
				s.ExecutionsFunc = func(_ context.Context, f starbook.Filter) ([]*sbruntime.Execution, error) {
					if want := (starbook.Filter{Limit: 101}); f != want {
						t.Errorf("filter = %+v, want %+v", f, want)
					}
					return nil, nil
				}
			},
			status: 200, want: `{"executions":[]}`},
		{name: "executions filtered", method: "GET", path: "/api/v1/executions?status=waiting&runbook=crashloop&limit=1000",
			setup: func(t *testing.T, s *apitest.Service) {
				s.ExecutionsFunc = func(_ context.Context, f starbook.Filter) ([]*sbruntime.Execution, error) {
					if want := (starbook.Filter{Status: sbruntime.StatusWaiting, Runbook: "crashloop", Limit: 1001}); f != want {
						t.Errorf("filter = %+v, want %+v", f, want)
					}
					return []*sbruntime.Execution{exec1}, nil
				}
			},
			status: 200,
			check: func(t *testing.T, rec *httptest.ResponseRecorder) {
				var resp struct{ Executions []*sbruntime.Execution }
				decode(t, rec, &resp)
				if len(resp.Executions) != 1 || resp.Executions[0].ID != "e1" {
					t.Errorf("executions = %+v", resp.Executions)
				}
			}},
		{name: "executions after", method: "GET", path: "/api/v1/executions?limit=2&after=e9",
			setup: func(t *testing.T, s *apitest.Service) {
				s.ExecutionsFunc = func(_ context.Context, f starbook.Filter) ([]*sbruntime.Execution, error) {
					if want := (starbook.Filter{Limit: 3, After: "e9"}); f != want {
						t.Errorf("filter = %+v, want %+v", f, want)
					}
					return []*sbruntime.Execution{{ID: "e8"}, {ID: "e7"}, {ID: "e6"}}, nil
				}
			},
			status: 200,
			check: func(t *testing.T, rec *httptest.ResponseRecorder) {
				var resp struct {
					Executions []*sbruntime.Execution
					Next       *string
				}
				decode(t, rec, &resp)
				if len(resp.Executions) != 2 || resp.Executions[1].ID != "e7" || resp.Next == nil || *resp.Next != "e7" {
					t.Errorf("response = %s, want e8, e7 and next e7", rec.Body)
				}
			}},
		{name: "executions last page", method: "GET", path: "/api/v1/executions?limit=2&after=e9",
			setup: func(t *testing.T, s *apitest.Service) {
				s.ExecutionsFunc = func(_ context.Context, f starbook.Filter) ([]*sbruntime.Execution, error) {
					return []*sbruntime.Execution{{ID: "e8"}, {ID: "e7"}}, nil
				}
			},
			status: 200,
			check: func(t *testing.T, rec *httptest.ResponseRecorder) {
				var resp map[string]json.RawMessage
				decode(t, rec, &resp)
				if _, ok := resp["next"]; ok || !strings.Contains(string(resp["executions"]), `"e7"`) {
					t.Errorf("response = %s, want e8, e7 and no next", rec.Body)
				}
			}},
		{name: "executions after not an id", method: "GET", path: "/api/v1/executions?after=..%2Fowners%2Fx",
			status: 400, wantErr: `invalid after "../owners/x": want an execution id`},
		{name: "executions after too long", method: "GET", path: "/api/v1/executions?after=" + strings.Repeat("A", 65),
			status: 400, wantErr: "invalid after"},
		{name: "executions unknown status", method: "GET", path: "/api/v1/executions?status=done",
			status: 400, wantErr: `unknown status "done" (want one of pending, running, waiting, completed, failed, compensating, cancelled, stuck)`},
		{name: "executions limit zero", method: "GET", path: "/api/v1/executions?limit=0",
			status: 400, wantErr: "invalid limit"},
		{name: "executions limit too large", method: "GET", path: "/api/v1/executions?limit=1001",
			status: 400, wantErr: "from 1 to 1000"},
		{name: "executions limit not a number", method: "GET", path: "/api/v1/executions?limit=ten",
			status: 400, wantErr: "invalid limit"},

		// one execution
		{name: "execution", method: "GET", path: "/api/v1/executions/e1",
			setup: func(t *testing.T, s *apitest.Service) {
				s.ExecutionFunc = func(_ context.Context, id string) (*sbruntime.Execution, []*sbruntime.Event, error) {
					if id != "e1" {
						t.Errorf("id = %q", id)
					}
					return exec1, history1, nil
				}
			},
			status: 200,
			want: `{"execution":{"id":"e1","runbook":"crashloop","version":"v1","status":"running","trigger":{"type":"api"},` +
				`"input":{"pod":"web-1"},"created_at":"2026-03-01T12:00:00Z","updated_at":"2026-03-01T12:00:00Z"},` +
				`"history":[{"position":"1","kind":"call","name":"check","result":true,"attempts":1,` +
				`"started_at":"2026-03-01T12:00:00Z","ended_at":"2026-03-01T12:00:01Z"}],` +
				`"timeline":[{"position":"1","depth":0,"item":-1,"kind":"call","name":"check","state":"ok","attempts":1,` +
				`"start":"2026-03-01T12:00:00Z","offset_ms":0,"duration_ms":1000}],` +
				`"usage":{"steps":1,"retries":0,"http_calls":0,"fan_out_items":0,"wall_time_ms":1000}}`},
		{name: "execution no history", method: "GET", path: "/api/v1/executions/e1",
			setup: func(t *testing.T, s *apitest.Service) {
				s.ExecutionFunc = func(context.Context, string) (*sbruntime.Execution, []*sbruntime.Event, error) {
					return exec1, nil, nil
				}
			},
			status: 200,
			check: func(t *testing.T, rec *httptest.ResponseRecorder) {
				if !strings.Contains(rec.Body.String(), `"history":[]`) {
					t.Errorf("body = %s, want an empty history list", rec.Body)
				}
			}},
		{name: "execution unknown", method: "GET", path: "/api/v1/executions/nope",
			setup: func(t *testing.T, s *apitest.Service) {
				s.ExecutionFunc = func(context.Context, string) (*sbruntime.Execution, []*sbruntime.Event, error) {
					return nil, nil, errNotFound
				}
			},
			status: 404, want: `{"error":"execution nope: not found"}`},
		{name: "execution wait ends", method: "GET", path: "/api/v1/executions/e1?wait=5m",
			setup: func(t *testing.T, s *apitest.Service) {
				s.AwaitEndFunc = func(ctx context.Context, id string) (*sbruntime.Execution, error) {
					dl, ok := ctx.Deadline()
					if left := time.Until(dl); !ok || left > 5*time.Minute || left < 4*time.Minute {
						t.Errorf("AwaitEnd deadline in %v (set %v), want about 5m", left, ok)
					}
					return exec1, nil
				}
				s.ExecutionFunc = func(context.Context, string) (*sbruntime.Execution, []*sbruntime.Event, error) {
					return exec1, history1, nil
				}
			},
			status: 200,
			check: func(t *testing.T, rec *httptest.ResponseRecorder) {
				var resp struct {
					Execution *sbruntime.Execution
					History   []*sbruntime.Event
				}
				decode(t, rec, &resp)
				if resp.Execution.ID != "e1" || len(resp.History) != 1 {
					t.Errorf("response = %s", rec.Body)
				}
			}},
		{name: "execution wait times out", method: "GET", path: "/api/v1/executions/e1?wait=10ms",
			setup: func(t *testing.T, s *apitest.Service) {
				s.AwaitEndFunc = func(ctx context.Context, id string) (*sbruntime.Execution, error) {
					<-ctx.Done()
					return nil, fmt.Errorf("await %s: %w", id, ctx.Err())
				}
				s.ExecutionFunc = func(context.Context, string) (*sbruntime.Execution, []*sbruntime.Event, error) {
					return exec1, history1, nil
				}
			},
			status: 200,
			check: func(t *testing.T, rec *httptest.ResponseRecorder) {
				if !strings.Contains(rec.Body.String(), `"status":"running"`) {
					t.Errorf("body = %s", rec.Body)
				}
			}},
		{name: "execution wait unknown", method: "GET", path: "/api/v1/executions/nope?wait=1s",
			setup: func(t *testing.T, s *apitest.Service) {
				s.AwaitEndFunc = func(context.Context, string) (*sbruntime.Execution, error) { return nil, errNotFound }
			},
			status: 404, wantErr: "not found"},
		{name: "execution wait store error", method: "GET", path: "/api/v1/executions/e1?wait=1s",
			setup: func(t *testing.T, s *apitest.Service) {
				s.AwaitEndFunc = func(context.Context, string) (*sbruntime.Execution, error) {
					return nil, errors.New("watch: etcd closed")
				}
			},
			status: 500, wantErr: "etcd closed"},
		{name: "execution wait too long", method: "GET", path: "/api/v1/executions/e1?wait=11m",
			status: 400, wantErr: "invalid wait"},
		{name: "execution wait negative", method: "GET", path: "/api/v1/executions/e1?wait=-1s",
			status: 400, wantErr: "invalid wait"},
		{name: "execution wait not a duration", method: "GET", path: "/api/v1/executions/e1?wait=60",
			status: 400, wantErr: "invalid wait"},

		// cancel
		{name: "cancel", method: "POST", path: "/api/v1/executions/e1/cancel",
			setup: func(t *testing.T, s *apitest.Service) {
				s.CancelFunc = func(_ context.Context, id string) (*sbruntime.Execution, error) {
					return &sbruntime.Execution{ID: id, Status: sbruntime.StatusCancelled, CreatedAt: t0, UpdatedAt: t0}, nil
				}
			},
			status: 200,
			check: func(t *testing.T, rec *httptest.ResponseRecorder) {
				var resp struct{ Execution sbruntime.Execution }
				decode(t, rec, &resp)
				if resp.Execution.ID != "e1" || resp.Execution.Status != sbruntime.StatusCancelled {
					t.Errorf("execution = %+v", resp.Execution)
				}
			}},
		{name: "cancel unknown", method: "POST", path: "/api/v1/executions/nope/cancel",
			setup: func(t *testing.T, s *apitest.Service) {
				s.CancelFunc = func(context.Context, string) (*sbruntime.Execution, error) { return nil, errNotFound }
			},
			status: 404, wantErr: "not found"},

		// routing
		{name: "wrong method on execution", method: "DELETE", path: "/api/v1/executions/e1",
			status: 405, wantErr: "method DELETE not allowed",
			check: func(t *testing.T, rec *httptest.ResponseRecorder) {
				if allow := rec.Header().Get("Allow"); !strings.Contains(allow, "GET") {
					t.Errorf("Allow = %q", allow)
				}
			}},
		{name: "wrong method on cancel", method: "GET", path: "/api/v1/executions/e1/cancel",
			status: 405, wantErr: "not allowed"},
		{name: "wrong method on runbooks", method: "PUT", path: "/api/v1/runbooks", body: `{}`,
			status: 405, wantErr: "not allowed"},
		{name: "wrong method on healthz", method: "POST", path: "/healthz",
			status: 405, wantErr: "not allowed"},
		{name: "unknown route", method: "GET", path: "/api/v2/executions",
			status: 404, wantErr: "no route for GET /api/v2/executions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			started = startCall{}
			svc := strict(t)
			if tt.setup != nil {
				tt.setup(t, svc)
			}
			h := api.NewHandler(svc, nil)
			req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
			for k, v := range tt.header {
				req.Header[k] = v
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)

			if rec.Code != tt.status {
				t.Errorf("status = %d, want %d; body %s", rec.Code, tt.status, truncate(rec.Body.String()))
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			if !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("body is not JSON: %s", truncate(rec.Body.String()))
			}
			if tt.want != "" {
				if got := strings.TrimSpace(rec.Body.String()); got != tt.want {
					t.Errorf("body =\n%s\nwant\n%s", got, tt.want)
				}
			}
			if tt.wantErr != "" {
				var e struct{ Error string }
				decode(t, rec, &e)
				if !strings.Contains(e.Error, tt.wantErr) {
					t.Errorf("error = %q, want it to contain %q", e.Error, tt.wantErr)
				}
			}
			if tt.check != nil {
				tt.check(t, rec)
			}
		})
	}
}

// TestHandlerLogsInternalErrors checks that a 500 is logged and a refusal is not.
func TestHandlerLogsInternalErrors(t *testing.T) {
	var buf bytes.Buffer
	logger := slogTo(&buf)
	svc := strict(t)
	svc.CancelFunc = func(context.Context, string) (*sbruntime.Execution, error) { return nil, errors.New("boom") }
	svc.ExecutionFunc = func(context.Context, string) (*sbruntime.Execution, []*sbruntime.Event, error) {
		return nil, nil, errNotFound
	}
	h := api.NewHandler(svc, logger)

	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/api/v1/executions/nope", nil))
	if buf.Len() != 0 {
		t.Errorf("a 404 was logged: %s", &buf)
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/api/v1/executions/e1/cancel", nil))
	if !strings.Contains(buf.String(), "boom") {
		t.Errorf("log = %q, want the internal error", &buf)
	}
}

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

func decode(t *testing.T, rec *httptest.ResponseRecorder, v any) {
	t.Helper()
	if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
		t.Fatalf("decode %s: %v", truncate(rec.Body.String()), err)
	}
}

func truncate(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}

func TestClient(t *testing.T) {
	var starts atomic.Int32
	svc := &apitest.Service{
		HealthFunc: func(context.Context) error { return nil },
		ApplyFunc: func(_ context.Context, files map[string]string) ([]starbook.RunbookVersion, error) {
			if len(files) != 2 {
				t.Errorf("Apply files = %v", files)
			}
			return []starbook.RunbookVersion{
				{Name: "a", Version: "v2", Files: []string{"a.star", "lib.star"}, CreatedAt: t0},
				{Name: "b", Version: "v1", Files: []string{"b.star"}, CreatedAt: t0, Unchanged: true},
			}, nil
		},
		RunbooksFunc: func(context.Context) ([]starbook.RunbookVersion, error) {
			return []starbook.RunbookVersion{{Name: "a", Version: "v2", CreatedAt: t0}}, nil
		},
		StartFunc: func(_ context.Context, runbook string, input json.RawMessage, tr sbruntime.Trigger) (*sbruntime.Execution, error) {
			starts.Add(1)
			if want := (sbruntime.Trigger{Type: "manual", Source: "alice"}); !reflect.DeepEqual(tr, want) {
				t.Errorf("trigger = %+v, want %+v", tr, want)
			}
			if runbook != "crashloop" || string(input) != `{"pod":"web-1"}` {
				t.Errorf("Start(%q, %s)", runbook, input)
			}
			return &sbruntime.Execution{ID: "new", Runbook: runbook, Status: sbruntime.StatusPending, Trigger: tr, Input: input}, nil
		},
		ExecutionsFunc: func(_ context.Context, f starbook.Filter) ([]*sbruntime.Execution, error) {
			if want := (starbook.Filter{Status: sbruntime.StatusFailed, Runbook: "crash loop", Limit: 6}); f != want {
				t.Errorf("filter = %+v, want %+v", f, want)
			}
			return []*sbruntime.Execution{exec1}, nil
		},
		ExecutionFunc: func(_ context.Context, id string) (*sbruntime.Execution, []*sbruntime.Event, error) {
			if id != "e1" {
				return nil, nil, fmt.Errorf("execution %s: %w", id, sbruntime.ErrNotFound)
			}
			return exec1, history1, nil
		},
		AwaitEndFunc: func(ctx context.Context, id string) (*sbruntime.Execution, error) {
			if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > time.Minute {
				t.Errorf("AwaitEnd without the requested deadline")
			}
			return exec1, nil
		},
		CancelFunc: func(_ context.Context, id string) (*sbruntime.Execution, error) {
			return &sbruntime.Execution{ID: id, Status: sbruntime.StatusCancelled}, nil
		},
	}
	srv := httptest.NewServer(api.NewHandler(svc, nil))
	defer srv.Close()
	c := &api.Client{BaseURL: srv.URL + "/", HTTP: srv.Client(), User: "alice"}
	ctx := context.Background()

	t.Run("health", func(t *testing.T) {
		if err := c.Health(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("apply", func(t *testing.T) {
		got, err := c.Apply(ctx, map[string]string{"a.star": "x", "lib.star": "y"})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].Version != "v2" || !got[1].Unchanged || !got[0].CreatedAt.Equal(t0) {
			t.Errorf("Apply = %+v", got)
		}
	})
	t.Run("runbooks", func(t *testing.T) {
		got, err := c.Runbooks(ctx)
		if err != nil || len(got) != 1 || got[0].Name != "a" {
			t.Errorf("Runbooks = %+v, %v", got, err)
		}
	})
	t.Run("start", func(t *testing.T) {
		e, err := c.Start(ctx, "crashloop", json.RawMessage(`{"pod":"web-1"}`))
		if err != nil {
			t.Fatal(err)
		}
		if e.ID != "new" || e.Trigger.Type != "manual" {
			t.Errorf("Start = %+v", e)
		}
	})
	t.Run("executions", func(t *testing.T) {
		got, err := c.Executions(ctx, starbook.Filter{Status: sbruntime.StatusFailed, Runbook: "crash loop", Limit: 5})
		if err != nil || len(got) != 1 || got[0].ID != "e1" {
			t.Errorf("Executions = %+v, %v", got, err)
		}
	})
	t.Run("execution", func(t *testing.T) {
		e, h, err := c.Execution(ctx, "e1")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(e, exec1) || !reflect.DeepEqual(h, history1) {
			t.Errorf("Execution = %+v, %+v", e, h)
		}
	})
	t.Run("wait", func(t *testing.T) {
		e, h, err := c.Wait(ctx, "e1", 30*time.Second)
		if err != nil || e.ID != "e1" || len(h) != 1 {
			t.Errorf("Wait = %+v, %+v, %v", e, h, err)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		e, err := c.Cancel(ctx, "e1")
		if err != nil || e.Status != sbruntime.StatusCancelled {
			t.Errorf("Cancel = %+v, %v", e, err)
		}
	})
	t.Run("not found", func(t *testing.T) {
		_, _, err := c.Execution(ctx, "nope")
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Status != 404 || err.Error() != "execution nope: not found" {
			t.Errorf("err = %#v, want a 404 *api.Error", err)
		}
	})
	t.Run("escaped id", func(t *testing.T) {
		// The id arrives whole (escaped), and cannot name a stored record.
		_, _, err := c.Execution(ctx, "a/b")
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Status != 400 || !strings.Contains(err.Error(), `invalid execution id "a/b"`) {
			t.Errorf("err = %#v, want a 400 *api.Error", err)
		}
	})
	t.Run("bad request", func(t *testing.T) {
		_, err := c.Executions(ctx, starbook.Filter{Status: "done"})
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Status != 400 || !strings.HasPrefix(ae.Message, `unknown status "done"`) {
			t.Errorf("err = %#v, want a 400 *api.Error", err)
		}
	})
	if n := starts.Load(); n != 1 {
		t.Errorf("Start called %d times, want 1", n)
	}
}

func TestClientErrors(t *testing.T) {
	t.Run("unhealthy", func(t *testing.T) {
		svc := &apitest.Service{HealthFunc: func(context.Context) error { return errors.New("etcd: no leader") }}
		srv := httptest.NewServer(api.NewHandler(svc, nil))
		defer srv.Close()
		err := (&api.Client{BaseURL: srv.URL}).Health(context.Background())
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Status != 503 || ae.Message != "etcd: no leader" {
			t.Errorf("err = %#v", err)
		}
	})
	t.Run("not an api error", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "upstream down", http.StatusBadGateway)
		}))
		defer srv.Close()
		_, err := (&api.Client{BaseURL: srv.URL}).Runbooks(context.Background())
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Status != 502 || ae.Message != "502 Bad Gateway: upstream down" {
			t.Errorf("err = %#v", err)
		}
	})
}
