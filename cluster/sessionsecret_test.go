package cluster

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
)

// TestSessionSecret: nodes asking at once all get the one secret the first
// created, and a restarted node reads it again; a short value is refused.
func TestSessionSecret(t *testing.T) {
	ctx := context.Background()
	emb, err := StartEmbedded(ctx, EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	const nodes = 8
	secrets := make([][]byte, nodes)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() {
			s := NewStore(emb.Client, "/secret/")
			defer s.Close()
			var err error
			if secrets[i], err = s.SessionSecret(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i, s := range secrets {
		if len(s) != SessionSecretLength || !bytes.Equal(s, secrets[0]) {
			t.Fatalf("node %d got %x, node 0 %x: want one secret of %d bytes", i, s, secrets[0], SessionSecretLength)
		}
	}
	again := NewStore(emb.Client, "/secret/")
	defer again.Close()
	if s, err := again.SessionSecret(ctx); err != nil || !bytes.Equal(s, secrets[0]) {
		t.Errorf("after a restart: %x, %v; want %x", s, err, secrets[0])
	}
	other := NewStore(emb.Client, "/other/")
	defer other.Close()
	if s, err := other.SessionSecret(ctx); err != nil || bytes.Equal(s, secrets[0]) {
		t.Errorf("another prefix's secret = %x, %v: want its own", s, err)
	}
	if _, err := emb.Client.Put(ctx, "/short/secrets/session", "short"); err != nil {
		t.Fatal(err)
	}
	short := NewStore(emb.Client, "/short/")
	defer short.Close()
	if s, err := short.SessionSecret(ctx); err == nil || !strings.Contains(err.Error(), "holds 5 bytes") {
		t.Errorf("a short stored secret: %x, %v; want an error", s, err)
	}
}
