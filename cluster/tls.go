package cluster

import (
	"crypto/tls"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/starbook/starbook/tlsconfig"
)

// EtcdTLS are the PEM files of TLS between a node and etcd: the CA that
// signed etcd's certificate and the node's client certificate and key. For
// an embedded member, the same files make it serve TLS and require client
// certificates signed by the CA (CertFile must then allow both server and
// client authentication).
type EtcdTLS struct {
	CertFile string
	KeyFile  string
	CAFile   string
}

// Enabled reports whether any file is set.
func (t *EtcdTLS) Enabled() bool {
	return t != nil && (t.CertFile != "" || t.KeyFile != "" || t.CAFile != "")
}

// ClientConfig returns the TLS configuration of an etcd client.
func (t *EtcdTLS) ClientConfig() (*tls.Config, error) {
	cfg, err := tlsconfig.Client(t.CAFile, t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("etcd TLS: %w", err)
	}
	return cfg, nil
}

// DialEtcd returns a client of the etcd cluster at endpoints, over TLS when
// t is enabled (then endpoints should be https:// URLs).
func DialEtcd(endpoints []string, t *EtcdTLS) (*clientv3.Client, error) {
	cfg := clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(retryReadOnlyTxn)}}
	if t.Enabled() {
		tc, err := t.ClientConfig()
		if err != nil {
			return nil, err
		}
		cfg.TLS = tc
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd %v: %w", endpoints, err)
	}
	return cli, nil
}
