package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api"
	"github.com/starbook/starbook/auth"
	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/cluster"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/service"
	"github.com/starbook/starbook/slackapp"
)

// slackFromEnv returns the Slack app the environment configures
// (STARBOOK_SLACK_*), or nil when no bot token is set.
func slackFromEnv(logger *slog.Logger, publicURL string) (*slackapp.App, error) {
	cfg, ok, err := slackapp.FromEnv(os.Getenv)
	if err != nil || !ok {
		return nil, err
	}
	cfg.PublicURL = strings.TrimRight(publicURL, "/") // --public-url: run messages link to the UI
	app, err := slackapp.New(cfg, nil, logger)
	if err != nil {
		return nil, err
	}
	logger.Info("slack enabled", "interactions", cfg.SigningSecret != "", "socket_mode", cfg.AppToken != "",
		"default_channel", cfg.Channel)
	return app, nil
}

// slackEffects is the slack module's client: nil (an untyped nil, so the
// module says Slack is off) without Slack.
func slackEffects(app *slackapp.App) builtins.SlackAPI {
	if app == nil {
		return nil
	}
	return app
}

// wireSlack makes store resolve Slack approvers, clicks record decisions
// and the console (slash commands, run modals) drive svc as the people of
// authFile (none without one: every command is refused), and returns the
// leader's tasks: the approval notifier and the run messages' follower.
func wireSlack(app *slackapp.App, store *cluster.Store, svc *service.Service, authFile string, logger *slog.Logger) ([]func(context.Context), error) {
	if app == nil {
		return nil, nil
	}
	store.SetDirectory(app)
	app.SetService(svc)
	app.SetDecider(auditedDecider{svc: svc, logger: logger})
	app.SetPauses(svc)
	var people *auth.Directory
	if authFile != "" {
		c, err := auth.LoadConfig(authFile)
		if err != nil {
			return nil, err
		}
		if people, err = auth.NewDirectory(c.People, c.Groups); err != nil {
			return nil, fmt.Errorf("auth file %s: %w", authFile, err)
		}
		app.SetPeople(people)
	}
	if people.Empty() {
		logger.Warn("slack commands are refused to everyone: the --auth-file names no people (name, role, slack_id or email)")
	}
	return []func(context.Context){
		func(ctx context.Context) { store.RunNotifier(ctx, app, logger) },
		app.FollowRuns,
	}, nil
}

// auditedDecider records each Slack decision in the audit log, as the API
// records its own.
type auditedDecider struct {
	svc    *service.Service
	logger *slog.Logger
}

func (a auditedDecider) Decide(ctx context.Context, id, position string, d sbruntime.Decision) (*sbruntime.ApprovalState, error) {
	st, err := a.svc.Decide(ctx, id, position, d)
	decision := sbruntime.DecisionReject
	if d.Approve {
		decision = sbruntime.DecisionApprove
	}
	rec := &starbook.AuditRecord{Actor: "slack:" + d.User, Action: "approval.decide", Execution: id,
		Detail: decision + " " + position, Status: http.StatusOK, Outcome: starbook.AuditOK}
	if err != nil {
		rec.Error = err.Error()
		switch {
		case errors.Is(err, sbruntime.ErrForbidden):
			rec.Status = http.StatusForbidden
		case errors.Is(err, sbruntime.ErrConflict):
			rec.Status = http.StatusConflict
		case errors.Is(err, sbruntime.ErrNotFound):
			rec.Status = http.StatusNotFound
		default:
			rec.Status = http.StatusInternalServerError
		}
		rec.Outcome = api.OutcomeOf(rec.Status)
	}
	a.logger.Info("audit", "actor", rec.Actor, "action", rec.Action, "execution", id, "detail", rec.Detail, "outcome", rec.Outcome)
	if aerr := a.svc.RecordAudit(context.WithoutCancel(ctx), rec); aerr != nil {
		a.logger.Error("audit record not stored", "actor", rec.Actor, "execution", id, "err", aerr)
	}
	return st, err
}

// startSocketMode runs Slack Socket Mode when an app token is configured
// until ctx is done or stop is called; stop waits for it to end.
func startSocketMode(ctx context.Context, app *slackapp.App, logger *slog.Logger) (stop func()) {
	if app == nil || os.Getenv(slackapp.EnvAppToken) == "" {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := app.RunSocketMode(ctx); err != nil {
			logger.Error("slack socket mode stopped", "err", err)
		}
	}()
	return func() { cancel(); <-done }
}
