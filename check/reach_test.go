package check_test

import (
	"os"
	"reflect"
	"testing"

	"github.com/starbook/starbook/check"
)

func TestFactsReach(t *testing.T) {
	src, err := os.ReadFile("testdata/reach.star")
	if err != nil {
		t.Fatal(err)
	}
	r := run(map[string]string{"reach.star": string(src)}, map[string]string{"K8S_TOKEN": "x", "SSH_KEY": "k", "KNOWN_HOSTS": "h"})
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	f := r.Facts["reach"]
	if f == nil {
		t.Fatalf("no facts for reach: %v", r.Facts)
	}
	want := []check.Effect{
		{Kind: "http", Method: "DELETE", Host: "*", File: "reach.star", Line: 3},
		{Kind: "slack", Channel: "#db", File: "reach.star", Line: 4},
		{Kind: "http", Method: "GET", Host: "k8s-proxy", File: "reach.star", Line: 7},
		{Kind: "http", Method: "POST", Host: "api.prod.example.com", File: "reach.star", Line: 8},
		{Kind: "slack", Channel: "*", File: "reach.star", Line: 10},
		{Kind: "ssh", Host: "db1.prod", User: "ops", File: "reach.star", Line: 12},
		{Kind: "ssh", Host: "*", User: "*", File: "reach.star", Line: 13},
		{Kind: "runbook", Runbook: "disk_cleanup", File: "reach.star", Line: 14},
	}
	if !reflect.DeepEqual(f.Effects, want) {
		t.Errorf("effects\n got %+v\nwant %+v", f.Effects, want)
	}
	if !reflect.DeepEqual(f.Secrets, []string{"K8S_TOKEN", "KNOWN_HOSTS", "SSH_KEY"}) {
		t.Errorf("secrets %v, want [K8S_TOKEN KNOWN_HOSTS SSH_KEY]", f.Secrets)
	}
}
