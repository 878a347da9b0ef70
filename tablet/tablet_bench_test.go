package tablet

import (
	"context"
	"fmt"
	"testing"

	"cellar/dfs"
	"cellar/dfs/local"
	"cellar/dfs/memfs"
	"cellar/sstable"
)

func benchTablet(b *testing.B, fs dfs.FS) *Tablet {
	b.Helper()
	tab, err := Open(context.Background(), &Options{
		FS: fs, Dir: "t", Families: []FamilyOptions{{Name: "a"}, {Name: "b", GC: MaxVersions(1)}},
		MemtableSize: 16 << 20, Logger: discardLogger(),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tab.Close() })
	return tab
}

func benchRow(i int) []byte { return []byte(fmt.Sprintf("user%012d", i*7919%1000003)) }

// BenchmarkApply: one row of two 100-byte cells per Apply.
func BenchmarkApply(b *testing.B) {
	val := make([]byte, 100)
	for _, c := range []struct {
		name string
		fs   func(*testing.B) dfs.FS
		dur  Durability
		par  bool
	}{
		{"memfs/skiplog", memFS, SkipLog, false},
		{"memfs/async", memFS, Async, false},
		{"memfs/sync", memFS, Sync, false},
		{"local/sync", localFS, Sync, false},
		{"local/sync/parallel", localFS, Sync, true},
		{"local/async/parallel", localFS, Async, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			tab := benchTablet(b, c.fs(b))
			ctx := context.Background()
			wo := &WriteOptions{Durability: c.dur}
			apply := func(i int) {
				muts := []Mutation{SetCell("a", []byte("x"), ServerTime, val), SetCell("b", []byte("y"), ServerTime, val)}
				if err := tab.Apply(ctx, benchRow(i), muts, wo); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.SetBytes(2 * int64(len(val)))
			b.ResetTimer()
			if !c.par {
				for i := 0; b.Loop(); i++ {
					apply(i)
				}
				return
			}
			b.SetParallelism(16)
			var n atomicCounter
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					apply(n.next())
				}
			})
		})
	}
}

func memFS(*testing.B) dfs.FS { return memfs.New() }

func localFS(b *testing.B) dfs.FS {
	fs, err := local.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	return fs
}

// loadBench writes n rows; flushed=true leaves them in SSTables after a
// major compaction (one table per family), else in the memtable.
func loadBench(b *testing.B, n int, flushed bool) *Tablet {
	tab := benchTablet(b, memfs.New())
	ctx := context.Background()
	val := make([]byte, 100)
	for i := 0; i < n; i++ {
		muts := []Mutation{SetCell("a", []byte("x"), 1, val), SetCell("a", []byte("x"), 2, val), SetCell("b", []byte("y"), 1, val)}
		if err := tab.Apply(ctx, benchRow(i), muts, &WriteOptions{Durability: SkipLog}); err != nil {
			b.Fatal(err)
		}
	}
	if flushed {
		if err := tab.Compact(ctx, true); err != nil {
			b.Fatal(err)
		}
	}
	return tab
}

// BenchmarkReadRow: point reads of present and absent rows among 20000.
func BenchmarkReadRow(b *testing.B) {
	const rows = 20000
	for _, flushed := range []bool{false, true} {
		for _, hit := range []bool{true, false} {
			b.Run(fmt.Sprintf("sstable=%v/hit=%v", flushed, hit), func(b *testing.B) {
				tab := loadBench(b, rows, flushed)
				ctx := context.Background()
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; b.Loop(); i++ {
					row := benchRow(i % rows)
					if !hit {
						row = append(row, '!')
					}
					r, err := tab.ReadRow(ctx, row, nil)
					if err != nil || (r != nil) != hit {
						b.Fatalf("ReadRow = %v, %v", r, err)
					}
				}
			})
		}
	}
}

