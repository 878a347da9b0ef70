package testcluster_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"cellar/client"
	"cellar/internal/testcluster"
	"cellar/tabletserver"
)

// A tablet server dies after tablet.Split committed a split on disk and
// before the METADATA commit: METADATA still describes the parent, with
// the split intent on its row, while the parent's manifest describes the
// right daughter. The master finishes the split from the intent (without
// it the parent could never load again), both daughters are served, and
// every acknowledged write is readable.
func TestSplitIntentFinishedAfterServerDeath(t *testing.T) {
	reached := make(chan uint64, 1)
	release := make(chan struct{})
	var once sync.Once
	hooks := tabletserver.Hooks{AfterSplitOnDisk: func(ctx context.Context, tablet uint64) error {
		first := false
		once.Do(func() { first = true })
		if !first {
			return nil
		}
		reached <- tablet
		<-release
		return errors.New("test: the server died here")
	}}
	c := testcluster.Start(t, testcluster.Options{MemFS: true, ServerHooks: hooks})
	cl := dial(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := cl.Admin().CreateTable(ctx, "s", map[string]client.GCPolicy{"f": client.MaxVersionsPolicy(1)}); err != nil {
		t.Fatalf("create: %v", err)
	}
	tbl := cl.Open("s")
	w := &writer{acked: map[string]string{}}
	wctx, stopWriters := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); w.run(wctx, tbl, i) }()
	}
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
	split := make(chan error, 1)
	go func() { split <- cl.Admin().SplitTable(ctx, "s", "m") }()
	select {
	case <-reached:
	case err := <-split:
		t.Fatalf("split ended without reaching the hook: %v", err)
	case <-ctx.Done():
		t.Fatal("split never reached the hook")
	}
	c.KillServer(victim)
	close(release)
	t.Logf("killed tablet server %d between tablet.Split and the METADATA commit", victim)
	// The client retries the admin call; it may end once the master
	// has finished the split (the row is then a boundary already).
	t.Logf("split call: %v", <-split)
	waitTablets(t, ctx, c, cl, "s", 2)
	time.Sleep(300 * time.Millisecond)
	stopWriters()
	wg.Wait()
	info, err = cl.Admin().TableInfo(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	if info.Tablets[0].EndKey != "m" || info.Tablets[1].StartKey != "m" {
		t.Fatalf("tablets after the split: %+v, want a boundary at \"m\"", info.Tablets)
	}
	w.verify(t, ctx, tbl)
}
