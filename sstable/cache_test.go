package sstable

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

func TestCacheLRU(t *testing.T) {
	block := func(n int) []byte { return make([]byte, n-cacheEntryOverhead) }
	c := NewCache(300) // one shard; room for three 100-byte charges
	if len(c.shards) != 1 {
		t.Fatalf("%d shards for a 300-byte cache", len(c.shards))
	}
	c.set(1, 0, block(100))
	c.set(1, 1, block(100))
	c.set(1, 2, block(100))
	if _, ok := c.get(1, 0); !ok { // 0 becomes most recent; 1 is the LRU
		t.Fatal("block 0 missing")
	}
	c.set(2, 0, block(100)) // evicts (1,1)
	for _, tc := range []struct {
		id, off uint64
		want    bool
	}{{1, 0, true}, {1, 1, false}, {1, 2, true}, {2, 0, true}, {3, 0, false}} {
		if _, ok := c.get(tc.id, tc.off); ok != tc.want {
			t.Errorf("get(%d, %d) = %v, want %v", tc.id, tc.off, ok, tc.want)
		}
	}
	if s := c.Stats(); s.Size != 300 || s.Capacity != 300 || s.Hits != 4 || s.Misses != 2 {
		t.Errorf("stats %+v, want size 300, capacity 300, 4 hits, 2 misses", s)
	}
	c.set(1, 0, block(250)) // replaces (1,0) and evicts everything else
	if s := c.Stats(); s.Size != 250 {
		t.Errorf("after replace: size %d, want 250", s.Size)
	}
	c.set(9, 9, block(301)) // larger than the shard: not cached
	if _, ok := c.get(9, 9); ok || c.Stats().Size != 250 {
		t.Errorf("oversized block cached (size %d)", c.Stats().Size)
	}
	z := NewCache(0)
	z.set(1, 0, block(100))
	if _, ok := z.get(1, 0); ok || z.Stats().Size != 0 {
		t.Error("zero-capacity cache holds a block")
	}
	if s := (*Cache)(nil).Stats(); s != (CacheStats{}) {
		t.Errorf("nil cache stats %+v", s)
	}
	if n := len(NewCache(1 << 30).shards); n != maxCacheShards {
		t.Errorf("1 GiB cache has %d shards, want %d", n, maxCacheShards)
	}
}

// TestCacheScanResistant: blocks hit twice survive a scan of many blocks
// read once each, which a plain LRU would lose entirely.
func TestCacheScanResistant(t *testing.T) {
	block := func(n int) []byte { return make([]byte, n-cacheEntryOverhead) }
	c := NewCache(1000) // one shard: ten 100-byte charges, eight protected
	if len(c.shards) != 1 {
		t.Fatalf("%d shards for a 1000-byte cache", len(c.shards))
	}
	for off := range uint64(8) {
		c.set(1, off, block(100))
		if _, ok := c.get(1, off); !ok {
			t.Fatalf("block %d missing right after set", off)
		}
	}
	for off := range uint64(100) { // the scan
		c.set(2, off, block(100))
	}
	for off := range uint64(8) {
		if _, ok := c.get(1, off); !ok {
			t.Errorf("hot block %d lost to the scan", off)
		}
	}
	if _, ok := c.get(2, 99); !ok {
		t.Error("the scan's newest block is not cached")
	}
	if _, ok := c.get(2, 0); ok {
		t.Error("the scan's oldest block is still cached")
	}
	// A ninth hot block pushes the protected list's least recent back to
	// probation, where it can be evicted.
	c.set(3, 0, block(100))
	c.get(3, 0)
	for off := range uint64(3) {
		c.set(4, off, block(100))
	}
	if _, ok := c.get(1, 0); ok {
		t.Error("block (1,0), demoted to probation, survived three newer blocks")
	}
	if s := c.Stats(); s.Size > s.Capacity {
		t.Errorf("size %d over capacity %d", s.Size, s.Capacity)
	}
}

// TestCacheBoundedUnderConcurrentReaders runs readers of several tables
// sharing a small cache while a watcher checks that the bytes charged never
// exceed the capacity; every read is checked against the model.
func TestCacheBoundedUnderConcurrentReaders(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 7))
	kvs := randomKVs(rng, 2000, 200)
	for _, capacity := range []int64{20 << 10, 600 << 10} {
		t.Run(fmt.Sprintf("capacity=%d", capacity), func(t *testing.T) {
			testCacheBounded(t, seed, kvs, capacity)
		})
	}
}

