package memtable

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
)

// TestChunkBoundaries places nodes of chosen sizes (tower height 1, 3-byte
// keys) at chosen offsets: one
// ending exactly at a chunk boundary, one starting exactly at one, one
// exactly a chunk long, one that would straddle, and nodes larger than a
// chunk (a multiple of it and not), then reads all of them back through
// every read path.
func TestChunkBoundaries(t *testing.T) {
	const C = chunkSize
	m := New(&Options{ArenaSize: 64 << 20})
	// value returns a value that makes a height-1 node with a 3-byte key
	// exactly n bytes long (n a multiple of 4).
	value := func(tag byte, n int) []byte {
		v := bytes.Repeat([]byte{tag}, n-nodeHeaderSize-linkSize-3)
		for i := range v {
			v[i] += byte(i % 7) // not uniform, so that a misplaced read shows
		}
		return v
	}
	steps := []struct {
		key       string
		size      int    // node bytes
		wantOff   uint32 // where it must land
		wantUsed  uint32 // the end of the offsets handed out after it
		wantWaste int64  // Size() - live after it: the rests of chunks skipped
	}{
		{"k05", C - headOverhead, headOverhead, C, 0}, // ends exactly at the first boundary
		{"k01", 100, C, C + 100, 0},                   // starts exactly at a boundary
		{"k09", C, 2 * C, 3 * C, C - 100},             // a chunk long: skips the rest of chunk 1
		{"k03", 100, 3 * C, 3*C + 100, C - 100},       // after an exactly full chunk
		{"k07", C - 96, 4 * C, 5*C - 96, 2*C - 200},   // would straddle by 4 bytes: next chunk
		{"k02", 2*C + 124, 5 * C, 6 * C, 2*C - 104},   // big: skips 96 bytes, its own buffer, one chunk of offsets
		{"k08", 2 * C, 6 * C, 7 * C, 2*C - 104},       // big, exactly two chunks, right after a big one
		{"k04", C + 4, 7 * C, 8 * C, 2*C - 104},       // just over a chunk
		{"k06", 40, 8 * C, 8*C + 40, 2*C - 104},       // small again, after a big one
		{"k00", 40, 8*C + 40, 8*C + 80, 2*C - 104},    // the same chunk
	}
	want := map[string][]byte{}
	offsets := map[string]uint32{}
	live := int64(headOverhead)
	for i, s := range steps {
		v := value(byte('a'+i), s.size)
		if err := m.add(nil, []byte(s.key), v, 1); err != nil {
			t.Fatalf("%s: %v", s.key, err)
		}
		live += int64(s.size)
		want[s.key] = v
		if m.arena.used() != s.wantUsed || m.arena.live() != live || m.Size() != live+s.wantWaste {
			t.Fatalf("after %s (%d bytes): used %d, live %d, Size %d; want %d, %d, %d", s.key, s.size,
				m.arena.used(), m.arena.live(), m.Size(), s.wantUsed, live, live+s.wantWaste)
		}
		offsets[s.key] = s.wantOff
	}
	// The nodes are where they should be.
	for n := m.next(m.head, 0).Load(); n != nilOffset; n = m.next(n, 0).Load() {
		k := string(m.key(n))
		if offsets[k] != n {
			t.Errorf("%s at %d, want %d", k, n, offsets[k])
		}
	}
	// Big nodes own their slots, with a buffer of their size.
	for i, wantLen := range map[int]int{5: 2*C + 124, 6: 2 * C, 7: C + 4, 8: C} {
		c := m.arena.chunks[i].load()
		if c == nil || c.big != (i < 8) || len(c.buf) != wantLen {
			t.Errorf("slot %d: %+v, want a chunk of %d bytes", i, c, wantLen)
		}
	}

	var ks []string
	for k := range want {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	check := func(it *Iterator, i int, how string) {
		t.Helper()
		if !it.Valid() || string(it.Key()) != ks[i] || !bytes.Equal(it.Value(), want[ks[i]]) {
			t.Fatalf("%s: at %q (value %d bytes), want %q (%d bytes)", how, it.Key(), len(it.Value()), ks[i], len(want[ks[i]]))
		}
	}
	it := m.NewIter()
	i := 0
	for ok := it.First(); ok; ok = it.Next() {
		check(it, i, "First/Next")
		i++
	}
	if i != len(ks) {
		t.Fatalf("iterated %d entries, want %d", i, len(ks))
	}
	for i, k := range ks {
		// Exactly, and from just before: the seek lands on it and Next
		// goes on in order.
		for _, target := range []string{k, k[:2]} {
			if !it.SeekGE([]byte(target)) {
				t.Fatalf("SeekGE(%q) found nothing", target)
			}
			if target == k || i == 0 || ks[i-1][:2] != k[:2] {
				check(it, i, fmt.Sprintf("SeekGE(%q)", target))
				for j := i + 1; j < len(ks); j++ {
					it.Next()
					check(it, j, fmt.Sprintf("SeekGE(%q)+Next", target))
				}
			}
		}
	}
	if err := CheckChunks(m); err != nil {
		t.Fatal(err)
	}
}
