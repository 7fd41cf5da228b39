package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
)

// Role is what a token holder may do; see the package documentation.
type Role string

// The roles.
const (
	Viewer   Role = "viewer"
	Operator Role = "operator"
	Approver Role = "approver"
	Admin    Role = "admin"
)

// Roles lists every role, least powerful first.
var Roles = []Role{Viewer, Operator, Approver, Admin}

// Permission is one kind of action an API route needs.
type Permission string

// The permissions.
const (
	Read     Permission = "read"
	Run      Permission = "run"
	Cancel   Permission = "cancel"
	Signal   Permission = "signal"
	Decide   Permission = "decide"
	DecideAs Permission = "decide_as"
	Apply    Permission = "apply"
	Audit    Permission = "audit"
	Snapshot Permission = "snapshot"
	Pause    Permission = "pause"
	Force    Permission = "force"
)

// permissions is the table in the package documentation.
var permissions = map[Role][]Permission{
	Viewer:   {Read},
	Operator: {Read, Run, Cancel, Signal, Pause},
	Approver: {Read, Decide},
	Admin:    {Read, Run, Cancel, Signal, Pause, Decide, DecideAs, Apply, Audit, Snapshot, Force},
}

// Allowed reports whether role r has permission p.
func Allowed(r Role, p Permission) bool { return slices.Contains(permissions[r], p) }

// Permissions returns what role r may do.
func Permissions(r Role) []Permission { return slices.Clone(permissions[r]) }

// ParseRole returns the role named s.
func ParseRole(s string) (Role, error) {
	r := Role(strings.ToLower(strings.TrimSpace(s)))
	if _, ok := permissions[r]; !ok {
		return "", fmt.Errorf("unknown role %q: want viewer, operator, approver or admin", s)
	}
	return r, nil
}

// Principal is an authenticated caller.
type Principal struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
}

// Can reports whether p has permission perm.
func (p Principal) Can(perm Permission) bool { return Allowed(p.Role, perm) }

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal ctx carries, if any.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// Token is one configured token: its holder's name and role and the SHA-256
// of the token, in hex.
type Token struct {
	Name   string `json:"name"`
	Role   Role   `json:"role"`
	SHA256 string `json:"sha256"`
}

// Hash returns the hex SHA-256 of a token: what a token file stores.
func Hash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// NewToken returns a fresh random token (256 bits, URL-safe base64 with a
// "sb_" prefix, so that it is recognisable in a leak scan).
func NewToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand never fails on supported platforms
	return "sb_" + base64.RawURLEncoding.EncodeToString(b)
}

// MinTokenLength is the shortest token accepted from the environment: a
// token is a password nobody types, so it can be long.
const MinTokenLength = 16

// entry is a token as an Authenticator keeps it.
type entry struct {
	hash      [sha256.Size]byte
	principal Principal
}

// Authenticator checks bearer tokens. The zero value and nil accept nothing;
// use [New]. It is safe for concurrent use (it is immutable).
type Authenticator struct {
	entries []entry
}

// New returns an authenticator over tokens, after checking that names are
// set and unique, roles known and hashes 64 hex digits, all distinct.
func New(tokens []Token) (*Authenticator, error) {
	a := &Authenticator{}
	names := map[string]bool{}
	hashes := map[[sha256.Size]byte]bool{}
	for i, t := range tokens {
		name := strings.TrimSpace(t.Name)
		switch {
		case name == "":
			return nil, fmt.Errorf("token %d: a name is required", i+1)
		case !validName(name):
			return nil, fmt.Errorf("token %q: names are letters, digits, '.', '-', '_' or '@' (at most 100)", name)
		case names[strings.ToLower(name)]:
			return nil, fmt.Errorf("token %q: the name is used twice", name)
		}
		role, err := ParseRole(string(t.Role))
		if err != nil {
			return nil, fmt.Errorf("token %q: %w", name, err)
		}
		raw, err := hex.DecodeString(strings.TrimSpace(t.SHA256))
		if err != nil || len(raw) != sha256.Size {
			return nil, fmt.Errorf("token %q: sha256 must be 64 hex digits (starbook token hash)", name)
		}
		var h [sha256.Size]byte
		copy(h[:], raw)
		if hashes[h] {
			return nil, fmt.Errorf("token %q: the same token is configured twice", name)
		}
		names[strings.ToLower(name)], hashes[h] = true, true
		a.entries = append(a.entries, entry{hash: h, principal: Principal{Name: name, Role: role}})
	}
	return a, nil
}

