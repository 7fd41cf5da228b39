package downstream

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Defaults of a Limit's breaker and retry budget.
const (
	DefaultFailures   = 5
	DefaultCooldown   = 30 * time.Second
	DefaultRetryRatio = 0.2
)

// Limit is the protection of one host. Rate and Concurrency are
// cluster-wide; 0 means no limit of that kind.
type Limit struct {
	Host        string        `json:"host"`
	Rate        string        `json:"rate,omitempty"` // "10/s" or "600/m", as declared
	PerSecond   float64       `json:"per_second,omitempty"`
	Concurrency int           `json:"concurrency,omitempty"`
	Failures    int           `json:"failures"`    // consecutive failures that open the circuit
	Cooldown    time.Duration `json:"cooldown"`    // how long an open circuit stays open
	RetryRatio  float64       `json:"retry_ratio"` // retries allowed per first request
	// Where is the file:line of the http_limit() call, or the flag.
	Where string `json:"where,omitempty"`
}

// NewLimit validates a declaration: host a host name or IP address (no
// scheme, port or path), rate "N/s" or "N/m" or empty, concurrency >= 0 (0
// for none), failures >= 1, cooldown >= 1s, retry_ratio in [0, 1].
func NewLimit(host, rate string, concurrency, failures int, cooldown time.Duration, retryRatio float64) (*Limit, error) {
	var errs []error
	h, err := ValidHost(host)
	if err != nil {
		errs = append(errs, err)
	}
	l := &Limit{Host: h, Rate: rate, Concurrency: concurrency, Failures: failures, Cooldown: cooldown, RetryRatio: retryRatio}
	if rate != "" {
		if l.PerSecond, err = ParseRate(rate); err != nil {
			errs = append(errs, err)
		}
	}
	if concurrency < 0 {
		errs = append(errs, fmt.Errorf("concurrency=%d: want at least 1", concurrency))
	}
	if failures < 1 {
		errs = append(errs, fmt.Errorf("failures=%d: want at least 1", failures))
	}
	if cooldown < time.Second {
		errs = append(errs, fmt.Errorf("cooldown=%s: want at least 1s", cooldown))
	}
	if retryRatio < 0 || retryRatio > 1 {
		errs = append(errs, fmt.Errorf("retry_ratio=%g: want between 0 and 1", retryRatio))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return l, nil
}

// ParseRate reads "N/s" or "N/m" (N a positive integer) as requests per second.
func ParseRate(s string) (float64, error) {
	count, per, ok := strings.Cut(strings.TrimSpace(s), "/")
	n, err := strconv.Atoi(strings.TrimSpace(count))
	if !ok || err != nil || n < 1 {
		return 0, fmt.Errorf("rate %q: want N/s or N/m with N a positive integer, such as \"10/s\"", s)
	}
	switch strings.TrimSpace(per) {
	case "s":
		return float64(n), nil
	case "m":
		return float64(n) / 60, nil
	}
	return 0, fmt.Errorf("rate %q: the period must be s or m, such as \"10/s\" or \"600/m\"", s)
}

// ValidHost returns host in lower case if it is a DNS name or an IP address,
// as a URL's host without its port.
func ValidHost(host string) (string, error) {
	h := strings.ToLower(strings.TrimSpace(host))
	switch {
	case h == "":
		return "", errors.New("host is empty: want a host name such as \"api.example.com\"")
	case strings.Contains(h, "://"):
		return "", fmt.Errorf("host %q: give the host name alone, without a scheme, such as \"api.example.com\"", host)
	case strings.ContainsAny(h, "/?#@"):
		return "", fmt.Errorf("host %q: give the host name alone, without path or user, such as \"api.example.com\"", host)
	}
	if ip := net.ParseIP(strings.Trim(h, "[]")); ip != nil {
		return ip.String(), nil
	}
	if strings.Contains(h, ":") {
		return "", fmt.Errorf("host %q: give the host without a port: a limit covers every port of a host", host)
	}
	if len(h) > 253 {
		return "", fmt.Errorf("host %q: longer than 253 characters", host)
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' ||
			strings.IndexFunc(label, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') }) >= 0 {
			return "", fmt.Errorf("host %q: not a valid host name", host)
		}
	}
	return h, nil
}

// Merge combines two limits of one host, the strictest winning field by
// field: the lower rate and concurrency (a set one beats none), the fewer
// failures, the longer cooldown, the lower retry ratio.
func Merge(a, b Limit) Limit {
	out := a
	if b.PerSecond > 0 && (a.PerSecond == 0 || b.PerSecond < a.PerSecond) {
		out.PerSecond, out.Rate = b.PerSecond, b.Rate
	}
	if b.Concurrency > 0 && (a.Concurrency == 0 || b.Concurrency < a.Concurrency) {
		out.Concurrency = b.Concurrency
	}
	out.Failures = min(a.Failures, b.Failures)
	out.Cooldown = max(a.Cooldown, b.Cooldown)
	out.RetryRatio = min(a.RetryRatio, b.RetryRatio)
	if b.Where != "" && a.Where != b.Where {
		out.Where = a.Where + ", " + b.Where
	}
	return out
}

// ParseFlag reads a node-wide limit, serve --http-limit
// "host=rate,concurrency" (either may be empty: "api.example.com=10/s,5",
// "api.example.com=,2"), with the default breaker and retry budget.
func ParseFlag(s string) (*Limit, error) {
	host, spec, ok := strings.Cut(s, "=")
	if !ok {
		return nil, fmt.Errorf("--http-limit %q: want host=rate,concurrency such as api.example.com=10/s,5", s)
	}
	rate, conc, _ := strings.Cut(spec, ",")
	n := 0
	if conc = strings.TrimSpace(conc); conc != "" {
		var err error
		if n, err = strconv.Atoi(conc); err != nil || n < 1 {
			return nil, fmt.Errorf("--http-limit %q: concurrency %q: want a positive integer", s, conc)
		}
	}
	l, err := NewLimit(host, strings.TrimSpace(rate), n, DefaultFailures, DefaultCooldown, DefaultRetryRatio)
	if err != nil {
		return nil, fmt.Errorf("--http-limit %q: %w", s, err)
	}
	l.Where = "--http-limit"
	return l, nil
}
