package tabletserver

import (
	"fmt"

	"cellar/internal/filter"
	"cellar/internal/keys"
	"cellar/internal/serr"
	datapb "cellar/proto/cellar/data/v1"
	"cellar/tablet"
)

// mutations converts wire mutations into the tablet's. It never panics on a
// malformed message: a nil mutation or unset oneof is an error wrapping
// serr.ErrInvalidArgument. The tablet validates names, sizes and families.
func mutations(ms []*datapb.Mutation) ([]tablet.Mutation, error) {
	if len(ms) == 0 {
		return nil, fmt.Errorf("%w: no mutations", serr.ErrInvalidArgument)
	}
	out := make([]tablet.Mutation, 0, len(ms))
	for i, m := range ms {
		tm, err := mutation(m)
		if err != nil {
			return nil, fmt.Errorf("mutation %d: %w", i, err)
		}
		out = append(out, tm)
	}
	return out, nil
}

func mutation(m *datapb.Mutation) (tablet.Mutation, error) {
	switch x := m.GetMutation().(type) {
	case *datapb.Mutation_SetCell_:
		c := x.SetCell
		if c == nil {
			break
		}
		ts := c.GetTimestamp()
		if ts < 0 && ts != tablet.ServerTime {
			return tablet.Mutation{}, fmt.Errorf("%w: negative timestamp %d", serr.ErrInvalidArgument, ts)
		}
		return tablet.SetCell(c.GetFamily(), c.GetQualifier(), ts, c.GetValue()), nil
	case *datapb.Mutation_DeleteCell_:
		c := x.DeleteCell
		if c == nil {
			break
		}
		if c.GetTimestamp() < 0 {
			return tablet.Mutation{}, fmt.Errorf("%w: negative timestamp %d", serr.ErrInvalidArgument, c.GetTimestamp())
		}
		return tablet.DeleteCell(c.GetFamily(), c.GetQualifier(), c.GetTimestamp()), nil
	case *datapb.Mutation_DeleteFromColumn_:
		c := x.DeleteFromColumn
		if c == nil {
			break
		}
		r := keys.TimeRange{Start: c.GetTimeRange().GetStart(), End: c.GetTimeRange().GetEnd()}
		if r.Start < 0 || r.End < 0 || (r.End != 0 && r.End <= r.Start) {
			return tablet.Mutation{}, fmt.Errorf("%w: bad time range [%d, %d)", serr.ErrInvalidArgument, r.Start, r.End)
		}
		return tablet.DeleteColumn(c.GetFamily(), c.GetQualifier(), r), nil
	case *datapb.Mutation_DeleteFromFamily_:
		if x.DeleteFromFamily == nil {
			break
		}
		return tablet.DeleteFamily(x.DeleteFromFamily.GetFamily()), nil
	case *datapb.Mutation_DeleteFromRow_:
		return tablet.DeleteRow(), nil
	}
	return tablet.Mutation{}, fmt.Errorf("%w: mutation has no operation", serr.ErrInvalidArgument)
}

// writeOptions maps the wire durability onto the tablet's.
func writeOptions(d datapb.Durability) (*tablet.WriteOptions, error) {
	switch d {
	case datapb.Durability_DURABILITY_SYNC:
		return &tablet.WriteOptions{Durability: tablet.Sync}, nil
	case datapb.Durability_DURABILITY_ASYNC:
		return &tablet.WriteOptions{Durability: tablet.Async}, nil
	case datapb.Durability_DURABILITY_SKIP_LOG:
		return &tablet.WriteOptions{Durability: tablet.SkipLog}, nil
	}
	return nil, fmt.Errorf("%w: unknown durability %v", serr.ErrInvalidArgument, d)
}

// filterCells converts a row's cells for the filter.
func filterCells(cs []tablet.Cell) []filter.Cell {
	out := make([]filter.Cell, len(cs))
	for i, c := range cs {
		out[i] = filter.Cell{Family: c.Family, Qualifier: c.Qualifier, Timestamp: c.Timestamp, Value: c.Value}
	}
	return out
}

// wireRow converts filtered cells into a wire row.
func wireRow(key []byte, cs []filter.Cell) *datapb.Row {
	r := &datapb.Row{Key: key, Cells: make([]*datapb.Cell, len(cs))}
	for i, c := range cs {
		r.Cells[i] = &datapb.Cell{Family: c.Family, Qualifier: c.Qualifier, Timestamp: c.Timestamp, Value: c.Value}
	}
	return r
}
