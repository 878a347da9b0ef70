package testcluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"cellar/client"
	"cellar/internal/testcluster"
)

// A table created with 100 split keys ends up balanced across the servers.
func TestBalance100Splits(t *testing.T) {
	c := testcluster.Start(t, testcluster.Options{MemFS: true})
	cl := dial(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var splits []string
	for i := 1; i <= 100; i++ {
		splits = append(splits, fmt.Sprintf("row%04d", i*100))
	}
	if err := cl.Admin().CreateTable(ctx, "big", map[string]client.GCPolicy{"f": client.NoGcPolicy()}, splits...); err != nil {
		t.Fatalf("create: %v", err)
	}
	// Balanced: every server's tablet count (METADATA's two included, as
	// the balancer counts them) within one of the others'.
	var last string
	for {
		info, err := cl.Admin().TableInfo(ctx, "big")
		if err != nil {
			t.Fatalf("%v; last seen: %s", err, last)
		}
		if len(info.Tablets) != 101 {
			t.Fatalf("%d tablets, want 101", len(info.Tablets))
		}
		st, err := c.Status(ctx)
		if err != nil {
			t.Fatalf("%v; last seen: %s", err, last)
		}
		lo, hi, total := 1<<30, 0, 0
		per := map[string]int32{}
		for _, s := range st.Servers {
			per[s.ServerId] = s.Tablets
			lo, hi, total = min(lo, int(s.Tablets)), max(hi, int(s.Tablets)), total+int(s.Tablets)
		}
		last = fmt.Sprintf("tablets per server %v, unassigned %d", per, st.UnassignedTablets)
		if st.UnassignedTablets == 0 && total == 103 && len(st.Servers) == 3 && hi-lo <= 1 {
			t.Logf("balanced: %s", last)
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("not balanced: %s", last)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Every tablet answers.
	tbl := cl.Open("big")
	for i := 0; i <= 100; i++ {
		m := client.NewMutation()
		m.Set("f", "q", 1, []byte("x"))
		if err := tbl.Apply(ctx, fmt.Sprintf("row%04d", i*100+1), m); err != nil {
			t.Fatalf("write to tablet %d: %v", i, err)
		}
	}
}
