package memtable_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"cellar/internal/keys"
	"cellar/memtable"
)

// TestInserterAgainstModel: Adds through an Inserter, in runs of ascending
// keys (a row's cells) mixed with keys out of order, duplicates and a full
// arena, leave the memtable exactly as the model says, and each error is
// Add's.
func TestInserterAgainstModel(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 2))
	for round := range 30 {
		arena := []int64{memtable.MinArenaSize, 16 << 10, 1 << 20}[rng.IntN(3)]
		m := memtable.New(&memtable.Options{ArenaSize: arena})
		var ins memtable.Inserter
		md := newRefModel()
		for op := range 300 {
			// A run of 1..12 cells of one row, ascending, sometimes shuffled
			// or with a key repeated.
			row := fmt.Sprintf("row%03d", rng.IntN(60))
			var run [][]byte
			for q := range 1 + rng.IntN(12) {
				run = append(run, cellKey(row, fmt.Sprintf("q%02d", q), int64(rng.IntN(3)), keys.SeqNum(op+1)))
			}
			switch rng.IntN(6) {
			case 0:
				rng.Shuffle(len(run), func(i, j int) { run[i], run[j] = run[j], run[i] })
			case 1:
				run = append(run, run[rng.IntN(len(run))])
			}
			for _, k := range run {
				v := fmt.Sprint(rng.Uint32())
				md.add(t, fmt.Sprintf("seed %d round %d op %d", seed, round, op), k, v, m.AddWith(&ins, k, []byte(v)))
			}
		}
		md.check(t, fmt.Sprintf("seed %d round %d", seed, round), m)
		for _, k := range md.keys { // every entry is found by a search from the top
			it := m.NewIter()
			if !it.SeekGE([]byte(k)) || string(it.Key()) != k {
				t.Fatalf("seed %d round %d: SeekGE(%x) missed it", seed, round, k)
			}
			it.Close()
		}
	}
}

// TestInserterFollowsItsMemtable: an Inserter used on another memtable, or
// on its memtable after the pool reset it, starts over instead of searching
// from nodes that are not there.
func TestInserterFollowsItsMemtable(t *testing.T) {
	pool := memtable.NewPool(1)
	opts := &memtable.Options{ArenaSize: 1 << 20}
	a := pool.Get(opts)
	var ins memtable.Inserter
	for i := range 100 {
		if err := a.AddWith(&ins, cellKey("r", fmt.Sprintf("q%03d", i), 1, 1), nil); err != nil {
			t.Fatal(err)
		}
	}
	pool.Put(a)
	b := pool.Get(opts) // a again, reset
	if b != a {
		t.Fatal("the pool did not hand back the reset memtable")
	}
	other := memtable.New(opts)
	for _, m := range []*memtable.Memtable{b, other} {
		for i := 100; i < 150; i++ {
			if err := m.AddWith(&ins, cellKey("r", fmt.Sprintf("q%03d", i), 1, 1), nil); err != nil {
				t.Fatal(err)
			}
		}
		if ks, _ := collect(t, m); len(ks) != 50 || m.Len() != 50 {
			t.Fatalf("%d entries iterated, Len %d, want 50", len(ks), m.Len())
		}
	}
}

// TestInserterConcurrent: writers each add ascending runs through their own
// Inserter while the others do the same on interleaved keys; every key is
// there once, in order.
func TestInserterConcurrent(t *testing.T) {
	seed := testSeed(t)
	const writers, runs, perRun = 4, 400, 10
	m := memtable.New(&memtable.Options{ArenaSize: 16 << 20})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			var ins memtable.Inserter
			for r := range runs {
				row := fmt.Sprintf("row%05d", rng.IntN(2000))
				for q := range perRun {
					k := cellKey(row, fmt.Sprintf("w%dq%02d", w, q), 0, keys.SeqNum(r+1))
					if err := m.AddWith(&ins, k, []byte(row)); err != nil {
						t.Errorf("writer %d: %v", w, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	ks, _ := collect(t, m)
	if !slices.IsSortedFunc(ks, func(a, b []byte) int { return slices.Compare(a, b) }) {
		t.Fatal("entries out of order")
	}
	for i := 1; i < len(ks); i++ {
		if string(ks[i]) == string(ks[i-1]) {
			t.Fatalf("key %x twice", ks[i])
		}
	}
	if m.Len() != len(ks) || len(ks) != writers*runs*perRun {
		t.Fatalf("Len %d, %d iterated", m.Len(), len(ks))
	}
}
