package auth_test

import (
	"strings"
	"testing"

	"github.com/starbook/starbook/auth"
)

const peopleFile = `
tokens:
  - {name: ci, role: operator, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}
people:
  - {name: alice, role: approver, email: Alice@Example.com, slack_id: U024BE7LH}
  - {name: bob, role: viewer, email: bob@example.com}
groups:
  - {group: sre-oncall, role: operator}
  - {group: admins, role: admin}
`

func TestDirectory(t *testing.T) {
	c, err := auth.ParseConfig([]byte(peopleFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Tokens) != 1 {
		t.Fatalf("tokens %v", c.Tokens)
	}
	d, err := auth.NewDirectory(c.People, c.Groups)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		lookup func() (auth.Principal, bool)
		want   string // "name role", or "" for nobody
	}{
		{"slack by id", func() (auth.Principal, bool) { return d.BySlack("U024BE7LH", "") }, "alice approver"},
		{"slack by email", func() (auth.Principal, bool) { return d.BySlack("U999", "bob@example.com") }, "bob viewer"},
		{"slack unmapped", func() (auth.Principal, bool) { return d.BySlack("U999", "eve@example.com") }, ""},
		{"sign-in as a person", func() (auth.Principal, bool) { return d.BySignIn("alice@example.com", nil) }, "alice approver"},
		{"sign-in, a group raises the role", func() (auth.Principal, bool) { return d.BySignIn("bob@example.com", []string{"sre-oncall"}) }, "bob operator"},
		{"sign-in by group only", func() (auth.Principal, bool) { return d.BySignIn("carol@example.com", []string{"admins"}) }, "carol@example.com admin"},
		{"sign-in unmapped", func() (auth.Principal, bool) { return d.BySignIn("eve@example.com", []string{"other"}) }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := tt.lookup()
			got := ""
			if ok {
				got = p.Name + " " + string(p.Role)
			}
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseConfigRefuses(t *testing.T) {
	tests := map[string]string{
		"unknown role":      "people: [{name: a, role: root, email: a@x}]",
		"no way to match":   "people: [{name: a, role: viewer}]",
		"email twice":       "people: [{name: a, role: viewer, email: a@x}, {name: b, role: viewer, email: A@x}]",
		"slack id twice":    "people: [{name: a, role: viewer, slack_id: U1}, {name: b, role: viewer, slack_id: U1}]",
		"group twice":       "groups: [{group: g, role: viewer}, {group: g, role: admin}]",
		"unknown field":     "people: [{name: a, role: viewer, email: a@x, password: x}]",
		"a plaintext token": "tokens: [{name: a, role: viewer, token: abc}]",
	}
	for name, doc := range tests {
		if _, err := auth.ParseConfig([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.TrimSpace(err.Error()) == "" {
			t.Errorf("%s: empty error", name)
		}
	}
}
