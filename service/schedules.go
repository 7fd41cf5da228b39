package service

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/starbook/starbook"
)

var _ starbook.ScheduleService = (*Service)(nil)

// Schedules lists the cron triggers of every runbook's current version with
// their next tick after now and the runbook's last fired tick.
func (s *Service) Schedules(ctx context.Context, now time.Time) ([]starbook.Schedule, error) {
	// The service's trigger store: its index keeps the declarations between
	// calls and reads only the runbooks changed since.
	ts := s.replayTriggers()
	runbooks, err := ts.Index().Runbooks(ctx)
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	sort.Slice(runbooks, func(i, j int) bool { return runbooks[i].Name < runbooks[j].Name })
	var out []starbook.Schedule
	for _, rb := range runbooks {
		if len(rb.Set.Crons) == 0 {
			continue
		}
		last, err := ts.LastTick(ctx, rb.Name)
		if err != nil {
			return nil, fmt.Errorf("list schedules: %w", err)
		}
		for _, c := range rb.Set.Crons {
			sc := starbook.Schedule{Runbook: rb.Name, Version: rb.Version, Spec: c.Schedule(), Zone: c.Zone(),
				Words: c.Words(), Where: c.Where, LastTick: last}
			if next := c.NextFires(now, 1); len(next) == 1 {
				sc.Next = next[0]
			}
			out = append(out, sc)
		}
	}
	return out, nil
}
