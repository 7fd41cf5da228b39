// Package slackfake is a fake Slack Web API for tests: chat.postMessage,
// chat.update, chat.postEphemeral, views.open, usergroups.list,
// usergroups.users.list, users.info and a Socket Mode connection
// (apps.connections.open) over httptest, recording every call and every
// Socket Mode acknowledgement with its payload. Point a client at URL()
// (slack.OptionAPIURL, or STARBOOK_SLACK_API_URL for the daemon).
package slackfake

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"

	"github.com/gorilla/websocket"
)

// Call is one recorded API call: the method and its form fields.
type Call struct {
	Method string
	Form   map[string]string
}

// View decodes the call's view field (views.open).
func (c Call) View() map[string]any {
	var v map[string]any
	_ = json.Unmarshal([]byte(c.Form["view"]), &v)
	return v
}

// Blocks decodes the call's blocks field.
func (c Call) Blocks() []map[string]any {
	var b []map[string]any
	_ = json.Unmarshal([]byte(c.Form["blocks"]), &b)
	return b
}

// User is a user the fake knows.
type User struct {
	ID, Name, Email string
}

// Group is a user group the fake knows.
type Group struct {
	ID, Handle string
	Members    []string
}

// Server is the fake API.
type Server struct {
	srv *httptest.Server

	mu      sync.Mutex
	calls   []Call
	users   map[string]User
	groups  []Group
	seq     int
	changed chan struct{} // closed and replaced on every call

	envelopes chan []byte // Socket Mode messages to send
	acks      []string    // envelope ids acknowledged over Socket Mode
	// ackPayloads holds the payload of each acknowledgement that had one.
	ackPayloads map[string]json.RawMessage
}

// New starts a fake with users and groups; Close it when done.
func New(users []User, groups []Group) *Server {
	s := &Server{users: map[string]User{}, groups: groups, changed: make(chan struct{}), envelopes: make(chan []byte, 16),
		ackPayloads: map[string]json.RawMessage{}}
	for _, u := range users {
		s.users[u.ID] = u
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// URL is the API base URL, ending in "/".
func (s *Server) URL() string { return s.srv.URL + "/api/" }

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// Calls returns the calls so far of the given method ("" for all).
func (s *Server) Calls(method string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if method == "" || c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// Changed returns a channel closed at the next call.
func (s *Server) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// SendInteraction queues a Socket Mode "interactive" envelope carrying
// payload (a block_actions callback) for the connected client.
func (s *Server) SendInteraction(envelopeID string, payload any) {
	b, _ := json.Marshal(map[string]any{"type": "interactive", "envelope_id": envelopeID,
		"accepts_response_payload": false, "payload": payload})
	s.envelopes <- b
}

// SendSlashCommand queues a Socket Mode "slash_commands" envelope carrying
// cmd (a slash command as Slack sends it: user_id, channel_id, command,
// text, trigger_id, ...) for the connected client.
func (s *Server) SendSlashCommand(envelopeID string, cmd any) {
	b, _ := json.Marshal(map[string]any{"type": "slash_commands", "envelope_id": envelopeID,
		"accepts_response_payload": true, "payload": cmd})
	s.envelopes <- b
}

// AckPayload returns the payload acknowledged for an envelope, nil for
// none (yet).
func (s *Server) AckPayload(envelopeID string) json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ackPayloads[envelopeID]
}

// Acks returns the envelope ids acknowledged over Socket Mode.
func (s *Server) Acks() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.acks...)
}

