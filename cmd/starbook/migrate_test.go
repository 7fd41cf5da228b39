package main

import (
	"context"
	"strings"
	"testing"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api/apitest"
	sbruntime "github.com/starbook/starbook/runtime"
)

// migrateService is a fake service that also applies with options.
type migrateService struct {
	*apitest.Service
	applyWith func(ctx context.Context, files map[string]string, o starbook.ApplyOptions) (*starbook.ApplyResult, error)
}

func (s *migrateService) ApplyWith(ctx context.Context, files map[string]string, o starbook.ApplyOptions) (*starbook.ApplyResult, error) {
	return s.applyWith(ctx, files, o)
}

func TestApplyMigrateCLI(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"mig.star": "src"})
	report := []starbook.MigrationResult{
		{Execution: "E1", Runbook: "mig", Status: sbruntime.StatusWaiting, From: "v1", To: "v2", Result: starbook.MigrationMigrated},
		{Execution: "E2", Runbook: "mig", Status: sbruntime.StatusWaiting, From: "v1", To: "v2", Result: starbook.MigrationIncompatible,
			Position: "1", Where: "mig.star:6:9", Expected: "call one", Actual: "call other"},
		{Execution: "E3", Runbook: "mig", Status: sbruntime.StatusRunning, From: "v1", To: "v2", Result: starbook.MigrationRunning},
	}
	tests := []struct {
		name    string
		args    []string
		dryRun  bool
		want    []string // lines or parts of lines of stdout
		wantErr string
	}{
		{name: "migrate", args: []string{"--migrate"}, want: []string{"applied mig v2",
			"ID  STATUS", "E1  waiting  v1    migrated", "E2  waiting  v1    incompatible  1         mig.star:6:9  call one  call other",
			"1 migrated, 1 incompatible, 1 running", "apply --migrate again"}},
		{name: "dry run", args: []string{"--migrate", "--dry-run"}, dryRun: true, want: []string{"would apply mig v2"}},
		{name: "dry run alone", args: []string{"--dry-run"}, wantErr: "--dry-run needs --migrate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *starbook.ApplyOptions
			svc := &migrateService{Service: &apitest.Service{}, applyWith: func(_ context.Context, _ map[string]string, o starbook.ApplyOptions) (*starbook.ApplyResult, error) {
				got = &o
				return &starbook.ApplyResult{DryRun: o.DryRun, Runbooks: []starbook.RunbookVersion{{Name: "mig", Version: "v2", CreatedAt: t0}},
					Migration: report}, nil
			}}
			res := cli(t, svc, "", append([]string{"apply", dir}, tt.args...)...)
			if tt.wantErr != "" {
				if res.code != 1 || !strings.Contains(res.stderr, tt.wantErr) || res.requests != 0 {
					t.Errorf("exit %d, stderr %q, %d requests; want 1, %q and none", res.code, res.stderr, res.requests, tt.wantErr)
				}
				return
			}
			if res.code != 0 {
				t.Fatalf("exit %d: %s", res.code, res.stderr)
			}
			if got == nil || !got.Migrate || got.DryRun != tt.dryRun {
				t.Errorf("options %+v, want migrate with dry run %v", got, tt.dryRun)
			}
			for _, w := range tt.want {
				if !strings.Contains(res.stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, res.stdout)
				}
			}
		})
	}
}
