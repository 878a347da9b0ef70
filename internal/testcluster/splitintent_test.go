package testcluster_test

import (
	"context"
	"errors"
	"path"
	"strconv"
	"sync"
	"testing"
	"time"

	"cellar/client"
	"cellar/internal/testcluster"
	masterpb "cellar/proto/cellar/master/v1"
	"cellar/tabletserver"
)

// A tablet server dies in the middle of a split, leaving the split intent
// on the parent's METADATA row; the master resolves it from the parent's
// manifest. Killed after tablet.Split committed the split on disk (the
// parent's manifest now describes the right daughter) and before the
// METADATA commit, the master finishes the split: without that, the
// parent could never load again. Killed after the intent and before
// tablet.Split, the master clears the intent and the parent is served
// again whole. Either way every tablet is served once and every
// acknowledged write is readable.
func TestSplitIntentAfterServerDeath(t *testing.T) {
	t.Run("after-disk-commit", func(t *testing.T) { testSplitIntent(t, true) })
	t.Run("before-disk-commit", func(t *testing.T) { testSplitIntent(t, false) })
}

func testSplitIntent(t *testing.T, onDisk bool) {
	reached := make(chan uint64, 1)
	release := make(chan struct{})
	var once sync.Once
	hook := func(ctx context.Context, tablet uint64) error {
		first := false
		once.Do(func() { first = true })
		if !first {
			return nil
		}
		reached <- tablet
		<-release
		return errors.New("test: the server died here")
	}
	var hooks tabletserver.Hooks
	if onDisk {
		hooks.AfterSplitOnDisk = hook
	} else {
		hooks.AfterSplitIntent = hook
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, cl, tbl, w, stopWriters := writingCluster(t, ctx, hooks)
	time.Sleep(500 * time.Millisecond)
	info, err := cl.Admin().TableInfo(ctx, "s")
	if err != nil || len(info.Tablets) != 1 {
		t.Fatalf("table info: %+v, %v", info, err)
	}
	victim := -1
	for i, s := range c.Servers {
		if s.Addr == info.Tablets[0].ServerAddr {
			victim = i
		}
	}
	// Straight to the master (the client would retry the split on the
	// tablet's next server).
	_, parent, split := splitToHook(t, ctx, c, reached)
	c.KillServer(victim)
	close(release)
	t.Logf("killed tablet server %d in the middle of splitting tablet %d (on disk: %v); split call: %v", victim, parent, onDisk, <-split)
	want := 1
	if onDisk {
		want = 2
	}
	waitTablets(t, ctx, c, cl, "s", want)
	time.Sleep(300 * time.Millisecond)
	stopWriters()
	info, err = cl.Admin().TableInfo(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	if onDisk && (info.Tablets[0].EndKey != "m" || info.Tablets[1].StartKey != "m") {
		t.Fatalf("tablets after the split: %+v, want a boundary at \"m\"", info.Tablets)
	}
	if !onDisk && info.Tablets[0].ID != parent {
		t.Fatalf("tablets after the undone split: %+v, want the parent %d whole", info.Tablets, parent)
	}
	w.verify(t, ctx, tbl)
	// The undone split's left daughter left no directory behind; the
	// table takes a split again.
	if !onDisk {
		tablets := listDirs(t, ctx, c, path.Join("tables", strconv.FormatUint(info.ID, 10), "tablets"))
		if len(tablets) != 1 {
			t.Errorf("tablet directories after the undone split: %v, want only the parent's", tablets)
		}
		if err := cl.Admin().SplitTable(ctx, "s", "m"); err != nil {
			t.Fatalf("split after the undone one: %v", err)
		}
		waitTablets(t, ctx, c, cl, "s", 2)
	}
}

func listDirs(t *testing.T, ctx context.Context, c *testcluster.Cluster, dir string) []string {
	t.Helper()
	ents, err := c.FS().List(ctx, dir)
	if err != nil {
		t.Fatalf("list %s: %v", dir, err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir {
			out = append(out, path.Base(e.Name))
		}
	}
	return out
}

// splitToHook asks the active master to split table s at "m" and waits
// until the splitting server's hook reports the parent on reached; it
// returns the master's index, the parent and the split call's outcome (it
// ends once the hook lets the split go on).
func splitToHook(t *testing.T, ctx context.Context, c *testcluster.Cluster, reached <-chan uint64) (int, uint64, <-chan error) {
	t.Helper()
	mi := c.ActiveMaster()
	split := make(chan error, 1)
	go func() {
		_, err := c.Masters[mi].M.SplitTable(ctx, &masterpb.SplitTableRequest{Name: "s", SplitRow: []byte("m")})
		split <- err
	}()
	select {
	case parent := <-reached:
		return mi, parent, split
	case err := <-split:
		t.Fatalf("split ended without reaching the hook: %v", err)
	case <-ctx.Done():
		t.Fatal("split never reached the hook")
	}
	return 0, 0, nil
}

// writingCluster starts a cluster (MemFS) whose tablet servers run hooks,
// creates table "s" and starts two writers on it; stop ends them and waits.
func writingCluster(t *testing.T, ctx context.Context, hooks tabletserver.Hooks) (c *testcluster.Cluster, cl *client.Client, tbl *client.Table, w *writer, stop func()) {
	t.Helper()
	c = testcluster.Start(t, testcluster.Options{MemFS: true, ServerHooks: hooks})
	cl = dial(t, c)
	if err := cl.Admin().CreateTable(ctx, "s", map[string]client.GCPolicy{"f": client.MaxVersionsPolicy(1)}); err != nil {
		t.Fatalf("create: %v", err)
	}
	tbl = cl.Open("s")
	w = &writer{acked: map[string]string{}}
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); w.run(wctx, tbl, i) }()
	}
	return c, cl, tbl, w, func() { cancel(); wg.Wait() }
}