// BenchmarkScan: full scans of 5000 rows of three cells.
func BenchmarkScan(b *testing.B) {
	const rows = 5000
	for _, flushed := range []bool{false, true} {
		b.Run(fmt.Sprintf("sstable=%v", flushed), func(b *testing.B) {
			tab := loadBench(b, rows, flushed)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				n := 0
				if err := tab.Scan(ctx, nil, func(*Row) bool { n++; return true }); err != nil || n != rows {
					b.Fatalf("Scan = %d rows, %v", n, err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
		})
	}
}

// BenchmarkScanCached: the engine benchmark's scan with every block in the
// cache: 100000 rows of one 1000-byte cell in one compacted SSTable, read
// with Reuse and MaxVersions 1. It measures the per-row cost of the read
// path (merging, resolving, assembling) apart from decompression.
func BenchmarkScanCached(b *testing.B) {
	const rows = 100000
	ctx := context.Background()
	tab := loadCached(b, rows)
	so := &ScanOptions{Read: ReadOptions{MaxVersions: 1}, Reuse: true}
	scan := func() {
		n := 0
		if err := tab.Scan(ctx, so, func(*Row) bool { n++; return true }); err != nil || n != rows {
			b.Fatalf("Scan = %d rows, %v", n, err)
		}
	}
	scan() // fill the cache
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		scan()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
}

// BenchmarkReadRowCached: the engine benchmark's point read (readrandom)
// on BenchmarkScanCached's data, every block cached: the per-read cost of
// planning, filters, iterator set-up and seeks.
func BenchmarkReadRowCached(b *testing.B) {
	const rows = 100000
	ctx := context.Background()
	tab := loadCached(b, rows)
	ro := &ReadOptions{MaxVersions: 1}
	if err := tab.Scan(ctx, nil, func(*Row) bool { return true }); err != nil { // fill the cache
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		row := []byte(fmt.Sprintf("%016d", (i*7919)%rows))
		r, err := tab.ReadRow(ctx, row, ro)
		if err != nil || r == nil || len(r.Cells) != 1 {
			b.Fatalf("ReadRow(%s) = %+v, %v", row, r, err)
		}
	}
}

// loadCached opens a tablet with a cache larger than its data and writes
// rows rows of one 1000-byte cell, compacted into one SSTable.
func loadCached(b *testing.B, rows int) *Tablet {
	ctx := context.Background()
	tab, err := Open(ctx, &Options{
		FS: memfs.New(), Dir: "t", Families: []FamilyOptions{{Name: "f", Compression: sstable.CompressionSnappy}},
		Cache: sstable.NewCache(512 << 20), Logger: discardLogger(),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tab.Close() })
	val := make([]byte, 1000)
	for i := 0; i < rows; i++ {
		val[i%1000]++
		if err := tab.Apply(ctx, []byte(fmt.Sprintf("%016d", i)), []Mutation{SetCell("f", nil, ServerTime, val)}, &WriteOptions{Durability: SkipLog}); err != nil {
			b.Fatal(err)
		}
	}
	if err := tab.Compact(ctx, true); err != nil {
		b.Fatal(err)
	}
	return tab
}

// BenchmarkFillSeq: the engine benchmark's fillseq on dfs/local: one row of
// one 1000-byte cell per Apply, ascending keys, Async durability, with
// flushes (64 MiB memtables) running in the background as in the bench.
func BenchmarkFillSeq(b *testing.B) {
	ctx := context.Background()
	tab, err := Open(ctx, &Options{
		FS: localFS(b), Dir: "t", Families: []FamilyOptions{{Name: "f", Compression: sstable.CompressionSnappy}},
		Cache: sstable.NewCache(256 << 20), Logger: discardLogger(),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tab.Close() })
	val := make([]byte, 1000)
	wo := &WriteOptions{Durability: Async}
	b.SetBytes(int64(len(val)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		val[i%1000]++
		if err := tab.Apply(ctx, fmt.Appendf(nil, "%016d", i), []Mutation{SetCell("f", nil, ServerTime, val)}, wo); err != nil {
			b.Fatal(err)
		}
	}
}
