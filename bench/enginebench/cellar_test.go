package enginebench

import (
	"context"
	"strings"
	"testing"
)

// TestCellarRunsEveryWorkload runs the whole harness on the Cellar adapter
// with a small memtable, so that the fills flush several tables and the
// reads and scan see a compacted tablet; Run verifies every value read.
func TestCellarRunsEveryWorkload(t *testing.T) {
	rep, err := Run(context.Background(), CellarOpener(&CellarOptions{MemtableSize: 1 << 20, CacheSize: 1 << 20}), &Options{
		Dir: t.TempDir(), Rows: 3000, ValueSize: 1000, Reads: 1000, Concurrency: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != len(Workloads) {
		t.Errorf("%d results, want %d", len(rep.Results), len(Workloads))
	}
	var out strings.Builder
	rep.Print(&out)
	t.Log("\n" + out.String())
}
