package dfs_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"cellar/dfs"
	"cellar/dfs/dfscluster"
)

// BenchmarkAppendSync appends records and syncs after each, with 1 and 8
// concurrent writers (one file each), on a 3-replica cluster on loopback.
// `cellar bench dfs` prints the same workload beside dfs/local.
func BenchmarkAppendSync(b *testing.B) {
	ctx := context.Background()
	cl := benchClient(b)
	var err error
	run := 0
	for _, rec := range []int{4 << 10, 64 << 10} {
		for _, writers := range []int{1, 8} {
			b.Run(fmt.Sprintf("record=%dKiB/writers=%d", rec>>10, writers), func(b *testing.B) {
				run++
				files := make([]dfs.File, writers)
				for i := range files {
					if files[i], err = cl.Create(ctx, fmt.Sprintf("bench/%d/%d", run, i)); err != nil {
						b.Fatal(err)
					}
				}
				buf := make([]byte, rec)
				b.SetBytes(int64(rec))
				b.ReportAllocs()
				b.ResetTimer()
				var wg sync.WaitGroup
				per := (b.N + writers - 1) / writers
				for _, f := range files {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for range per {
							if _, err := f.Write(buf); err != nil {
								b.Error(err)
								return
							}
							if err := f.Sync(ctx); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				b.StopTimer()
				for _, f := range files {
					f.Close()
				}
			})
		}
	}
}

// BenchmarkSequentialRead reads a 64 MiB file back in 1 MiB ReadAt calls
// (`cellar bench dfs`'s read workload) from a 3-replica cluster.
func BenchmarkSequentialRead(b *testing.B) {
	ctx := context.Background()
	cl := benchClient(b)
	var err error
	const size = 64 << 20
	f, err := cl.Create(ctx, "bench/read")
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for off := 0; off < size; off += len(buf) {
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	r, err := cl.Open(ctx, "bench/read")
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		for off := int64(0); off < size; off += int64(len(buf)) {
			if _, err := r.ReadAt(buf, off); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// benchClient starts a 3-chunkserver cluster on loopback (64 MiB chunks)
// and returns a client of it; both are closed when the benchmark ends.
func benchClient(b *testing.B) *dfs.Client {
	ctx := context.Background()
	c, err := dfscluster.Start(ctx, &dfscluster.Options{Dir: b.TempDir(), Chunkservers: 3, ChunkSize: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	cl, err := c.Client(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cl.Close() })
	return cl
}
