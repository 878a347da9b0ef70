package master

import (
	"testing"

	"cellar/internal/filter"
	"cellar/internal/metadata"
)

// The merge's decision predicate matches the marker cell holding exactly
// the merged id, and nothing else.
func TestCellIs(t *testing.T) {
	f, err := filter.Compile(cellIs(metadata.QualMergeInto, []byte("123")))
	if err != nil {
		t.Fatal(err)
	}
	cell := func(fam, qual, val string) filter.Cell {
		return filter.Cell{Family: fam, Qualifier: []byte(qual), Value: []byte(val)}
	}
	for _, tc := range []struct {
		cells []filter.Cell
		match bool
	}{
		{[]filter.Cell{cell("info", "mergeinto", "123")}, true},
		{[]filter.Cell{cell("info", "tablet", "x"), cell("info", "mergeinto", "123")}, true},
		{[]filter.Cell{cell("info", "mergeinto", "1234")}, false},
		{[]filter.Cell{cell("info", "mergeinto", "12")}, false},
		{[]filter.Cell{cell("info", "merge", "123")}, false},
		{[]filter.Cell{cell("other", "mergeinto", "123")}, false},
		{[]filter.Cell{cell("info", "tablet", "123")}, false},
		{nil, false},
	} {
		if got := len(f.Apply([]byte("row"), tc.cells)) > 0; got != tc.match {
			t.Errorf("cellIs(mergeinto, 123) on %v = %v, want %v", tc.cells, got, tc.match)
		}
	}
}
