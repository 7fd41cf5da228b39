package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/starbook/starbook/api/apitest"
)

func TestHealthcheck(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		health   error
		wantCode int
		want     string // in stdout (code 0) or stderr
	}{
		{"healthy", nil, nil, 0, "/healthz: ok"},
		{"unhealthy", nil, errors.New("etcd: context deadline exceeded"), 1, "etcd: context deadline exceeded"},
		{"ready", []string{"--ready"}, nil, 0, "/readyz: ok"},
		{"not ready", []string{"--ready"}, errors.New("no quorum"), 1, "no quorum"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := &apitest.Service{HealthFunc: func(context.Context) error { return tt.health }}
			r := cli(t, svc, "", append([]string{"healthcheck"}, tt.args...)...)
			if r.code != tt.wantCode {
				t.Fatalf("code %d, want %d (stdout %q, stderr %q)", r.code, tt.wantCode, r.stdout, r.stderr)
			}
			out := r.stdout
			if tt.wantCode != 0 {
				out = r.stderr
			}
			if !strings.Contains(out, tt.want) {
				t.Errorf("output %q lacks %q", out, tt.want)
			}
		})
	}
}
