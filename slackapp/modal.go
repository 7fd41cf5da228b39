package slackapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/slack-go/slack"

	"github.com/starbook/starbook/auth"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/schema"
)

// RunCallbackID is the callback_id of the run modal.
const RunCallbackID = "starbook_run"

// RawBlockID is the block (and action) id of the JSON input of a runbook
// without an input schema: the root's pointer "" as a URI fragment. Every
// other input's block and action id is its field's JSON pointer.
const RawBlockID = "#"

// maxModalInputs keeps a modal under Slack's 100 blocks; a schema with more
// fields is asked for as JSON text.
const maxModalInputs = 90

// runMetadata is the run modal's private_metadata: what the submission
// needs beyond the values.
type runMetadata struct {
	Runbook string `json:"runbook"`
	Channel string `json:"channel"` // where the command was typed: the run's message goes there
}

// modalInput is one input of the modal: a field of the form, flattened.
type modalInput struct {
	field    *schema.Field
	label    string // nested fields' labels joined with " › "
	required bool   // required, and so is every object it is in
}

// inputs flattens a form's fields: an object's fields take its place.
func inputs(form *schema.Form) []modalInput {
	var out []modalInput
	var walk func(fields []*schema.Field, prefix string, parentRequired bool)
	walk = func(fields []*schema.Field, prefix string, parentRequired bool) {
		for _, f := range fields {
			label, req := prefix+f.Label, parentRequired && f.Required
			if f.Kind == schema.KindObject {
				walk(f.Fields, label+" › ", req)
				continue
			}
			out = append(out, modalInput{field: f, label: label, required: req})
		}
	}
	walk(form.Fields, "", true)
	return out
}

// formOf is the form of a runbook version's input schema; one with more
// inputs than a modal holds is asked for as JSON text.
func formOf(b *sbruntime.Bundle) (*schema.Form, error) {
	form, err := schema.FormOf(b.InputSchema)
	if err != nil {
		return nil, err
	}
	if len(inputs(form)) > maxModalInputs {
		return &schema.Form{Raw: true, Open: form.Open}, nil
	}
	return form, nil
}

// openRunModal opens the run form of runbook for the user who typed the
// command; nil once it is open.
func (a *App) openRunModal(ctx context.Context, sc *slack.SlashCommand, p auth.Principal, runbook string) *Reply {
	b, _, err := a.svc.RunbookVersion(ctx, runbook, "current")
	if err != nil {
		return ephemeralMsg(errorText("runbook "+runbook, err))
	}
	form, err := formOf(b)
	if err != nil {
		return ephemeralMsg(errorText("input schema of "+runbook, err))
	}
	meta, _ := json.Marshal(runMetadata{Runbook: runbook, Channel: sc.ChannelID})
	view := runModal(runbook, form, a.pauseLineOf(ctx, runbook))
	view.PrivateMetadata = string(meta)
	if _, err := a.api.OpenViewContext(ctx, sc.TriggerID, view); err != nil {
		a.log.Warn("views.open", "user", sc.UserID, "runbook", runbook, "err", err)
		return ephemeralMsg(fmt.Sprintf(":warning: The form of %s could not be opened: %s", runbook, err))
	}
	a.log.Info("run form opened", "user", sc.UserID, "as", p.Name, "runbook", runbook)
	return nil
}

func (a *App) pauseLineOf(ctx context.Context, runbook string) string {
	if ps := a.pauseOf(ctx, runbook); ps != nil {
		return pauseLine(ps) + ". A run started now is refused."
	}
	return ""
}

// runModal is the run form of runbook: one input per field of form, or a
// JSON input when it is Raw; a paused runbook says so at the top.
func runModal(runbook string, form *schema.Form, paused string) slack.ModalViewRequest {
	var blocks []slack.Block
	if paused != "" {
		blocks = append(blocks, slack.NewContextBlock("", slack.NewTextBlockObject(slack.MarkdownType, paused, false, false)))
	}
	if form.Raw {
		el := slack.NewPlainTextInputBlockElement(nil, RawBlockID)
		el.Multiline = true
		hint := "The runbook declares no input schema: give its input as JSON (an object), or leave it empty."
		blocks = append(blocks, slack.NewInputBlock(RawBlockID, plainText("Input (JSON)", 2000), plainText(hint, 2000), el).WithOptional(true))
	}
	for _, in := range inputs(form) {
		blocks = append(blocks, inputBlock(in))
	}
	return slack.ModalViewRequest{
		Type:       slack.VTModal,
		CallbackID: RunCallbackID,
		Title:      plainText("Run "+runbook, 24),
		Submit:     plainText("Run", 24),
		Close:      plainText("Cancel", 24),
		Blocks:     slack.Blocks{BlockSet: blocks},
	}
}

