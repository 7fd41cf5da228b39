package main

import (
	"strings"
	"testing"

	"github.com/starbook/starbook/api/apitest"
)

func TestDoc(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"doc", "http.post"}, 0, []string{"http.post(url, json=", "only inside `call`"}},
		{[]string{"doc", "trigger.alert"}, 0, []string{"trigger.alert(**labels", "matchers"}},
		{[]string{"doc", "k8s.rollout_restart"}, 0, []string{"k8s.rollout_restart(namespace, deployment", `load("@std/k8s.star"`, "kubectl rollout restart"}},
		{[]string{"doc", "http"}, 0, []string{"Members:", "http.delete", "http.request"}},
		{[]string{"doc"}, 0, []string{"call ", "wait_for_approval ", "k8s.wait_ready ", "trigger.cron "}},
		{[]string{"doc", "post"}, 1, []string{"did you mean http.post, slack.post?"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := cli(t, &apitest.Service{}, "", tt.args...)
			if r.code != tt.code || r.requests != 0 {
				t.Fatalf("code %d, %d requests, stderr %q: want %d and no request", r.code, r.requests, r.stderr, tt.code)
			}
			for _, want := range tt.want {
				if !strings.Contains(r.stdout+r.stderr, want) {
					t.Errorf("output lacks %q:\n%s%s", want, r.stdout, r.stderr)
				}
			}
		})
	}
}
