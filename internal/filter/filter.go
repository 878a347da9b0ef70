// Package filter evaluates row filters on the tablet server, with the
// semantics of Cloud Bigtable's RowFilter (the wire form is
// datapb.RowFilter): a filter maps one row's cells, in the cell order
// (family, qualifier ascending; timestamp descending), to a subset or a
// transformed copy of them.
//
//   - Chain: each filter sees the previous one's output.
//   - Interleave: the union of each filter's output over the same input, in
//     the cell order; a cell several branches emit appears that many times.
//   - Condition: if the predicate emits any cell, the true filter applies to
//     the input, else the false filter; an unset branch emits nothing.
//   - Regular expressions are RE2 (Go's regexp) and must match the whole
//     field: "a.*" matches "abc" but not "xabc". Bytes that are not UTF-8
//     match as U+FFFD.
//   - Limits and offsets count cells of the row (per row) or versions of
//     one column (cells_per_column_limit: the latest N versions).
//
// Compile validates a filter once per request (bad regex, negative limit,
// an empty filter, nesting deeper than MaxDepth: errors wrapping
// ErrInvalidFilter); the compiled Filter is immutable and safe for
// concurrent use, and Apply is a pure function.
package filter

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	datapb "cellar/proto/cellar/data/v1"
)

// ErrInvalidFilter is wrapped by every error Compile returns.
var ErrInvalidFilter = errors.New("cellar/filter: invalid filter")

// MaxDepth bounds how deeply filters may nest.
const MaxDepth = 64

// MaxCopies bounds how many times a filter may emit one input cell:
// interleaves repeat cells (each branch's output is kept), so nested
// interleaves could otherwise multiply a row's cells exponentially.
const MaxCopies = 1024

// Cell is one cell version as the filter sees it. Apply never modifies the
// cells it is given; StripValue returns copies with a nil Value.
type Cell struct {
	Family    string
	Qualifier []byte
	Timestamp int64 // µs
	Value     []byte
}

// Filter is a compiled filter. The nil *Filter passes every cell.
type Filter struct{ root node }

// node is one compiled filter: it maps a row's cells to its output.
type node interface {
	apply(row []byte, in []Cell) []Cell
}

// Compile validates and compiles f; a nil f compiles to a nil *Filter,
// which passes every cell.
func Compile(f *datapb.RowFilter) (*Filter, error) {
	if f == nil {
		return nil, nil
	}
	n, err := compile(f, 0)
	if err != nil {
		return nil, err
	}
	if c := copies(f); c > MaxCopies {
		return nil, invalid("the filter may emit each cell more than %d times (interleaves multiply)", MaxCopies)
	}
	return &Filter{root: n}, nil
}

// Apply returns the cells of row that f emits. The result may share the
// input's backing array when nothing is removed; callers must not modify
// either.
func (f *Filter) Apply(row []byte, cells []Cell) []Cell {
	if f == nil {
		return cells
	}
	return f.root.apply(row, cells)
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidFilter}, args...)...)
}

// anchored compiles pattern so that it must match the whole field.
func anchored(what, pattern string) (*regexp.Regexp, error) {
	re, err := regexp.Compile(`^(?:` + pattern + `)$`)
	if err != nil {
		return nil, invalid("%s regex %q: %v", what, pattern, err)
	}
	return re, nil
}

