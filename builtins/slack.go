package builtins

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	sbruntime "github.com/starbook/starbook/runtime"
)

// SlackAPI is what the slack module needs from a Slack client.
type SlackAPI interface {
	// PostMessage posts text (and Block Kit blocks, a JSON array or nil) to
	// channel and returns the channel id and message ts.
	PostMessage(ctx context.Context, channel, text string, blocks json.RawMessage) (string, string, error)
	// UpdateMessage rewrites the message at ts.
	UpdateMessage(ctx context.Context, channel, ts, text string, blocks json.RawMessage) (string, string, error)
}

// NewSlackModule returns the slack module: post(channel, text=, blocks=) and
// update(channel, ts, text=, blocks=). Each is an effect: it runs only inside
// a durable step and returns {"channel", "ts"}. With api nil (Slack not
// configured) they fail with an error saying so.
func NewSlackModule(api SlackAPI) *starlarkstruct.Module {
	s := &slackModule{api: api}
	return &starlarkstruct.Module{Name: "slack", Members: starlark.StringDict{
		"post":   starlark.NewBuiltin("slack.post", s.post),
		"update": starlark.NewBuiltin("slack.update", s.update),
	}}
}

type slackModule struct{ api SlackAPI }

var errSlackOff = errors.New("Slack is not configured on this node: set STARBOOK_SLACK_BOT_TOKEN")

func (s *slackModule) post(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if sbruntime.InStep(th) == nil {
		return nil, fmt.Errorf("%s is an effect: run it as a durable step, e.g. call(slack.post, \"#ops\", text = \"...\")", b.Name())
	}
	var channel, text string
	var blocks starlark.Value = starlark.None
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "channel", &channel, "text?", &text, "blocks?", &blocks); err != nil {
		return nil, err
	}
	raw, err := s.check(b.Name(), channel, text, blocks)
	if err != nil {
		return nil, err
	}
	if err := sbruntime.InStep(th).Effect(sbruntime.Effect{Kind: "slack", Channel: channel}); err != nil {
		return nil, err
	}
	ch, ts, err := s.api.PostMessage(sbruntime.Context(th), channel, text, raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %s", b.Name(), sbruntime.Scrub(th, err.Error()))
	}
	return messageValue(ch, ts), nil
}

func (s *slackModule) update(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if sbruntime.InStep(th) == nil {
		return nil, fmt.Errorf("%s is an effect: run it as a durable step, e.g. call(slack.update, msg.channel, msg.ts, text = \"...\")", b.Name())
	}
	var channel, ts, text string
	var blocks starlark.Value = starlark.None
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "channel", &channel, "ts", &ts, "text?", &text, "blocks?", &blocks); err != nil {
		return nil, err
	}
	if ts == "" {
		return nil, fmt.Errorf("%s: ts must not be empty", b.Name())
	}
	raw, err := s.check(b.Name(), channel, text, blocks)
	if err != nil {
		return nil, err
	}
	if err := sbruntime.InStep(th).Effect(sbruntime.Effect{Kind: "slack", Channel: channel}); err != nil {
		return nil, err
	}
	ch, newTS, err := s.api.UpdateMessage(sbruntime.Context(th), channel, ts, text, raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %s", b.Name(), sbruntime.Scrub(th, err.Error()))
	}
	return messageValue(ch, newTS), nil
}

// check validates the arguments and encodes blocks (a list of dicts).
func (s *slackModule) check(name, channel, text string, blocks starlark.Value) (json.RawMessage, error) {
	if s.api == nil {
		return nil, fmt.Errorf("%s: %w", name, errSlackOff)
	}
	if channel == "" {
		return nil, fmt.Errorf("%s: channel must not be empty", name)
	}
	if blocks == starlark.None {
		if text == "" {
			return nil, fmt.Errorf("%s: give text= or blocks=", name)
		}
		return nil, nil
	}
	if _, ok := blocks.(*starlark.List); !ok {
		if _, ok := blocks.(starlark.Tuple); !ok {
			return nil, fmt.Errorf("%s: blocks= wants a list of Block Kit blocks, got %s", name, blocks.Type())
		}
	}
	raw, err := revealJSON(blocks)
	if err != nil {
		return nil, fmt.Errorf("%s: blocks=: %w", name, err)
	}
	return raw, nil
}

func messageValue(channel, ts string) starlark.Value {
	d := starlark.NewDict(2)
	_ = d.SetKey(starlark.String("channel"), starlark.String(channel))
	_ = d.SetKey(starlark.String("ts"), starlark.String(ts))
	return d
}
