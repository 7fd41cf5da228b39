package starbook

import (
	"context"
	"time"
)

// AuditRecord is one mutating action: who did what to which execution or
// runbook, when, from where, and how it ended.
type AuditRecord struct {
	ID   string    `json:"id"` // time-sortable; set by the store
	Time time.Time `json:"time"`
	// Actor is the token's name with authentication on; without it the
	// X-Starbook-User the client claimed (or "anonymous"). Hooks and Slack
	// record "alertmanager", "webhook:<name>" and "slack:<user id>".
	Actor     string `json:"actor"`
	Role      string `json:"role,omitempty"`
	Action    string `json:"action"` // runbook.apply, execution.start, approval.decide, ...
	Runbook   string `json:"runbook,omitempty"`
	Execution string `json:"execution,omitempty"`
	Detail    string `json:"detail,omitempty"` // position, signal, decision, ...
	Remote    string `json:"remote,omitempty"` // the peer address (proxies are not trusted)
	Status    int    `json:"status,omitempty"` // the HTTP status answered
	Outcome   string `json:"outcome"`          // ok, denied, refused or failed
	Error     string `json:"error,omitempty"`
}

// Audit outcomes.
const (
	AuditOK      = "ok"
	AuditDenied  = "denied"  // 401, 403
	AuditRefused = "refused" // other 4xx
	AuditFailed  = "failed"  // 5xx
)

// AuditLog is the optional part of a Service that keeps the audit log. With
// it, every mutating request is recorded (except 401s, which are only
// logged: an unauthenticated flood must not fill the store) and GET
// /api/v1/audit serves the log.
type AuditLog interface {
	// RecordAudit stores rec, setting its ID; durable on return.
	RecordAudit(ctx context.Context, rec *AuditRecord) error
	// Audit returns up to limit records, oldest first: those after the id
	// after, or without it the newest ones.
	Audit(ctx context.Context, after string, limit int) ([]*AuditRecord, error)
}

// AuditHistory is the optional part of an AuditLog that pages back through
// it, newest to oldest, as a person reading it does (the web UI's Older).
type AuditHistory interface {
	// AuditBefore returns up to limit records older than the id before,
	// the newest of them, oldest first.
	AuditBefore(ctx context.Context, before string, limit int) ([]*AuditRecord, error)
}

// Audit listing limits.
const (
	DefaultAuditLimit = 100
	MaxAuditLimit     = 1000
)
