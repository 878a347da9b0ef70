package mapreduce

import (
	"bytes"
	"cmp"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSortBufferOrder checks the prefix-accelerated sort against a plain
// stable sort by (partition, bytes.Compare(key)), with keys built to tie on
// their first 8 bytes: zero bytes, shared prefixes, lengths around 8.
func TestSortBufferOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	alphabet := []byte{0x00, 'a', 0xff}
	type rec struct {
		part int
		key  []byte
		seq  int
	}
	for round := range 50 {
		var b sortBuffer
		var want []rec
		for i := range 300 {
			k := make([]byte, rng.IntN(13))
			for j := range k {
				k[j] = alphabet[rng.IntN(len(alphabet))]
			}
			p := rng.IntN(3)
			b.add(p, k, []byte{byte(i)})
			want = append(want, rec{p, k, i})
		}
		b.sort()
		slices.SortStableFunc(want, func(x, y rec) int {
			if c := cmp.Compare(x.part, y.part); c != 0 {
				return c
			}
			return bytes.Compare(x.key, y.key)
		})
		for i := range want {
			e := &b.ents[i]
			if int(e.part) != want[i].part || !bytes.Equal(b.key(e), want[i].key) || int(e.seq) != want[i].seq {
				t.Fatalf("round %d: entry %d = (%d, %q, %d), want (%d, %q, %d)", round, i,
					e.part, b.key(e), e.seq, want[i].part, want[i].key, want[i].seq)
			}
		}
	}
}

// TestHashPartitionIsFNV1a pins the default partitioner to FNV-1a, so that
// which partition a key lands in never changes between versions.
func TestHashPartitionIsFNV1a(t *testing.T) {
	for _, tc := range []struct {
		key  string
		n    int
		want int
	}{
		{"", 1000, int(2166136261 % 1000)},
		{"a", 1 << 16, int(0xe40c292c % (1 << 16))}, // FNV-1a("a") = 0xe40c292c
		{"foobar", 7, int(0xbf9cf968 % 7)},          // FNV-1a("foobar") = 0xbf9cf968
	} {
		if got := HashPartition([]byte(tc.key), tc.n); got != tc.want {
			t.Errorf("HashPartition(%q, %d) = %d, want %d", tc.key, tc.n, got, tc.want)
		}
	}
}
