package slackapp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"

	"github.com/slack-go/slack"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/auth"
	sbruntime "github.com/starbook/starbook/runtime"
)

// CommandsPath is where Slack's slash command requests are served (the
// request URL of /starbook); they are signed as interactions are.
const CommandsPath = "/slack/commands"

// Usage is the answer to /starbook help and to a command it does not know.
const Usage = "*/starbook* runs, watches and stops runbooks:\n" +
	"• `/starbook run NAME`: a form for the runbook's input, then a message that follows the run\n" +
	"• `/starbook status ID`: where an execution is\n" +
	"• `/starbook cancel ID`: cancel an execution\n" +
	"• `/starbook pause NAME|--all reason…`: start nothing more of it (alerts, webhooks and cron become dead letters)\n" +
	"• `/starbook resume NAME|--all`\n" +
	"• `/starbook ls`: recent executions and paused runbooks\n" +
	"• `/starbook help`"

// Command is a parsed /starbook command.
type Command struct {
	Verb   string // run, status, cancel, pause, resume, ls or help
	Arg    string // the runbook (starbook.AllRunbooks for --all) or the execution id
	Reason string // pause's reason: the rest of the text
}

// verbs maps each verb to its argument's name ("" for none) and the
// permission it needs.
var verbs = map[string]struct {
	arg  string
	perm auth.Permission
}{
	"run":    {"NAME", auth.Run},
	"status": {"ID", auth.Read},
	"cancel": {"ID", auth.Cancel},
	"pause":  {"NAME", auth.Pause},
	"resume": {"NAME", auth.Pause},
	"ls":     {"", auth.Read},
	"help":   {"", ""},
}

// ParseCommand parses the text after /starbook. An empty text is help; an
// unknown verb or a missing or extra argument is an error that says which.
func ParseCommand(text string) (Command, error) {
	verb, rest := cutWord(text)
	verb = strings.ToLower(verb)
	switch verb {
	case "":
		return Command{Verb: "help"}, nil
	case "list":
		verb = "ls"
	}
	spec, ok := verbs[verb]
	if !ok {
		return Command{}, fmt.Errorf("unknown command %q", truncate(verb, 40))
	}
	c := Command{Verb: verb}
	arg, tail := cutWord(rest)
	switch {
	case spec.arg == "" && rest != "":
		return Command{}, fmt.Errorf("%s takes no argument", verb)
	case spec.arg == "":
		return c, nil
	case arg == "":
		return Command{}, fmt.Errorf("%s needs the %s", verb, argName(spec.arg))
	case verb == "pause":
		c.Reason = tail
	case tail != "":
		return Command{}, fmt.Errorf("%s takes one %s, not %q", verb, argName(spec.arg), truncate(rest, 80))
	}
	if arg == starbook.AllRunbooks {
		// "*" names every runbook in the store and the API: here only --all does.
		return Command{}, fmt.Errorf("%s: \"*\" is not accepted (pause and resume take --all for every runbook)", verb)
	}
	c.Arg = arg
	if arg == "--all" {
		if verb != "pause" && verb != "resume" {
			return Command{}, fmt.Errorf("%s has no --all", verb)
		}
		c.Arg = starbook.AllRunbooks
	}
	return c, nil
}

// cutWord returns the first word of s and the rest, both trimmed of space
// (spaces, tabs, newlines: whatever Slack passes on).
func cutWord(s string) (word, rest string) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, unicode.IsSpace)
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimSpace(s[i:])
}

func argName(arg string) string {
	if arg == "ID" {
		return "execution id"
	}
	return "runbook name"
}

// HandleCommand answers a /starbook command (from HTTP or Socket Mode) as
// the Slack user who typed it: the reply to show them (ephemeral unless it
// says otherwise), or nil when a modal was opened instead. Nothing is done
// for a user the auth file does not map, or whose role may not.
func (a *App) HandleCommand(ctx context.Context, sc *slack.SlashCommand) *Reply {
	c, err := ParseCommand(sc.Text)
	if err != nil {
		return ephemeralMsg(fmt.Sprintf(":question: %s.\n\n%s", err, Usage))
	}
	if c.Verb == "help" {
		return ephemeralMsg(Usage)
	}
	if a.svc == nil {
		return ephemeralMsg(refusedPrefix + consoleOffText + ".")
	}
	perm := verbs[c.Verb].perm
	p, err := a.principal(ctx, sc.UserID)
	if err != nil || !p.Can(perm) {
		a.log.Info("slack command refused", "user", sc.UserID, "as", p.Name, "command", c.Verb, "err", err)
		return ephemeralMsg(refusal(sc.UserID, p, err, perm))
	}
	log := a.log.With("user", sc.UserID, "as", p.Name, "command", c.Verb, "arg", c.Arg)
	switch c.Verb {
	case "run":
		return a.openRunModal(ctx, sc, p, c.Arg)
	case "status":
		return a.status(ctx, c.Arg)
	case "cancel":
		return a.cancel(ctx, sc, p, c.Arg, log)
	case "pause", "resume":
		return a.pause(ctx, sc, p, c)
	case "ls":
		return a.list(ctx)
	}
	return ephemeralMsg(Usage)
}

// cancel cancels execution id, unless it has ended already.
func (a *App) cancel(ctx context.Context, sc *slack.SlashCommand, p auth.Principal, id string, log *slog.Logger) *Reply {
	e, _, err := a.svc.Execution(ctx, id)
	if err == nil && e.Status.Terminal() {
		err = fmt.Errorf("it has ended already (%s): %w", e.Status, sbruntime.ErrConflict)
	}
	if err == nil {
		e, err = a.svc.Cancel(ctx, id)
	}
	a.audit(ctx, p, sc.UserID, "execution.cancel", runbookOf(e), id, err)
	if err != nil {
		log.Info("cancel refused", "err", err)
		return ephemeralMsg(errorText("cancel "+id, err))
	}
	if e.Status == sbruntime.StatusCancelled {
		return ephemeralMsg(fmt.Sprintf(":octagonal_sign: Cancelled `%s` (%s).", e.ID, e.Runbook))
	}
	return ephemeralMsg(fmt.Sprintf(":octagonal_sign: `%s` (%s) is asked to stop: the node running it records the cancel.", e.ID, e.Runbook))
}

