package testcluster_test

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"cellar/client"
	"cellar/internal/testcluster"
)

// Splits under continuous writes and scans: no acknowledged write is lost,
// and no scan returns a row twice, out of order, or misses a row that was
// acknowledged before the scan began.
func TestSplitUnderLoad(t *testing.T) {
	c := testcluster.Start(t, testcluster.Options{MemFS: true, SplitSize: 256 << 10, MemtableSize: 128 << 10})
	cl := dial(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	if err := cl.Admin().CreateTable(ctx, "s", map[string]client.GCPolicy{"f": client.MaxVersionsPolicy(1)}); err != nil {
		t.Fatalf("create: %v", err)
	}
	tbl := cl.Open("s")
	w := &writer{acked: map[string]string{}}
	wctx, stopWriters := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; wctx.Err() == nil; n++ {
				row := fmt.Sprintf("%c-w%d-%06d", 'a'+rune((n*7+i)%26), i, n)
				val := fmt.Sprintf("v%d-%d-%s", i, n, incompressible(uint64(i), uint64(n)))
				m := client.NewMutation()
				m.Set("f", "q", 1, []byte(val))
				if err := tbl.Apply(wctx, row, m); err == nil {
					w.mu.Lock()
					w.acked[row] = val
					w.mu.Unlock()
				}
			}
		}()
	}
	scans, problems := 0, 0
	// Scan for at least 8 s and until the table has split (a slow -race
	// run writes less), at most 60 s.
	begin := time.Now()
	for {
		if el := time.Since(begin); el > 8*time.Second {
			info, err := cl.Admin().TableInfo(ctx, "s")
			if el > 60*time.Second || err == nil && len(info.Tablets) >= 3 {
				break
			}
		}
		w.mu.Lock()
		before := maps.Clone(w.acked)
		w.mu.Unlock()
		seen := map[string]bool{}
		last := ""
		err := tbl.ReadRows(ctx, client.InfiniteRange(""), func(r client.Row) bool {
			k := r.Key()
			if seen[k] || (last != "" && k <= last) {
				if problems < 5 {
					t.Errorf("scan %d: row %q after %q (duplicate or out of order)", scans, k, last)
				}
				problems++
			}
			seen[k], last = true, k
			return true
		})
		if err != nil {
			info, ierr := cl.Admin().TableInfo(context.Background(), "s")
			t.Fatalf("scan %d: %v\nmaster says: %+v %v\n%s", scans, err, info, ierr, c.Dump(context.Background()))
		}
		for k := range before {
			if !seen[k] {
				if problems < 5 {
					// Tell a scan that skipped a row from a lost row.
					r, rerr := tbl.ReadRow(ctx, k)
					t.Errorf("scan %d missed row %q acknowledged before it began (ReadRow now: found=%v err=%v)", scans, k, r != nil, rerr)
					if problems == 0 {
						t.Logf("tablets when the first miss was seen:\n%s", c.Dump(ctx))
					}
				}
				problems++
			}
		}
		scans++
	}
	stopWriters()
	wg.Wait()
	info, err := cl.Admin().TableInfo(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d scans during the load; the table now has %d tablets", scans, len(info.Tablets))
	if len(info.Tablets) < 2 {
		t.Errorf("only %d tablet: the load did not split the table", len(info.Tablets))
	}
	if problems > 0 {
		t.Fatalf("%d scan problems", problems)
	}
	w.verify(t, ctx, tbl)
}
