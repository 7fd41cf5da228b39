package auth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// Person is someone who uses starbook without a token of their own: through
// single sign-on (matched by email) or Slack (matched by Slack user id or
// email). Name is the identity runs, approvals and the audit log record.
type Person struct {
	Name    string `json:"name"`
	Role    Role   `json:"role"`
	Email   string `json:"email,omitempty"`
	SlackID string `json:"slack_id,omitempty"`
}

// GroupRole grants a role to the members of an identity provider's group
// (the OpenID Connect groups claim).
type GroupRole struct {
	Group string `json:"group"`
	Role  Role   `json:"role"`
}

// Config is the whole auth file: tokens, people and groups.
//
//	tokens:
//	  - {name: ci, role: operator, sha256: 9f86d0...}
//	people:
//	  - {name: alice, role: approver, email: alice@example.com, slack_id: U024BE7LH}
//	groups:
//	  - {group: sre-oncall, role: operator}
type Config struct {
	Tokens []Token     `json:"tokens"`
	People []Person    `json:"people,omitempty"`
	Groups []GroupRole `json:"groups,omitempty"`
}

// LoadConfig reads the auth file, strictly (see [ParseConfig]).
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth file: %w", err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("auth file %s: %w", path, err)
	}
	return c, nil
}

// ParseConfig decodes an auth file's contents (YAML or JSON): unknown
// fields, duplicate keys, plaintext tokens, unknown roles and a person or
// Slack id named twice are refused.
func ParseConfig(data []byte) (*Config, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, err
	}
	var c Config
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		if strings.Contains(err.Error(), `unknown field "token"`) {
			return nil, fmt.Errorf(`a token is stored as "sha256": its hash (starbook token hash), never the token itself`)
		}
		return nil, err
	}
	if _, err := NewDirectory(c.People, c.Groups); err != nil {
		return nil, err
	}
	return &c, nil
}

// Directory maps people who sign in or use Slack to principals. The zero
// value and nil map nobody. It is immutable, so safe for concurrent use.
type Directory struct {
	people []Person
	groups []GroupRole
}

// NewDirectory checks people and groups: names valid and unique, roles
// known, an email or Slack id given to one person only.
func NewDirectory(people []Person, groups []GroupRole) (*Directory, error) {
	d := &Directory{}
	names, emails, slackIDs := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for i, p := range people {
		p.Name = strings.TrimSpace(p.Name)
		p.Email = strings.ToLower(strings.TrimSpace(p.Email))
		p.SlackID = strings.TrimSpace(p.SlackID)
		switch {
		case p.Name == "":
			return nil, fmt.Errorf("person %d: a name is required", i+1)
		case !validName(p.Name):
			return nil, fmt.Errorf("person %q: names are letters, digits, '.', '-', '_' or '@' (at most 100)", p.Name)
		case names[strings.ToLower(p.Name)]:
			return nil, fmt.Errorf("person %q: the name is used twice", p.Name)
		case p.Email == "" && p.SlackID == "":
			return nil, fmt.Errorf("person %q: give an email or a slack_id to recognise them by", p.Name)
		case p.Email != "" && emails[p.Email]:
			return nil, fmt.Errorf("person %q: email %s is given to two people", p.Name, p.Email)
		case p.SlackID != "" && slackIDs[p.SlackID]:
			return nil, fmt.Errorf("person %q: slack_id %s is given to two people", p.Name, p.SlackID)
		}
		role, err := ParseRole(string(p.Role))
		if err != nil {
			return nil, fmt.Errorf("person %q: %w", p.Name, err)
		}
		p.Role = role
		names[strings.ToLower(p.Name)] = true
		emails[p.Email], slackIDs[p.SlackID] = p.Email != "", p.SlackID != ""
		d.people = append(d.people, p)
	}
	seen := map[string]bool{}
	for i, g := range groups {
		g.Group = strings.TrimSpace(g.Group)
		if g.Group == "" {
			return nil, fmt.Errorf("group %d: a group name is required", i+1)
		}
		if seen[g.Group] {
			return nil, fmt.Errorf("group %q: listed twice", g.Group)
		}
		role, err := ParseRole(string(g.Role))
		if err != nil {
			return nil, fmt.Errorf("group %q: %w", g.Group, err)
		}
		g.Role, seen[g.Group] = role, true
		d.groups = append(d.groups, g)
	}
	return d, nil
}

// Empty reports whether d maps nobody.
func (d *Directory) Empty() bool { return d == nil || len(d.people)+len(d.groups) == 0 }

// BySlack returns the person with Slack user id, or else with email (the
// Slack profile's); false for someone the auth file does not name.
func (d *Directory) BySlack(userID, email string) (Principal, bool) {
	if d == nil {
		return Principal{}, false
	}
	for _, p := range d.people {
		if p.SlackID != "" && p.SlackID == userID {
			return Principal{Name: p.Name, Role: p.Role}, true
		}
	}
	return d.byEmail(email)
}

func (d *Directory) byEmail(email string) (Principal, bool) {
	email = strings.ToLower(strings.TrimSpace(email))
	if email == "" {
		return Principal{}, false
	}
	for _, p := range d.people {
		if p.Email == email {
			return Principal{Name: p.Name, Role: p.Role}, true
		}
	}
	return Principal{}, false
}

// BySignIn returns who signed in with email and groups (the identity
// provider's verified claims): the person with that email, with the most
// powerful of their own role and their groups' roles; or, for someone only
// their groups name, a principal named by the email. False when neither
// names them.
func (d *Directory) BySignIn(email string, groups []string) (Principal, bool) {
	if d == nil {
		return Principal{}, false
	}
	p, named := d.byEmail(email)
	for _, g := range d.groups {
		if !slices.Contains(groups, g.Group) {
			continue
		}
		if !named {
			name := strings.ToLower(strings.TrimSpace(email))
			if !validName(name) {
				return Principal{}, false
			}
			p, named = Principal{Name: name, Role: g.Role}, true
			continue
		}
		p.Role = stronger(p.Role, g.Role)
	}
	return p, named
}

// stronger returns the role with more permissions; for two of as many (an
// operator and an approver), a.
func stronger(a, b Role) Role {
	if len(permissions[b]) > len(permissions[a]) {
		return b
	}
	return a
}