// inputBlock is the input of one field, block and action ids its pointer.
func inputBlock(in modalInput) *slack.InputBlock {
	f, id := in.field, in.field.Pointer
	var el slack.BlockElement
	switch f.Kind {
	case schema.KindNumber, schema.KindInteger:
		n := slack.NewNumberInputBlockElement(nil, id, f.Kind == schema.KindNumber)
		n.MinValue, n.MaxValue = numberText(f.Minimum), numberText(f.Maximum)
		if d, ok := f.Default.(float64); ok {
			n.InitialValue = numberText(&d)
		}
		el = n
	case schema.KindBoolean:
		yes := slack.NewOptionBlockObject("true", plainText("Yes", 75), nil)
		no := slack.NewOptionBlockObject("false", plainText("No", 75), nil)
		r := slack.NewRadioButtonsBlockElement(id, yes, no)
		if d, ok := f.Default.(bool); ok {
			r.InitialOption = no
			if d {
				r.InitialOption = yes
			}
		}
		el = r
	case schema.KindEnum:
		var options []*slack.OptionBlockObject
		var initial *slack.OptionBlockObject
		for _, v := range f.Enum {
			value := enumValue(v)
			o := slack.NewOptionBlockObject(truncate(value, 150), plainText(value, 75), nil)
			options = append(options, o)
			if f.Default != nil && enumValue(f.Default) == value {
				initial = o
			}
		}
		s := slack.NewOptionsSelectBlockElement(slack.OptTypeStatic, plainText("Choose", 150), id, options...)
		s.InitialOption = initial
		el = s
	default: // string, array (one value per line), json
		t := slack.NewPlainTextInputBlockElement(nil, id)
		t.Multiline = f.Kind != schema.KindString
		t.InitialValue = initialText(f)
		el = t
	}
	return slack.NewInputBlock(id, plainText(in.label, 2000), hintOf(f), el).WithOptional(!in.required)
}

// hintOf is a field's description and the rules a person should know.
func hintOf(f *schema.Field) *slack.TextBlockObject {
	var parts []string
	if f.Description != "" {
		parts = append(parts, f.Description)
	}
	switch f.Kind {
	case schema.KindArray:
		s := "One value per line"
		if f.Items != nil && f.Items.Kind == schema.KindJSON {
			s = "One JSON value per line"
		}
		if f.Items != nil && f.Items.Description != "" {
			s += ", each " + f.Items.Description
		}
		parts = append(parts, s+".")
	case schema.KindJSON:
		parts = append(parts, "JSON.")
	}
	if f.Pattern != "" {
		parts = append(parts, "Pattern "+f.Pattern+".")
	}
	if f.Format != "" {
		parts = append(parts, "Format: "+f.Format+".")
	}
	if len(parts) == 0 {
		return nil
	}
	return plainText(strings.Join(parts, " "), 2000)
}

func initialText(f *schema.Field) string {
	switch d := f.Default.(type) {
	case nil:
		return ""
	case string:
		return d
	case []any:
		if f.Kind == schema.KindArray {
			lines := make([]string, len(d))
			for i, v := range d {
				lines[i] = enumValue(v)
			}
			return strings.Join(lines, "\n")
		}
	}
	b, _ := json.Marshal(f.Default)
	return string(b)
}

// enumValue is the text a select submits for v: a string as is, anything
// else as JSON (Form.Values reads both).
func enumValue(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func numberText(n *float64) string {
	if n == nil {
		return ""
	}
	return strconv.FormatFloat(*n, 'f', -1, 64)
}

func plainText(s string, max int) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.PlainTextType, truncate(s, max), false, false)
}

// submittedText reads a modal's state as Form.Values takes it: text keyed
// by field pointer.
func submittedText(form *schema.Form, state *slack.ViewState) map[string]string {
	text := map[string]string{}
	if state == nil {
		return text
	}
	value := func(blockID string) (string, bool) {
		act, ok := state.Values[blockID][blockID]
		if !ok {
			return "", false
		}
		if act.SelectedOption.Value != "" {
			return act.SelectedOption.Value, true
		}
		return act.Value, true
	}
	if form.Raw {
		text[""], _ = value(RawBlockID)
		return text
	}
	for _, in := range inputs(form) {
		if v, ok := value(in.field.Pointer); ok {
			text[in.field.Pointer] = v
		}
	}
	return text
}

// quoted finds the property a "required" refusal names.
var quoted = regexp.MustCompile(`'([^']*)'`)

// fieldErrors places a refusal of the submitted input (a *schema.FieldError
// or *schema.Error) at the block of the field its pointer names: the
// deepest field at or above it; a missing required property at its own
// field; anything else at the first input.
func fieldErrors(form *schema.Form, err error) map[string]string {
	ptr, msg := "", err.Error()
	var fe *schema.FieldError
	var se *schema.Error
	switch {
	case errors.As(err, &fe):
		ptr, msg = fe.Pointer, fe.Msg
	case errors.As(err, &se):
		ptr, msg = se.Pointer, se.Msg
		if se.Keyword != "" && !strings.HasPrefix(msg, se.Keyword) {
			msg = se.Keyword + ": " + msg
		}
		if m := quoted.FindStringSubmatch(se.Msg); se.Keyword == "required" && m != nil {
			ptr += "/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(m[1])
		}
	}
	msg = truncate(msg, 2000)
	if form.Raw {
		return map[string]string{RawBlockID: msg}
	}
	ins := inputs(form)
	best := ""
	for _, in := range ins {
		p := in.field.Pointer
		if (ptr == p || strings.HasPrefix(ptr, p+"/")) && len(p) > len(best) {
			best = p
		}
	}
	if best == "" && len(ins) > 0 {
		best = ins[0].field.Pointer
	}
	return map[string]string{best: msg}
}