func validName(s string) bool {
	if len(s) > 100 {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case r == '.' || r == '-' || r == '_' || r == '@':
		default:
			return false
		}
	}
	return true
}

// Enabled reports whether a has any token: without one, auth is off.
func (a *Authenticator) Enabled() bool { return a != nil && len(a.entries) > 0 }

// Len returns how many tokens a knows.
func (a *Authenticator) Len() int {
	if a == nil {
		return 0
	}
	return len(a.entries)
}

// Authenticate returns the holder of token. The token's hash is compared
// with every configured hash in constant time, so the time taken says
// nothing about which, if any, matched.
func (a *Authenticator) Authenticate(token string) (Principal, bool) {
	if a == nil || token == "" {
		return Principal{}, false
	}
	h := sha256.Sum256([]byte(token))
	var found Principal
	matched := 0
	for _, e := range a.entries {
		if subtle.ConstantTimeCompare(h[:], e.hash[:]) == 1 {
			found = e.principal
			matched = 1
		}
	}
	return found, matched == 1
}

// Errors of [Authenticator.Request]: 401 for both.
var (
	ErrNoToken      = errors.New("authentication required: send Authorization: Bearer <token>")
	ErrInvalidToken = errors.New("invalid token")
)

// Request authenticates r's Authorization: Bearer header.
func (a *Authenticator) Request(r *http.Request) (Principal, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return Principal{}, ErrNoToken
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return Principal{}, fmt.Errorf("unsupported Authorization scheme: want Bearer <token>")
	}
	p, ok := a.Authenticate(strings.TrimSpace(token))
	if !ok {
		return Principal{}, ErrInvalidToken
	}
	return p, nil
}

// File is the token file's shape (YAML or JSON):
//
//	tokens:
//	  - name: alice
//	    role: operator
//	    sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
type File struct {
	Tokens []Token `json:"tokens"`
}

// LoadFile reads a token file, strictly: unknown fields, duplicate keys and
// plaintext tokens are refused.
func LoadFile(path string) ([]Token, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth file: %w", err)
	}
	tokens, err := ParseFile(data)
	if err != nil {
		return nil, fmt.Errorf("auth file %s: %w", path, err)
	}
	return tokens, nil
}

// ParseFile decodes a token file's contents (YAML or JSON): the tokens of
// an auth file (see [ParseConfig]).
func ParseFile(data []byte) ([]Token, error) {
	c, err := ParseConfig(data)
	if err != nil {
		return nil, err
	}
	return c.Tokens, nil
}

// EnvTokens is the environment variable of [ParseEnv].
const EnvTokens = "STARBOOK_TOKENS"

// ParseEnv reads tokens given as "name:role:token" entries separated by
// commas or whitespace, hashing each token at once.
func ParseEnv(value string) ([]Token, error) {
	var out []Token
	for _, item := range strings.FieldsFunc(value, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\n' || r == '\t' || r == '\r'
	}) {
		name, rest, ok1 := strings.Cut(item, ":")
		role, token, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 || name == "" || token == "" {
			return nil, fmt.Errorf("%s: entry %d: want name:role:token", EnvTokens, len(out)+1)
		}
		if len(token) < MinTokenLength {
			return nil, fmt.Errorf("%s: token of %q is shorter than %d characters", EnvTokens, name, MinTokenLength)
		}
		out = append(out, Token{Name: name, Role: Role(role), SHA256: Hash(token)})
	}
	return out, nil
}
