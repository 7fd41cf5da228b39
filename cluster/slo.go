package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Declarations are what a runbook's current version declares at top level
// (its triggers and slo(), as check collected them), undecoded.
type Declarations struct {
	Runbook string
	Version string
	Raw     json.RawMessage // runtime.Bundle.Triggers; nil when it declares nothing
}

// CurrentDeclarations returns the declarations of every runbook's current
// version, by name: one range read of runbooks/ (every stored version comes
// back with it; only the current ones are decoded).
func (s *Store) CurrentDeclarations(ctx context.Context) ([]Declarations, error) {
	resp, err := s.cli.Get(ctx, s.k.Runbooks(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list runbooks: %w", err)
	}
	current := map[string]string{}
	for _, kv := range resp.Kvs {
		if name, ok := cutSuffix(s.k.IDUnder(string(kv.Key), s.k.Runbooks()), "/current"); ok {
			current[name] = string(kv.Value)
		}
	}
	var out []Declarations
	for _, kv := range resp.Kvs {
		name, version, ok := strings.Cut(s.k.IDUnder(string(kv.Key), s.k.Runbooks()), "/versions/")
		if !ok || current[name] != version {
			continue
		}
		var sb struct {
			Triggers json.RawMessage `json:"triggers"`
		}
		if err := json.Unmarshal(kv.Value, &sb); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		out = append(out, Declarations{Runbook: name, Version: version, Raw: sb.Triggers})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Runbook < out[j].Runbook })
	return out, nil
}
