package triggers

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// WebhookTrigger starts its runbook on POST /hooks/<Name>, authenticated by an
// HMAC-SHA256 signature of the body with the secret in the environment
// variable SecretEnv, or by a bearer token in TokenEnv.
type WebhookTrigger struct {
	Name         string `json:"name"`
	SecretEnv    string `json:"secret_env,omitempty"`
	TokenEnv     string `json:"token_env,omitempty"`
	MaxBodyBytes int64  `json:"max_body_bytes,omitempty"` // 0 means DefaultWebhookBody
	Policy       Policy `json:"policy,omitzero"`
	Where        string `json:"where,omitempty"`
}

// Webhook limits, headers and dedup lifetime.
const (
	DefaultWebhookBody = 256 << 10
	// MaxWebhookBody bounds max_body_bytes: the body is stored as the
	// execution's input, which must fit one etcd request.
	MaxWebhookBody = 900 << 10
	// WebhookDedupTTL is how long an Idempotency-Key is remembered.
	WebhookDedupTTL = 24 * time.Hour
	// MaxIdempotencyKey is the longest Idempotency-Key accepted, in bytes.
	MaxIdempotencyKey = 256

	SignatureHeader       = "X-Starbook-Signature" // sha256=<hex HMAC-SHA256 of the body>
	GitHubSignatureHeader = "X-Hub-Signature-256"  // GitHub's form of the same
	IdempotencyHeader     = "Idempotency-Key"
)

// Limit returns the trigger's body size cap in bytes.
func (t *WebhookTrigger) Limit() int64 {
	if t.MaxBodyBytes > 0 {
		return t.MaxBodyBytes
	}
	return DefaultWebhookBody
}

// AuthError is a request the trigger does not accept (HTTP 401). Its message
// says what is missing or wrong, never the expected value.
type AuthError struct{ Msg string }

func (e *AuthError) Error() string { return e.Msg }

// ConfigError is a trigger this node cannot check: its secret or token is not
// set in the node's environment (HTTP 500: not the caller's fault).
type ConfigError struct {
	Hook string
	Env  string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("webhook %q is not configured on this node: environment variable %s is not set", e.Hook, e.Env)
}

// Authenticate checks the request's signature or bearer token against the
// secret the trigger names, reading it with env. It compares in constant time
// and returns how the request was authenticated ("hmac" or "bearer").
func (t *WebhookTrigger) Authenticate(h http.Header, body []byte, env func(string) (string, bool)) (string, error) {
	if t.SecretEnv != "" {
		secret, ok := env(t.SecretEnv)
		if !ok || secret == "" {
			return "", &ConfigError{Hook: t.Name, Env: t.SecretEnv}
		}
		return "hmac", VerifySignature(h, body, secret)
	}
	if t.TokenEnv != "" {
		token, ok := env(t.TokenEnv)
		if !ok || token == "" {
			return "", &ConfigError{Hook: t.Name, Env: t.TokenEnv}
		}
		return "bearer", VerifyBearer(h, token)
	}
	// Declarations without either are refused at apply; never accept one.
	return "", &AuthError{Msg: "webhook has no authentication configured"}
}

// Sign returns the X-Starbook-Signature value of body under secret.
func Sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// VerifySignature checks X-Starbook-Signature, or GitHub's X-Hub-Signature-256,
// against the HMAC-SHA256 of body under secret.
func VerifySignature(h http.Header, body []byte, secret string) error {
	sig := h.Get(SignatureHeader)
	if sig == "" {
		sig = h.Get(GitHubSignatureHeader)
	}
	if sig == "" {
		return &AuthError{Msg: fmt.Sprintf("missing signature: send %s: sha256=<hex HMAC-SHA256 of the body>", SignatureHeader)}
	}
	algo, hexSig, ok := strings.Cut(strings.TrimSpace(sig), "=")
	if !ok || !strings.EqualFold(algo, "sha256") {
		return &AuthError{Msg: "malformed signature: want sha256=<64 hex digits>"}
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || len(got) != sha256.Size {
		return &AuthError{Msg: "malformed signature: want sha256=<64 hex digits>"}
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return &AuthError{Msg: "signature does not match the body"}
	}
	return nil
}

// VerifyBearer checks Authorization: Bearer <token>.
func VerifyBearer(h http.Header, token string) error {
	auth := h.Get("Authorization")
	if auth == "" {
		return &AuthError{Msg: "missing Authorization: Bearer <token>"}
	}
	scheme, got, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return &AuthError{Msg: "unsupported Authorization scheme: want Bearer"}
	}
	if !EqualSecret(strings.TrimSpace(got), token) {
		return &AuthError{Msg: "invalid bearer token"}
	}
	return nil
}

// EqualSecret compares two secrets in constant time, whatever their lengths.
func EqualSecret(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// validIdempotencyKey accepts printable ASCII up to MaxIdempotencyKey bytes.
func validIdempotencyKey(k string) bool {
	if k == "" || len(k) > MaxIdempotencyKey {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// keySegment makes an untrusted string safe as one etcd key segment.
func keySegment(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}
