package client

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	datapb "cellar/proto/cellar/data/v1"
)

// Filter is a row filter with Cloud Bigtable's semantics: it maps a row's
// cells to a subset (or a transformed copy) of them. Build one with the
// constructors below; outside packages cannot implement it. Filters are
// immutable values, safe for concurrent use.
//
// Invalid filters (a bad regular expression, a negative count, a nil
// sub-filter) are reported by the call that uses them, wrapping
// ErrInvalidFilter.
type Filter interface {
	// String is a readable form for logs and tools.
	String() string
	proto() (*datapb.RowFilter, error)
}

func filterProto(f Filter) (*datapb.RowFilter, error) {
	if f == nil {
		return nil, fmt.Errorf("%w: nil filter", ErrInvalidFilter)
	}
	return f.proto()
}

type passAll struct{}

// PassAllFilter passes every cell.
func PassAllFilter() Filter { return passAll{} }

func (passAll) String() string { return "passall" }
func (passAll) proto() (*datapb.RowFilter, error) {
	return &datapb.RowFilter{Filter: &datapb.RowFilter_PassAllFilter{PassAllFilter: true}}, nil
}

type blockAll struct{}

// BlockAllFilter passes no cell.
func BlockAllFilter() Filter { return blockAll{} }

func (blockAll) String() string { return "blockall" }
func (blockAll) proto() (*datapb.RowFilter, error) {
	return &datapb.RowFilter{Filter: &datapb.RowFilter_BlockAllFilter{BlockAllFilter: true}}, nil
}

type chain struct{ sub []Filter }

// ChainFilters applies each filter to the previous one's output.
func ChainFilters(sub ...Filter) Filter { return chain{sub: sub} }

func (c chain) String() string { return "(" + joinFilters(c.sub, " | ") + ")" }
func (c chain) proto() (*datapb.RowFilter, error) {
	ps, err := protos(c.sub)
	if err != nil {
		return nil, err
	}
	return &datapb.RowFilter{Filter: &datapb.RowFilter_Chain_{Chain: &datapb.RowFilter_Chain{Filters: ps}}}, nil
}

type interleave struct{ sub []Filter }

// InterleaveFilters returns the union of each filter's output, in cell order.
func InterleaveFilters(sub ...Filter) Filter { return interleave{sub: sub} }

func (c interleave) String() string { return "(" + joinFilters(c.sub, " + ") + ")" }
func (c interleave) proto() (*datapb.RowFilter, error) {
	ps, err := protos(c.sub)
	if err != nil {
		return nil, err
	}
	return &datapb.RowFilter{Filter: &datapb.RowFilter_Interleave_{Interleave: &datapb.RowFilter_Interleave{Filters: ps}}}, nil
}

func protos(fs []Filter) ([]*datapb.RowFilter, error) {
	out := make([]*datapb.RowFilter, 0, len(fs))
	for _, f := range fs {
		p, err := filterProto(f)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func joinFilters(fs []Filter, sep string) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		if f == nil {
			s[i] = "<nil>"
		} else {
			s[i] = f.String()
		}
	}
	return strings.Join(s, sep)
}

type condition struct{ pred, t, f Filter }

// ConditionFilter applies trueFilter to the row if predicate outputs any
// cell for it, else falseFilter. A nil trueFilter or falseFilter outputs no
// cells.
func ConditionFilter(predicate, trueFilter, falseFilter Filter) Filter {
	return condition{pred: predicate, t: trueFilter, f: falseFilter}
}

func (c condition) String() string {
	s := func(f Filter) string {
		if f == nil {
			return "<nil>"
		}
		return f.String()
	}
	return "(" + s(c.pred) + " ? " + s(c.t) + " : " + s(c.f) + ")"
}

func (c condition) proto() (*datapb.RowFilter, error) {
	p, err := filterProto(c.pred)
	if err != nil {
		return nil, err
	}
	cond := &datapb.RowFilter_Condition{PredicateFilter: p}
	if c.t != nil {
		if cond.TrueFilter, err = c.t.proto(); err != nil {
			return nil, err
		}
	}
	if c.f != nil {
		if cond.FalseFilter, err = c.f.proto(); err != nil {
			return nil, err
		}
	}
	return &datapb.RowFilter{Filter: &datapb.RowFilter_Condition_{Condition: cond}}, nil
}

func checkRegexp(pattern string) error {
	if _, err := regexp.Compile(pattern); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidFilter, err)
	}
	return nil
}

type familyFilter string

// FamilyFilter passes cells whose family name matches the RE2 pattern
// (the whole name must match).
func FamilyFilter(pattern string) Filter { return familyFilter(pattern) }

func (f familyFilter) String() string { return fmt.Sprintf("family(%s)", string(f)) }
func (f familyFilter) proto() (*datapb.RowFilter, error) {
	if err := checkRegexp(string(f)); err != nil {
		return nil, err
	}
	return &datapb.RowFilter{Filter: &datapb.RowFilter_FamilyNameRegexFilter{FamilyNameRegexFilter: string(f)}}, nil
}

type columnFilter string

// ColumnFilter passes cells whose qualifier matches the RE2 pattern.
func ColumnFilter(pattern string) Filter { return columnFilter(pattern) }

func (f columnFilter) String() string { return fmt.Sprintf("column(%s)", string(f)) }
func (f columnFilter) proto() (*datapb.RowFilter, error) {
	if err := checkRegexp(string(f)); err != nil {
		return nil, err
	}
	return &datapb.RowFilter{Filter: &datapb.RowFilter_ColumnQualifierRegexFilter{ColumnQualifierRegexFilter: []byte(f)}}, nil
}

type valueFilter string

