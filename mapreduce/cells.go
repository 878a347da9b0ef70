package mapreduce

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"

	"cellar/client"
)

// Cell is one cell version as a job moves it between tables and files: the
// value of Family:Qualifier at Timestamp. A Timestamp of client.ServerTime
// asks TableOutput to write the job's timestamp (TableOutput.Timestamp),
// never the server's clock, so a retried task rewrites the same version.
type Cell struct {
	Family    string
	Qualifier string // arbitrary bytes
	Timestamp client.Timestamp
	Value     []byte
}

// The cell list encoding (the value format of table output and of export
// files), version 1. Lengths are unsigned varints, the timestamp a signed
// (zig-zag) varint:
//
//	+---------+---------+-----------------------------------------------+
//	| version | count   | count × cell                                  |
//	| 0x01    | uvarint |                                               |
//	+---------+---------+-----------------------------------------------+
//	cell:
//	+---------+--------+---------+-----------+-----------+---------+-------+
//	| flen    | family | qlen    | qualifier | timestamp | vlen    | value |
//	| uvarint | flen B | uvarint | qlen B    | varint    | uvarint | vlen B|
//	+---------+--------+---------+-----------+-----------+---------+-------+
//
// Worked example (TestCellsDocExample): one cell f:q at timestamp 5 with
// value "v" is 01 01 01 66 01 71 0a 01 76. The encoding carries no checksum:
// the record file around it has one. The version byte is part of the format
// and never changes; a new layout gets a new version.
const cellsVersion = 1

// AppendCells appends the encoding of cells to dst and returns it.
func AppendCells(dst []byte, cells []Cell) []byte {
	dst = append(dst, cellsVersion)
	dst = binary.AppendUvarint(dst, uint64(len(cells)))
	for i := range cells {
		c := &cells[i]
		dst = binary.AppendUvarint(dst, uint64(len(c.Family)))
		dst = append(dst, c.Family...)
		dst = binary.AppendUvarint(dst, uint64(len(c.Qualifier)))
		dst = append(dst, c.Qualifier...)
		dst = binary.AppendVarint(dst, int64(c.Timestamp))
		dst = binary.AppendUvarint(dst, uint64(len(c.Value)))
		dst = append(dst, c.Value...)
	}
	return dst
}

// DecodeCells decodes an AppendCells encoding. The cells' Value slices
// alias b. Malformed input (a bad version, a length past the end, trailing
// bytes) returns an error wrapping ErrCorrupt; it never panics.
func DecodeCells(b []byte) ([]Cell, error) {
	if len(b) == 0 || b[0] != cellsVersion {
		return nil, fmt.Errorf("%w: cell list: bad version", ErrCorrupt)
	}
	p := b[1:]
	n, k := binary.Uvarint(p)
	if k <= 0 {
		return nil, fmt.Errorf("%w: cell list: bad count", ErrCorrupt)
	}
	p = p[k:]
	// Each cell takes at least 4 bytes: bound the allocation by the input.
	if n > uint64(len(p)/4) {
		return nil, fmt.Errorf("%w: cell list: %d cells in %d bytes", ErrCorrupt, n, len(p))
	}
	cells := make([]Cell, 0, n)
	bytesField := func(what string) ([]byte, error) {
		l, k := binary.Uvarint(p)
		if k <= 0 || l > uint64(len(p)-k) {
			return nil, fmt.Errorf("%w: cell list: bad %s length", ErrCorrupt, what)
		}
		v := p[k : k+int(l) : k+int(l)]
		p = p[k+int(l):]
		return v, nil
	}
	for range n {
		f, err := bytesField("family")
		if err != nil {
			return nil, err
		}
		q, err := bytesField("qualifier")
		if err != nil {
			return nil, err
		}
		ts, k := binary.Varint(p)
		if k <= 0 {
			return nil, fmt.Errorf("%w: cell list: bad timestamp", ErrCorrupt)
		}
		p = p[k:]
		v, err := bytesField("value")
		if err != nil {
			return nil, err
		}
		cells = append(cells, Cell{Family: string(f), Qualifier: string(q), Timestamp: client.Timestamp(ts), Value: v})
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("%w: cell list: %d trailing bytes", ErrCorrupt, len(p))
	}
	return cells, nil
}

// RowCells lists a row's cells in the table's order: family, qualifier,
// then newest timestamp first. The Values alias the row's.
func RowCells(row client.Row) []Cell {
	n := 0
	for _, items := range row {
		n += len(items)
	}
	cells := make([]Cell, 0, n)
	for fam, items := range row {
		for _, it := range items {
			cells = append(cells, Cell{Family: fam, Qualifier: it.Qualifier(), Timestamp: it.Timestamp, Value: it.Value})
		}
	}
	slices.SortStableFunc(cells, func(a, b Cell) int {
		return cmp.Or(cmp.Compare(a.Family, b.Family), cmp.Compare(a.Qualifier, b.Qualifier), cmp.Compare(b.Timestamp, a.Timestamp))
	})
	return cells
}
