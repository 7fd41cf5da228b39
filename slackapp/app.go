// Package slackapp connects starbook to Slack: it posts approval requests
// with Approve and Reject buttons and updates them with the outcome
// (starbook.ApprovalNotifier), resolves approvers named by Slack user ids,
// user groups or emails (starbook.ChatDirectory), receives button clicks on
// the signed interactions endpoint or over Socket Mode and records them
// with Decide, and carries the slack.post/slack.update effects of runbooks.
//
// It is also a console (console.go, commands.go): /starbook run, status,
// cancel, pause, resume and ls, as the Slack user the auth file maps
// (auth.Directory.BySlack) with that role's permissions. run opens a modal
// built from the runbook's input schema by schema.FormOf (the web UI's
// mapping too); its submission starts the run and posts a message that the
// leader keeps in step with the run (FollowRuns). It drives the node
// through the Service interface (service.Service), never storage.
//
// Invariants: a request whose signature or timestamp does not verify is
// answered 401 and records nothing; a click by someone who is not an
// approver records nothing and is answered with an ephemeral refusal;
// the first valid decision wins (Decide is atomic), so a double click or a
// click delivered to two nodes changes nothing. A command from a Slack user
// the auth file does not map, or whose role may not, does nothing but say
// so; a modal value the schema refuses is shown at its field and starts
// nothing.
package slackapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/auth"
	sbruntime "github.com/starbook/starbook/runtime"
)

// Config configures the Slack app. Secrets print as <secret>.
type Config struct {
	BotToken      Secret // xoxb-…: chat:write, usergroups:read, users:read, users:read.email
	SigningSecret Secret // verifies requests to /slack/interactions
	AppToken      Secret // xapp-…: Socket Mode, optional
	APIURL        string // the Web API base URL; Slack's by default (tests: a fake)
	Channel       string // where approvals without channel= are posted, optional
	// PublicURL is starbook's address as people reach it (serve
	// --public-url, https://starbook.example.com): run messages link to the
	// execution in its web UI. Optional.
	PublicURL string
}

// Secret is a string that never prints.
type Secret string

func (Secret) String() string { return "<secret>" }

// GoString keeps %#v from printing the value.
func (Secret) GoString() string { return "<secret>" }

// Environment variables read by FromEnv.
const (
	EnvBotToken      = "STARBOOK_SLACK_BOT_TOKEN"
	EnvSigningSecret = "STARBOOK_SLACK_SIGNING_SECRET"
	EnvAppToken      = "STARBOOK_SLACK_APP_TOKEN"
	EnvAPIURL        = "STARBOOK_SLACK_API_URL"
	EnvChannel       = "STARBOOK_SLACK_CHANNEL"
)

// FromEnv reads the configuration from the environment through getenv. It
// reports ok false when no bot token is set (Slack is off).
func FromEnv(getenv func(string) string) (cfg Config, ok bool, err error) {
	cfg = Config{
		BotToken:      Secret(strings.TrimSpace(getenv(EnvBotToken))),
		SigningSecret: Secret(strings.TrimSpace(getenv(EnvSigningSecret))),
		AppToken:      Secret(strings.TrimSpace(getenv(EnvAppToken))),
		APIURL:        strings.TrimSpace(getenv(EnvAPIURL)),
		Channel:       strings.TrimSpace(getenv(EnvChannel)),
	}
	if cfg.BotToken == "" {
		if cfg.SigningSecret != "" || cfg.AppToken != "" {
			return cfg, false, fmt.Errorf("slack: %s is set but %s is not", EnvSigningSecret+"/"+EnvAppToken, EnvBotToken)
		}
		return cfg, false, nil
	}
	return cfg, true, cfg.Validate()
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.BotToken == "" {
		return fmt.Errorf("slack: a bot token is required (%s)", EnvBotToken)
	}
	if c.SigningSecret == "" && c.AppToken == "" {
		return fmt.Errorf("slack: set %s (interactions over HTTP) or %s (Socket Mode) so that buttons work", EnvSigningSecret, EnvAppToken)
	}
	if c.APIURL != "" && !strings.HasPrefix(c.APIURL, "http://") && !strings.HasPrefix(c.APIURL, "https://") {
		return fmt.Errorf("slack: %s %q is not an http(s) URL", EnvAPIURL, c.APIURL)
	}
	if c.PublicURL != "" && !strings.HasPrefix(c.PublicURL, "http://") && !strings.HasPrefix(c.PublicURL, "https://") {
		return fmt.Errorf("slack: public URL %q is not an http(s) URL", c.PublicURL)
	}
	return nil
}

// Decider records approval decisions (cluster.Store and service.Service).
type Decider interface {
	Decide(ctx context.Context, id, position string, d sbruntime.Decision) (*sbruntime.ApprovalState, error)
}

// App is a configured Slack app. Its methods are safe for concurrent use.
type App struct {
	cfg     Config
	api     *slack.Client
	log     *slog.Logger
	now     func() time.Time
	decider Decider
	// fixedClock: SetClock was called, so slack-go's verifier (which reads
	// the wall clock) is skipped; Verify checks the same rules on now.
	fixedClock bool

	// The console (slash commands, run modals, run messages); see console.go.
	svc    Service
	pauses starbook.PauseService
	people *auth.Directory
	// refreshEvery is how often FollowRuns rereads the runs it follows.
	refreshEvery time.Duration

	mu     sync.Mutex
	groups map[string]cached[[]string]
	users  map[string]cached[starbook.ChatUser]
}