// ValueFilter passes cells whose value matches the RE2 pattern.
func ValueFilter(pattern string) Filter { return valueFilter(pattern) }

func (f valueFilter) String() string { return fmt.Sprintf("value_match(%s)", string(f)) }
func (f valueFilter) proto() (*datapb.RowFilter, error) {
	if err := checkRegexp(string(f)); err != nil {
		return nil, err
	}
	return &datapb.RowFilter{Filter: &datapb.RowFilter_ValueRegexFilter{ValueRegexFilter: []byte(f)}}, nil
}

type rowKeyFilter string

// RowKeyFilter passes the cells of rows whose key matches the RE2 pattern.
func RowKeyFilter(pattern string) Filter { return rowKeyFilter(pattern) }

func (f rowKeyFilter) String() string { return fmt.Sprintf("row(%s)", string(f)) }
func (f rowKeyFilter) proto() (*datapb.RowFilter, error) {
	if err := checkRegexp(string(f)); err != nil {
		return nil, err
	}
	return &datapb.RowFilter{Filter: &datapb.RowFilter_RowKeyRegexFilter{RowKeyRegexFilter: []byte(f)}}, nil
}

type columnRange struct{ family, start, end string }

// ColumnRangeFilter passes cells of family whose qualifier is in
// [start, end); an empty end is unbounded.
func ColumnRangeFilter(family, start, end string) Filter {
	return columnRange{family: family, start: start, end: end}
}

func (f columnRange) String() string {
	return fmt.Sprintf("columnrange(%s,%q,%q)", f.family, f.start, f.end)
}
func (f columnRange) proto() (*datapb.RowFilter, error) {
	cr := &datapb.ColumnRange{Family: f.family, StartQualifier: []byte(f.start)}
	if f.end != "" {
		cr.EndQualifier = []byte(f.end)
	}
	return &datapb.RowFilter{Filter: &datapb.RowFilter_ColumnRangeFilter{ColumnRangeFilter: cr}}, nil
}

type valueRange struct{ start, end []byte }

// ValueRangeFilter passes cells whose value is in [start, end); an empty
// end is unbounded.
func ValueRangeFilter(start, end []byte) Filter { return valueRange{start: start, end: end} }

func (f valueRange) String() string { return fmt.Sprintf("valuerange(%q,%q)", f.start, f.end) }
func (f valueRange) proto() (*datapb.RowFilter, error) {
	return &datapb.RowFilter{Filter: &datapb.RowFilter_ValueRangeFilter{ValueRangeFilter: &datapb.ValueRange{
		StartValue: f.start, EndValue: f.end}}}, nil
}

type timestampRange struct{ start, end Timestamp }

// TimestampRangeFilter passes cells with timestamps in [start, end); a zero
// end is unbounded. Times are truncated to microseconds.
func TimestampRangeFilter(start, end time.Time) Filter {
	var s, e Timestamp
	if !start.IsZero() {
		s = Time(start)
	}
	if !end.IsZero() {
		e = Time(end)
	}
	return timestampRange{start: s, end: e}
}

// TimestampRangeFilterMicros is TimestampRangeFilter in microseconds; end 0
// is unbounded.
func TimestampRangeFilterMicros(start, end Timestamp) Filter {
	return timestampRange{start: start, end: end}
}

func (f timestampRange) String() string { return fmt.Sprintf("timestamp_range(%d,%d)", f.start, f.end) }
func (f timestampRange) proto() (*datapb.RowFilter, error) {
	if f.start < 0 || f.end < 0 {
		return nil, fmt.Errorf("%w: negative timestamp in range [%d, %d)", ErrInvalidFilter, f.start, f.end)
	}
	return &datapb.RowFilter{Filter: &datapb.RowFilter_TimestampRangeFilter{TimestampRangeFilter: &datapb.TimestampRange{
		Start: int64(f.start), End: int64(f.end)}}}, nil
}

type countFilter struct {
	kind string
	n    int
}

// LatestNFilter passes the latest n versions of each column.
func LatestNFilter(n int) Filter { return countFilter{kind: "latest", n: n} }

// CellsPerRowLimitFilter passes the first n cells of each row.
func CellsPerRowLimitFilter(n int) Filter { return countFilter{kind: "cells_per_row", n: n} }

// CellsPerRowOffsetFilter skips the first n cells of each row.
func CellsPerRowOffsetFilter(n int) Filter { return countFilter{kind: "cells_per_row_offset", n: n} }

func (f countFilter) String() string { return fmt.Sprintf("%s(%d)", f.kind, f.n) }
func (f countFilter) proto() (*datapb.RowFilter, error) {
	if f.n < 0 || f.n > 1<<31-1 {
		return nil, fmt.Errorf("%w: %s count %d out of range", ErrInvalidFilter, f.kind, f.n)
	}
	n := int32(f.n)
	switch f.kind {
	case "latest":
		return &datapb.RowFilter{Filter: &datapb.RowFilter_CellsPerColumnLimitFilter{CellsPerColumnLimitFilter: n}}, nil
	case "cells_per_row":
		return &datapb.RowFilter{Filter: &datapb.RowFilter_CellsPerRowLimitFilter{CellsPerRowLimitFilter: n}}, nil
	default:
		return &datapb.RowFilter{Filter: &datapb.RowFilter_CellsPerRowOffsetFilter{CellsPerRowOffsetFilter: n}}, nil
	}
}

type stripValue struct{}

// StripValueFilter replaces each cell's value with the empty value.
func StripValueFilter() Filter { return stripValue{} }

func (stripValue) String() string { return "strip_value()" }
func (stripValue) proto() (*datapb.RowFilter, error) {
	return &datapb.RowFilter{Filter: &datapb.RowFilter_StripValueTransformer{StripValueTransformer: true}}, nil
}
