package cellarbeam_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/passert"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/transforms/stats"

	"cellar/client"
	"cellar/internal/testcluster"
	cellarbeam "cellar/mapreduce/beam"
)

// stalled makes stallOnce stall once per process (the prism workers run
// in the test's process).
var stalled atomic.Bool

func init() {
	register.Function1x1(stallOnce)
	register.Function2x1(checkOnce)
}

// stallOnce returns the row's key, stalling 2s at row k00100 the first
// time: prism sees the bundle make no progress for longer than its
// progress tick (100ms) and asks the source to split its restriction.
func stallOnce(r cellarbeam.Row) string {
	if string(r.Key) == "k00100" && !stalled.Swap(true) {
		time.Sleep(2 * time.Second)
	}
	return string(r.Key)
}

// checkOnce fails the pipeline for a row read more than once.
func checkOnce(key string, n int) error {
	if n != 1 {
		return fmt.Errorf("row %q read %d times", key, n)
	}
	return nil
}

// TestDynamicSplitWithinTablet reads a one-tablet table while a
// downstream step stalls: the runner splits the tablet's restriction
// dynamically (KeyRangeTracker.TrySplit), and every row is still read
// exactly once.
func TestDynamicSplitWithinTablet(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	c := testcluster.Start(t, testcluster.Options{MemFS: true, Servers: 1, Masters: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, c.LockAddrs())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	t.Cleanup(cellarbeam.CloseClients)
	if err := cl.Admin().CreateTable(ctx, "one", map[string]client.GCPolicy{"t": client.MaxVersionsPolicy(1)}); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitAllAssigned(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 3000
	var rows []string
	var muts []*client.Mutation
	for i := range n {
		m := client.NewMutation()
		m.Set("t", "b", 1, []byte("x"))
		rows, muts = append(rows, fmt.Sprintf("k%05d", i)), append(muts, m)
	}
	if errs, err := cl.Open("one").ApplyBulk(ctx, rows, muts); err != nil || errs != nil {
		t.Fatal(err, errs)
	}

	p, s := beam.NewPipelineWithRoot()
	keys := beam.ParDo(s, stallOnce, cellarbeam.Read(s, cellarbeam.ReadConfig{Cluster: c.LockAddrs(), Table: "one"}))
	passert.Count(s, keys, "rows", n)
	beam.ParDo0(s, checkOnce, stats.Count(s, keys))
	res, err := beam.Run(ctx, "prism", p)
	if err != nil {
		t.Fatalf("pipeline: %v", err)
	}
	var restrictions int64
	for _, m := range res.Metrics().AllMetrics().Counters() {
		if m.Key.Name == "restrictions_read" {
			restrictions += m.Committed
		}
	}
	if restrictions < 2 {
		t.Fatalf("the source read %d restriction(s) of one tablet: the runner's split request did not split it", restrictions)
	}
	t.Logf("one tablet read as %d restrictions", restrictions)
}
