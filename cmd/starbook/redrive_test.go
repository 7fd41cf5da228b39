package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api/apitest"
	sbruntime "github.com/starbook/starbook/runtime"
)

// dlqService is a fake with dead letters, recording redrives.
type dlqService struct {
	*apitest.Service
	mu       sync.Mutex
	redrives []starbook.RedriveRequest
	ids      []string
	letters  []*starbook.DeadLetter
	acked    []string
}

func (s *dlqService) DeadLetters(_ context.Context, f starbook.DeadLetterFilter) ([]*starbook.DeadLetter, error) {
	var out []*starbook.DeadLetter
	for _, dl := range s.letters {
		if f.Reason == "" || dl.Reason == f.Reason {
			out = append(out, dl)
		}
	}
	return out, nil
}

func (s *dlqService) AckDeadLetter(_ context.Context, id string) (*starbook.DeadLetter, error) {
	s.acked = append(s.acked, id)
	for _, dl := range s.letters {
		if dl.ID == id {
			return dl, nil
		}
	}
	return nil, fmt.Errorf("dead letter %q: %w", id, sbruntime.ErrNotFound)
}

func (s *dlqService) Redrive(_ context.Context, id string, r starbook.RedriveRequest) (*starbook.RedriveResult, *sbruntime.Execution, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.redrives = append(s.redrives, r)
	s.ids = append(s.ids, id)
	return &starbook.RedriveResult{Execution: id, From: r.From, Version: "v1", DryRun: r.DryRun, Attempt: 2, Kept: 1,
		Rerun: []string{"2"}}, &sbruntime.Execution{ID: id, Runbook: "rb"}, nil
}

// TestRedriveBulkDryRun: redrive --runbook --status --since --dry-run lists
// the executions that ended in the window, asks only for dry runs and so
// changes nothing; executions redriven from the start already are left out.
func TestRedriveBulkDryRun(t *testing.T) {
	now := time.Now().UTC()
	ended := func(ago time.Duration) *time.Time { x := now.Add(-ago); return &x }
	var asked starbook.Filter
	svc := &dlqService{Service: &apitest.Service{
		ExecutionsFunc: func(_ context.Context, f starbook.Filter) ([]*sbruntime.Execution, error) {
			asked = f
			return []*sbruntime.Execution{
				{ID: "E3", Runbook: "rb", Status: sbruntime.StatusFailed, EndedAt: ended(10 * time.Minute)},
				{ID: "E2", Runbook: "rb", Status: sbruntime.StatusFailed, EndedAt: ended(20 * time.Minute), RedrivenAs: []string{"E9"}},
				{ID: "E1", Runbook: "rb", Status: sbruntime.StatusFailed, EndedAt: ended(3 * time.Hour)},
			}, nil
		},
	}}
	r := cli(t, svc, "", "redrive", "--runbook", "rb", "--status", "failed", "--since", "1h", "--dry-run")
	if r.code != 0 {
		t.Fatalf("exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	if asked.Runbook != "rb" || asked.Status != sbruntime.StatusFailed {
		t.Errorf("listed with %+v", asked)
	}
	if strings.Join(svc.ids, ",") != "E3" {
		t.Errorf("redrove %v, want only E3 (ended in the last hour, not redriven already)", svc.ids)
	}
	for _, req := range svc.redrives {
		if !req.DryRun {
			t.Errorf("a bulk dry run asked for a real redrive: %+v", req)
		}
	}
	if !strings.Contains(r.stdout, "E3 rb: would redrive from the failed step") || !strings.Contains(r.stdout, "1 of 1 would be redriven") {
		t.Errorf("output:\n%s", r.stdout)
	}
}

// TestRedriveAndDLQCommands: one redrive passes its options; dlq lists and
// acks; bad flag combinations are refused before any request.
func TestRedriveAndDLQCommands(t *testing.T) {
	svc := &dlqService{Service: &apitest.Service{}, letters: []*starbook.DeadLetter{
		{ID: "E1", Kind: starbook.DeadExecution, Reason: starbook.ReasonFailed, Runbook: "rb", Error: "boom\ntrace", At: t0},
		{ID: "V1", Kind: starbook.DeadEvent, Reason: starbook.ReasonNoRunbook, Source: "alertmanager", Detail: "no match", At: t0},
	}}
	r := cli(t, svc, "", "redrive", "E1", "--from", "start", "--version", "current")
	if r.code != 0 || len(svc.redrives) != 1 || svc.redrives[0].From != "start" || svc.redrives[0].Version != "current" || svc.redrives[0].DryRun {
		t.Errorf("redrive E1: exit %d %s %s, requests %+v", r.code, r.stdout, r.stderr, svc.redrives)
	}
	r = cli(t, svc, "", "dlq", "--reason", "no_runbook")
	if r.code != 0 || !strings.Contains(r.stdout, "V1") || strings.Contains(r.stdout, "E1") || !strings.Contains(r.stdout, "alertmanager: no match") {
		t.Errorf("dlq --reason no_runbook: exit %d\n%s", r.code, r.stdout)
	}
	r = cli(t, svc, "", "dlq", "ack", "E1", "--comment", "flake")
	if r.code != 0 || !strings.Contains(r.stdout, "E1 acknowledged (execution, failed)") {
		t.Errorf("dlq ack: exit %d %s %s", r.code, r.stdout, r.stderr)
	}
	r = cli(t, svc, "", "dlq", "ack", "NOPE")
	if r.code == 0 || !strings.Contains(r.stderr, "not found") {
		t.Errorf("dlq ack of an unknown id: exit %d %s", r.code, r.stderr)
	}
	for _, args := range [][]string{{"redrive"}, {"redrive", "E1", "--since", "1h"}} {
		if r := cli(t, svc, "", args...); r.code == 0 || r.requests != 0 {
			t.Errorf("%v: exit %d after %d requests, want a refusal before any", args, r.code, r.requests)
		}
	}
}