func compile(f *datapb.RowFilter, depth int) (node, error) {
	if f == nil {
		return nil, invalid("missing filter")
	}
	if depth > MaxDepth {
		return nil, invalid("filters nested deeper than %d", MaxDepth)
	}
	switch x := f.Filter.(type) {
	case *datapb.RowFilter_Chain_:
		subs, err := compileAll(x.Chain.GetFilters(), depth)
		return chain(subs), err
	case *datapb.RowFilter_Interleave_:
		subs, err := compileAll(x.Interleave.GetFilters(), depth)
		return interleave(subs), err
	case *datapb.RowFilter_Condition_:
		c := x.Condition
		pred, err := compile(c.GetPredicateFilter(), depth+1)
		if err != nil {
			return nil, fmt.Errorf("condition predicate: %w", err)
		}
		cond := condition{pred: pred}
		if c.GetTrueFilter() != nil {
			if cond.yes, err = compile(c.GetTrueFilter(), depth+1); err != nil {
				return nil, fmt.Errorf("condition true branch: %w", err)
			}
		}
		if c.GetFalseFilter() != nil {
			if cond.no, err = compile(c.GetFalseFilter(), depth+1); err != nil {
				return nil, fmt.Errorf("condition false branch: %w", err)
			}
		}
		return cond, nil
	case *datapb.RowFilter_PassAllFilter:
		if !x.PassAllFilter {
			return nil, invalid("pass_all_filter must be true")
		}
		return passAll{}, nil
	case *datapb.RowFilter_BlockAllFilter:
		if !x.BlockAllFilter {
			return nil, invalid("block_all_filter must be true")
		}
		return blockAll{}, nil
	case *datapb.RowFilter_RowKeyRegexFilter:
		re, err := anchored("row key", string(x.RowKeyRegexFilter))
		return rowKeyRegex{re}, err
	case *datapb.RowFilter_FamilyNameRegexFilter:
		re, err := anchored("family", x.FamilyNameRegexFilter)
		return cellPredicate(func(c *Cell) bool { return re.MatchString(c.Family) }), err
	case *datapb.RowFilter_ColumnQualifierRegexFilter:
		re, err := anchored("qualifier", string(x.ColumnQualifierRegexFilter))
		return cellPredicate(func(c *Cell) bool { return re.Match(c.Qualifier) }), err
	case *datapb.RowFilter_ColumnRangeFilter:
		r := x.ColumnRangeFilter
		if r.GetFamily() == "" {
			return nil, invalid("column range without a family")
		}
		in := byteRange(r.GetStartQualifier(), r.GetStartOpen(), r.GetEndQualifier(), r.GetEndClosed())
		fam := r.GetFamily()
		return cellPredicate(func(c *Cell) bool { return c.Family == fam && in(c.Qualifier) }), nil
	case *datapb.RowFilter_TimestampRangeFilter:
		start, end := x.TimestampRangeFilter.GetStart(), x.TimestampRangeFilter.GetEnd()
		if start < 0 || end < 0 || (end != 0 && end < start) {
			return nil, invalid("timestamp range [%d, %d)", start, end)
		}
		return cellPredicate(func(c *Cell) bool { return c.Timestamp >= start && (end == 0 || c.Timestamp < end) }), nil
	case *datapb.RowFilter_ValueRegexFilter:
		re, err := anchored("value", string(x.ValueRegexFilter))
		return cellPredicate(func(c *Cell) bool { return re.Match(c.Value) }), err
	case *datapb.RowFilter_ValueRangeFilter:
		r := x.ValueRangeFilter
		in := byteRange(r.GetStartValue(), r.GetStartOpen(), r.GetEndValue(), r.GetEndClosed())
		return cellPredicate(func(c *Cell) bool { return in(c.Value) }), nil
	case *datapb.RowFilter_CellsPerRowOffsetFilter:
		if x.CellsPerRowOffsetFilter < 0 {
			return nil, invalid("cells_per_row_offset %d is negative", x.CellsPerRowOffsetFilter)
		}
		return rowOffset(x.CellsPerRowOffsetFilter), nil
	case *datapb.RowFilter_CellsPerRowLimitFilter:
		if x.CellsPerRowLimitFilter < 0 {
			return nil, invalid("cells_per_row_limit %d is negative", x.CellsPerRowLimitFilter)
		}
		return rowLimit(x.CellsPerRowLimitFilter), nil
	case *datapb.RowFilter_CellsPerColumnLimitFilter:
		if x.CellsPerColumnLimitFilter < 0 {
			return nil, invalid("cells_per_column_limit %d is negative", x.CellsPerColumnLimitFilter)
		}
		return columnLimit(x.CellsPerColumnLimitFilter), nil
	case *datapb.RowFilter_StripValueTransformer:
		if !x.StripValueTransformer {
			return nil, invalid("strip_value_transformer must be true")
		}
		return stripValue{}, nil
	case nil:
		return nil, invalid("empty filter (no kind set)")
	}
	return nil, invalid("unknown filter kind %T", f.Filter)
}

// copies is how many times f may emit one input cell at most, capped just
// above MaxCopies. f has compiled, so it is well formed and bounded in depth.
func copies(f *datapb.RowFilter) int {
	switch x := f.GetFilter().(type) {
	case *datapb.RowFilter_Chain_:
		n := 1
		for _, sub := range x.Chain.GetFilters() {
			n = min(n*copies(sub), MaxCopies+1)
		}
		return n
	case *datapb.RowFilter_Interleave_:
		n := 0
		for _, sub := range x.Interleave.GetFilters() {
			n = min(n+copies(sub), MaxCopies+1)
		}
		return n
	case *datapb.RowFilter_Condition_:
		c := x.Condition
		n := 0
		if c.GetTrueFilter() != nil {
			n = copies(c.GetTrueFilter())
		}
		if c.GetFalseFilter() != nil {
			n = max(n, copies(c.GetFalseFilter()))
		}
		return n
	}
	return 1
}

