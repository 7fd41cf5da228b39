package cluster

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/starbook/starbook/tlsconfig/tlstest"
)

// TestEtcdClientTLS: an embedded member serving TLS with client
// certificate authentication accepts a client with the CA and a certificate,
// and refuses plain text, a client without a certificate and one that does
// not trust its CA.
func TestEtcdClientTLS(t *testing.T) {
	dir := t.TempDir()
	files := tlstest.Generate(t, dir)
	other := tlstest.Generate(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	good := &EtcdTLS{CertFile: files.Cert, KeyFile: files.Key, CAFile: files.CA}
	emb, err := StartEmbedded(ctx, EmbeddedConfig{Dir: filepath.Join(dir, "data"), Fast: true, NoFsync: true, TLS: good})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	if !strings.HasPrefix(emb.ClientURL(), "https://") {
		t.Fatalf("client URL %s", emb.ClientURL())
	}
	if _, err := emb.Client.Put(ctx, "/t/k", "v"); err != nil {
		t.Fatalf("the node's own client: %v", err)
	}
	outside, err := DialEtcd([]string{emb.ClientURL()}, good)
	if err != nil {
		t.Fatal(err)
	}
	defer outside.Close()
	if resp, err := outside.Get(ctx, "/t/k"); err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("client with certificate: %v", err)
	}
	for name, cfg := range map[string]*EtcdTLS{
		"plain text":     nil,
		"no certificate": {CAFile: files.CA},
		"other CA":       {CertFile: files.Cert, KeyFile: files.Key, CAFile: other.CA},
		"other client":   {CertFile: other.Cert, KeyFile: other.Key, CAFile: files.CA},
	} {
		url := emb.ClientURL()
		if cfg == nil {
			url = "http://" + strings.TrimPrefix(url, "https://")
		}
		cli, err := DialEtcd([]string{url}, cfg)
		if err != nil {
			continue // refused at once is fine too
		}
		short, stop := context.WithTimeout(ctx, 500*time.Millisecond)
		_, err = cli.Get(short, "/t/k")
		stop()
		cli.Close()
		if err == nil {
			t.Errorf("%s: etcd answered", name)
		}
	}
	if _, err := (&EtcdTLS{CertFile: files.Cert}).ClientConfig(); err == nil {
		t.Error("a certificate without its key accepted")
	}
	if _, err := (&EtcdTLS{CAFile: filepath.Join(dir, "missing.pem")}).ClientConfig(); err == nil {
		t.Error("a missing CA file accepted")
	}
}