// socket serves a Socket Mode connection: hello, then queued envelopes;
// acknowledgements are recorded.
func (s *Server) socket(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			_, msg, err := conn.ReadMessage()
			if err != nil {
				return
			}
			var ack struct {
				EnvelopeID string          `json:"envelope_id"`
				Payload    json.RawMessage `json:"payload"`
			}
			if json.Unmarshal(msg, &ack) == nil && ack.EnvelopeID != "" {
				s.mu.Lock()
				s.acks = append(s.acks, ack.EnvelopeID)
				if len(ack.Payload) > 0 && string(ack.Payload) != "null" {
					s.ackPayloads[ack.EnvelopeID] = ack.Payload
				}
				close(s.changed)
				s.changed = make(chan struct{})
				s.mu.Unlock()
			}
		}
	}()
	_ = conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"hello","num_connections":1}`))
	for {
		select {
		case <-done:
			return
		case b := <-s.envelopes:
			if err := conn.WriteMessage(websocket.TextMessage, b); err != nil {
				return
			}
		}
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/ws" {
		s.socket(w, r)
		return
	}
	method := strings.TrimPrefix(r.URL.Path, "/api/")
	if err := r.ParseMultipartForm(1 << 20); err != nil && err != http.ErrNotMultipart {
		reply(w, map[string]any{"ok": false, "error": "invalid_form_data"})
		return
	}
	form := map[string]string{}
	for k, v := range r.Form {
		if len(v) > 0 && k != "token" {
			form[k] = v[0]
		}
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		// views.* send JSON: its top level fields are recorded as a form's,
		// objects and arrays as JSON text.
		var body map[string]json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil && !errors.Is(err, io.EOF) {
			reply(w, map[string]any{"ok": false, "error": "invalid_json"})
			return
		}
		for k, v := range body {
			var str string
			if json.Unmarshal(v, &str) == nil {
				form[k] = str
			} else {
				form[k] = string(v)
			}
		}
	}
	token := r.Form.Get("token")
	if token == "" {
		token = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	s.mu.Lock()
	s.calls = append(s.calls, Call{Method: method, Form: form})
	s.seq++
	seq := s.seq
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	if token == "" {
		reply(w, map[string]any{"ok": false, "error": "not_authed"})
		return
	}
	switch method {
	case "apps.connections.open":
		reply(w, map[string]any{"ok": true, "url": "ws" + strings.TrimPrefix(s.srv.URL, "http") + "/ws"})
	case "chat.postMessage":
		if form["channel"] == "" {
			reply(w, map[string]any{"ok": false, "error": "channel_not_found"})
			return
		}
		reply(w, map[string]any{"ok": true, "channel": channelID(form["channel"]), "ts": fmt.Sprintf("1700000000.%06d", seq)})
	case "chat.update":
		reply(w, map[string]any{"ok": true, "channel": form["channel"], "ts": form["ts"], "text": form["text"]})
	case "views.open":
		if form["trigger_id"] == "" {
			reply(w, map[string]any{"ok": false, "error": "invalid_trigger_id"})
			return
		}
		var view map[string]any
		_ = json.Unmarshal([]byte(form["view"]), &view)
		if view == nil {
			view = map[string]any{}
		}
		view["id"] = fmt.Sprintf("V%06d", seq)
		reply(w, map[string]any{"ok": true, "view": view})
	case "chat.postEphemeral":
		reply(w, map[string]any{"ok": true, "message_ts": fmt.Sprintf("1700000001.%06d", seq)})
	case "users.info":
		s.mu.Lock()
		u, ok := s.users[form["user"]]
		s.mu.Unlock()
		if !ok {
			reply(w, map[string]any{"ok": false, "error": "user_not_found"})
			return
		}
		reply(w, map[string]any{"ok": true, "user": map[string]any{"id": u.ID, "name": u.Name,
			"profile": map[string]any{"email": u.Email}}})
	case "usergroups.list":
		var gs []map[string]any
		for _, g := range s.groups {
			gs = append(gs, map[string]any{"id": g.ID, "handle": g.Handle, "name": g.Handle})
		}
		reply(w, map[string]any{"ok": true, "usergroups": gs})
	case "usergroups.users.list":
		for _, g := range s.groups {
			if g.ID == form["usergroup"] {
				reply(w, map[string]any{"ok": true, "users": g.Members})
				return
			}
		}
		reply(w, map[string]any{"ok": false, "error": "no_such_subteam"})
	default:
		reply(w, map[string]any{"ok": false, "error": "unknown_method"})
	}
}

// channelID turns a channel name into a stable fake id, as Slack answers
// with ids.
func channelID(ch string) string {
	if !strings.HasPrefix(ch, "#") {
		return ch
	}
	return "C" + strings.ToUpper(strings.NewReplacer("#", "", "-", "", "_", "").Replace(ch))
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
