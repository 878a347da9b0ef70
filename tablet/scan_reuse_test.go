package tablet

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
)

// cloneRow deep-copies a row handed out by Scan.
func cloneRow(r *Row) Row {
	c := Row{Key: append([]byte{}, r.Key...)}
	for _, cell := range r.Cells {
		c.Cells = append(c.Cells, Cell{
			Family:    cell.Family,
			Qualifier: append([]byte{}, cell.Qualifier...),
			Timestamp: cell.Timestamp,
			Value:     append([]byte{}, cell.Value...),
		})
	}
	return c
}

// TestScanReuse: a scan that reuses its rows hands out, row by row, exactly
// what a scan that allocates them returns, over memtables and SSTables,
// with several cells and versions per row, values of growing sizes (so the
// arenas grow mid-row) and rows holding 0x00 bytes.
func TestScanReuse(t *testing.T) {
	const seed = 7
	ctx := context.Background()
	tab := openTest(t, &Options{})
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range 300 {
		row := []byte(fmt.Sprintf("row%04d", r.IntN(120)))
		if i%17 == 0 {
			row = append(row, 0, byte(i))
		}
		var muts []Mutation
		for range 1 + r.IntN(4) {
			fam := []string{"a", "b"}[r.IntN(2)]
			val := make([]byte, r.IntN(3000))
			for j := range val {
				val[j] = byte(r.Uint32())
			}
			muts = append(muts, SetCell(fam, []byte{byte('p' + r.IntN(3))}, int64(1+r.IntN(5)), val))
		}
		if err := tab.Apply(ctx, row, muts, nil); err != nil {
			t.Fatal(err)
		}
		if i == 150 {
			if err := tab.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, so := range []ScanOptions{{}, {Limit: 10}, {Start: []byte("row0050"), Read: ReadOptions{MaxVersions: 1, Families: []string{"b"}}}} {
		var want, got []Row
		if err := tab.Scan(ctx, &so, func(r *Row) bool { want = append(want, *r); return true }); err != nil {
			t.Fatal(err)
		}
		reuse := so
		reuse.Reuse = true
		if err := tab.Scan(ctx, &reuse, func(r *Row) bool { got = append(got, cloneRow(r)); return true }); err != nil {
			t.Fatal(err)
		}
		if len(want) == 0 {
			t.Fatalf("seed %d, %+v: scan returned no rows", seed, so)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("seed %d, %+v: reusing scan returned %d rows unlike the allocating scan's %d", seed, so, len(got), len(want))
		}
	}
}
