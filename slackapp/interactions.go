package slackapp

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	sbruntime "github.com/starbook/starbook/runtime"
)

// InteractionsPath is where Slack's interactivity requests are served.
const InteractionsPath = "/slack/interactions"

// Request signature rules.
const (
	maxInteractionBody = 1 << 20
	maxClockSkew       = 5 * time.Minute
	// decideBudget keeps the answer to Slack under its 3 s limit.
	decideBudget = 2500 * time.Millisecond
)

// Signature errors; each is answered 401.
var (
	ErrMissingHeaders = errors.New("missing X-Slack-Signature or X-Slack-Request-Timestamp")
	ErrStaleRequest   = errors.New("request timestamp is more than 5 minutes from now")
	ErrBadSignature   = errors.New("signature does not match")
)

// Sign returns the v0 signature of body sent at timestamp ts: what Slack puts
// in X-Slack-Signature.
func Sign(secret, ts string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "v0:%s:", ts)
	mac.Write(body)
	return "v0=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify checks a request's v0 signature and that its timestamp is within 5
// minutes of now.
func Verify(h http.Header, body []byte, secret string, now time.Time) error {
	sig, ts := h.Get("X-Slack-Signature"), h.Get("X-Slack-Request-Timestamp")
	if sig == "" || ts == "" {
		return ErrMissingHeaders
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("bad timestamp %q", ts)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > maxClockSkew || d < -maxClockSkew {
		return ErrStaleRequest
	}
	if !hmac.Equal([]byte(sig), []byte(Sign(secret, ts, body))) {
		return ErrBadSignature
	}
	return nil
}

// verify applies Verify with the app's clock and, on the wall clock,
// slack-go's own verifier as well (it reads time.Now, so a test clock skips it).
func (a *App) verify(h http.Header, body []byte) error {
	if a.cfg.SigningSecret == "" {
		return errors.New("no signing secret configured: interactions over HTTP are off")
	}
	if err := Verify(h, body, string(a.cfg.SigningSecret), a.now()); err != nil {
		return err
	}
	if !a.fixedClock {
		sv, err := slack.NewSecretsVerifier(h, string(a.cfg.SigningSecret))
		if err != nil {
			return err
		}
		if _, err := sv.Write(body); err != nil {
			return err
		}
		return sv.Ensure()
	}
	return nil
}

// ServeHTTP serves Slack's signed requests: interactions (POST
// /slack/interactions: button clicks, run modal submissions) and slash
// commands (POST /slack/commands), told apart by their form (a payload, or
// a command). A request that does not verify gets 401 and records nothing;
// a verified one is answered 200 once its click is recorded (or refused
// with an ephemeral message), with a modal's field errors or a command's
// reply as the JSON body.
func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxInteractionBody))
	if err != nil {
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		return
	}
	if err := a.verify(r.Header, body); err != nil {
		a.log.Warn("slack request refused", "err", err, "remote", r.RemoteAddr)
		http.Error(w, "invalid signature", http.StatusUnauthorized)
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		http.Error(w, "bad form: "+err.Error(), http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), decideBudget)
	defer cancel()
	r.Body = io.NopCloser(bytes.NewReader(body))
	if !form.Has("payload") && form.Has("command") {
		sc, err := slack.SlashCommandParse(r)
		if err != nil {
			http.Error(w, "bad slash command: "+err.Error(), http.StatusBadRequest)
			return
		}
		reply(w, a.HandleCommand(ctx, &sc))
		return
	}
	cb, err := slack.InteractionCallbackParse(r)
	if err != nil {
		http.Error(w, "bad interaction payload: "+err.Error(), http.StatusBadRequest)
		return
	}
	reply(w, a.HandleInteraction(ctx, &cb))
}

