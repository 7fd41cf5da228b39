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

// pagedDLQ is a fake whose DeadLetters pages over letters (newest first)
// as the store does: up to Limit of those after the cursor After. It
// records the filters it is asked for.
type pagedDLQ struct {
	*apitest.Service
	letters []*starbook.DeadLetter
	filters []starbook.DeadLetterFilter
}

func (s *pagedDLQ) DeadLetters(_ context.Context, f starbook.DeadLetterFilter) ([]*starbook.DeadLetter, error) {
	s.filters = append(s.filters, f)
	var out []*starbook.DeadLetter
	for _, dl := range s.letters {
		if (f.After == "" || dl.Cursor() < f.After) && len(out) < f.Limit {
			out = append(out, dl)
		}
	}
	return out, nil
}

func (s *pagedDLQ) AckDeadLetter(context.Context, string) (*starbook.DeadLetter, error) {
	return nil, nil
}
func (s *pagedDLQ) Redrive(context.Context, string, starbook.RedriveRequest) (*starbook.RedriveResult, *sbruntime.Execution, error) {
	return nil, nil, nil
}

func TestDLQAll(t *testing.T) {
	var letters []*starbook.DeadLetter
	var ids []string
	for i := 5; i > 0; i-- {
		id := fmt.Sprintf("01JDEAD%d", i)
		ids = append(ids, id)
		letters = append(letters, &starbook.DeadLetter{ID: id, Kind: starbook.DeadExecution, Reason: starbook.ReasonFailed,
			Runbook: "rb", Error: "boom", At: t0.Add(time.Duration(i) * time.Minute)})
	}
	cursor := func(i int) string { return letters[i].Cursor() }
	tests := []struct {
		name     string
		args     []string
		filters  []starbook.DeadLetterFilter // as the service sees them: a page and one more
		want     []string
		moreNote bool
	}{
		{"pages of 2", []string{"dlq", "--all", "--limit", "2", "--runbook", "rb"}, []starbook.DeadLetterFilter{
			{Runbook: "rb", Limit: 3},
			{Runbook: "rb", Limit: 3, After: cursor(1)},
			{Runbook: "rb", Limit: 3, After: cursor(3)},
		}, ids, false},
		{"pages of the most the server allows", []string{"dlq", "--all"}, []starbook.DeadLetterFilter{{Limit: api.MaxLimit + 1}}, ids, false},
		{"json", []string{"dlq", "--all", "--limit", "3", "--json"}, []starbook.DeadLetterFilter{{Limit: 4}, {Limit: 4, After: cursor(2)}}, ids, false},
		{"one page", []string{"dlq", "--limit", "2"}, []starbook.DeadLetterFilter{{Limit: 3}}, ids[:2], true},
		{"the server's default page", []string{"dlq"}, []starbook.DeadLetterFilter{{Limit: api.DefaultLimit + 1}}, ids, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := &pagedDLQ{Service: &apitest.Service{}, letters: letters}
			res := cli(t, svc, "", tt.args...)
			if res.code != 0 {
				t.Fatalf("exit %d: %s", res.code, res.stderr)
			}
			if !reflect.DeepEqual(svc.filters, tt.filters) {
				t.Errorf("filters = %+v\nwant      %+v", svc.filters, tt.filters)
			}
			var got []string
			if strings.Contains(strings.Join(tt.args, " "), "--json") {
				var out map[string][]*starbook.DeadLetter
				if err := json.Unmarshal([]byte(res.stdout), &out); err != nil || len(out) != 1 {
					t.Fatalf("stdout = %s (%v), want {\"dead_letters\": [...]}", res.stdout, err)
				}
				for _, dl := range out["dead_letters"] {
					got = append(got, dl.ID)
				}
			} else {
				lines := strings.Split(strings.TrimSuffix(res.stdout, "\n"), "\n")
				for _, l := range lines[1:] {
					got = append(got, strings.Fields(l)[0])
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("listed %v, want %v", got, tt.want)
			}
			if more := strings.Contains(res.stderr, "--all"); more != tt.moreNote {
				t.Errorf("stderr %q: note of more %v, want %v", res.stderr, more, tt.moreNote)
			}
		})
	}
}
