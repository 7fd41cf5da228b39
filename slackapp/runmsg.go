package slackapp

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/starbook/starbook"
	sbruntime "github.com/starbook/starbook/runtime"
)

// runView is what a run's message shows: the execution, its last step,
// what it waits for and its runbook's pause.
type runView struct {
	e     *sbruntime.Execution
	last  *sbruntime.Event // the last step recorded, nil for none yet
	steps int
	waits []*sbruntime.Wait
	pause *starbook.PauseState // nil when not paused (or unknown)
}

// runView reads what the message of execution id shows, through the service.
func (a *App) runView(ctx context.Context, id string) (*runView, error) {
	e, history, err := a.svc.Execution(ctx, id)
	if err != nil {
		return nil, err
	}
	v := &runView{e: e, steps: len(history)}
	if len(history) > 0 {
		v.last = history[len(history)-1]
	}
	if e.Status == sbruntime.StatusWaiting {
		if v.waits, err = a.svc.ExecutionWaits(ctx, id); err != nil {
			return nil, err
		}
	}
	v.pause = a.pauseOf(ctx, e.Runbook)
	return v, nil
}

// pauseOf is runbook's pause, nil when it is not paused or pauses are off;
// a failure to read it only leaves it unshown.
func (a *App) pauseOf(ctx context.Context, runbook string) *starbook.PauseState {
	if a.pauses == nil || runbook == "" {
		return nil
	}
	ps, err := a.pauses.PauseState(ctx, runbook)
	if err != nil {
		a.log.Warn("read pause", "runbook", runbook, "err", err)
		return nil
	}
	if ps == nil || !ps.Paused {
		return nil
	}
	return ps
}

// ExecutionURL is the web UI's page of execution id under publicURL, ""
// without one.
func ExecutionURL(publicURL, id string) string {
	if publicURL == "" {
		return ""
	}
	return strings.TrimRight(publicURL, "/") + "/ui/#/executions/" + id
}

func statusEmoji(s sbruntime.Status) string {
	switch s {
	case sbruntime.StatusPending:
		return ":hourglass_flowing_sand:"
	case sbruntime.StatusRunning:
		return ":arrows_counterclockwise:"
	case sbruntime.StatusWaiting:
		return ":raised_hand:"
	case sbruntime.StatusCompleted:
		return ":white_check_mark:"
	case sbruntime.StatusFailed:
		return ":x:"
	case sbruntime.StatusCompensating:
		return ":rewind:"
	case sbruntime.StatusCancelled:
		return ":octagonal_sign:"
	case sbruntime.StatusStuck:
		return ":construction:"
	}
	return ":grey_question:"
}

// message renders the run as fallback text and Block Kit blocks.
func (v *runView) message(publicURL string) (string, []slack.Block) {
	e := v.e
	title := truncate("Runbook "+e.Runbook, 150)
	status := fmt.Sprintf("%s *%s*", statusEmoji(e.Status), e.Status)
	blocks := []slack.Block{
		slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, title, false, false)),
		slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, status, false, false), nil, nil),
	}
	by := e.Trigger.Source
	if u := e.Trigger.Attrs[AttrSlackUser]; u != "" {
		by += " (<@" + u + ">)"
	}
	fields := []*slack.TextBlockObject{
		field("Execution", "`"+e.ID+"`"),
		field("Started by", orDash(by)),
		field("Step", v.stepText()),
		field("Started", fmt.Sprintf("<!date^%d^{date_short_pretty} {time_secs}|%s>", e.CreatedAt.Unix(), e.CreatedAt.UTC().Format(time.RFC3339))),
	}
	blocks = append(blocks, slack.NewSectionBlock(nil, fields, nil))
	if w := v.waitText(); w != "" {
		blocks = append(blocks, slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, w, false, false), nil, nil))
	}
	if end := v.endText(); end != "" {
		blocks = append(blocks, slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, end, false, false), nil, nil))
	}
	var notes []slack.MixedElement
	if v.pause != nil {
		notes = append(notes, slack.NewTextBlockObject(slack.MarkdownType, pauseLine(v.pause), false, false))
	}
	if u := ExecutionURL(publicURL, e.ID); u != "" {
		notes = append(notes, slack.NewTextBlockObject(slack.MarkdownType, "<"+u+"|Open in starbook>", false, false))
	}
	if len(notes) > 0 {
		blocks = append(blocks, slack.NewContextBlock("", notes...))
	}
	return fmt.Sprintf("%s %s: %s", e.Runbook, e.ID, e.Status), blocks
}

// stepText is the last recorded step: its position, kind and name.
func (v *runView) stepText() string {
	if v.last == nil {
		return "none yet"
	}
	s := fmt.Sprintf("%d done; last: %s `%s`", v.steps, v.last.Position, v.last.Kind)
	if v.last.Name != "" {
		s = fmt.Sprintf("%d done; last: %s `%s %s`", v.steps, v.last.Position, v.last.Kind, v.last.Name)
	}
	if v.last.Failed() {
		s += " (failed)"
	}
	return s
}

// waitText says what a waiting run waits for.
func (v *runView) waitText() string {
	var lines []string
	for _, w := range v.waits {
		switch w.Kind {
		case sbruntime.KindApproval:
			line := ":raised_hand: Waiting for approval at step " + w.Position
			if req, err := sbruntime.ParseApprovalRequest(w); err == nil {
				if req.Message != "" {
					line += ": " + firstLine(req.Message)
				}
				line += " (approvers: " + approversText(req.Approvers) + ")"
			}
			lines = append(lines, line)
		case sbruntime.KindSignal:
			lines = append(lines, fmt.Sprintf(":satellite_antenna: Waiting for signal `%s` at step %s", w.Name, w.Position))
		default:
			line := fmt.Sprintf(":zzz: Waiting (%s) at step %s", w.Kind, w.Position)
			if w.Deadline != nil {
				line += " until " + w.Deadline.UTC().Format(time.RFC3339)
			}
			lines = append(lines, line)
		}
	}
	return strings.Join(lines, "\n")
}

// endText is an ended run's result or error.
func (v *runView) endText() string {
	e := v.e
	switch {
	case !e.Status.Terminal():
		return ""
	case e.Error != "":
		return "*Error*\n```" + truncate(e.Error, 2800) + "```"
	case len(e.Result) > 0 && string(e.Result) != "null":
		var pretty strings.Builder
		var val any
		if json.Unmarshal(e.Result, &val) == nil {
			enc := json.NewEncoder(&pretty)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			_ = enc.Encode(val)
		}
		return "*Result*\n```" + truncate(strings.TrimSpace(pretty.String()), 2800) + "```"
	}
	return ""
}
