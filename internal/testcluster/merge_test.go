package testcluster_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"cellar/client"
	"cellar/internal/testcluster"
	"cellar/master"
	masterpb "cellar/proto/cellar/master/v1"
)

// Merges of two adjacent tablets, with the active master killed after
// each step: the standby finishes the merge if it was committed (the left
// METADATA row deleted) and undoes it otherwise; either way every tablet
// is served exactly once, every acknowledged write (made before and during
// the merge) is readable, deleted rows stay deleted, and an undone merge
// can be asked again and succeeds (the merge without a kill).
func TestMergeTablets(t *testing.T) {
	for _, killAt := range []string{master.MergeStepIntent, master.MergeStepUnloaded, master.MergeStepManifest, master.MergeStepCommitted} {
		t.Run(killAt, func(t *testing.T) { testMerge(t, killAt) })
	}
}

func testMerge(t *testing.T, killAt string) {
	reached := make(chan struct{})
	var once sync.Once
	hooks := master.Hooks{MergeStep: func(ctx context.Context, step string) {
		if step != killAt {
			return
		}
		first := false
		once.Do(func() { first = true })
		if first {
			close(reached)
			<-ctx.Done()
		}
	}}
	c := testcluster.Start(t, testcluster.Options{MemFS: true, MasterHooks: hooks})
	cl := dial(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := cl.Admin().CreateTable(ctx, "m", map[string]client.GCPolicy{"f": client.MaxVersionsPolicy(1)}, "g", "p"); err != nil {
		t.Fatalf("create: %v", err)
	}
	tbl := cl.Open("m")
	// Rows on both sides of the boundary "j" that the merge removes, some
	// deleted again, then a split at "j" so that the two tablets to merge
	// are daughters of one parent.
	put := func(row, val string) {
		m := client.NewMutation()
		m.Set("f", "q", 1, []byte(val))
		if err := tbl.Apply(ctx, row, m); err != nil {
			t.Fatalf("apply %q: %v", row, err)
		}
	}
	want := map[string]string{}
	for i := range 60 {
		row := fmt.Sprintf("%c%03d", 'g'+rune(i%9), i)
		put(row, "before-split")
		want[row] = "before-split"
	}
	if err := cl.Admin().SplitTable(ctx, "m", "j"); err != nil {
		t.Fatalf("split: %v", err)
	}
	var deleted []string
	for row := range want {
		if len(deleted) < 10 {
			m := client.NewMutation()
			m.DeleteRow()
			if err := tbl.Apply(ctx, row, m); err != nil {
				t.Fatalf("delete %q: %v", row, err)
			}
			deleted = append(deleted, row)
			delete(want, row)
		} else if len(deleted) < 20 {
			put(row, "after-split")
			want[row] = "after-split"
			deleted = append(deleted, "") // counts the overwrites too
		}
	}
	info, err := cl.Admin().TableInfo(ctx, "m")
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Tablets) != 4 {
		t.Fatalf("before the merge the table has %d tablets, want 4: %+v", len(info.Tablets), info.Tablets)
	}

	// Writers run through the merge.
	w := &writer{acked: map[string]string{}}
	wctx, stopWriters := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); w.run(wctx, tbl, i) }()
	}
	time.Sleep(300 * time.Millisecond)

	mi := c.ActiveMaster()
	merged := make(chan error, 1)
	go func() {
		_, err := c.Masters[mi].M.MergeTablets(ctx, &masterpb.MergeTabletsRequest{Name: "m", Row: []byte("h")})
		merged <- err
	}()
	wantTablets := 3
	if killAt != "" {
		select {
		case <-reached:
		case err := <-merged:
			t.Fatalf("merge ended before step %q: %v", killAt, err)
		case <-ctx.Done():
			t.Fatal("merge never reached its step")
		}
		c.KillMaster(mi)
		if err := <-merged; err == nil {
			t.Fatalf("merge killed after step %q returned success", killAt)
		}
		t.Logf("killed master %d after merge step %q", mi, killAt)
		c.AddMaster()
		if killAt != master.MergeStepCommitted {
			wantTablets = 4
		}
	} else if err := <-merged; err != nil {
		t.Fatalf("merge: %v", err)
	}
	waitTablets(t, ctx, c, cl, "m", wantTablets)
	if wantTablets == 4 {
		// Undone: asking again succeeds.
		if err := mergeRetrying(ctx, cl, "m", "h"); err != nil {
			t.Fatalf("merge after an undone one: %v", err)
		}
		waitTablets(t, ctx, c, cl, "m", 3)
	}
	time.Sleep(300 * time.Millisecond)
	stopWriters()
	wg.Wait()
	info, err = cl.Admin().TableInfo(ctx, "m")
	if err != nil {
		t.Fatal(err)
	}
	bounds := []string{}
	for _, tb := range info.Tablets {
		bounds = append(bounds, tb.StartKey+"|"+tb.EndKey)
	}
	sort.Strings(bounds)
	if fmt.Sprint(bounds) != "[g|p p| |g]" {
		t.Fatalf("tablets after the merge: %v, want [, g) [g, p) [p, )", bounds)
	}
	w.verify(t, ctx, tbl)
	for row, val := range want {
		r, err := tbl.ReadRow(ctx, row)
		if err != nil || r == nil || string(r["f"][0].Value) != val {
			t.Errorf("row %q = %v, %v; want %q", row, r, err, val)
		}
	}
	for _, row := range deleted {
		if row == "" {
			continue
		}
		if r, err := tbl.ReadRow(ctx, row); err != nil || r != nil {
			t.Errorf("deleted row %q = %v, %v; want nothing", row, r, err)
		}
	}
	// The merged tablet takes writes on both sides of the old boundary.
	for _, row := range []string{"h-new", "k-new"} {
		put(row, "merged")
		if r, err := tbl.ReadRow(ctx, row); err != nil || r == nil || string(r["f"][0].Value) != "merged" {
			t.Errorf("row %q written after the merge = %v, %v", row, r, err)
		}
	}
}

// waitTablets waits until the master and the servers agree on n tablets of
// table covering its row space once each.
func waitTablets(t *testing.T, ctx context.Context, c *testcluster.Cluster, cl *client.Client, table string, n int) {
	t.Helper()
	var last string
	for ctx.Err() == nil {
		info, err := cl.Admin().TableInfo(ctx, table)
		if err == nil && len(info.Tablets) == n {
			if cerr := c.CheckTablets(ctx, info.ID); cerr == nil {
				if st, serr := c.Status(ctx); serr == nil && st.UnassignedTablets == 0 {
					return
				}
			} else {
				last = cerr.Error()
			}
		} else if err == nil {
			last = fmt.Sprintf("%d tablets", len(info.Tablets))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("table %q never settled at %d tablets (last: %s)\n%s", table, n, last, c.Dump(context.Background()))
}

// mergeRetrying asks for a merge until the master is not busy with the
// tablets any more.
func mergeRetrying(ctx context.Context, cl *client.Client, table, row string) error {
	for {
		err := cl.Admin().MergeTablets(ctx, table, row)
		if err == nil || !errors.Is(err, client.ErrUnavailable) || ctx.Err() != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
