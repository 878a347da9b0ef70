package tablet

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"cellar/dfs/memfs"
	"cellar/internal/keys"
)

func TestApplyBatchInvalidRowAppliesNothing(t *testing.T) {
	ctx := context.Background()
	tab := openTest(t, &Options{StartRow: []byte("b"), EndRow: []byte("m")})
	rows := []RowMutation{
		{Row: []byte("c"), Mutations: []Mutation{SetCell("a", nil, 1, []byte("v"))}},
		{Row: []byte("z"), Mutations: []Mutation{SetCell("a", nil, 1, []byte("v"))}},
	}
	if err := tab.ApplyBatch(ctx, rows, nil); !errors.Is(err, ErrRowOutOfRange) {
		t.Fatalf("ApplyBatch with a row out of range = %v, want ErrRowOutOfRange", err)
	}
	rows[1] = RowMutation{Row: []byte("d"), Mutations: []Mutation{SetCell("nope", nil, 1, nil)}}
	if err := tab.ApplyBatch(ctx, rows, nil); !errors.Is(err, ErrUnknownFamily) {
		t.Fatalf("ApplyBatch with an unknown family = %v, want ErrUnknownFamily", err)
	}
	if err := tab.ApplyBatch(ctx, rows[:1], &WriteOptions{Durability: 7}); !errors.Is(err, keys.ErrInvalid) {
		t.Fatalf("ApplyBatch with a bad durability = %v, want keys.ErrInvalid", err)
	}
	if seq := tab.LastSeq(); seq != 0 {
		t.Fatalf("LastSeq = %d after rejected batches, want 0", seq)
	}
}

// TestApplyBatchSurvivesReopen writes batches larger than half a memtable
// (so they are applied in parts), reopens, and reads every row back.
func TestApplyBatchSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	fs := memfs.New()
	opts := &Options{FS: fs, Dir: "t", Families: []FamilyOptions{{Name: "a"}, {Name: "b"}}, MemtableSize: 64 << 10, Logger: discardLogger()}
	tab, err := Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	var rows []RowMutation
	for i := 0; i < n; i++ {
		row := []byte(fmt.Sprintf("row%04d", i))
		rows = append(rows, RowMutation{Row: row, Mutations: []Mutation{SetCell("a", []byte("q"), ServerTime, row), DeleteFamily("b")}})
	}
	// A repeated row in one batch: the later entry wins.
	rows = append(rows, RowMutation{Row: []byte("row0000"), Mutations: []Mutation{SetCell("a", []byte("q"), ServerTime, []byte("last"))}})
	if err := tab.ApplyBatch(ctx, rows, nil); err != nil {
		t.Fatal(err)
	}
	if err := tab.Close(); err != nil {
		t.Fatal(err)
	}
	tab, err = Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer tab.Close()
	count := 0
	err = tab.Scan(ctx, &ScanOptions{Read: ReadOptions{MaxVersions: 1}}, func(r *Row) bool {
		want := string(r.Key)
		if want == "row0000" {
			want = "last"
		}
		if len(r.Cells) != 1 || string(r.Cells[0].Value) != want {
			t.Errorf("row %s = %s, want one cell %q", r.Key, fmtRow(r), want)
		}
		count++
		return true
	})
	if err != nil || count != n {
		t.Fatalf("Scan after reopen saw %d rows (%v), want %d", count, err, n)
	}
}
