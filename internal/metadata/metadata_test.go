package metadata

import (
	"bytes"
	"errors"
	"sort"
	"testing"

	datapb "cellar/proto/cellar/data/v1"
)

func TestRowKeyOrder(t *testing.T) {
	keys := [][]byte{
		RowKey(1, []byte("a")), RowKey(1, []byte("a\x00")), RowKey(1, []byte("b")), RowKey(1, nil),
		RowKey(2, []byte("\x00")), RowKey(2, nil),
	}
	if !sort.SliceIsSorted(keys, func(i, j int) bool { return bytes.Compare(keys[i], keys[j]) < 0 }) {
		t.Fatal("METADATA row keys do not sort by (table, end row) with the unbounded tablet last")
	}
	for _, k := range keys {
		if !(bytes.Compare(k, TableStart(1)) >= 0 || bytes.Compare(k, TableEnd(1)) < 0) {
			t.Fatalf("key %x outside its table bounds", k)
		}
	}
}

func TestSearchKeyFindsHoldingTablet(t *testing.T) {
	// Tablets of table 7: [,"m") ["m","t") ["t",)
	rows := [][]byte{RowKey(7, []byte("m")), RowKey(7, []byte("t")), RowKey(7, nil)}
	for _, tc := range []struct {
		row  string
		want int
	}{{"a", 0}, {"l", 0}, {"m", 1}, {"m\x00", 1}, {"s", 1}, {"t", 2}, {"zzz", 2}} {
		sk := SearchKey(7, []byte(tc.row))
		got := sort.Search(len(rows), func(i int) bool { return bytes.Compare(rows[i], sk) >= 0 })
		if got != tc.want {
			t.Errorf("row %q: first METADATA row >= SearchKey is #%d, want #%d", tc.row, got, tc.want)
		}
	}
}

func TestParseRowKey(t *testing.T) {
	for _, end := range [][]byte{nil, []byte("x"), []byte("\x00\x01")} {
		tab, e, err := ParseRowKey(RowKey(9, end))
		if err != nil || tab != 9 || !bytes.Equal(e, end) {
			t.Fatalf("ParseRowKey(RowKey(9, %q)) = %d, %q, %v", end, tab, e, err)
		}
	}
	for _, bad := range [][]byte{nil, make([]byte, 8), append(make([]byte, 8), 1), append(make([]byte, 8), 2, 0), append(make([]byte, 8), 3)} {
		if _, _, err := ParseRowKey(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("ParseRowKey(%x) = %v, want ErrCorrupt", bad, err)
		}
	}
}

func TestCellsRoundTrip(t *testing.T) {
	d := &datapb.TabletDescriptor{TableId: 3, TabletId: 44, StartRow: []byte("a"), Dir: "tables/3/tablets/44"}
	got, err := DecodeTablet(EncodeTablet(d))
	if err != nil || got.TabletId != 44 || got.Dir != d.Dir {
		t.Fatalf("DecodeTablet(EncodeTablet) = %v, %v", got, err)
	}
	if _, err := DecodeTablet([]byte{0xff}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("DecodeTablet(garbage) = %v", err)
	}
	id, addr, err := DecodeLocation(EncodeLocation("ts1", "127.0.0.1:5"))
	if err != nil || id != "ts1" || addr != "127.0.0.1:5" {
		t.Fatalf("location round trip = %q %q %v", id, addr, err)
	}
}

func FuzzParseRowKey(f *testing.F) {
	f.Add(RowKey(1, []byte("row")))
	f.Add(RowKey(1, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		tab, end, err := ParseRowKey(b)
		if err != nil {
			return
		}
		if !bytes.Equal(RowKey(tab, end), b) {
			t.Fatalf("RowKey(ParseRowKey(%x)) differs", b)
		}
	})
}
