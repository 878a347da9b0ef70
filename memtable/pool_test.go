package memtable_test

import (
	"fmt"
	"testing"

	"cellar/memtable"
)

// TestPoolReuse: a memtable handed back comes out empty, with the same
// arena, and writes over its old bytes correctly; a different size or a
// full pool allocates anew.
func TestPoolReuse(t *testing.T) {
	p := memtable.NewPool(1)
	opts := &memtable.Options{ArenaSize: 64 << 10}
	m := p.Get(opts)
	for i := 0; i < 200; i++ {
		if err := m.Add(cellKey(fmt.Sprintf("r%03d", i), "q", 1, 1), []byte(fmt.Sprintf("old value %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	used := m.Size()
	p.Put(m)
	if p.Idle() != 1 {
		t.Fatalf("Idle() = %d after Put, want 1", p.Idle())
	}
	p.Put(memtable.New(opts)) // the pool is full: dropped
	if p.Idle() != 1 {
		t.Fatalf("Idle() = %d after a Put into a full pool, want 1", p.Idle())
	}
	if other := p.Get(&memtable.Options{ArenaSize: 128 << 10}); other == m || p.Idle() != 1 {
		t.Fatalf("Get of another size reused the pooled memtable (idle %d)", p.Idle())
	}
	r := p.Get(opts)
	if r != m {
		t.Fatal("Get did not reuse the pooled memtable")
	}
	if !r.Empty() || r.Len() != 0 || r.Size() >= used {
		t.Fatalf("reused memtable: Empty %v, Len %d, Size %d (was %d)", r.Empty(), r.Len(), r.Size(), used)
	}
	// New entries interleave with where old ones were; none of the old
	// ones may show through.
	for i := 199; i >= 0; i -= 2 {
		if err := r.Add(cellKey(fmt.Sprintf("r%03d", i), "n", 2, 2), []byte(fmt.Sprintf("new %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	ks, vs := collect(t, r)
	if len(ks) != 100 {
		t.Fatalf("%d entries after reuse, want 100", len(ks))
	}
	for j, k := range ks {
		i := 2*j + 1
		if want := cellKey(fmt.Sprintf("r%03d", i), "n", 2, 2); string(k) != string(want) || string(vs[j]) != fmt.Sprintf("new %d", i) {
			t.Fatalf("entry %d: %q = %q, want %q = %q", j, k, vs[j], want, fmt.Sprintf("new %d", i))
		}
	}
	if memtable.NewPool(0).Put(r); r.Len() != 100 {
		t.Fatal("Put into a pool of 0 emptied the memtable")
	}
}