func runbookOf(e *sbruntime.Execution) string {
	if e == nil {
		return ""
	}
	return e.Runbook
}

// errorText says why an action was refused, in words for a person.
func errorText(what string, err error) string {
	var ie *sbruntime.InputError
	switch {
	case errors.Is(err, sbruntime.ErrNotFound):
		return fmt.Sprintf(":grey_question: %s: not found.", what)
	case errors.As(err, &ie), errors.Is(err, sbruntime.ErrConflict):
		return fmt.Sprintf(refusedPrefix+"%s: %s", what, err)
	}
	return fmt.Sprintf(":warning: %s failed: %s", what, err)
}

// Reply is the answer to a slash command, as Slack takes it in the HTTP
// response or the Socket Mode acknowledgement.
type Reply struct {
	ResponseType string        `json:"response_type"` // ephemeral (only the user sees it) or in_channel
	Text         string        `json:"text"`
	Blocks       []slack.Block `json:"blocks,omitempty"`
}

func ephemeralMsg(text string) *Reply {
	return &Reply{ResponseType: slack.ResponseTypeEphemeral, Text: text}
}

// status answers /starbook status ID with the run's summary.
func (a *App) status(ctx context.Context, id string) *Reply {
	v, err := a.runView(ctx, id)
	if err != nil {
		return ephemeralMsg(errorText("execution "+id, err))
	}
	text, blocks := v.message(a.cfg.PublicURL)
	return &Reply{ResponseType: slack.ResponseTypeEphemeral, Text: text, Blocks: blocks}
}

// pause sets or clears a runbook's pause; the channel sees it.
func (a *App) pause(ctx context.Context, sc *slack.SlashCommand, p auth.Principal, c Command) *Reply {
	if a.pauses == nil {
		return ephemeralMsg(refusedPrefix + "pausing is not available on this node.")
	}
	req := starbook.PauseRequest{Paused: c.Verb == "pause", Reason: c.Reason, By: p.Name}
	st, err := a.pauses.Pause(ctx, c.Arg, req)
	what := c.Verb + " " + c.Arg
	if c.Arg == starbook.AllRunbooks {
		what = c.Verb + " --all"
	}
	if err != nil {
		a.log.Info("slack "+c.Verb+" refused", "user", sc.UserID, "runbook", c.Arg, "err", err)
		return ephemeralMsg(errorText(what, err))
	}
	text := fmt.Sprintf(":arrow_forward: %s resumed by %s (<@%s>).", runbookName(c.Arg), p.Name, sc.UserID)
	if st.Paused {
		text = fmt.Sprintf(":double_vertical_bar: %s paused by %s (<@%s>)", runbookName(c.Arg), p.Name, sc.UserID)
		if st.Reason != "" {
			text += ": " + st.Reason
		}
		text += ". Alerts, webhooks and cron start nothing of it; each becomes a `paused` dead letter."
		if n := len(st.Cancelled); n > 0 {
			text += fmt.Sprintf(" %d running executions cancelled.", n)
		}
	}
	return &Reply{ResponseType: slack.ResponseTypeInChannel, Text: text}
}

func runbookName(name string) string {
	if name == starbook.AllRunbooks {
		return "every runbook"
	}
	return "*" + name + "*"
}

// listLimit is how many recent executions ls shows.
const listLimit = 15

// list answers /starbook ls: paused runbooks, then recent executions.
func (a *App) list(ctx context.Context) *Reply {
	var b strings.Builder
	if a.pauses != nil {
		pauses, err := a.pauses.Pauses(ctx)
		if err != nil {
			return ephemeralMsg(errorText("list pauses", err))
		}
		for _, ps := range pauses {
			if ps.Paused {
				fmt.Fprintf(&b, "%s\n", pauseLine(&ps))
			}
		}
	}
	list, err := a.svc.Executions(ctx, starbook.Filter{Limit: listLimit})
	if err != nil {
		return ephemeralMsg(errorText("list executions", err))
	}
	if len(list) == 0 {
		b.WriteString("No executions yet.")
	} else {
		b.WriteString("*Recent executions*\n")
	}
	for _, e := range list {
		fmt.Fprintf(&b, "%s `%s` *%s* %s, %s, %s\n", statusEmoji(e.Status), e.ID, e.Runbook, e.Status,
			triggerText(e.Trigger), e.CreatedAt.UTC().Format(time.RFC3339))
	}
	return ephemeralMsg(strings.TrimSpace(b.String()))
}

// pauseLine describes a pause in one line.
func pauseLine(ps *starbook.PauseState) string {
	s := fmt.Sprintf(":double_vertical_bar: %s is paused", runbookName(ps.Runbook))
	if ps.All && ps.Runbook != starbook.AllRunbooks {
		s += " (every runbook is)"
	}
	if ps.By != "" {
		s += " by " + ps.By
	}
	if ps.Reason != "" {
		s += ": " + ps.Reason
	}
	if !ps.Until.IsZero() {
		s += fmt.Sprintf(" (until %s)", ps.Until.UTC().Format(time.RFC3339))
	}
	return s
}

func triggerText(t sbruntime.Trigger) string {
	if t.Source != "" {
		return t.Type + " by " + t.Source
	}
	return t.Type
}
