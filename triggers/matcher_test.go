package triggers

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseMatcher(t *testing.T) {
	tests := []struct {
		in      string
		name    string
		typ     MatchType
		value   string
		wantErr string
	}{
		{in: `alertname="KubePodCrashLooping"`, name: "alertname", typ: MatchEqual, value: "KubePodCrashLooping"},
		{in: `severity!=info`, name: "severity", typ: MatchNotEqual, value: "info"},
		{in: `pod=~"api-.*"`, name: "pod", typ: MatchRegexp, value: "api-.*"},
		{in: ` pod !~ "web-.*" `, name: "pod", typ: MatchNotRegexp, value: "web-.*"},
		{in: `msg="say \"hi\"\n"`, name: "msg", typ: MatchEqual, value: "say \"hi\"\n"},
		{in: `path="C:\\dir"`, name: "path", typ: MatchEqual, value: `C:\dir`},
		{in: `code=~"5\d\d"`, name: "code", typ: MatchRegexp, value: `5\d\d`},
		{in: `empty=""`, name: "empty", typ: MatchEqual, value: ""},
		{in: `a:b="x"`, name: "a:b", typ: MatchEqual, value: "x"},
		{in: `pod`, wantErr: "want NAME OP VALUE"},
		{in: `=x`, wantErr: "want NAME OP VALUE"},
		{in: `1pod="x"`, wantErr: "want NAME OP VALUE"},
		{in: `pod=~"("`, wantErr: "invalid regular expression"},
		{in: `pod="x`, wantErr: "missing closing double quote"},
		{in: `pod="x"y"`, wantErr: "unescaped double quote"},
		{in: `pod=x"y`, wantErr: "unescaped double quote"},
		{in: "pod=\"\xff\"", wantErr: "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			m, err := ParseMatcher(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseMatcher(%q) = %v, %v; want error containing %q", tt.in, m, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.Name != tt.name || m.Type != tt.typ || m.Value != tt.value {
				t.Fatalf("ParseMatcher(%q) = %q %q %q; want %q %q %q", tt.in, m.Name, m.Type, m.Value, tt.name, tt.typ, tt.value)
			}
			// The string form parses back to the same matcher.
			b, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			var back Matcher
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatalf("unmarshal %s: %v", b, err)
			}
			if back.String() != m.String() {
				t.Fatalf("round trip: %s became %s", m, &back)
			}
		})
	}
}

func TestMatcherMatches(t *testing.T) {
	labels := map[string]string{"alertname": "KubePodCrashLooping", "pod": "api-7f9c", "severity": "critical"}
	tests := []struct {
		matcher string
		want    bool
	}{
		{`alertname="KubePodCrashLooping"`, true},
		{`alertname="KubePod"`, false},
		{`pod=~"api-.*"`, true},
		{`pod=~"api"`, false}, // anchored: no partial match
		{`pod=~"7f9c"`, false},
		{`pod=~".*7f9c"`, true},
		{`pod!~"web-.*"`, true},
		{`pod!~"api-.*"`, false},
		{`severity!="info"`, true},
		{`severity!="critical"`, false},
		{`namespace=""`, true}, // a missing label is the empty string
		{`namespace!=""`, false},
		{`namespace=~".*"`, true},
		{`namespace=~".+"`, false},
		{`severity=~"critical|warning"`, true},
		{`severity=~"crit|warning"`, false}, // the alternation is anchored as a whole
	}
	for _, tt := range tests {
		t.Run(tt.matcher, func(t *testing.T) {
			m, err := ParseMatcher(tt.matcher)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Matches(labels[m.Name]); got != tt.want {
				t.Fatalf("%s on %v = %v, want %v", tt.matcher, labels, got, tt.want)
			}
		})
	}
}

func TestNewAlert(t *testing.T) {
	a, err := NewAlert(map[string]string{"alertname": "X", "severity": "critical"}, []string{`pod=~"api-.*"`})
	if err != nil {
		t.Fatal(err)
	}
	if !a.Matches(map[string]string{"alertname": "X", "severity": "critical", "pod": "api-1"}) {
		t.Error("want a match")
	}
	if a.Matches(map[string]string{"alertname": "X", "severity": "warning", "pod": "api-1"}) {
		t.Error("want no match on another severity")
	}
	if _, err := NewAlert(nil, nil); err == nil || !strings.Contains(err.Error(), "no label matcher") {
		t.Fatalf("NewAlert with no matcher: %v", err)
	}
	if _, err := NewAlert(map[string]string{"bad-name": "x"}, nil); err == nil {
		t.Fatal("want an error for an invalid label name")
	}
}
