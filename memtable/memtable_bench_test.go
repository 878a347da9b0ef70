package memtable_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"cellar/internal/keys"
	"cellar/memtable"
)

const (
	benchRowLen   = 16
	benchValueLen = 1000
	benchKeyPool  = 1 << 18 // distinct keys; far more than one arena holds
)

// benchKeys returns n encoded keys of 16-byte rows, sequential (row i) or
// random, each with a distinct sequence number. They are built once per
// process and shared by the benchmarks.
var benchKeys = sync.OnceValue(func() map[string][][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	out := map[string][][]byte{}
	for _, order := range []string{"seq", "random"} {
		ks := make([][]byte, benchKeyPool)
		for i := range ks {
			row := make([]byte, benchRowLen)
			if order == "seq" {
				binary.BigEndian.PutUint64(row[8:], uint64(i))
			} else {
				binary.BigEndian.PutUint64(row, rng.Uint64())
				binary.BigEndian.PutUint64(row[8:], rng.Uint64())
			}
			ks[i] = keys.Encode(keys.Key{Row: row, Family: "cf", Qualifier: []byte("col"),
				Timestamp: 1_700_000_000_000_000, Seq: keys.SeqNum(i + 1), Kind: keys.KindSet})
		}
		out[order] = ks
	}
	return out
})

// rotating holds the current memtable and replaces it when it fills, as the
// tablet does, so that a benchmark of any b.N can keep adding.
type rotating struct {
	cur atomic.Pointer[memtable.Memtable]
	mu  sync.Mutex // serializes rotations
}

func newRotating() *rotating {
	r := &rotating{}
	r.cur.Store(memtable.New(nil))
	return r
}

func (r *rotating) add(k, v []byte) error {
	for {
		m := r.cur.Load()
		err := m.Add(k, v)
		if !errors.Is(err, memtable.ErrArenaFull) {
			return err
		}
		r.mu.Lock()
		if r.cur.Load() == m {
			r.cur.Store(memtable.New(nil))
		}
		r.mu.Unlock()
	}
}

// BenchmarkAdd adds 1000-byte values under keys with 16-byte rows, in
// sequential or random row order, from 1 or 2 goroutines. "serialized" runs
// the 2-goroutine workload with a mutex around Add: what a mutex-for-inserts
// design would give. Memtables rotate (a new 64 MiB arena) when full; that
// cost is included, as it is in the tablet.
func BenchmarkAdd(b *testing.B) {
	value := make([]byte, benchValueLen)
	for _, order := range []string{"seq", "random"} {
		for _, mode := range []string{"goroutines=1", "goroutines=2", "goroutines=2/serialized"} {
			b.Run(fmt.Sprintf("order=%s/%s", order, mode), func(b *testing.B) {
				ks := benchKeys()[order]
				g := 1
				if mode != "goroutines=1" {
					g = 2
				}
				var mu sync.Mutex
				serialized := mode == "goroutines=2/serialized"
				r := newRotating()
				b.SetBytes(int64(len(ks[0]) + benchValueLen))
				b.ReportAllocs()
				b.ResetTimer()
				var wg sync.WaitGroup
				errs := make(chan error, g)
				for w := range g {
					wg.Go(func() {
						// Worker w adds keys w, w+g, w+2g, ... of the pool, a
						// contiguous slice of it per memtable, so no key repeats
						// within one memtable.
						for i := w; i < b.N; i += g {
							if serialized {
								mu.Lock()
							}
							err := r.add(ks[i%benchKeyPool], value)
							if serialized {
								mu.Unlock()
							}
							if err != nil {
								errs <- err
								return
							}
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				close(errs)
				for err := range errs {
					b.Fatal(err)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "adds/s")
			})
		}
	}
}

// filled builds a memtable of the default size holding as many of the
// random-order keys with 1000-byte values as fit (about 60,000).
var filled = sync.OnceValues(func() (*memtable.Memtable, [][]byte) {
	ks := benchKeys()["random"]
	m := memtable.New(nil)
	value := make([]byte, benchValueLen)
	var in [][]byte
	for _, k := range ks {
		if err := m.Add(k, value); err != nil {
			break
		}
		in = append(in, k)
	}
	return m, in
})

// BenchmarkSeek positions an iterator with SeekGE at random keys that are
// present, in a full 64 MiB memtable.
func BenchmarkSeek(b *testing.B) {
	m, in := filled()
	rng := rand.New(rand.NewPCG(3, 4))
	targets := make([][]byte, 1<<14)
	for i := range targets {
		targets[i] = in[rng.IntN(len(in))]
	}
	it := m.NewIter()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if !it.SeekGE(targets[i%len(targets)]) {
			b.Fatal("seek missed a present key")
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "seeks/s")
}

// BenchmarkIterate steps an iterator with Next over a full 64 MiB memtable,
// restarting with First at the end; one op is one entry.
func BenchmarkIterate(b *testing.B) {
	m, in := filled()
	it := m.NewIter()
	it.First()
	b.SetBytes(int64(len(in[0]) + benchValueLen))
	b.ReportAllocs()
	b.ResetTimer()
	var sum int
	for i := 0; i < b.N; i++ {
		sum += len(it.Key()) + len(it.Value())
		if !it.Next() {
			it.First()
		}
	}
	if sum == 0 {
		b.Fatal("iterated nothing")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkAddRow adds rows of 10 cells of 100 bytes (YCSB's record), each
// row's cells in key order, at random rows of a memtable that already holds
// 200,000 entries: one Add per cell from the top of the list, or through an
// Inserter per row. Reported per row.
func BenchmarkAddRow(b *testing.B) {
	const prefill, cells = 200_000, 10
	value := make([]byte, 100)
	rowKeys := func(rng *rand.Rand, seq int) [][]byte {
		row := make([]byte, benchRowLen)
		binary.BigEndian.PutUint64(row, rng.Uint64())
		out := make([][]byte, cells)
		for c := range out {
			out[c] = keys.Encode(keys.Key{Row: row, Family: "cf", Qualifier: fmt.Appendf(nil, "field%d", c),
				Timestamp: 1, Seq: keys.SeqNum(seq), Kind: keys.KindSet})
		}
		return out
	}
	for _, mode := range []string{"Add", "Inserter"} {
		b.Run(mode, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(3, 4))
			fresh := func() *memtable.Memtable {
				m := memtable.New(&memtable.Options{ArenaSize: 256 << 20})
				for i := range prefill / cells {
					for _, k := range rowKeys(rng, i+1) {
						if err := m.Add(k, value); err != nil {
							b.Fatal(err)
						}
					}
				}
				return m
			}
			m := fresh()
			rows := make([][][]byte, 4096)
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if i%len(rows) == 0 {
					b.StopTimer()
					if m.Len() > 2*prefill {
						m = fresh()
					}
					for j := range rows {
						rows[j] = rowKeys(rng, prefill+i+j)
					}
					b.StartTimer()
				}
				var ins memtable.Inserter
				for _, k := range rows[i%len(rows)] {
					var err error
					if mode == "Add" {
						err = m.Add(k, value)
					} else {
						err = m.AddWith(&ins, k, value)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
