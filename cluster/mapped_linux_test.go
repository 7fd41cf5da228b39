package cluster

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/storage/datadir"
)

// residentKB sums the resident kilobytes of this process's mappings of the
// file at path (/proc/self/smaps).
func residentKB(t *testing.T, path string) int {
	t.Helper()
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	var kb int
	var in bool
	sc := bufio.NewScanner(bytes.NewReader(smaps))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) > 0 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":"):
			in = len(fields) == 6 && fields[5] == path
		case in && len(fields) == 3 && fields[0] == "Rss:":
			n, _ := strconv.Atoi(fields[1])
			kb += n
		}
	}
	return kb
}

// TestReleaseMappedDropsTheDbPages: the member's db file is resident once
// read (and whole after an open: MAP_POPULATE); releasing it leaves none of
// it resident, and every value still reads back.
func TestReleaseMappedDropsTheDbPages(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	emb, err := StartEmbedded(ctx, EmbeddedConfig{Dir: dir, Fast: true, NoFsync: true,
		Compaction: Compaction{Interval: -1}, Defrag: Defrag{Interval: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	value := strings.Repeat("v", 64<<10)
	for i := range 128 { // 8 MB
		if _, err := emb.Client.Put(ctx, "/mapped/"+strconv.Itoa(i), value); err != nil {
			t.Fatal(err)
		}
	}
	readAll := func() {
		t.Helper()
		resp, err := emb.Client.Get(ctx, "/mapped/", clientv3.WithPrefix(), clientv3.WithSerializable())
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) != 128 {
			t.Fatalf("%d keys read back, want 128", len(resp.Kvs))
		}
		for _, kv := range resp.Kvs {
			if string(kv.Value) != value {
				t.Fatalf("%s: %d bytes read back, want the %d written", kv.Key, len(kv.Value), len(value))
			}
		}
	}
	// The values are read from the file once the backend commits them.
	if _, err := emb.Client.Defragment(ctx, emb.Client.Endpoints()[0]); err != nil {
		t.Fatal(err)
	}
	path, err := filepath.Abs(datadir.ToBackendFileName(EmbeddedEtcdDir(dir)))
	if err != nil {
		t.Fatal(err)
	}
	if p, err := filepath.EvalSymlinks(path); err == nil {
		path = p
	}
	readAll()
	before := residentKB(t, path)
	if before < 4<<10 {
		t.Fatalf("%d KB of %s resident after reading 8 MB of it: not the mapping this test looks at", before, path)
	}
	released, err := emb.releaseMapped()
	if err != nil {
		t.Fatal(err)
	}
	if released < 8<<20 {
		t.Errorf("released %d bytes of mapping, want the whole file's at least", released)
	}
	if after := residentKB(t, path); after > 256 {
		t.Errorf("%d KB of the db resident after the release (%d before), want next to none", after, before)
	}
	readAll()
	if again := residentKB(t, path); again < 4<<10 {
		t.Errorf("%d KB resident after reading every value again, want them mapped back", again)
	}
}
