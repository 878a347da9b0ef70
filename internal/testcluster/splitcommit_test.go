package testcluster_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"cellar/internal/testcluster"
	tabletpb "cellar/proto/cellar/tablet/v1"
	"cellar/tabletserver"
)

// A split's left daughter is committed to METADATA (its row, naming the
// splitting server) a moment before that server serves it. A master that
// scans METADATA in that moment (here: a standby taking over) must not
// take the daughter for unassigned and load it on a second server: it is
// held by the split intent still on the parent's row until the splitting
// server reports it. Every tablet ends served once and every acknowledged
// write is readable.
func TestSplitCommitWindowNotDoubleAssigned(t *testing.T) {
	reached := make(chan uint64, 1)
	release := make(chan struct{})
	var once sync.Once
	hooks := tabletserver.Hooks{AfterSplitCommit: func(ctx context.Context, tablet uint64) {
		once.Do(func() {
			reached <- tablet
			<-release
		})
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, cl, tbl, w, stopWriters := writingCluster(t, ctx, hooks)
	time.Sleep(300 * time.Millisecond)
	mi, parent, split := splitToHook(t, ctx, c, reached)
	// The standby scans METADATA when it takes over, while the left
	// daughter's row exists and nobody serves it yet.
	c.KillMaster(mi)
	if _, err := c.WaitActiveMaster(ctx); err != nil {
		t.Fatal(err)
	}
	// Reconcile passes run every 100 ms: give the new master twenty.
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if s := servingLeft(t, ctx, c, parent); len(s) > 0 {
			close(release)
			t.Fatalf("the left daughter of tablet %d was loaded on %v while its splitting server was still opening it", parent, s)
		}
	}
	close(release)
	<-split // the old master's call: its answer does not matter
	waitTablets(t, ctx, c, cl, "s", 2)
	time.Sleep(300 * time.Millisecond)
	stopWriters()
	info, err := cl.Admin().TableInfo(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	if info.Tablets[0].EndKey != "m" || info.Tablets[1].StartKey != "m" {
		t.Fatalf("tablets after the split: %+v, want a boundary at \"m\"", info.Tablets)
	}
	if err := c.CheckTablets(ctx, info.ID); err != nil {
		t.Fatal(err)
	}
	w.verify(t, ctx, tbl)
}

// servingLeft lists the servers that serve a tablet ending at "m" (the
// left daughter of the split of parent).
func servingLeft(t *testing.T, ctx context.Context, c *testcluster.Cluster, parent uint64) []int {
	t.Helper()
	var out []int
	for i, s := range c.Servers {
		st, err := s.TS.ServerStatus(ctx, &tabletpb.ServerStatusRequest{})
		if err != nil {
			continue
		}
		for _, ts := range st.Tablets {
			if d := ts.Tablet; d != nil && d.TabletId != parent && string(d.EndRow) == "m" {
				out = append(out, i)
			}
		}
	}
	return out
}
