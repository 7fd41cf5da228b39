package apitest

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/starbook/starbook"
	sbruntime "github.com/starbook/starbook/runtime"
)

// ErrUnimplemented is returned by a method whose function field is nil.
var ErrUnimplemented = errors.New("apitest: method not set on the fake service")

// Service is a starbook.Service whose methods are function fields.
type Service struct {
	ApplyFunc      func(ctx context.Context, files map[string]string) ([]starbook.RunbookVersion, error)
	RunbooksFunc   func(ctx context.Context) ([]starbook.RunbookVersion, error)
	StartFunc      func(ctx context.Context, runbook string, input json.RawMessage, trigger sbruntime.Trigger) (*sbruntime.Execution, error)
	ExecutionsFunc func(ctx context.Context, f starbook.Filter) ([]*sbruntime.Execution, error)
	ExecutionFunc  func(ctx context.Context, id string) (*sbruntime.Execution, []*sbruntime.Event, error)
	CancelFunc     func(ctx context.Context, id string) (*sbruntime.Execution, error)
	AwaitEndFunc   func(ctx context.Context, id string) (*sbruntime.Execution, error)
	HealthFunc     func(ctx context.Context) error
	SignalFunc     func(ctx context.Context, id, name string, data json.RawMessage, by string) error
	DecideFunc     func(ctx context.Context, id, position string, d sbruntime.Decision) (*sbruntime.ApprovalState, error)
	WaitsFunc      func(ctx context.Context, f starbook.WaitFilter) ([]*starbook.PendingWait, error)
}

var _ starbook.Service = (*Service)(nil)

// AuditService is a Service that also keeps an audit log (starbook.AuditLog).
type AuditService struct {
	*Service
	RecordAuditFunc func(ctx context.Context, rec *starbook.AuditRecord) error
	AuditFunc       func(ctx context.Context, after string, limit int) ([]*starbook.AuditRecord, error)
}

var _ starbook.AuditLog = (*AuditService)(nil)

func (s *AuditService) RecordAudit(ctx context.Context, rec *starbook.AuditRecord) error {
	if s.RecordAuditFunc == nil {
		return ErrUnimplemented
	}
	return s.RecordAuditFunc(ctx, rec)
}

func (s *AuditService) Audit(ctx context.Context, after string, limit int) ([]*starbook.AuditRecord, error) {
	if s.AuditFunc == nil {
		return nil, ErrUnimplemented
	}
	return s.AuditFunc(ctx, after, limit)
}

func (s *Service) Apply(ctx context.Context, files map[string]string) ([]starbook.RunbookVersion, error) {
	if s.ApplyFunc == nil {
		return nil, ErrUnimplemented
	}
	return s.ApplyFunc(ctx, files)
}

func (s *Service) Runbooks(ctx context.Context) ([]starbook.RunbookVersion, error) {
	if s.RunbooksFunc == nil {
		return nil, ErrUnimplemented
	}
	return s.RunbooksFunc(ctx)
}

func (s *Service) Start(ctx context.Context, runbook string, input json.RawMessage, trigger sbruntime.Trigger) (*sbruntime.Execution, error) {
	if s.StartFunc == nil {
		return nil, ErrUnimplemented
	}
	return s.StartFunc(ctx, runbook, input, trigger)
}

func (s *Service) Executions(ctx context.Context, f starbook.Filter) ([]*sbruntime.Execution, error) {
	if s.ExecutionsFunc == nil {
		return nil, ErrUnimplemented
	}
	return s.ExecutionsFunc(ctx, f)
}

func (s *Service) Execution(ctx context.Context, id string) (*sbruntime.Execution, []*sbruntime.Event, error) {
	if s.ExecutionFunc == nil {
		return nil, nil, ErrUnimplemented
	}
	return s.ExecutionFunc(ctx, id)
}

func (s *Service) Cancel(ctx context.Context, id string) (*sbruntime.Execution, error) {
	if s.CancelFunc == nil {
		return nil, ErrUnimplemented
	}
	return s.CancelFunc(ctx, id)
}

func (s *Service) AwaitEnd(ctx context.Context, id string) (*sbruntime.Execution, error) {
	if s.AwaitEndFunc == nil {
		return nil, ErrUnimplemented
	}
	return s.AwaitEndFunc(ctx, id)
}

func (s *Service) Health(ctx context.Context) error {
	if s.HealthFunc == nil {
		return ErrUnimplemented
	}
	return s.HealthFunc(ctx)
}

func (s *Service) Signal(ctx context.Context, id, name string, data json.RawMessage, by string) error {
	if s.SignalFunc == nil {
		return ErrUnimplemented
	}
	return s.SignalFunc(ctx, id, name, data, by)
}

func (s *Service) Decide(ctx context.Context, id, position string, d sbruntime.Decision) (*sbruntime.ApprovalState, error) {
	if s.DecideFunc == nil {
		return nil, ErrUnimplemented
	}
	return s.DecideFunc(ctx, id, position, d)
}

func (s *Service) Waits(ctx context.Context, f starbook.WaitFilter) ([]*starbook.PendingWait, error) {
	if s.WaitsFunc == nil {
		return nil, ErrUnimplemented
	}
	return s.WaitsFunc(ctx, f)
}
