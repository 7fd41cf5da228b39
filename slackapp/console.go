package slackapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/auth"
	sbruntime "github.com/starbook/starbook/runtime"
)

// Service is what the Slack console drives: the node's application service
// (service.Service), as the HTTP API drives it. Pauses come through
// starbook.PauseService when the service has it (SetPauses).
type Service interface {
	Decider
	// RunbookVersion returns a stored version ("current": the current one).
	RunbookVersion(ctx context.Context, name, version string) (*sbruntime.Bundle, time.Time, error)
	Start(ctx context.Context, runbook string, input json.RawMessage, trigger sbruntime.Trigger) (*sbruntime.Execution, error)
	Executions(ctx context.Context, f starbook.Filter) ([]*sbruntime.Execution, error)
	Execution(ctx context.Context, id string) (*sbruntime.Execution, []*sbruntime.Event, error)
	ExecutionWaits(ctx context.Context, id string) ([]*sbruntime.Wait, error)
	Cancel(ctx context.Context, id string) (*sbruntime.Execution, error)
	RecordAudit(ctx context.Context, rec *starbook.AuditRecord) error
	// WatchChanges tells w of execution records written from now until ctx
	// is done (FollowRuns).
	WatchChanges(ctx context.Context, w starbook.ChangeWatcher, ready func())
}

// SetService makes slash commands and run modals drive svc; without it they
// answer that the console is off. Call it before serving.
func (a *App) SetService(svc Service) {
	a.svc = svc
	if a.decider == nil {
		a.decider = svc
	}
}

// SetPauses makes pause and resume work and shows pauses in messages; nil
// leaves them off.
func (a *App) SetPauses(p starbook.PauseService) { a.pauses = p }

// SetPeople maps Slack users to starbook identities and roles (the auth
// file's people); without it every command is refused.
func (a *App) SetPeople(d *auth.Directory) { a.people = d }

// Trigger of a run started from Slack: its type, and the attributes that
// keep where its message is (so that any leader can update it) and who
// started it in Slack.
const (
	TriggerSlack  = "slack"
	AttrChannel   = "slack_channel"
	AttrMessageTS = "slack_ts"
	AttrSlackUser = "slack_user"
)

// Wording of refusals.
const (
	refusedPrefix  = ":no_entry: "
	notInAuthFile  = "you are not in starbook's auth file"
	consoleOffText = "starbook's Slack console is off on this node"
)

// errNotMapped is a Slack user the auth file does not name.
var errNotMapped = errors.New(notInAuthFile)

// principal maps a Slack user to the starbook identity the auth file gives
// them, by Slack user id or by their profile's email (users.info, cached).
func (a *App) principal(ctx context.Context, userID string) (auth.Principal, error) {
	if a.people.Empty() {
		return auth.Principal{}, errNotMapped
	}
	if p, ok := a.people.BySlack(userID, ""); ok {
		return p, nil
	}
	u, err := a.User(ctx, userID)
	if err != nil {
		a.log.Warn("slack user lookup", "user", userID, "err", err)
		return auth.Principal{}, errNotMapped
	}
	if p, ok := a.people.BySlack(userID, u.Email); ok {
		return p, nil
	}
	return auth.Principal{}, errNotMapped
}

// refusal is the answer to someone who may not do what they asked.
func refusal(userID string, p auth.Principal, err error, perm auth.Permission) string {
	if errors.Is(err, errNotMapped) {
		return fmt.Sprintf(refusedPrefix+"Sorry, %s. Ask an admin to add you under `people:` "+
			"with your Slack id: `{name: …, role: …, slack_id: %s}`.", notInAuthFile, userID)
	}
	return fmt.Sprintf(refusedPrefix+"%s is %s %s: that role may not %s.", p.Name, article(string(p.Role)), p.Role, perm)
}

func article(word string) string {
	if word != "" && (word[0] == 'a' || word[0] == 'e' || word[0] == 'i' || word[0] == 'o' || word[0] == 'u') {
		return "an"
	}
	return "a"
}

// audit records a console action in the audit log, as the API records its
// requests; a failure to record is logged, the action stands.
func (a *App) audit(ctx context.Context, p auth.Principal, userID, action, runbook, execution string, err error) {
	rec := &starbook.AuditRecord{Actor: p.Name, Role: string(p.Role), Action: action, Runbook: runbook,
		Execution: execution, Detail: "via slack " + userID, Outcome: starbook.AuditOK}
	if err != nil {
		rec.Error, rec.Outcome = err.Error(), starbook.AuditRefused
		var ie *sbruntime.InputError
		if !errors.As(err, &ie) && !errors.Is(err, sbruntime.ErrNotFound) && !errors.Is(err, sbruntime.ErrConflict) {
			rec.Outcome = starbook.AuditFailed
		}
	}
	if aerr := a.svc.RecordAudit(context.WithoutCancel(ctx), rec); aerr != nil {
		a.log.Error("audit record not stored", "actor", rec.Actor, "action", action, "err", aerr)
	}
}
