package client

import (
	"strings"

	datapb "cellar/proto/cellar/data/v1"
)

// Row is one row's cells, by family. Within a family, items are in
// column order, then latest timestamp first. A Row read from the server is
// owned by the caller.
type Row map[string][]ReadItem

// ReadItem is one cell version. Column is "family:qualifier".
type ReadItem struct {
	Row       string
	Column    string
	Timestamp Timestamp
	Value     []byte
}

// Key is the row's key ("" for an empty Row).
func (r Row) Key() string {
	for _, items := range r {
		if len(items) > 0 {
			return items[0].Row
		}
	}
	return ""
}

// Family returns the part of Column before the first ':'.
func (it ReadItem) Family() string {
	f, _, _ := strings.Cut(it.Column, ":")
	return f
}

// Qualifier returns the part of Column after the first ':'.
func (it ReadItem) Qualifier() string {
	_, q, _ := strings.Cut(it.Column, ":")
	return q
}

// rowFromProto converts a wire row; nil if it has no cells.
func rowFromProto(p *datapb.Row) Row {
	if p == nil || len(p.Cells) == 0 {
		return nil
	}
	key := string(p.Key)
	r := make(Row)
	for _, c := range p.Cells {
		r[c.Family] = append(r[c.Family], ReadItem{Row: key, Column: c.Family + ":" + string(c.Qualifier),
			Timestamp: Timestamp(c.Timestamp), Value: c.Value})
	}
	return r
}
