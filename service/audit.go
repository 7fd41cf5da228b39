package service

import (
	"context"

	"github.com/starbook/starbook"
)

var _ starbook.AuditLog = (*Service)(nil)

// RecordAudit stores an audit record (starbook.AuditLog).
func (s *Service) RecordAudit(ctx context.Context, rec *starbook.AuditRecord) error {
	return s.Store.RecordAudit(ctx, rec)
}

// Audit reads the audit log (starbook.AuditLog).
func (s *Service) Audit(ctx context.Context, after string, limit int) ([]*starbook.AuditRecord, error) {
	return s.Store.Audit(ctx, after, limit)
}

var _ starbook.AuditHistory = (*Service)(nil)

// AuditBefore returns up to limit records older than the id before, the
// newest of them, oldest first.
func (s *Service) AuditBefore(ctx context.Context, before string, limit int) ([]*starbook.AuditRecord, error) {
	return s.Store.AuditBefore(ctx, before, limit)
}
