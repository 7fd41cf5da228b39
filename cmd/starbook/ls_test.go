package main

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api"
	"github.com/starbook/starbook/api/apitest"
	sbruntime "github.com/starbook/starbook/runtime"
)

// pagedService is a fake whose Executions pages over list (newest first) as
// the store does: up to Limit of those older than After. It records the
// filters it is asked for.
func pagedService(list []*sbruntime.Execution, filters *[]starbook.Filter) *apitest.Service {
	return &apitest.Service{ExecutionsFunc: func(_ context.Context, f starbook.Filter) ([]*sbruntime.Execution, error) {
		*filters = append(*filters, f)
		var out []*sbruntime.Execution
		for _, e := range list {
			if (f.After == "" || e.ID < f.After) && len(out) < f.Limit {
				out = append(out, e)
			}
		}
		return out, nil
	}}
}

func TestLsAll(t *testing.T) {
	var list []*sbruntime.Execution
	var ids []string
	for i := 5; i > 0; i-- {
		id := fmt.Sprintf("01JEXEC%d", i)
		ids = append(ids, id)
		list = append(list, &sbruntime.Execution{ID: id, Runbook: "crashloop", Status: sbruntime.StatusFailed,
			Trigger: sbruntime.Trigger{Type: "api"}, CreatedAt: t0.Add(time.Duration(i) * time.Minute)})
	}
	tests := []struct {
		name    string
		args    []string
		filters []starbook.Filter // as the service sees them: a page and one more
	}{
		{"pages of 2", []string{"ls", "--all", "--limit", "2", "--status", "failed", "--runbook", "crashloop"}, []starbook.Filter{
			{Status: sbruntime.StatusFailed, Runbook: "crashloop", Limit: 3},
			{Status: sbruntime.StatusFailed, Runbook: "crashloop", Limit: 3, After: "01JEXEC4"},
			{Status: sbruntime.StatusFailed, Runbook: "crashloop", Limit: 3, After: "01JEXEC2"},
		}},
		{"a page that ends the list", []string{"ls", "--all", "--limit", "5"}, []starbook.Filter{{Limit: 6}}},
		{"pages of the most the server allows", []string{"ls", "--all"}, []starbook.Filter{{Limit: api.MaxLimit + 1}}},
		{"json", []string{"ls", "--all", "--limit", "3", "--json"}, []starbook.Filter{{Limit: 4}, {Limit: 4, After: "01JEXEC3"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var filters []starbook.Filter
			res := cli(t, pagedService(list, &filters), "", tt.args...)
			if res.code != 0 {
				t.Fatalf("exit %d: %s", res.code, res.stderr)
			}
			if !reflect.DeepEqual(filters, tt.filters) {
				t.Errorf("filters = %+v\nwant      %+v", filters, tt.filters)
			}
			want := len(tt.filters)
			if !strings.Contains(strings.Join(tt.args, " "), "--json") {
				want++ // the pauses, shown above the table
			}
			if res.requests != int32(want) {
				t.Errorf("%d requests, want %d", res.requests, want)
			}
			var got []string
			if strings.Contains(strings.Join(tt.args, " "), "--json") {
				var out map[string][]*sbruntime.Execution
				if err := json.Unmarshal([]byte(res.stdout), &out); err != nil || len(out) != 1 {
					t.Fatalf("stdout = %s (%v), want {\"executions\": [...]}", res.stdout, err)
				}
				for _, e := range out["executions"] {
					got = append(got, e.ID)
				}
			} else {
				lines := strings.Split(strings.TrimSuffix(res.stdout, "\n"), "\n")
				for _, l := range lines[1:] {
					got = append(got, strings.Fields(l)[0])
				}
			}
			if !reflect.DeepEqual(got, ids) {
				t.Errorf("listed %q, want %q, each once:\n%s", got, ids, res.stdout)
			}
		})
	}
}

func TestLsAllRefuses(t *testing.T) {
	tests := []struct {
		name    string
		svc     *apitest.Service
		args    []string
		wantErr string
	}{
		{"a wait cursor that goes nowhere", &apitest.Service{
			WaitsFunc: func(context.Context, starbook.WaitFilter) ([]*starbook.PendingWait, error) {
				return []*starbook.PendingWait{{Execution: "01JA", Position: "1"}, {Execution: "01JB", Position: "2"}, {Execution: "01JC", Position: "1"}}, nil
			}}, []string{"ls", "--waiting", "--all", "--limit", "2"}, "cursor 01JB/2 does not follow 01JB/2"},
		{"a cursor that goes nowhere", &apitest.Service{
			ExecutionsFunc: func(_ context.Context, f starbook.Filter) ([]*sbruntime.Execution, error) {
				// Always the same page, whatever the cursor.
				return []*sbruntime.Execution{{ID: "01JB"}, {ID: "01JA"}, {ID: "01J9"}}, nil
			}}, []string{"ls", "--all", "--limit", "2"}, "cursor 01JA does not follow 01JA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := cli(t, tt.svc, "", tt.args...)
			if res.code != 1 || !strings.Contains(res.stderr, tt.wantErr) {
				t.Errorf("exit %d, stderr %q; want 1 and %q", res.code, res.stderr, tt.wantErr)
			}
		})
	}
}

// TestLsWaitingAll follows the waits' cursor page by page; the pages,
// taken in execution id order, are printed oldest first as one list.
func TestLsWaitingAll(t *testing.T) {
	var waits []*starbook.PendingWait // in cursor order
	for i := range 5 {
		waits = append(waits, &starbook.PendingWait{Execution: fmt.Sprintf("01JW%d", i), Position: "1", Kind: sbruntime.KindSignal,
			Name: "go", Since: t0.Add(time.Duration(5-i) * time.Minute)})
	}
	var filters []starbook.WaitFilter
	svc := &apitest.Service{WaitsFunc: func(_ context.Context, f starbook.WaitFilter) ([]*starbook.PendingWait, error) {
		filters = append(filters, f)
		var out []*starbook.PendingWait
		for _, w := range waits {
			if (f.After == "" || w.Cursor() > f.After) && (f.Limit == 0 || len(out) < f.Limit) {
				out = append(out, w)
			}
		}
		return out, nil
	}}
	res := cli(t, svc, "", "ls", "--waiting", "--all", "--limit", "2", "--json")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	want := []starbook.WaitFilter{{Limit: 3}, {Limit: 3, After: "01JW1/1"}, {Limit: 3, After: "01JW3/1"}}
	if !reflect.DeepEqual(filters, want) {
		t.Errorf("filters = %+v\nwant      %+v", filters, want)
	}
	var out map[string][]*starbook.PendingWait
	if err := json.Unmarshal([]byte(res.stdout), &out); err != nil || len(out) != 1 {
		t.Fatalf("stdout = %s (%v), want {\"waits\": [...]}", res.stdout, err)
	}
	var got []string
	for _, w := range out["waits"] {
		got = append(got, w.Execution)
	}
	if want := []string{"01JW4", "01JW3", "01JW2", "01JW1", "01JW0"}; !reflect.DeepEqual(got, want) {
		t.Errorf("listed %v, want %v (oldest first)", got, want)
	}
	filters = nil
	res = cli(t, svc, "", "ls", "--waiting", "--limit", "2")
	if res.code != 0 || !strings.Contains(res.stderr, "--all") || len(filters) != 1 {
		t.Errorf("one page: exit %d, stderr %q, %d requests; want a note of more", res.code, res.stderr, len(filters))
	}
}
