package api_test

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/starbook/starbook/api"
	"github.com/starbook/starbook/auth"
	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/service"
	sbsnapshot "github.com/starbook/starbook/snapshot"
)

// GET /api/v1/snapshot streams an intact snapshot to an admin only.
func TestSnapshotRoute(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	store := cluster.NewStore(emb.Client, "/snap/")
	defer store.Close()
	svc := service.New(store, builtins.New(builtins.Options{}))
	srv := httptest.NewServer(api.NewHandler(svc, nil, api.WithAuth(testAuth(t))))
	defer srv.Close()
	tests := []struct {
		who    string
		token  string
		status int // 0: saved
	}{
		{"admin", roleTokens[auth.Admin], 0},
		{"operator", roleTokens[auth.Operator], 403},
		{"approver", roleTokens[auth.Approver], 403},
		{"viewer", roleTokens[auth.Viewer], 403},
		{"no token", "", 401},
	}
	for _, tt := range tests {
		t.Run(tt.who, func(t *testing.T) {
			c := &api.Client{BaseURL: srv.URL, Token: tt.token}
			file := filepath.Join(t.TempDir(), "s.snapshot")
			f := newPipeFile(t, file)
			_, err := c.Snapshot(ctx, f.w)
			f.w.CloseWithError(err)
			saveErr := <-f.done
			var apiErr *api.Error
			switch {
			case tt.status == 0 && (err != nil || saveErr != nil):
				t.Fatalf("download: %v, save: %v", err, saveErr)
			case tt.status == 0:
				if err := sbsnapshot.Verify(file); err != nil {
					t.Fatal(err)
				}
			case !errors.As(err, &apiErr) || apiErr.Status != tt.status:
				t.Fatalf("download: %v, want status %d", err, tt.status)
			case saveErr == nil:
				t.Fatalf("a refused download saved %s", file)
			}
		})
	}
}

// pipeFile saves what is written to w at a path with sbsnapshot.WriteFile;
// done gets WriteFile's error once w is closed.
type pipeFile struct {
	w    *io.PipeWriter
	done chan error
}

func newPipeFile(t *testing.T, path string) *pipeFile {
	t.Helper()
	pr, pw := io.Pipe()
	f := &pipeFile{w: pw, done: make(chan error, 1)}
	go func() {
		_, err := sbsnapshot.WriteFile(path, pr)
		pr.CloseWithError(err)
		f.done <- err
	}()
	return f
}
