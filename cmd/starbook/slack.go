package main

import (
	"context"
	"log/slog"
	"net/http"
	"os"

	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/slackapp"
)

// slackFromEnv returns the Slack app the environment configures
// (STARBOOK_SLACK_*), or nil when no bot token is set.
func slackFromEnv(logger *slog.Logger) (*slackapp.App, error) {
	cfg, ok, err := slackapp.FromEnv(os.Getenv)
	if err != nil || !ok {
		return nil, err
	}
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

// wireSlack makes store resolve Slack approvers and record clicks, and
// returns the leader's notifier task.
func wireSlack(app *slackapp.App, store *cluster.Store, logger *slog.Logger) []func(context.Context) {
	if app == nil {
		return nil
	}
	store.SetDirectory(app)
	app.SetDecider(store)
	return []func(context.Context){func(ctx context.Context) { store.RunNotifier(ctx, app, logger) }}
}

// withSlack serves /slack/interactions beside the API.
func withSlack(h http.Handler, app *slackapp.App) http.Handler {
	if app == nil {
		return h
	}
	mux := http.NewServeMux()
	mux.Handle("POST "+slackapp.InteractionsPath, app)
	mux.Handle("/", h)
	return mux
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
