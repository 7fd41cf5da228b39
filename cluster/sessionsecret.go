package cluster

import (
	"context"
	"crypto/rand"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// SessionSecretLength is the size in bytes of the secret SessionSecret
// creates.
const SessionSecretLength = 32

// SessionSecret returns the secret the web UI's session cookies are keyed
// with when no secret is configured: the first node to ask creates it (32
// random bytes, in a create-if-absent txn), and every node, then and after a
// restart, reads that one, so a cookie made by one node is good on all. It
// is stored like the rest of the store, so a snapshot carries it.
func (s *Store) SessionSecret(ctx context.Context) ([]byte, error) {
	key := s.k.sessionSecret()
	secret := make([]byte, SessionSecretLength)
	_, _ = rand.Read(secret) // crypto/rand never fails on supported platforms
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(secret))).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return nil, fmt.Errorf("session secret: %w", err)
	}
	if resp.Succeeded {
		return secret, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) != 1 {
		return nil, fmt.Errorf("session secret: %s vanished as it was read", key)
	}
	if len(kvs[0].Value) < SessionSecretLength {
		return nil, fmt.Errorf("session secret: %s holds %d bytes, want %d: delete the key to make a new one", key, len(kvs[0].Value), SessionSecretLength)
	}
	return kvs[0].Value, nil
}
