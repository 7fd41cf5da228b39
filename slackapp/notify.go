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

// Block and action ids of an approval request. A button parses as a block
// action only if its block has a block_id.
const (
	ApprovalBlockID = "starbook_approval"
	ActionApprove   = "approve"
	ActionReject    = "reject"
)

// ButtonValue is what the Approve and Reject buttons carry.
type ButtonValue struct {
	Execution string `json:"e"`
	Position  string `json:"p"`
}

// Post implements starbook.ApprovalNotifier: it posts the pending approval request
// with Approve and Reject buttons.
func (a *App) Post(ctx context.Context, n *starbook.ApprovalNotice) (sbruntime.MessageRef, error) {
	channel := n.Request.Channel
	if channel == "" {
		channel = a.cfg.Channel
	}
	if channel == "" {
		return sbruntime.MessageRef{}, fmt.Errorf("%w: wait_for_approval has no channel= and %s is not set", starbook.ErrNoChannel, EnvChannel)
	}
	text, blocks := approvalMessage(n, a.approvalPause(ctx, n))
	ch, ts, err := a.api.PostMessageContext(ctx, channel, slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...))
	if err != nil {
		return sbruntime.MessageRef{}, fmt.Errorf("chat.postMessage %s: %w", channel, err)
	}
	a.log.Info("approval request posted", "execution", n.Execution, "position", n.Position, "channel", ch, "ts", ts)
	return sbruntime.MessageRef{Channel: ch, TS: ts}, nil
}

// Update implements starbook.ApprovalNotifier: it rewrites the posted request to
// show approvals received, or the outcome and who decided (without buttons).
func (a *App) Update(ctx context.Context, ref sbruntime.MessageRef, n *starbook.ApprovalNotice) error {
	text, blocks := approvalMessage(n, a.approvalPause(ctx, n))
	if _, _, _, err := a.api.UpdateMessageContext(ctx, ref.Channel, ref.TS,
		slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...)); err != nil {
		if code := errorCode(err); code == "message_not_found" || code == "channel_not_found" || code == "cant_update_message" {
			a.log.Warn("approval post cannot be updated", "execution", n.Execution, "position", n.Position, "err", err)
			return nil // nothing to retry: the post is gone
		}
		return fmt.Errorf("chat.update %s %s: %w", ref.Channel, ref.TS, err)
	}
	return nil
}

// approvalPause is the line that says the notice's runbook is paused, ""
// when it is not (or pauses are off).
func (a *App) approvalPause(ctx context.Context, n *starbook.ApprovalNotice) string {
	if n.Request == nil || n.Outcome != nil || n.Ended {
		return ""
	}
	if ps := a.pauseOf(ctx, n.Request.Runbook); ps != nil {
		return pauseLine(ps) + " (this run goes on)."
	}
	return ""
}

