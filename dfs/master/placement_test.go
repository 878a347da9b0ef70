package master

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func TestPlaceRackAware(t *testing.T) {
	var cands []node
	for r := 0; r < 3; r++ {
		for i := 0; i < 3; i++ {
			cands = append(cands, node{id: fmt.Sprintf("r%d-%d", r, i), addr: fmt.Sprintf("10.0.%d.%d:1", r, i), rack: fmt.Sprintf("rack%d", r)})
		}
	}
	for seed := uint64(0); seed < 50; seed++ {
		rng := rand.New(rand.NewPCG(seed, 1))
		got := place(cands, 3, "10.0.1.2", rng)
		if len(got) != 3 {
			t.Fatalf("seed %d: place = %v, want 3 nodes", seed, got)
		}
		if got[0].id != "r1-2" {
			t.Errorf("seed %d: first replica on %s, want the writer's host r1-2", seed, got[0].id)
		}
		if got[1].rack != got[0].rack || got[1].id == got[0].id {
			t.Errorf("seed %d: second replica %v, want another node on %s", seed, got[1], got[0].rack)
		}
		if got[2].rack == got[0].rack {
			t.Errorf("seed %d: third replica on the first's rack %s", seed, got[2].rack)
		}
	}
}

func TestPlaceDistinctWithoutRacks(t *testing.T) {
	cands := []node{{id: "a"}, {id: "b"}, {id: "c"}, {id: "d"}}
	for seed := uint64(0); seed < 50; seed++ {
		got := place(cands, 3, "", rand.New(rand.NewPCG(seed, 2)))
		seen := map[string]bool{}
		for _, n := range got {
			if seen[n.id] {
				t.Fatalf("seed %d: place = %v repeats %s", seed, got, n.id)
			}
			seen[n.id] = true
		}
		if len(got) != 3 {
			t.Fatalf("seed %d: place = %v, want 3", seed, got)
		}
	}
	if got := place(cands[:2], 3, "", rand.New(rand.NewPCG(1, 1))); len(got) != 2 {
		t.Fatalf("place with 2 candidates = %v, want both", got)
	}
}

func TestPlaceExtraPrefersUncoveredRack(t *testing.T) {
	holders := []node{{id: "a", rack: "r1"}, {id: "b", rack: "r1"}}
	cands := []node{{id: "c", rack: "r1"}, {id: "d", rack: "r2"}, {id: "e", rack: "r1"}}
	for seed := uint64(0); seed < 20; seed++ {
		got, ok := placeExtra(cands, holders, rand.New(rand.NewPCG(seed, 3)))
		if !ok || got.id != "d" {
			t.Fatalf("seed %d: placeExtra = %v, want d on the uncovered rack", seed, got)
		}
	}
}