// reply answers Slack with v as JSON, or an empty 200 when v is nil.
func reply[T any](w http.ResponseWriter, v *T) {
	if v == nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// HandleInteraction handles an interaction (from HTTP or Socket Mode): a
// run modal's submission (submitRun), whose answer it returns, or an
// Approve or Reject click, recorded as the clicking user's decision.
// Refusals and confirmations of clicks go to the user as ephemeral messages;
// nothing else is posted here (the leader updates the request itself).
func (a *App) HandleInteraction(ctx context.Context, cb *slack.InteractionCallback) *slack.ViewSubmissionResponse {
	if cb.Type == slack.InteractionTypeViewSubmission && cb.View.CallbackID == RunCallbackID {
		return a.submitRun(ctx, cb)
	}
	if cb.Type != slack.InteractionTypeBlockActions {
		return nil
	}
	for _, act := range cb.ActionCallback.BlockActions {
		if act == nil || act.BlockID != ApprovalBlockID || (act.ActionID != ActionApprove && act.ActionID != ActionReject) {
			continue
		}
		var v ButtonValue
		if err := json.Unmarshal([]byte(act.Value), &v); err != nil || v.Execution == "" || v.Position == "" {
			a.log.Warn("approval button with a bad value", "value", act.Value)
			continue
		}
		d := sbruntime.Decision{User: cb.User.ID, Approve: act.ActionID == ActionApprove, Via: sbruntime.ViaSlack}
		log := a.log.With("execution", v.Execution, "position", v.Position, "user", cb.User.ID, "decision", act.ActionID)
		if a.decider == nil {
			log.Error("no decider configured")
			return nil
		}
		st, err := a.decider.Decide(ctx, v.Execution, v.Position, d)
		var reply string
		switch {
		case errors.Is(err, sbruntime.ErrForbidden):
			log.Info("approval click refused", "err", err)
			reply = ":no_entry: You cannot decide this: " + err.Error()
		case errors.Is(err, sbruntime.ErrConflict), errors.Is(err, sbruntime.ErrNotFound):
			reply = ":information_source: " + err.Error()
		case err != nil:
			log.Error("record approval click", "err", err)
			reply = ":warning: Your decision could not be recorded; try again."
		case st.Duplicate:
			reply = fmt.Sprintf("You already approved: %d of %d approvals so far.", len(st.Approvals), st.Required)
		case !st.Resolved:
			reply = fmt.Sprintf("Your approval is recorded: %d of %d approvals so far.", len(st.Approvals), st.Required)
		default:
			log.Info("approval decided in Slack")
		}
		if reply != "" {
			a.ephemeral(ctx, cb, reply)
		}
	}
	return nil
}

func (a *App) ephemeral(ctx context.Context, cb *slack.InteractionCallback, text string) {
	channel := cb.Channel.ID
	if channel == "" {
		channel = cb.Container.ChannelID
	}
	if _, err := a.api.PostEphemeralContext(ctx, channel, cb.User.ID, slack.MsgOptionText(text, false)); err != nil {
		a.log.Warn("chat.postEphemeral", "user", cb.User.ID, "err", err)
	}
}

// RunSocketMode receives interactions and slash commands over a Socket Mode
// connection (an app-level token, no public URL) until ctx is done,
// acknowledging each (with the modal's errors or the command's reply) and
// handling it like a request to /slack/interactions or /slack/commands.
func (a *App) RunSocketMode(ctx context.Context) error {
	if a.cfg.AppToken == "" {
		return fmt.Errorf("socket mode needs %s", EnvAppToken)
	}
	sm := socketmode.New(a.api)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case evt, ok := <-sm.Events:
				if !ok {
					return
				}
				a.socketEvent(ctx, sm, evt)
			}
		}
	}()
	err := sm.RunContext(ctx)
	cancel()
	<-done
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (a *App) socketEvent(ctx context.Context, sm *socketmode.Client, evt socketmode.Event) {
	ack := func(payload any) {
		if evt.Request != nil {
			if err := sm.Ack(*evt.Request, payload); err != nil {
				a.log.Warn("socket mode ack", "err", err)
			}
		}
	}
	switch evt.Type {
	case socketmode.EventTypeConnected:
		a.log.Info("slack socket mode connected")
	case socketmode.EventTypeInteractive:
		cb, ok := evt.Data.(slack.InteractionCallback)
		if !ok {
			ack(nil)
			return
		}
		hctx, cancel := context.WithTimeout(ctx, decideBudget)
		defer cancel()
		if cb.Type == slack.InteractionTypeViewSubmission {
			// The answer (field errors) goes in the acknowledgement.
			if resp := a.HandleInteraction(hctx, &cb); resp != nil {
				ack(resp)
			} else {
				ack(nil)
			}
			return
		}
		ack(nil)
		a.HandleInteraction(hctx, &cb)
	case socketmode.EventTypeSlashCommand:
		sc, ok := evt.Data.(slack.SlashCommand)
		if !ok {
			ack(nil)
			return
		}
		hctx, cancel := context.WithTimeout(ctx, decideBudget)
		defer cancel()
		// The reply goes in the acknowledgement, as over HTTP in the response.
		if msg := a.HandleCommand(hctx, &sc); msg != nil {
			ack(msg)
		} else {
			ack(nil)
		}
	}
}
