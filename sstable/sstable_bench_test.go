package sstable

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"cellar/dfs/local"
	"cellar/internal/keys"
)

// Benchmark tables: 16-byte rows, one cell each, 1000-byte values whose
// second half repeats the first (Snappy saves about half), 10,000 entries
// (~10 MB raw). Files live in memory (bytesFile), so the figures are the
// engine's CPU cost, not the device's.
const (
	benchRows     = 10000
	benchValueLen = 1000
)

func benchRow(i int) []byte { return []byte(fmt.Sprintf("row%013d", i)) } // 16 bytes

func benchKey(i int) []byte {
	return keys.Encode(keys.Key{Row: benchRow(i), Family: "cf", Qualifier: []byte("q"),
		Timestamp: 1_700_000_000_000_000, Seq: keys.SeqNum(i + 1), Kind: keys.KindSet})
}

// benchKVs returns entries for the even rows 0, 2, 4, ... (odd rows are
// the missing ones).
func benchKVs() ([]kv, int64) {
	rng := rand.New(rand.NewPCG(1, 2))
	out := make([]kv, benchRows)
	var raw int64
	for i := range out {
		v := make([]byte, benchValueLen)
		for j := 0; j < benchValueLen/2; j++ {
			v[j] = byte(rng.Uint32())
		}
		copy(v[benchValueLen/2:], v)
		out[i] = kv{benchKey(2 * i), v}
		raw += int64(len(out[i].k) + len(v))
	}
	return out, raw
}

func BenchmarkWrite(b *testing.B) {
	kvs, raw := benchKVs()
	for _, comp := range []Compression{CompressionSnappy, CompressionNone} {
		b.Run("compression="+comp.String(), func(b *testing.B) {
			// One output buffer, grown once, so the figure is the writer's
			// cost rather than the buffer's growth.
			f := &memFile{}
			f.buf.Grow(int(raw) + int(raw)/8)
			b.ReportAllocs()
			b.SetBytes(raw)
			for b.Loop() {
				f.buf.Reset()
				f.closed = false
				w := NewWriter(f, &WriterOptions{Compression: comp})
				for _, e := range kvs {
					if err := w.Add(e.k, e.v); err != nil {
						b.Fatal(err)
					}
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWriteLocal writes the same table to a local directory through
// dfs/local, including the final Sync (LIMITS.md: sequential write with
// fdatasync is ~800 MB/s on the build machine).
func BenchmarkWriteLocal(b *testing.B) {
	kvs, raw := benchKVs()
	fs, err := local.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(raw)
	n := 0
	for b.Loop() {
		n++
		name := fmt.Sprintf("%06d.sst", n)
		f, err := fs.Create(ctx, name)
		if err != nil {
			b.Fatal(err)
		}
		w := NewWriter(f, nil)
		for _, e := range kvs {
			if err := w.Add(e.k, e.v); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := fs.Remove(ctx, name); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

func BenchmarkIterate(b *testing.B) {
	kvs, raw := benchKVs()
	for _, comp := range []Compression{CompressionSnappy, CompressionNone} {
		data, _ := buildTable(b, kvs, &WriterOptions{Compression: comp})
		for _, cached := range []bool{false, true} {
			b.Run(fmt.Sprintf("compression=%s/cache=%v", comp, cached), func(b *testing.B) {
				r := openBytes(b, data, benchCache(cached))
				b.ReportAllocs()
				b.SetBytes(raw)
				for b.Loop() {
					it := r.NewIter()
					n := 0
					for ok := it.First(); ok; ok = it.Next() {
						n++
					}
					if n != len(kvs) || it.Close() != nil {
						b.Fatalf("scanned %d entries", n)
					}
				}
			})
		}
	}
}

func benchCache(on bool) *Cache {
	if on {
		return NewCache(64 << 20) // holds the whole table
	}
	return nil
}

// BenchmarkSeekGE does point lookups of one row as a tablet read would: the
// Bloom filter on the row prefix first, then SeekGE to the row prefix when
// the filter says maybe. found: rows in the table; missing: rows between
// them (the filter rejects ~99% without reading a block).
func BenchmarkSeekGE(b *testing.B) {
	kvs, _ := benchKVs()
	data, _ := buildTable(b, kvs, nil)
	for _, found := range []bool{true, false} {
		for _, cached := range []bool{false, true} {
			b.Run(fmt.Sprintf("found=%v/cache=%v", found, cached), func(b *testing.B) {
				r := openBytes(b, data, benchCache(cached))
				rng := rand.New(rand.NewPCG(3, 4))
				prefixes := make([][]byte, 1024)
				for i := range prefixes {
					row := 2 * rng.IntN(benchRows)
					if !found {
						row++
					}
					prefixes[i] = keys.AppendRowPrefix(nil, benchRow(row))
				}
				it := r.NewIter()
				defer it.Close()
				b.ReportAllocs()
				hits, i := 0, 0
				for b.Loop() {
					p := prefixes[i%len(prefixes)]
					i++
					if !r.MayContain(p) {
						continue
					}
					if it.SeekGE(p) && string(it.Key()[:len(p)]) == string(p) {
						hits++
					}
				}
				if found && hits != i || !found && hits != 0 {
					b.Fatalf("%d of %d lookups found their row", hits, i)
				}
			})
		}
	}
}

// BenchmarkCacheParallel measures the cache alone under parallel lookups,
// 90% hits.
func BenchmarkCacheParallel(b *testing.B) {
	c := NewCache(64 << 20)
	block := make([]byte, 4096)
	const blocks = 10000 // 40 MiB: all fit
	for i := uint64(0); i < blocks; i++ {
		c.set(1, i*4096, block)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(rand.Uint64(), 0))
		for pb.Next() {
			off := rng.Uint64N(blocks*10/9) * 4096
			if _, ok := c.get(1, off); !ok {
				c.set(1, off, block)
			}
		}
	})
}