func testCacheBounded(t *testing.T, seed uint64, kvs []kv, capacity int64) {
	cache := NewCache(capacity)
	t.Logf("%d shards", len(cache.shards))
	var readers []*Reader
	for i := 0; i < 3; i++ {
		data, _ := buildTable(t, kvs, &WriterOptions{BlockSize: 1024, Compression: Compression(i % 2)})
		readers = append(readers, openBytes(t, data, cache))
	}
	done := make(chan struct{})
	var watcher sync.WaitGroup
	watcher.Add(1)
	maxSeen := int64(0)
	go func() {
		defer watcher.Done()
		for {
			maxSeen = max(maxSeen, cache.Stats().Size)
			select {
			case <-done:
				return
			default:
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(100+g)))
			for n := 0; n < 300; n++ {
				it := readers[rng.IntN(len(readers))].NewIter()
				i := rng.IntN(len(kvs))
				ok := it.SeekGE(kvs[i].k)
				for step := 0; step < 5 && i < len(kvs); step++ {
					if !ok || !bytes.Equal(it.Key(), kvs[i].k) || !bytes.Equal(it.Value(), kvs[i].v) {
						errs <- fmt.Errorf("goroutine %d: at %q got %q (valid %v, err %v)", g, kvs[i].k, it.Key(), ok, it.Error())
						it.Close()
						return
					}
					ok, i = it.Next(), i+1
				}
				it.Close()
			}
		}(g)
	}
	wg.Wait()
	close(done)
	watcher.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s := cache.Stats()
	if maxSeen > capacity || s.Size > capacity {
		t.Errorf("cache held %d bytes (now %d), capacity %d", maxSeen, s.Size, capacity)
	}
	if s.Hits == 0 || s.Misses == 0 || s.Size == 0 {
		t.Errorf("stats %+v: want hits, misses and a non-empty cache", s)
	}
	// The sum of the shards' charges is the reported size.
	var sum int64
	for i := range cache.shards {
		sh := &cache.shards[i]
		sh.mu.Lock()
		n, prot := 0, int64(0)
		for _, l := range []*cacheEntry{&sh.mu.probation, &sh.mu.protected} {
			for e := l.next; e != l; e = e.next {
				sum += e.charge
				n++
				if e.protected != (l == &sh.mu.protected) {
					t.Errorf("shard %d: entry %v in the wrong list", i, e.key)
				}
				if e.protected {
					prot += e.charge
				}
			}
		}
		if n != len(sh.mu.m) || sh.mu.size > sh.mu.capacity || prot != sh.mu.protSize || prot > sh.mu.protCap {
			t.Errorf("shard %d: %d listed, %d mapped, size %d of %d, protected %d (counted %d) of %d",
				i, n, len(sh.mu.m), sh.mu.size, sh.mu.capacity, sh.mu.protSize, prot, sh.mu.protCap)
		}
		sh.mu.Unlock()
	}
	if sum != s.Size {
		t.Errorf("shards hold %d bytes, stats say %d", sum, s.Size)
	}
	for _, r := range readers {
		r.Close()
	}
	if s := cache.Stats(); s.Size != 0 {
		t.Errorf("after closing every reader the cache holds %d bytes", s.Size)
	}
}

// TestIterNoCacheFill: an iterator with NoCacheFill reads every entry
// right, uses blocks already cached, and adds none; values it returned
// stay correct while it moves between blocks read into its own buffer.
func TestIterNoCacheFill(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 11))
	kvs := randomKVs(rng, 2000, 200)
	for _, comp := range []Compression{CompressionNone, CompressionSnappy} {
		cache := NewCache(64 << 20)
		data, _ := buildTable(t, kvs, &WriterOptions{BlockSize: 1024, Compression: comp})
		r := openBytes(t, data, cache)
		scan := func(o IterOptions) []kv {
			it := r.NewIterWith(o)
			defer it.Close()
			var got []kv
			for ok := it.First(); ok; ok = it.Next() {
				got = append(got, kv{append([]byte(nil), it.Key()...), append([]byte(nil), it.Value()...)})
			}
			if err := it.Error(); err != nil {
				t.Fatal(err)
			}
			return got
		}
		if got := scan(IterOptions{NoCacheFill: true}); !equalKVs(got, kvs) {
			t.Fatalf("compression %v: NoCacheFill scan differs from what was written", comp)
		}
		if st := cache.Stats(); st.Size != 0 || st.Misses == 0 {
			t.Fatalf("compression %v: after a NoCacheFill scan the cache holds %d bytes (misses %d), want none", comp, st.Size, st.Misses)
		}
		if got := scan(IterOptions{}); !equalKVs(got, kvs) {
			t.Fatalf("compression %v: filling scan differs", comp)
		}
		filled := cache.Stats()
		if filled.Size == 0 {
			t.Fatalf("compression %v: a default scan cached nothing", comp)
		}
		if got := scan(IterOptions{NoCacheFill: true}); !equalKVs(got, kvs) {
			t.Fatalf("compression %v: NoCacheFill scan over cached blocks differs", comp)
		}
		if st := cache.Stats(); st.Hits <= filled.Hits || st.Size != filled.Size {
			t.Fatalf("compression %v: NoCacheFill scan of cached blocks: hits %d -> %d, size %d -> %d", comp, filled.Hits, st.Hits, filled.Size, st.Size)
		}
	}
}

// TestIterMaxFill: an iterator adds at most MaxFill missing blocks to the
// cache, then reads past it, and still returns every entry.
func TestIterMaxFill(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 12))
	kvs := randomKVs(rng, 2000, 200)
	cache := NewCache(64 << 20)
	data, _ := buildTable(t, kvs, &WriterOptions{BlockSize: 1024, Compression: CompressionSnappy})
	r := openBytes(t, data, cache)
	if len(r.index) < 10 {
		t.Fatalf("only %d blocks", len(r.index))
	}
	it := r.NewIterWith(IterOptions{MaxFill: 3})
	var got []kv
	for ok := it.First(); ok; ok = it.Next() {
		got = append(got, kv{append([]byte(nil), it.Key()...), append([]byte(nil), it.Value()...)})
	}
	if err := it.Error(); err != nil {
		t.Fatal(err)
	}
	it.Close()
	if !equalKVs(got, kvs) {
		t.Fatal("MaxFill scan differs from what was written")
	}
	cached := 0
	for i := range cache.shards {
		cached += len(cache.shards[i].mu.m)
	}
	if cached != 3 {
		t.Fatalf("%d blocks cached by an iterator with MaxFill 3 over %d blocks", cached, len(r.index))
	}
}
