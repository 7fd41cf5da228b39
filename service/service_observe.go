package service

import (
	"context"
	"time"

	"github.com/starbook/starbook"
	sbruntime "github.com/starbook/starbook/runtime"
)

var (
	_ starbook.LogService     = (*Service)(nil)
	_ starbook.RunbookService = (*Service)(nil)
	_ starbook.WaitService    = (*Service)(nil)
)

// Logs returns an execution's log lines after seq after.
func (s *Service) Logs(ctx context.Context, id string, after int64, limit int) ([]*sbruntime.LogLine, error) {
	return s.Store.Logs(ctx, id, after, limit)
}

// FollowLogs streams an execution's log lines until it ends.
func (s *Service) FollowLogs(ctx context.Context, id string, after int64, send func(*sbruntime.LogLine) error) error {
	return s.Store.FollowLogs(ctx, id, after, send)
}

// Runbook describes a runbook and its stored versions.
func (s *Service) Runbook(ctx context.Context, name string) (*starbook.RunbookInfo, error) {
	versions, err := s.Store.Versions(ctx, name)
	if err != nil {
		return nil, err
	}
	info := &starbook.RunbookInfo{Name: name}
	for _, v := range versions {
		if v.Current {
			info.Current = v.Version
		}
		info.Versions = append(info.Versions, starbook.RunbookVersionInfo{Version: v.Version, CreatedAt: v.CreatedAt,
			Files: v.Files, Current: v.Current, Triggers: v.Triggers, Libraries: v.Libraries})
	}
	p, err := s.Store.PauseOf(ctx, name)
	if err != nil {
		return nil, err
	}
	if p.Paused {
		info.Pause = p
	}
	return info, nil
}

// RunbookVersion returns one stored version with its files.
func (s *Service) RunbookVersion(ctx context.Context, name, version string) (*sbruntime.Bundle, time.Time, error) {
	if version == "" || version == "current" {
		version = ""
	}
	return s.Store.Bundle(ctx, name, version)
}

// ExecutionWaits returns an execution's pending waits.
func (s *Service) ExecutionWaits(ctx context.Context, id string) ([]*sbruntime.Wait, error) {
	return s.Store.ExecutionWaits(ctx, id)
}
