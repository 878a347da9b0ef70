package client

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// RowSet is a set of rows to read: RowList, RowRange or RowRangeList.
// Outside packages cannot implement it.
type RowSet interface {
	// segments returns the set as sorted, non-overlapping segments.
	segments() ([]segment, error)
	String() string
}

// RowList is a set of explicit row keys (in any order; duplicates are read
// once, in key order).
type RowList []string

// RowRange is the half-open range [start, end) of row keys; an empty end is
// unbounded. Build it with NewRange, InfiniteRange or PrefixRange.
type RowRange struct {
	start, end string
}

// NewRange is [begin, end); end "" is unbounded.
func NewRange(begin, end string) RowRange { return RowRange{start: begin, end: end} }

// InfiniteRange is every row from start on.
func InfiniteRange(start string) RowRange { return RowRange{start: start} }

// PrefixRange is every row starting with prefix.
func PrefixRange(prefix string) RowRange {
	return RowRange{start: prefix, end: prefixSuccessor(prefix)}
}

// SingleRow is the set of the one row.
func SingleRow(row string) RowSet { return RowList{row} }

// prefixSuccessor is the first key after every key with the prefix ("" if
// none: the range is unbounded).
func prefixSuccessor(prefix string) string {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] != 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return ""
}

// Unbounded reports whether the range has no end.
func (r RowRange) Unbounded() bool { return r.end == "" }

// Contains reports whether row is in the range.
func (r RowRange) Contains(row string) bool {
	return row >= r.start && (r.end == "" || row < r.end)
}

func (r RowRange) String() string {
	if r.end == "" {
		return fmt.Sprintf("[%q,∞)", r.start)
	}
	return fmt.Sprintf("[%q,%q)", r.start, r.end)
}

// RowRangeList is a union of ranges.
type RowRangeList []RowRange

func (l RowList) String() string { return fmt.Sprintf("%q", []string(l)) }
func (l RowRangeList) String() string {
	s := make([]string, len(l))
	for i, r := range l {
		s[i] = r.String()
	}
	return "(" + strings.Join(s, " ∪ ") + ")"
}

// segment is a single key (isKey) or a range [start, end) (end nil:
// unbounded).
type segment struct {
	start, end []byte
	isKey      bool
}

func (l RowList) segments() ([]segment, error) {
	keys := slices.Clone([]string(l))
	slices.Sort(keys)
	keys = slices.Compact(keys)
	out := make([]segment, 0, len(keys))
	for _, k := range keys {
		if k == "" {
			return nil, fmt.Errorf("%w: empty row key in RowList", ErrInvalidArgument)
		}
		out = append(out, segment{start: []byte(k), isKey: true})
	}
	return out, nil
}

func (r RowRange) segments() ([]segment, error) { return RowRangeList{r}.segments() }

func (l RowRangeList) segments() ([]segment, error) {
	var out []segment
	for _, r := range l {
		if r.end != "" && r.end <= r.start {
			continue // empty range
		}
		s := segment{start: []byte(r.start)}
		if r.end != "" {
			s.end = []byte(r.end)
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b segment) int { return bytes.Compare(a.start, b.start) })
	// Merge overlapping or touching ranges.
	merged := out[:0]
	for _, s := range out {
		if n := len(merged); n > 0 && (merged[n-1].end == nil || bytes.Compare(s.start, merged[n-1].end) <= 0) {
			last := &merged[n-1]
			if last.end != nil && (s.end == nil || bytes.Compare(s.end, last.end) > 0) {
				last.end = s.end
			}
			continue
		}
		merged = append(merged, s)
	}
	return merged, nil
}

// after returns segs restricted to keys strictly greater than k (nil k:
// unchanged).
func after(segs []segment, k []byte) []segment {
	if k == nil {
		return segs
	}
	succ := append(bytes.Clone(k), 0) // the smallest key > k
	var out []segment
	for _, s := range segs {
		if s.isKey {
			if bytes.Compare(s.start, k) > 0 {
				out = append(out, s)
			}
			continue
		}
		if s.end != nil && bytes.Compare(s.end, succ) <= 0 {
			continue
		}
		if bytes.Compare(s.start, succ) < 0 {
			s.start = succ
		}
		out = append(out, s)
	}
	return out
}

// from returns segs restricted to keys >= k.
func from(segs []segment, k []byte) []segment {
	var out []segment
	for _, s := range segs {
		if s.isKey {
			if bytes.Compare(s.start, k) >= 0 {
				out = append(out, s)
			}
			continue
		}
		if s.end != nil && bytes.Compare(s.end, k) <= 0 {
			continue
		}
		if bytes.Compare(s.start, k) < 0 {
			s.start = bytes.Clone(k)
		}
		out = append(out, s)
	}
	return out
}
