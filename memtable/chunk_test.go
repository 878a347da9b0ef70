package memtable_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"cellar/internal/keys"
	"cellar/memtable"
)

// TestHeapProportional: memtables hold heap in proportion to what they
// hold, not to their capacity. 200 memtables of 64 MiB with one small
// entry each take a chunk each (plus the slot table), far below the 12.5
// GiB that arenas allocated up front would.
func TestHeapProportional(t *testing.T) {
	const n = 200
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ms := make([]*memtable.Memtable, n)
	for i := range ms {
		ms[i] = memtable.New(&memtable.Options{ArenaSize: 64 << 20})
		if err := ms[i].Add(cellKey(fmt.Sprintf("row%d", i), "q", 1, 1), []byte("value")); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d memtables of 64 MiB with one entry: heap grew by %d bytes (%d per memtable)", n, grew, grew/n)
	if limit := int64(n * 2 * memtable.ChunkSize); grew > limit {
		t.Errorf("heap grew by %d bytes, want under %d (2 chunks per memtable)", grew, limit)
	}
	for _, m := range ms {
		if m.Len() != 1 {
			t.Fatal("lost an entry")
		}
	}
	runtime.KeepAlive(ms)
}

// bigValue returns a value of n bytes that depends on seed, so that a read
// from the wrong place shows.
func bigValue(seed uint64, n int) []byte {
	v := make([]byte, n)
	rng := rand.New(rand.NewPCG(seed, uint64(n)))
	for i := 0; i < n; i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], rng.Uint64())
		copy(v[i:], w[:])
	}
	return v
}

// valueSize draws a value length: mostly small, some a fair part of a
// chunk (so that they often do not fit in what is left of one), some
// larger than a chunk, up to three chunks.
func valueSize(rng *rand.Rand) int {
	switch r := rng.IntN(20); {
	case r < 12:
		return rng.IntN(200)
	case r < 17:
		return rng.IntN(memtable.ChunkSize / 2)
	case r < 18:
		return memtable.ChunkSize - 64 + rng.IntN(128) // about a chunk: either side of the line
	default:
		return memtable.ChunkSize + rng.IntN(2*memtable.ChunkSize)
	}
}

// TestMixedSizesAgainstModel adds entries of mixed sizes, small and larger
// than a chunk, until the arena is full, and checks every read path
// against the model: iteration, SeekGE at and before every key (then Next),
// and the placement of every node in its chunk.
func TestMixedSizesAgainstModel(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 3))
	for round := range 3 {
		m := memtable.New(&memtable.Options{ArenaSize: 16 << 20})
		md := newRefModel()
		var ins memtable.Inserter
		full := 0
		for op := 0; full < 20; op++ {
			k := cellKey(fmt.Sprintf("row%04d", rng.IntN(5000)), "q", int64(op), keys.SeqNum(op+1))
			v := bigValue(uint64(op), valueSize(rng))
			var err error
			if op%2 == 0 {
				err = m.Add(k, v)
			} else {
				err = m.AddWith(&ins, k, v)
			}
			if md.add(t, fmt.Sprintf("seed %d round %d op %d", seed, round, op), k, string(v), err) {
				full++
			}
			if Size, live := m.Size(), memtable.Live(m); live > m.Capacity() || Size < live {
				t.Fatalf("Size %d, live %d, capacity %d", Size, live, m.Capacity())
			}
		}
		where := fmt.Sprintf("seed %d round %d", seed, round)
		md.check(t, where, m)
		if err := memtable.CheckChunks(m); err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		checkSeeks(t, where, m, md)
		t.Logf("%s: %d entries, Size %d, live %d (waste %.1f%%)", where, m.Len(), m.Size(), memtable.Live(m),
			100*float64(m.Size()-memtable.Live(m))/float64(m.Size()))
	}
}

// checkSeeks seeks to every key of the model and to just before it, and
// reads on with Next to the end or a few entries further.
func checkSeeks(t *testing.T, where string, m *memtable.Memtable, md *refModel) {
	t.Helper()
	it := m.NewIter()
	defer it.Close()
	for i, k := range md.keys {
		before := []byte(k[:len(k)-1])
		for _, target := range [][]byte{[]byte(k), before} {
			j, _ := slices.BinarySearch(md.keys, string(target))
			ok := it.SeekGE(target)
			for ; j < min(i+4, len(md.keys)); j++ {
				if !ok || string(it.Key()) != md.keys[j] || string(it.Value()) != md.values[md.keys[j]] {
					t.Fatalf("%s: SeekGE(%x) then Next: at %x, want %x", where, target, it.Key(), md.keys[j])
				}
				ok = it.Next()
			}
		}
	}
}

