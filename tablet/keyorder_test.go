package tablet

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestKeyOrder: keyOrder is a permutation of the indexes that puts the keys
// in ascending order, already sorted or not, with equal keys kept.
func TestKeyOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for n := range 40 {
		ks := make([][]byte, n)
		for i := range ks {
			ks[i] = []byte{byte(rng.IntN(8)), byte(rng.IntN(256))}
		}
		if n%3 == 0 {
			slices.SortFunc(ks, bytes.Compare)
		}
		var buf [32]int
		order := keyOrder(ks, buf[:0])
		if len(order) != n {
			t.Fatalf("n=%d: %d indexes", n, len(order))
		}
		seen := make([]bool, n)
		for j, i := range order {
			if seen[i] {
				t.Fatalf("n=%d: index %d twice", n, i)
			}
			seen[i] = true
			if j > 0 && bytes.Compare(ks[order[j-1]], ks[i]) > 0 {
				t.Fatalf("n=%d: %x before %x", n, ks[order[j-1]], ks[i])
			}
		}
	}
}
