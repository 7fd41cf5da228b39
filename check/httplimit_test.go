package check_test

import (
	"strings"
	"testing"
	"time"

	"github.com/starbook/starbook/downstream"
	"github.com/starbook/starbook/triggers"
)

// TestHTTPLimitDeclarations: http_limit() is checked as apply checks it;
// an error names the file:line of the call and nothing is stored. A valid
// one is stored with the bundle's declarations, defaults filled in.
func TestHTTPLimitDeclarations(t *testing.T) {
	main := "\ndef main(event):\n    pass\n"
	def := func(l downstream.Limit) []downstream.Limit { return []downstream.Limit{l} }
	tests := []struct {
		name string
		src  string
		want string // the error, as a prefix; "" for valid
		// limits are what a valid declaration stores.
		limits []downstream.Limit
	}{
		{"all", `http_limit("api.example.com", rate = "10/s", concurrency = 5, failures = 3, cooldown = "1m", retry_ratio = 0.1)`, "",
			def(downstream.Limit{Host: "api.example.com", Rate: "10/s", PerSecond: 10, Concurrency: 5, Failures: 3, Cooldown: time.Minute, RetryRatio: 0.1, Where: "a.star:1:11"})},
		{"defaults", `http_limit("api.example.com")`, "",
			def(downstream.Limit{Host: "api.example.com", Failures: 5, Cooldown: 30 * time.Second, RetryRatio: 0.2, Where: "a.star:1:11"})},
		{"two hosts", "http_limit(\"a.example.com\", rate = \"60/m\")\nhttp_limit(\"b.example.com\", concurrency = 2)", "",
			[]downstream.Limit{
				{Host: "a.example.com", Rate: "60/m", PerSecond: 1, Failures: 5, Cooldown: 30 * time.Second, RetryRatio: 0.2, Where: "a.star:1:11"},
				{Host: "b.example.com", Concurrency: 2, Failures: 5, Cooldown: 30 * time.Second, RetryRatio: 0.2, Where: "a.star:2:11"}}},
		{"scheme", `http_limit("https://api.example.com")`, "a.star:1:11: http_limit: host \"https://api.example.com\": give the host name alone, without a scheme", nil},
		{"rate", `http_limit("api.example.com", rate = "10/h")`, "a.star:1:11: http_limit: rate \"10/h\": the period must be s or m", nil},
		{"rate not a string", `http_limit("api.example.com", rate = 10)`, "a.star:1:11: http_limit: for parameter \"rate\": got int, want string", nil},
		{"concurrency zero", `http_limit("api.example.com", concurrency = 0)`, "a.star:1:11: http_limit: concurrency=0: want at least 1", nil},
		{"concurrency string", `http_limit("api.example.com", concurrency = "5")`, "a.star:1:11: http_limit: concurrency: want an integer, got string", nil},
		{"failures", `http_limit("api.example.com", failures = 0)`, "a.star:1:11: http_limit: failures=0: want at least 1", nil},
		{"cooldown", `http_limit("api.example.com", cooldown = "10ms")`, "a.star:1:11: http_limit: cooldown=10ms: want at least 1s", nil},
		{"ratio", `http_limit("api.example.com", retry_ratio = 2)`, "a.star:1:11: http_limit: retry_ratio=2: want between 0 and 1", nil},
		{"unknown", `http_limit("api.example.com", burst = 3)`, "a.star:1:11: http_limit: unexpected keyword argument \"burst\"", nil},
		{"twice", "http_limit(\"api.example.com\")\nhttp_limit(\"API.example.com\", rate = \"1/s\")",
			"a.star:2:11: http_limit: a runbook declares one limit per host: api.example.com already declared at a.star:1:11", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := run(map[string]string{"a.star": tt.src + main}, nil)
			err := res.Err()
			if tt.want != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
					t.Fatalf("error %v, want %q", err, tt.want)
				}
				if len(res.Bundles) != 0 {
					t.Errorf("a bad declaration left %d bundles to store", len(res.Bundles))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			set, err := triggers.DecodeSet(res.Bundles[0].Triggers)
			if err != nil {
				t.Fatal(err)
			}
			if len(set.HTTPLimits) != len(tt.limits) {
				t.Fatalf("stored %s, want %d limits", res.Bundles[0].Triggers, len(tt.limits))
			}
			for i, l := range set.HTTPLimits {
				if *l != tt.limits[i] {
					t.Errorf("limit %d: %+v, want %+v", i, *l, tt.limits[i])
				}
			}
			if !set.Empty() {
				t.Errorf("an http_limit alone declares triggers: %s", res.Bundles[0].Triggers)
			}
		})
	}
}

// TestHTTPLimitInARunbookThatDoesNotCompile: a literal http_limit() is
// still checked when the runbook has another error.
func TestHTTPLimitInARunbookThatDoesNotCompile(t *testing.T) {
	res := run(map[string]string{"a.star": "http_limit(\"api.example.com\", rate = \"5/h\")\ndef main(event):\n    return undefined_thing\n"}, nil)
	got := strings.Join(findings(res), "\n")
	for _, want := range []string{"a.star:1:11: http_limit: rate \"5/h\": the period must be s or m", "a.star:3:12: undefined: undefined_thing"} {
		if !strings.Contains(got, want) {
			t.Errorf("findings\n%s\ndo not contain %q", got, want)
		}
	}
}
