package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api/apitest"
	"github.com/starbook/starbook/quota"
)

// storeFake is a full store, freed by FreeStore.
type storeFake struct {
	apitest.Service
	freed bool
}

var storeFull = &quota.FullError{Size: 15 << 20, InUse: 9 << 20, Quota: 16 << 20, Alarm: true, FullAt: 0.9}

func (s *storeFake) StoreSpace(context.Context) (*starbook.StoreSpace, error) {
	return &starbook.StoreSpace{DBBytes: 15 << 20, InUse: 9 << 20, Quota: 16 << 20, Alarm: true, Refusal: storeFull.Error()}, nil
}

func (s *storeFake) FreeStore(context.Context) (*starbook.StoreSpace, error) {
	s.freed = true
	return &starbook.StoreSpace{DBBytes: 2 << 20, InUse: 2 << 20, Quota: 16 << 20, Freed: &starbook.StoreFreed{
		Compacted: 1234, Disarmed: 1, Members: []starbook.StoreMemberFree{{Endpoint: "http://127.0.0.1:2379",
			Before: 15 << 20, After: 2 << 20, InUse: 2 << 20, Quota: 16 << 20, Took: 40 * time.Millisecond}}}}, nil
}

// TestStoreShowsTheWayOut: starbook store says the store is full and what to
// do; store free says what it did, and that runs are accepted again.
func TestStoreShowsTheWayOut(t *testing.T) {
	fake := &storeFake{}
	res := cli(t, fake, "", "store")
	if res.code != 0 {
		t.Fatalf("store: %d %s", res.code, res.stderr)
	}
	for _, s := range []string{"db file: 15 MiB of 16 MiB quota (94%), 9.0 MiB in use", "NOSPACE alarm is raised",
		"new runs are refused: storage full", "starbook store free", "serve --retention", "serve --etcd-quota"} {
		if !strings.Contains(res.stdout, s) {
			t.Errorf("store output lacks %q:\n%s", s, res.stdout)
		}
	}
	res = cli(t, fake, "", "store", "free")
	if res.code != 0 || !fake.freed {
		t.Fatalf("store free: %d %s", res.code, res.stderr)
	}
	want := `compacted to revision 1234
defragmented http://127.0.0.1:2379: 15 MiB -> 2.0 MiB (2.0 MiB in use) in 40ms
disarmed 1 NOSPACE alarm(s)
db file: 2.0 MiB of 16 MiB quota (12%), 2.0 MiB in use
new runs are accepted
`
	if res.stdout != want {
		t.Errorf("store free printed\n%s\nwant\n%s", res.stdout, want)
	}
}
