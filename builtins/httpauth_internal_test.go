package builtins

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.starlark.net/starlark"
)

// TestAWSSigV4SuiteVectors: aws_sigv4 signs as AWS's published Signature
// Version 4 test suite says (get-vanilla, get-vanilla-query-order-key-case,
// post-vanilla, post-x-www-form-urlencoded: credentials AKIDEXAMPLE,
// 2015-08-30T12:36:00Z, us-east-1, service "service").
func TestAWSSigV4SuiteVectors(t *testing.T) {
	pre := New(Options{Secrets: func(name string) (string, bool) {
		return "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", name == "AWS_SECRET"
	}})
	v, err := starlark.Eval(&starlark.Thread{}, "auth",
		`aws_sigv4(region = "us-east-1", service = "service", access_key = "AKIDEXAMPLE", secret_key = secret("AWS_SECRET"))`, pre)
	if err != nil {
		t.Fatal(err)
	}
	auth := v.(*awsSigV4)
	if s := auth.String(); strings.Contains(s, "wJalr") || !strings.Contains(s, `access_key = "AKIDEXAMPLE"`) {
		t.Errorf("shown as %s", s)
	}
	const credential = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
	tests := []struct {
		name, method, url, contentType, body, want string
	}{
		{"get-vanilla", "GET", "https://example.amazonaws.com/", "", "",
			"SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
		{"get-vanilla-query-order-key-case", "GET", "https://example.amazonaws.com/?Param2=value2&Param1=value1", "", "",
			"SignedHeaders=host;x-amz-date, Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
		{"post-vanilla", "POST", "https://example.amazonaws.com/", "", "",
			"SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
		{"post-x-www-form-urlencoded", "POST", "https://example.amazonaws.com/", "application/x-www-form-urlencoded", "Param1=value1",
			"SignedHeaders=content-type;host;x-amz-date, Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"},
	}
	at := time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, tt.url, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = 0 // the suite's requests carry no Content-Length
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			if err := auth.sign(context.Background(), req, sha256Hex([]byte(tt.body)), at); err != nil {
				t.Fatal(err)
			}
			if got := req.Header.Get("Authorization"); got != credential+tt.want {
				t.Errorf("Authorization:\n%s\nwant\n%s", got, credential+tt.want)
			}
			if got := req.Header.Get("X-Amz-Date"); got != "20150830T123600Z" {
				t.Errorf("X-Amz-Date %q", got)
			}
		})
	}
}
