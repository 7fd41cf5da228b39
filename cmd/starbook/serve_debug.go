package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/spf13/pflag"
)

// debugFlags is serve --debug-listen: Go's profiler, on a listener of its
// own, off by default. It answers anyone who reaches the address, without
// the API's tokens or TLS: keep it on loopback.
type debugFlags struct{ listen string }

func (d *debugFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&d.listen, "debug-listen", "", "address of Go's profiler (/debug/pprof/), e.g. 127.0.0.1:6060; unauthenticated, so keep it on loopback; empty: off")
}

// start serves the profiler until ctx is done; a bad address is an error
// before the node starts.
func (d *debugFlags) start(ctx context.Context, logger *slog.Logger) error {
	if d.listen == "" {
		return nil
	}
	ln, err := net.Listen("tcp", d.listen)
	if err != nil {
		return fmt.Errorf("--debug-listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Warn("debug listener", "err", err)
		}
	}()
	context.AfterFunc(ctx, func() { _ = srv.Close() })
	logger.Info("profiler listening", "addr", ln.Addr().String())
	return nil
}
