package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/starbook/starbook/api/apitest"
	sbruntime "github.com/starbook/starbook/runtime"
)

// logService is a fake with an execution's log and pending waits.
type logService struct {
	apitest.Service
	lines []*sbruntime.LogLine
	waits []*sbruntime.Wait
}

func (s *logService) Logs(_ context.Context, id string, after int64, limit int) ([]*sbruntime.LogLine, error) {
	if id != "01JEXEC" {
		return nil, &notFound{id}
	}
	var out []*sbruntime.LogLine
	for _, l := range s.lines {
		if l.Seq > after && (limit <= 0 || len(out) < limit) {
			out = append(out, l)
		}
	}
	return out, nil
}

func (s *logService) FollowLogs(ctx context.Context, id string, after int64, send func(*sbruntime.LogLine) error) error {
	lines, err := s.Logs(ctx, id, after, 0)
	for _, l := range lines {
		if err := send(l); err != nil {
			return err
		}
	}
	return err
}

func (s *logService) ExecutionWaits(context.Context, string) ([]*sbruntime.Wait, error) {
	return s.waits, nil
}

func newLogService() *logService {
	s := &logService{lines: []*sbruntime.LogLine{
		{Seq: 3, Time: t0, Level: "INFO", Msg: "checking web-1", Position: "0", Index: 1, Attrs: map[string]string{"pod": "web-1", "a": "b"}},
		{Seq: 5, Time: t0.Add(time.Second), Level: "WARN", Msg: "slow", Position: "2/1/1", Index: 1},
	}}
	s.ExecutionFunc = func(_ context.Context, id string) (*sbruntime.Execution, []*sbruntime.Event, error) {
		return showed, history, nil // failed: terminal, so -f ends
	}
	return s
}

func TestLogs(t *testing.T) {
	clock := func(at time.Time) string { return at.Local().Format("15:04:05.000") }
	want := clock(t0) + " INFO  [0] checking web-1 a=b pod=web-1\n" + clock(t0.Add(time.Second)) + " WARN  [2/1/1] slow\n"
	for _, args := range [][]string{{"logs", "01JEXEC"}, {"logs", "-f", "01JEXEC"}} {
		res := cli(t, newLogService(), "", args...)
		if res.code != 0 || res.stdout != want {
			t.Errorf("%v: exit %d, stdout:\n%s\nwant:\n%s\nstderr: %s", args, res.code, res.stdout, want, res.stderr)
		}
	}
	res := cli(t, newLogService(), "", "logs", "--json", "--after", "3", "01JEXEC")
	var l sbruntime.LogLine
	if res.code != 0 || json.Unmarshal([]byte(res.stdout), &l) != nil || l.Seq != 5 {
		t.Errorf("--json --after 3: exit %d, %q", res.code, res.stdout)
	}
	if res := cli(t, newLogService(), "", "logs", "-f", "nope"); res.code != 1 || !strings.Contains(res.stderr, "not found") {
		t.Errorf("unknown execution: exit %d, %q", res.code, res.stderr)
	}
}

// TestShowWaitsAndCompensation: show draws pending waits and undos the way
// the UI does.
func TestShowWaitsAndCompensation(t *testing.T) {
	s := newLogService()
	running := &sbruntime.Execution{ID: "01JEXEC", Runbook: "deploy", Version: "v1", Status: sbruntime.StatusWaiting,
		Trigger: sbruntime.Trigger{Type: "cron"}, CreatedAt: t0}
	deadline := t0.Add(time.Hour)
	s.ExecutionFunc = func(context.Context, string) (*sbruntime.Execution, []*sbruntime.Event, error) {
		return running, []*sbruntime.Event{
			{Position: "1", Kind: "compensate", Name: "rollback", StartedAt: t0, EndedAt: t0},
			{Position: "2", Kind: "undo", Name: "rollback", Attempts: 2, StartedAt: t0, EndedAt: t0.Add(time.Second)},
		}, nil
	}
	s.waits = []*sbruntime.Wait{{Execution: "01JEXEC", Position: "3", Kind: "sleep", Since: t0, Deadline: &deadline}}
	res := cli(t, s, "", "show", "01JEXEC")
	var rows []string
	for _, line := range strings.Split(res.stdout, "\n") {
		rows = append(rows, strings.Join(strings.Fields(line), " "))
	}
	got := strings.Join(rows, "\n")
	for _, want := range []string{
		"\n1 compensate rollback ok - 0s |= | -\n-- compensation\n2 undo rollback ok 1 1s |= | -\n3 sleep - waiting - ",
		"|~~~~~~~~~~~~~~~~~~~~~~~~| until " + deadline.Format(time.RFC3339),
	} {
		if !strings.Contains(got, want) {
			t.Errorf("show lacks %q:\n%s", want, res.stdout)
		}
	}
}