// approvalMessage renders a notice as fallback text and Block Kit blocks,
// with paused (a line saying its runbook is paused) when it is not "".
func approvalMessage(n *starbook.ApprovalNotice, paused string) (string, []slack.Block) {
	req := n.Request
	if req == nil {
		req = &sbruntime.ApprovalRequest{Required: 1}
	}
	title := "Approval needed"
	if req.Runbook != "" {
		title += ": " + req.Runbook
	}
	blocks := []slack.Block{
		slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, truncate(title, 150), false, false)),
	}
	if req.Message != "" {
		blocks = append(blocks, slack.NewSectionBlock(
			slack.NewTextBlockObject(slack.MarkdownType, truncate(req.Message, 2900), false, false), nil, nil))
	}
	fields := []*slack.TextBlockObject{
		field("Execution", "`"+n.Execution+"`"),
		field("Step", "position "+n.Position),
		field("Approvers", approversText(req.Approvers)),
		field("Required", fmt.Sprintf("%d", req.Required)),
	}
	if n.Deadline != nil {
		fields = append(fields, field("Timeout", fmt.Sprintf("%s, then %s (<!date^%d^{date_short_pretty} {time}|%s>)",
			orDash(req.Timeout), req.OnTimeout, n.Deadline.Unix(), n.Deadline.UTC().Format(time.RFC3339))))
	}
	if req.Requester != "" {
		fields = append(fields, field("Requested by", req.Requester))
	}
	blocks = append(blocks, slack.NewSectionBlock(nil, fields, nil))
	if paused != "" {
		blocks = append(blocks, slack.NewContextBlock("", slack.NewTextBlockObject(slack.MarkdownType, paused, false, false)))
	}

	var status string
	switch {
	case n.Outcome != nil:
		status = outcomeText(n.Outcome, n.Error)
	case n.EscalatedTo != nil:
		status = fmt.Sprintf(":arrow_up: No decision in time: escalated to %s.", escalationTarget(n.EscalatedTo))
	case n.Ended:
		status = ":no_entry_sign: The execution ended without a decision."
	}
	if status != "" {
		blocks = append(blocks, slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, status, false, false), nil, nil))
		return title + ": " + plain(status), blocks
	}
	if len(n.Approvals) > 0 {
		var who []string
		for _, d := range n.Approvals {
			who = append(who, mention(d.User))
		}
		blocks = append(blocks, slack.NewContextBlock("", slack.NewTextBlockObject(slack.MarkdownType,
			fmt.Sprintf("%d of %d approvals: %s", len(n.Approvals), req.Required, strings.Join(who, ", ")), false, false)))
	}
	value, _ := json.Marshal(ButtonValue{Execution: n.Execution, Position: n.Position})
	approve := slack.NewButtonBlockElement(ActionApprove, string(value), slack.NewTextBlockObject(slack.PlainTextType, "Approve", false, false))
	approve.Style = slack.StylePrimary
	reject := slack.NewButtonBlockElement(ActionReject, string(value), slack.NewTextBlockObject(slack.PlainTextType, "Reject", false, false))
	reject.Style = slack.StyleDanger
	blocks = append(blocks, slack.NewActionBlock(ApprovalBlockID, approve, reject))
	return title + ": " + firstLine(req.Message), blocks
}

func outcomeText(r *sbruntime.ApprovalResult, errMsg string) string {
	at := r.At.UTC().Format(time.RFC3339)
	switch {
	case r.Decision == sbruntime.DecisionTimeout && errMsg != "":
		return fmt.Sprintf(":hourglass: Timed out at %s: the step failed (%s).", at, errMsg)
	case r.Decision == sbruntime.DecisionTimeout && r.Approved:
		return fmt.Sprintf(":hourglass: Timed out at %s: approved by default (on_timeout).", at)
	case r.Decision == sbruntime.DecisionTimeout:
		return fmt.Sprintf(":hourglass: Timed out at %s: rejected by default (on_timeout).", at)
	}
	var who []string
	for _, u := range r.By {
		who = append(who, mention(u))
	}
	verb := ":x: Rejected"
	if r.Approved {
		verb = ":white_check_mark: Approved"
	}
	s := fmt.Sprintf("%s by %s via %s at %s.", verb, strings.Join(who, ", "), r.Via, at)
	if r.Comment != "" {
		s += " “" + r.Comment + "”"
	}
	return s
}

func escalationTarget(req *sbruntime.ApprovalRequest) string {
	var parts []string
	if req.Channel != "" {
		parts = append(parts, req.Channel)
	}
	if len(req.Approvers) > 0 {
		parts = append(parts, approversText(req.Approvers))
	}
	return strings.Join(parts, ", ")
}

func field(name, value string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, "*"+name+"*\n"+value, false, false)
}

func approversText(list []string) string {
	if len(list) == 0 {
		return "anyone"
	}
	out := make([]string, len(list))
	for i, a := range list {
		out[i] = mention(a)
	}
	return strings.Join(out, ", ")
}

// mention renders a user or group so that Slack links it.
func mention(a string) string {
	switch {
	case sbruntime.IsSlackUser(a):
		return "<@" + a + ">"
	case strings.HasPrefix(a, "S") && sbruntime.IsSlackGroup(a):
		return "<!subteam^" + a + ">"
	}
	return a
}

// plain drops a leading ":emoji: " for the fallback text.
func plain(s string) string {
	if strings.HasPrefix(s, ":") {
		if i := strings.Index(s[1:], ": "); i >= 0 && !strings.Contains(s[1:i+1], " ") {
			return s[i+3:]
		}
	}
	return s
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return truncate(s, 150)
}

func truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
