package policy_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/starbook/starbook/policy"
	sbruntime "github.com/starbook/starbook/runtime"
)

// BenchmarkOnEffect is what one effect costs with the example policy
// loaded, judged against a history of 20 steps.
func BenchmarkOnEffect(b *testing.B) {
	files, err := policy.ReadFiles("../policies/examples")
	if err != nil {
		b.Fatal(err)
	}
	set, err := policy.Load(files)
	if err != nil {
		b.Fatal(err)
	}
	var history []*sbruntime.Event
	for i := range 20 {
		history = append(history, &sbruntime.Event{Position: strconv.Itoa(i + 1), Kind: sbruntime.KindCall, Name: "noop",
			Result: []byte("null"), StartedAt: time.Unix(0, 0), EndedAt: time.Unix(0, 0)})
	}
	eff := &policy.Effect{Kind: "http", Method: "DELETE", Host: "db.prod.example.com", URL: "https://db.prod.example.com/x",
		Runbook: "r", Execution: "e", Position: "21"}
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if d, err := set.OnEffect(ctx, eff, history); err != nil || d == nil {
			b.Fatalf("OnEffect = %v, %v; want a denial", d, err)
		}
	}
}
