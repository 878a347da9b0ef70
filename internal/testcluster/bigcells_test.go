package testcluster_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"cellar/client"
	"cellar/internal/testcluster"
)

// TestBigCells: cells over gRPC's default 4 MiB message limit, up to the
// tablet's value limit, go through Apply, ApplyBulk (whose batches the
// client splits) and reads, and come back intact.
func TestBigCells(t *testing.T) {
	c := testcluster.Start(t, testcluster.Options{MemFS: true, MemtableSize: 32 << 20})
	cl := dial(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := cl.Admin().CreateTable(ctx, "big", map[string]client.GCPolicy{"f": client.MaxVersionsPolicy(1)}); err != nil {
		t.Fatal(err)
	}
	tbl := cl.Open("big")
	r := rand.New(rand.NewPCG(1, 2))
	value := func(n int) []byte {
		v := make([]byte, n)
		for i := range v {
			v[i] = byte(r.Uint32())
		}
		return v
	}
	want := map[string][]byte{"single": value(9 << 20)}
	m := client.NewMutation()
	m.Set("f", "q", client.Timestamp(1), want["single"])
	if err := tbl.Apply(ctx, "single", m); err != nil {
		t.Fatalf("apply a 9 MiB cell: %v", err)
	}
	var rows []string
	var muts []*client.Mutation
	for i := range 6 {
		row := fmt.Sprintf("bulk%d", i)
		want[row] = value(3 << 20)
		m := client.NewMutation()
		m.Set("f", "q", client.Timestamp(1), want[row])
		rows, muts = append(rows, row), append(muts, m)
	}
	errs, err := tbl.ApplyBulk(ctx, rows, muts)
	if err != nil || errs != nil {
		t.Fatalf("apply bulk of 18 MiB: %v %v", err, errs)
	}
	for row, v := range want {
		got, err := tbl.ReadRow(ctx, row)
		if err != nil {
			t.Fatalf("read %s: %v", row, err)
		}
		if items := got["f"]; len(items) != 1 || !bytes.Equal(items[0].Value, v) {
			t.Fatalf("read %s: %d items, want one of %d bytes", row, len(items), len(v))
		}
	}
	n := 0
	if err := tbl.ReadRows(ctx, client.InfiniteRange(""), func(row client.Row) bool {
		if v := want[row.Key()]; len(row["f"]) != 1 || !bytes.Equal(row["f"][0].Value, v) {
			t.Errorf("scan: row %q differs", row.Key())
		}
		n++
		return true
	}); err != nil {
		t.Fatalf("scan: %v", err)
	}
	if n != len(want) {
		t.Fatalf("scan saw %d rows, want %d", n, len(want))
	}
}
