package slackapp

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/slack-go/slack"

	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/schema"
)

// submitRun handles the submission of a run modal: the input is built from
// the values with the runbook's form and validated against its schema; a
// refused value comes back as an error at its field (nothing is posted or
// started). A good one posts the run's message in the channel the command
// came from, then starts the run as the mapped user with the message's
// place in its trigger (AttrChannel, AttrMessageTS), so that whichever node
// leads keeps the message in step (FollowRuns). nil closes the modal.
func (a *App) submitRun(ctx context.Context, cb *slack.InteractionCallback) *slack.ViewSubmissionResponse {
	var meta runMetadata
	if err := json.Unmarshal([]byte(cb.View.PrivateMetadata), &meta); err != nil || meta.Runbook == "" {
		a.log.Warn("run modal with bad metadata", "metadata", cb.View.PrivateMetadata)
		return nil
	}
	if a.svc == nil {
		return nil
	}
	b, _, err := a.svc.RunbookVersion(ctx, meta.Runbook, "current")
	if err != nil {
		return a.closeWith(ctx, cb, meta, errorText("runbook "+meta.Runbook, err))
	}
	form, err := formOf(b)
	if err != nil {
		return a.closeWith(ctx, cb, meta, errorText("input schema of "+meta.Runbook, err))
	}
	// Who submits is checked again: the auth file may have changed since
	// the form opened.
	p, err := a.principal(ctx, cb.User.ID)
	if err != nil || !p.Can(verbs["run"].perm) {
		return slack.NewErrorsViewSubmissionResponse(firstBlockError(form, refusal(cb.User.ID, p, err, verbs["run"].perm)))
	}
	input, err := form.Values(submittedText(form, cb.View.State))
	if err == nil && len(b.InputSchema) > 0 {
		var sch *schema.Schema
		if sch, err = schema.Compile(b.InputSchemaAt, b.InputSchema); err == nil {
			err = sch.Validate(input)
		}
	}
	if err != nil {
		a.log.Info("run form refused", "user", cb.User.ID, "runbook", meta.Runbook, "err", err)
		return slack.NewErrorsViewSubmissionResponse(fieldErrors(form, err))
	}

	channel := meta.Channel
	if channel == "" {
		channel = cb.User.ID
	}
	starting := fmt.Sprintf(":hourglass_flowing_sand: Starting *%s* for %s (<@%s>)…", meta.Runbook, p.Name, cb.User.ID)
	ch, ts, err := a.api.PostMessageContext(ctx, channel, slack.MsgOptionText(starting, false))
	if err != nil && channel != cb.User.ID {
		// Not in that channel: the run's message goes to the user instead.
		a.log.Info("run message not posted in the command's channel", "channel", channel, "err", err)
		ch, ts, err = a.api.PostMessageContext(ctx, cb.User.ID, slack.MsgOptionText(starting, false))
	}
	if err != nil {
		a.log.Warn("run message not posted", "user", cb.User.ID, "err", err)
		return slack.NewErrorsViewSubmissionResponse(firstBlockError(form,
			"Nothing was started: the run's message could not be posted ("+err.Error()+")."))
	}
	trigger := sbruntime.Trigger{Type: TriggerSlack, Source: p.Name,
		Attrs: map[string]string{AttrSlackUser: cb.User.ID, AttrChannel: ch, AttrMessageTS: ts}}
	e, err := a.svc.Start(ctx, meta.Runbook, input, trigger)
	a.audit(ctx, p, cb.User.ID, "execution.start", meta.Runbook, idOf(e), err)
	if err != nil {
		a.log.Info("slack run refused", "user", cb.User.ID, "runbook", meta.Runbook, "err", err)
		text := errorText(fmt.Sprintf("%s's run of %s", p.Name, meta.Runbook), err)
		a.updateText(ctx, ch, ts, text)
		return nil
	}
	a.log.Info("run started from slack", "execution", e.ID, "runbook", e.Runbook, "user", cb.User.ID, "as", p.Name)
	// The first update is the request's; the leader's FollowRuns does the rest.
	_, _ = a.refreshMessage(ctx, e.ID, nil)
	return nil
}

func idOf(e *sbruntime.Execution) string {
	if e == nil {
		return ""
	}
	return e.ID
}

// firstBlockError puts msg at the modal's first input.
func firstBlockError(form *schema.Form, msg string) map[string]string {
	if form.Raw {
		return map[string]string{RawBlockID: msg}
	}
	if ins := inputs(form); len(ins) > 0 {
		return map[string]string{ins[0].field.Pointer: msg}
	}
	return map[string]string{RawBlockID: msg}
}

// closeWith closes the modal and tells the user why nothing was started.
func (a *App) closeWith(ctx context.Context, cb *slack.InteractionCallback, meta runMetadata, text string) *slack.ViewSubmissionResponse {
	channel := meta.Channel
	if channel == "" {
		channel = cb.User.ID
	}
	if _, err := a.api.PostEphemeralContext(ctx, channel, cb.User.ID, slack.MsgOptionText(text, false)); err != nil {
		a.log.Warn("chat.postEphemeral", "user", cb.User.ID, "err", err)
	}
	return nil
}

// updateText rewrites a message to text alone.
func (a *App) updateText(ctx context.Context, channel, ts, text string) {
	if _, _, _, err := a.api.UpdateMessageContext(ctx, channel, ts, slack.MsgOptionText(text, false)); err != nil {
		a.log.Warn("chat.update", "channel", channel, "ts", ts, "err", err)
	}
}
