package metadata

import (
	"errors"
	"testing"
)

func TestFindMetaRow(t *testing.T) {
	// META tablets: [TableEnd(0), K1) [K1, K2) [K2, ) with K1, K2 user
	// tablets' METADATA rows (as a META split picks them).
	k1 := RowKey(5, []byte("m"))
	k2 := RowKey(9, nil)
	rows := []Row{{Key: RowKey(TableID, k1)}, {Key: RowKey(TableID, k2)}, {Key: RowKey(TableID, nil)}}
	for _, tc := range []struct {
		key  []byte
		want int
	}{
		{TableEnd(TableID), 0},
		{RowKey(1, nil), 0},
		{RowKey(5, []byte("a")), 0},
		{SearchKey(5, []byte("a")), 0},
		{k1, 1}, // end rows are exclusive: K1 is the second tablet's first row
		{SearchKey(5, []byte("m")), 1},
		{RowKey(5, nil), 1},
		{k2, 2},
		{RowKey(1<<40, []byte("z")), 2},
	} {
		got, err := FindMetaRow(rows, tc.key)
		if err != nil {
			t.Fatalf("FindMetaRow(%x): %v", tc.key, err)
		}
		if string(got.Key) != string(rows[tc.want].Key) {
			t.Errorf("FindMetaRow(%x) = row %x, want %x", tc.key, got.Key, rows[tc.want].Key)
		}
		// A read starting at the key's search position sees only the
		// rows from the holding one on: same answer.
		got, err = FindMetaRow(rows[tc.want:], tc.key)
		if err != nil || string(got.Key) != string(rows[tc.want].Key) {
			t.Errorf("FindMetaRow(rows[%d:], %x) = %x, %v", tc.want, tc.key, got.Key, err)
		}
	}
	// Bad input: errors, never a panic.
	if _, err := FindMetaRow(rows, RowKey(TableID, nil)); !errors.Is(err, ErrNoMetaTablet) {
		t.Errorf("a root key: %v, want ErrNoMetaTablet", err)
	}
	if _, err := FindMetaRow(rows[:2], RowKey(10, nil)); !errors.Is(err, ErrNoMetaTablet) {
		t.Errorf("past the last bounded row without the unbounded one: %v, want ErrNoMetaTablet", err)
	}
	if _, err := FindMetaRow(nil, k1); !errors.Is(err, ErrNoMetaTablet) {
		t.Errorf("no rows: %v, want ErrNoMetaTablet", err)
	}
	if _, err := FindMetaRow([]Row{{Key: []byte{1, 2}}}, k1); !errors.Is(err, ErrCorrupt) {
		t.Errorf("short row key: %v, want ErrCorrupt", err)
	}
	if _, err := FindMetaRow([]Row{{Key: RowKey(3, nil)}}, k1); !errors.Is(err, ErrCorrupt) {
		t.Errorf("another table's row in the root: %v, want ErrCorrupt", err)
	}
	if !InRoot(RowKey(TableID, k1)) || InRoot(k1) || InRoot(TableEnd(TableID)) {
		t.Error("InRoot")
	}
}