// TestConcurrentAddAcrossChunks: writers add entries of mixed sizes (small,
// a fair part of a chunk, larger than a chunk) through Add and Inserters,
// crossing hundreds of chunk boundaries, while readers iterate and check
// order and values; at the end the memtable holds exactly what the
// writers added, each node in one chunk.
func TestConcurrentAddAcrossChunks(t *testing.T) {
	seed := testSeed(t)
	const writers, perWriter, readers = 4, 300, 2
	m := memtable.New(&memtable.Options{ArenaSize: 256 << 20})
	type entry struct{ k, v []byte }
	added := make([][]entry, writers)
	var done atomic.Int64
	errs := make(chan error, writers+readers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			defer done.Add(1)
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			var ins memtable.Inserter
			for i := 0; i < perWriter; {
				// A run of ascending cells of one row, as the tablet adds them.
				row := fmt.Sprintf("row%04d", rng.IntN(3000))
				for q := 0; q < 1+rng.IntN(4) && i < perWriter; q, i = q+1, i+1 {
					k := cellKey(row, fmt.Sprintf("w%dq%d", w, q), int64(i), keys.SeqNum(w*perWriter+i+1))
					// The value is a function of the key: readers check it.
					v := bigValue(binary.BigEndian.Uint64(k[len(k)-8:]), valueSize(rng))
					var err error
					if q == 0 {
						err = m.Add(k, v)
					} else {
						err = m.AddWith(&ins, k, v)
					}
					if err != nil {
						errs <- fmt.Errorf("writer %d: %w", w, err)
						return
					}
					added[w] = append(added[w], entry{k, v})
				}
			}
		})
	}
	for r := range readers {
		wg.Go(func() {
			for pass := 0; done.Load() < writers; pass++ {
				it := m.NewIter()
				var prev []byte
				for ok := it.First(); ok; ok = it.Next() {
					k := it.Key()
					if prev != nil && bytes.Compare(prev, k) >= 0 {
						errs <- fmt.Errorf("reader %d pass %d: %x after %x", r, pass, k, prev)
						return
					}
					if v := it.Value(); !bytes.Equal(v, bigValue(binary.BigEndian.Uint64(k[len(k)-8:]), len(v))) {
						errs <- fmt.Errorf("reader %d pass %d: value of %x (%d bytes) differs", r, pass, k, len(v))
						return
					}
					prev = k
				}
				it.Close()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	md := newRefModel()
	for w := range added {
		for _, e := range added[w] {
			md.add(t, "model", e.k, string(e.v), nil)
		}
	}
	md.check(t, "after the writers", m)
	if err := memtable.CheckChunks(m); err != nil {
		t.Fatal(err)
	}
	standard, big := memtable.Chunks(m)
	t.Logf("%d entries in %d standard and %d big chunks; Size %d, live %d", m.Len(), len(standard), big, m.Size(), memtable.Live(m))
	if len(standard) < 50 || big < 25 {
		t.Errorf("only %d standard and %d big chunks: the test crossed too few boundaries", len(standard), big)
	}
	checkSeeks(t, "after the writers", m, md)
}

// TestConcurrentFillAcrossChunks: writers race to fill an arena of a few
// chunks with entries of mixed sizes. Every Add succeeds or returns
// ErrArenaFull; the live bytes stay within the capacity and the entries
// that were added are all there.
func TestConcurrentFillAcrossChunks(t *testing.T) {
	seed := testSeed(t)
	const writers = 4
	m := memtable.New(&memtable.Options{ArenaSize: 8 * memtable.ChunkSize})
	added := make([]map[string][]byte, writers)
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		added[w] = map[string][]byte{}
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for i, fulls := 0, 0; fulls < 5; i++ {
				k := fmt.Appendf(nil, "%08d/%d", i, w)
				v := bigValue(uint64(i*writers+w), valueSize(rng))
				switch err := m.Add(k, v); {
				case errors.Is(err, memtable.ErrArenaFull):
					fulls++
				case err != nil:
					errs <- err
					return
				default:
					added[w][string(k)] = v
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if memtable.Live(m) > m.Capacity() || m.Size() < memtable.Live(m) {
		t.Fatalf("Size %d, live %d, capacity %d", m.Size(), memtable.Live(m), m.Capacity())
	}
	ks, vs := collect(t, m)
	total := 0
	for w := range added {
		total += len(added[w])
	}
	if len(ks) != total || m.Len() != total {
		t.Fatalf("added %d, iterated %d, Len %d", total, len(ks), m.Len())
	}
	for i, k := range ks {
		if v, ok := added[int(k[9]-'0')][string(k)]; !ok || !bytes.Equal(v, vs[i]) {
			t.Fatalf("entry %q: added %v, value matches %v", k, ok, bytes.Equal(v, vs[i]))
		}
	}
	if err := memtable.CheckChunks(m); err != nil {
		t.Fatal(err)
	}
}

// TestFullAtSamePoint: an arena of many chunks is full after exactly as
// many entries as the capacity holds without the waste at chunk tails
// (what the tablet's reservations with ArenaSizeFor rely on), and Size
// counts that waste.
func TestFullAtSamePoint(t *testing.T) {
	const capacity = 16 << 20
	for _, valueLen := range []int{100, 1000, 10000, 100000, 1000000} {
		m := memtable.New(&memtable.Options{ArenaSize: capacity})
		k := []byte("key!")
		n := 0
		var err error
		for ; ; n++ {
			// Entries of the largest node size, so the count is exact:
			// every one fits by ArenaSizeFor minus the head.
			if err = m.Add(binary.BigEndian.AppendUint32(slices.Clone(k), uint32(n)), make([]byte, valueLen)); err != nil {
				break
			}
		}
		if !errors.Is(err, memtable.ErrArenaFull) {
			t.Fatalf("value %d: %v", valueLen, err)
		}
		// Full as the single arena was: the live bytes are within the
		// capacity and the largest node no longer fits in what is left.
		node := memtable.ArenaSizeFor(len(k)+4, valueLen) - 96 // the largest node: a full tower
		if live := memtable.Live(m); live > capacity || capacity-live >= node {
			t.Errorf("value %d: full at %d live bytes of %d; a node of %d would fit", valueLen, live, int64(capacity), node)
		}
		if m.Size() < memtable.Live(m) {
			t.Errorf("value %d: Size %d below the live bytes %d", valueLen, m.Size(), memtable.Live(m))
		}
		t.Logf("value %7d: %6d entries, Size %d, live %d, waste %5.2f%% of Size", valueLen, n, m.Size(), memtable.Live(m),
			100*float64(m.Size()-memtable.Live(m))/float64(m.Size()))
	}
}

// TestPoolReuseAfterGrowth: a memtable that grew to many chunks, some big,
// goes back to the pool; the next user gets the same standard chunks (no
// new ones for the same load), none of the big ones, and reads back only
// what it added, through every read path.
func TestPoolReuseAfterGrowth(t *testing.T) {
	seed := testSeed(t)
	p := memtable.NewPool(1)
	opts := &memtable.Options{ArenaSize: 32 << 20}
	m := p.Get(opts)
	fill := func(m *memtable.Memtable, gen int, rng *rand.Rand) *refModel {
		md := newRefModel()
		for op := 0; op < 400; op++ {
			k := cellKey(fmt.Sprintf("row%04d", rng.IntN(1000)), fmt.Sprint(gen), int64(op), keys.SeqNum(op+1))
			v := bigValue(uint64(gen<<20|op), valueSize(rng))
			if md.add(t, fmt.Sprintf("gen %d op %d", gen, op), k, string(v), m.Add(k, v)) {
				break
			}
		}
		return md
	}
	md := fill(m, 1, rand.New(rand.NewPCG(seed, 1)))
	md.check(t, "first use", m)
	grown, big := memtable.Chunks(m)
	if len(grown) < 10 || big == 0 {
		t.Fatalf("the first use made %d standard chunks and %d big ones", len(grown), big)
	}
	p.Put(m)
	r := p.Get(opts)
	if r != m || !r.Empty() || r.Size() >= 1024 {
		t.Fatalf("reused memtable: same %v, Empty %v, Size %d", r == m, r.Empty(), r.Size())
	}
	kept, big := memtable.Chunks(r)
	if big != 0 || len(kept) != len(grown) {
		t.Fatalf("after reset: %d standard chunks (had %d), %d big ones", len(kept), len(grown), big)
	}
	for i, c := range kept {
		if grown[i] != c {
			t.Fatalf("slot %d: reset changed its chunk", i)
		}
	}
	// The same load again (the same sizes, other keys, values and tower
	// heights) lands on the chunks kept: each stays in its slot, and the
	// few new ones are where the first use had a big node or nothing.
	md = fill(r, 2, rand.New(rand.NewPCG(seed, 1)))
	md.check(t, "second use", r)
	checkSeeks(t, "second use", r, md)
	if err := memtable.CheckChunks(r); err != nil {
		t.Fatal(err)
	}
	again, _ := memtable.Chunks(r)
	added := 0
	for i, c := range again {
		if old, ok := grown[i]; ok && old != c {
			t.Fatalf("slot %d: the second use replaced its chunk", i)
		} else if !ok {
			added++
		}
	}
	t.Logf("first use: %d standard chunks; second use: %d more", len(grown), added)
	if added > len(grown)/4 {
		t.Errorf("the second use of the same load installed %d new chunks; the first had %d", added, len(grown))
	}
}
