package memtable

import (
	"encoding/binary"
	"testing"
)

// TestDocLayoutExample checks the worked example in doc.go byte for byte.
func TestDocLayoutExample(t *testing.T) {
	m := New(nil)
	if m.head != 4 || m.Size() != 96 || headOverhead != 96 {
		t.Fatalf("fresh arena: head at %d, Size %d, headOverhead %d; want 4, 96, 96", m.head, m.Size(), headOverhead)
	}
	if err := m.add(nil, []byte("b"), []byte("2"), 1); err != nil {
		t.Fatal(err)
	}
	if err := m.add(nil, []byte("a"), []byte("1"), 2); err != nil {
		t.Fatal(err)
	}
	if m.Size() != 140 {
		t.Errorf("Size() = %d, want 140", m.Size())
	}
	links := []struct {
		node  uint32
		level int
		want  uint32
	}{
		{4, 0, 116}, {4, 1, 116}, {4, 2, 0}, {4, 19, 0},
		{116, 0, 96}, {116, 1, 0},
		{96, 0, 0},
	}
	for _, l := range links {
		if got := m.next(l.node, l.level).Load(); got != l.want {
			t.Errorf("node %d next[%d] = %d, want %d", l.node, l.level, got, l.want)
		}
	}
	// Offsets below chunkSize are in the first chunk, at the same
	// positions.
	buf := m.arena.chunks[0].load().buf
	// "b": keyLen 1, valueLen 1, height 1, next[0], 'b', '2'.
	if kl, vl, h := binary.LittleEndian.Uint32(buf[96:]), binary.LittleEndian.Uint32(buf[100:]),
		binary.LittleEndian.Uint32(buf[104:]); kl != 1 || vl != 1 || h != 1 {
		t.Errorf("node 96 header = %d,%d,%d, want 1,1,1", kl, vl, h)
	}
	if string(buf[112:114]) != "b2" {
		t.Errorf("node 96 key+value = %q, want \"b2\"", buf[112:114])
	}
	if string(buf[116+12+8:116+12+8+2]) != "a1" {
		t.Errorf("node 116 key+value = %q, want \"a1\"", buf[136:138])
	}
	if m.Len() != 2 {
		t.Errorf("Len() = %d, want 2", m.Len())
	}
}

// TestTowerInvariant checks, after many adds with random heights, that every
// level is sorted and that each node linked at level i+1 is linked at level i.
func TestTowerInvariant(t *testing.T) {
	t.Run("Add", func(t *testing.T) {
		m := New(&Options{ArenaSize: 1 << 20})
		for i := range 5000 {
			k := binary.BigEndian.AppendUint32(nil, uint32(i*7919%5000))
			if err := m.Add(k, nil); err != nil {
				t.Fatal(err)
			}
		}
		checkTowers(t, m)
	})
	t.Run("Inserter", func(t *testing.T) {
		// Ascending runs of 10 at scattered places, as a row's cells are.
		m := New(&Options{ArenaSize: 1 << 20})
		var ins Inserter
		for i := range 500 {
			base := uint32(i*7919%500) * 10
			for j := range uint32(10) {
				if err := m.AddWith(&ins, binary.BigEndian.AppendUint32(nil, base+j), nil); err != nil {
					t.Fatal(err)
				}
			}
		}
		checkTowers(t, m)
	})
}

// checkTowers checks that every level is sorted, that a node linked at a
// level is linked at every level below, and that level 0 holds 5000 nodes.
func checkTowers(t *testing.T, m *Memtable) {
	t.Helper()
	lower := map[uint32]bool{}
	for level := 0; level < maxHeight; level++ {
		here := map[uint32]bool{}
		var prevKey []byte
		for n := m.next(m.head, level).Load(); n != nilOffset; n = m.next(n, level).Load() {
			k := m.key(n)
			if prevKey != nil && string(prevKey) >= string(k) {
				t.Fatalf("level %d not sorted: %x then %x", level, prevKey, k)
			}
			if level > 0 && !lower[n] {
				t.Fatalf("node %d linked at level %d but not at level %d", n, level, level-1)
			}
			prevKey = k
			here[n] = true
		}
		if level == 0 && len(here) != 5000 {
			t.Fatalf("level 0 has %d nodes, want 5000", len(here))
		}
		lower = here
	}
	if h := m.height.Load(); h < 2 || h > maxHeight {
		t.Errorf("list height %d after 5000 adds, want in [2, %d]", h, maxHeight)
	}
}

func TestRandomHeightDistribution(t *testing.T) {
	var counts [maxHeight + 1]int
	const n = 200000
	for range n {
		h := randomHeight()
		if h < 1 || h > maxHeight {
			t.Fatalf("randomHeight() = %d, want in [1, %d]", h, maxHeight)
		}
		counts[h]++
	}
	// Expect 3/4 at height 1 and 3/16 at height 2; allow wide margins (the
	// standard deviation is about 0.1%).
	if f := float64(counts[1]) / n; f < 0.73 || f > 0.77 {
		t.Errorf("fraction of height 1 = %.3f, want about 0.75", f)
	}
	if f := float64(counts[2]) / n; f < 0.17 || f > 0.205 {
		t.Errorf("fraction of height 2 = %.3f, want about 0.1875", f)
	}
}
