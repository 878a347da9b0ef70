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
	for {
		info, err := cl.Admin().TableInfo(ctx, "big")
		if err != nil {
			t.Fatal(err)
		}
		if len(info.Tablets) != 101 {
			t.Fatalf("%d tablets, want 101", len(info.Tablets))
		}
		per := map[string]int{}
		unassigned := 0
		for _, tb := range info.Tablets {
			if tb.ServerID == "" {
				unassigned++
			}
			per[tb.ServerID]++
		}
		lo, hi := 1<<30, 0
		for _, s := range c.Servers {
			n := per[s.TS.ID()]
			lo, hi = min(lo, n), max(hi, n)
		}
		if unassigned == 0 && hi-lo <= 2 {
			t.Logf("balanced: tablets per server %v", per)
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("not balanced: %v (unassigned %d)", per, unassigned)
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