func compileAll(fs []*datapb.RowFilter, depth int) ([]node, error) {
	out := make([]node, 0, len(fs))
	for i, f := range fs {
		n, err := compile(f, depth+1)
		if err != nil {
			return nil, fmt.Errorf("filter %d: %w", i, err)
		}
		out = append(out, n)
	}
	return out, nil
}

// byteRange returns a membership test for a range of byte strings; an
// empty start is unbounded below, an empty end unbounded above.
func byteRange(start []byte, startOpen bool, end []byte, endClosed bool) func([]byte) bool {
	return func(b []byte) bool {
		if len(start) > 0 {
			c := bytes.Compare(b, start)
			if c < 0 || (c == 0 && startOpen) {
				return false
			}
		}
		if len(end) > 0 {
			c := bytes.Compare(b, end)
			if c > 0 || (c == 0 && !endClosed) {
				return false
			}
		}
		return true
	}
}

type passAll struct{}

func (passAll) apply(_ []byte, in []Cell) []Cell { return in }

type blockAll struct{}

func (blockAll) apply([]byte, []Cell) []Cell { return nil }

type chain []node

func (c chain) apply(row []byte, in []Cell) []Cell {
	for _, n := range c {
		if len(in) == 0 {
			return nil
		}
		in = n.apply(row, in)
	}
	return in
}

type interleave []node

// cellCmp is the cell order: family, qualifier ascending; timestamp
// descending.
func cellCmp(a, b Cell) int {
	if c := strings.Compare(a.Family, b.Family); c != 0 {
		return c
	}
	if c := bytes.Compare(a.Qualifier, b.Qualifier); c != 0 {
		return c
	}
	switch {
	case a.Timestamp > b.Timestamp:
		return -1
	case a.Timestamp < b.Timestamp:
		return 1
	}
	return 0
}

func (il interleave) apply(row []byte, in []Cell) []Cell {
	var out []Cell
	for _, n := range il {
		out = append(out, n.apply(row, in)...)
	}
	slices.SortStableFunc(out, cellCmp)
	return out
}

type condition struct{ pred, yes, no node }

func (c condition) apply(row []byte, in []Cell) []Cell {
	branch := c.no
	if len(c.pred.apply(row, in)) > 0 {
		branch = c.yes
	}
	if branch == nil {
		return nil
	}
	return branch.apply(row, in)
}

type rowKeyRegex struct{ re *regexp.Regexp }

func (r rowKeyRegex) apply(row []byte, in []Cell) []Cell {
	if r.re.Match(row) {
		return in
	}
	return nil
}

// cellPredicate keeps the cells for which it returns true.
type cellPredicate func(*Cell) bool

func (p cellPredicate) apply(_ []byte, in []Cell) []Cell {
	for i := range in {
		if !p(&in[i]) {
			// Copy only once a cell is dropped.
			out := append(make([]Cell, 0, len(in)), in[:i]...)
			for j := i + 1; j < len(in); j++ {
				if p(&in[j]) {
					out = append(out, in[j])
				}
			}
			return out
		}
	}
	return in
}

type rowOffset int32

func (o rowOffset) apply(_ []byte, in []Cell) []Cell {
	if int(o) >= len(in) {
		return nil
	}
	return in[o:]
}

type rowLimit int32

func (l rowLimit) apply(_ []byte, in []Cell) []Cell {
	if int(l) < len(in) {
		return in[:l:l]
	}
	return in
}

type columnLimit int32

func (l columnLimit) apply(_ []byte, in []Cell) []Cell {
	var out []Cell
	n := 0
	for i := range in {
		if i == 0 || in[i].Family != in[i-1].Family || !bytes.Equal(in[i].Qualifier, in[i-1].Qualifier) {
			n = 0
		}
		if n < int(l) {
			out = append(out, in[i])
		}
		n++
	}
	return out
}

type stripValue struct{}

func (stripValue) apply(_ []byte, in []Cell) []Cell {
	out := make([]Cell, len(in))
	for i, c := range in {
		c.Value = nil
		out[i] = c
	}
	return out
}