type cached[T any] struct {
	v   T
	exp time.Time
}

// cacheTTL is how long group members and user profiles are reused.
const cacheTTL = time.Minute

var (
	_ starbook.ApprovalNotifier = (*App)(nil)
	_ starbook.ChatDirectory    = (*App)(nil)
)

// New returns the app for cfg; decisions from clicks go to decider (set it
// with SetDecider before serving when it is not known yet).
func New(cfg Config, decider Decider, logger *slog.Logger) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts := []slack.Option{slack.OptionHTTPClient(&http.Client{Timeout: 10 * time.Second})}
	if cfg.APIURL != "" {
		u := cfg.APIURL
		if !strings.HasSuffix(u, "/") {
			u += "/"
		}
		opts = append(opts, slack.OptionAPIURL(u))
	}
	if cfg.AppToken != "" {
		opts = append(opts, slack.OptionAppLevelToken(string(cfg.AppToken)))
	}
	return &App{cfg: cfg, api: slack.New(string(cfg.BotToken), opts...), log: logger.With("component", "slack"),
		now: time.Now, decider: decider, refreshEvery: defaultRefresh,
		groups: map[string]cached[[]string]{}, users: map[string]cached[starbook.ChatUser]{}}, nil
}

// SetDecider sets where decisions from clicks are recorded.
func (a *App) SetDecider(d Decider) { a.decider = d }

// SetClock sets the clock request timestamps are checked against (tests).
func (a *App) SetClock(now func() time.Time) { a.now, a.fixedClock = now, true }

// GroupMembers implements starbook.ChatDirectory: the user ids of "@handle" or a
// usergroup id, through usergroups.list and usergroups.users.list.
func (a *App) GroupMembers(ctx context.Context, group string) ([]string, error) {
	a.mu.Lock()
	c, ok := a.groups[group]
	a.mu.Unlock()
	if ok && a.now().Before(c.exp) {
		return c.v, nil
	}
	id := group
	if handle, isHandle := strings.CutPrefix(group, "@"); isHandle {
		groups, err := a.api.GetUserGroupsContext(ctx)
		if err != nil {
			return nil, fmt.Errorf("usergroups.list: %w", err)
		}
		id = ""
		for _, g := range groups {
			if strings.EqualFold(g.Handle, handle) {
				id = g.ID
			}
		}
		if id == "" {
			return nil, fmt.Errorf("no Slack user group with handle %s", group)
		}
	}
	members, err := a.api.GetUserGroupMembersContext(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("usergroups.users.list %s: %w", group, err)
	}
	a.mu.Lock()
	a.groups[group] = cached[[]string]{members, a.now().Add(cacheTTL)}
	a.mu.Unlock()
	return members, nil
}

// User implements starbook.ChatDirectory through users.info.
func (a *App) User(ctx context.Context, id string) (starbook.ChatUser, error) {
	a.mu.Lock()
	c, ok := a.users[id]
	a.mu.Unlock()
	if ok && a.now().Before(c.exp) {
		return c.v, nil
	}
	u, err := a.api.GetUserInfoContext(ctx, id)
	if err != nil {
		return starbook.ChatUser{}, fmt.Errorf("users.info %s: %w", id, err)
	}
	p := starbook.ChatUser{ID: u.ID, Name: u.Name, Email: u.Profile.Email}
	a.mu.Lock()
	a.users[id] = cached[starbook.ChatUser]{p, a.now().Add(cacheTTL)}
	a.mu.Unlock()
	return p, nil
}

// PostMessage implements builtins.SlackAPI: chat.postMessage with text and blocks
// (a JSON array of Block Kit blocks, or nil).
func (a *App) PostMessage(ctx context.Context, channel, text string, blocks json.RawMessage) (string, string, error) {
	opts, err := messageOptions(text, blocks)
	if err != nil {
		return "", "", err
	}
	ch, ts, err := a.api.PostMessageContext(ctx, channel, opts...)
	if err != nil {
		return "", "", fmt.Errorf("chat.postMessage %s: %w", channel, err)
	}
	return ch, ts, nil
}

// UpdateMessage implements builtins.SlackAPI: chat.update of the message at ts.
func (a *App) UpdateMessage(ctx context.Context, channel, ts, text string, blocks json.RawMessage) (string, string, error) {
	opts, err := messageOptions(text, blocks)
	if err != nil {
		return "", "", err
	}
	ch, newTS, _, err := a.api.UpdateMessageContext(ctx, channel, ts, opts...)
	if err != nil {
		return "", "", fmt.Errorf("chat.update %s %s: %w", channel, ts, err)
	}
	return ch, newTS, nil
}

func messageOptions(text string, blocks json.RawMessage) ([]slack.MsgOption, error) {
	opts := []slack.MsgOption{slack.MsgOptionText(text, false)}
	if len(blocks) > 0 && string(blocks) != "null" {
		var b slack.Blocks
		if err := json.Unmarshal(blocks, &b); err != nil {
			return nil, fmt.Errorf("blocks: %w", err)
		}
		opts = append(opts, slack.MsgOptionBlocks(b.BlockSet...))
	}
	return opts, nil
}

// errorCode is Slack's error code in err, if it is an API error.
func errorCode(err error) string {
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		return se.Err
	}
	return ""
}
