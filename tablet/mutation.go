package tablet

import (
	"encoding/binary"
	"fmt"
	"sort"

	"cellar/internal/keys"
	"cellar/memtable"
)

// ServerTime as a timestamp asks the tablet to assign one from its clock
// (µs; monotonically non-decreasing per tablet; one value for every
// ServerTime mutation of one Apply).
const ServerTime int64 = -1

type mutOp uint8

const (
	opSet mutOp = iota + 1
	opDeleteCell
	opDeleteColumn
	opDeleteFamily
	opDeleteRow
)

// Mutation is one change to a row, built with SetCell, DeleteCell,
// DeleteColumn, DeleteFamily or DeleteRow. Apply applies a list of them to
// one row atomically; later mutations in the list win over earlier ones
// (each gets its own, higher, sequence number).
type Mutation struct {
	op        mutOp
	family    string
	qualifier []byte
	ts        int64
	value     []byte
	tr        keys.TimeRange
}

// SetCell writes value at (family, qualifier, ts); ts ServerTime means the
// tablet's clock.
func SetCell(family string, qualifier []byte, ts int64, value []byte) Mutation {
	return Mutation{op: opSet, family: family, qualifier: qualifier, ts: ts, value: value}
}

// DeleteCell masks the version of (family, qualifier) at exactly ts.
func DeleteCell(family string, qualifier []byte, ts int64) Mutation {
	return Mutation{op: opDeleteCell, family: family, qualifier: qualifier, ts: ts}
}

// DeleteColumn masks the versions of (family, qualifier) with timestamps in
// r (End 0 = unbounded).
func DeleteColumn(family string, qualifier []byte, r keys.TimeRange) Mutation {
	return Mutation{op: opDeleteColumn, family: family, qualifier: qualifier, tr: r}
}

// DeleteFamily masks every cell of family in the row.
func DeleteFamily(family string) Mutation { return Mutation{op: opDeleteFamily, family: family} }

// DeleteRow masks every cell of the row: a family delete in every family of
// the schema.
func DeleteRow() Mutation { return Mutation{op: opDeleteRow} }

func (m Mutation) String() string {
	switch m.op {
	case opSet:
		return fmt.Sprintf("SetCell(%s:%q@%d, %d bytes)", m.family, m.qualifier, m.ts, len(m.value))
	case opDeleteCell:
		return fmt.Sprintf("DeleteCell(%s:%q@%d)", m.family, m.qualifier, m.ts)
	case opDeleteColumn:
		return fmt.Sprintf("DeleteColumn(%s:%q, [%d, %d))", m.family, m.qualifier, m.tr.Start, m.tr.End)
	case opDeleteFamily:
		return fmt.Sprintf("DeleteFamily(%s)", m.family)
	case opDeleteRow:
		return "DeleteRow()"
	}
	return "Mutation(invalid)"
}

// limits are the checks Apply makes before anything is applied.
type limits struct {
	families     []string // sorted schema names
	maxValue     int
	maxCells     int
	memtableSize int64
}

func (l *limits) hasFamily(f string) bool {
	i := sort.SearchStrings(l.families, f)
	return i < len(l.families) && l.families[i] == f
}

// checkMutations validates muts for row and returns the number of entries
// they expand to and an upper bound of the memtable arena bytes they need.
// Errors wrap keys.ErrLimit, keys.ErrInvalid or ErrUnknownFamily.
func checkMutations(row []byte, muts []Mutation, l *limits) (n int, need int64, err error) {
	if err := keys.ValidateRow(row); err != nil {
		return 0, 0, err
	}
	if len(muts) == 0 {
		return 0, 0, fmt.Errorf("%w: no mutations", keys.ErrInvalid)
	}
	add := func(family string, qual []byte, valueLen int) {
		n++
		klen := keys.EncodedLen(keys.Key{Row: row, Family: family, Qualifier: qual})
		need += memtable.ArenaSizeFor(klen, valueLen)
	}
	for i, m := range muts {
		if m.op != opDeleteRow {
			if err := keys.ValidateFamily(m.family); err != nil {
				return 0, 0, fmt.Errorf("mutation %d: %w", i, err)
			}
			if !l.hasFamily(m.family) {
				return 0, 0, fmt.Errorf("mutation %d: %w: %q", i, ErrUnknownFamily, m.family)
			}
			if err := keys.ValidateQualifier(m.qualifier); err != nil {
				return 0, 0, fmt.Errorf("mutation %d: %w", i, err)
			}
		}
		switch m.op {
		case opSet, opDeleteCell:
			if m.ts != ServerTime {
				if err := keys.ValidateTimestamp(m.ts); err != nil {
					return 0, 0, fmt.Errorf("mutation %d: %w", i, err)
				}
			}
			if len(m.value) > l.maxValue {
				return 0, 0, fmt.Errorf("mutation %d: %w", i, &keys.LimitError{What: "value", Max: l.maxValue, Got: len(m.value)})
			}
			add(m.family, m.qualifier, len(m.value))
		case opDeleteColumn:
			if m.tr.Start < 0 || m.tr.End < 0 || (m.tr.End != 0 && m.tr.End <= m.tr.Start) {
				return 0, 0, fmt.Errorf("mutation %d: %w: time range [%d, %d)", i, keys.ErrInvalid, m.tr.Start, m.tr.End)
			}
			add(m.family, m.qualifier, 16)
		case opDeleteFamily:
			add(m.family, nil, 0)
		case opDeleteRow:
			for _, f := range l.families {
				add(f, nil, 0)
			}
		default:
			return 0, 0, fmt.Errorf("mutation %d: %w: zero Mutation (use SetCell, DeleteCell, ...)", i, keys.ErrInvalid)
		}
	}
	if n > l.maxCells {
		return 0, 0, &keys.LimitError{What: "cells", Max: l.maxCells, Got: n}
	}
	if need > l.memtableSize {
		return 0, 0, &keys.LimitError{What: "mutation", Max: int(l.memtableSize), Got: int(need)}
	}
	return n, need, nil
}

// Batch format (the wal Entry.Data of one Apply; part of the format, never
// change; a new layout gets a new version byte):
//
//	+---------+-------------+-----+-------------+------------------------------------+
//	| version | uvarint len | row | uvarint cnt | cnt × entry                        |
//	| 1 byte  |             |     |             |                                    |
//	+---------+-------------+-----+-------------+------------------------------------+
//	entry: | uvarint klen | key (encoded cell key) | uvarint vlen | value |
//
// The keys carry their own sequence numbers (first, first+1, ... in
// mutation order) and the resolved timestamps, so replay inserts them as
// they are. Worked example: row "r", one SetCell("cf", "q", 5, "v") at
// sequence 7 is
//
//	01 | 01 72 | 01 | 19 <25-byte key 72 00 01 63 66 00 71 00 01 7F..FA FF..F8 FE> | 01 76
const batchVersion = 1

// encodeBatch appends the batch of muts (already checked) to dst. Entries
// get sequence numbers first, first+1, ...; ServerTime becomes serverTS.
func encodeBatch(dst, row []byte, muts []Mutation, families []string, n int, first keys.SeqNum, serverTS int64) []byte {
	dst = append(dst, batchVersion)
	dst = binary.AppendUvarint(dst, uint64(len(row)))
	dst = append(dst, row...)
	dst = binary.AppendUvarint(dst, uint64(n))
	seq := first
	put := func(k keys.Key, value []byte) {
		k.Row, k.Seq = row, seq
		seq++
		// The key is encoded in place, its length known beforehand.
		dst = binary.AppendUvarint(dst, uint64(keys.EncodedLen(k)))
		dst = keys.Append(dst, k)
		dst = binary.AppendUvarint(dst, uint64(len(value)))
		dst = append(dst, value...)
	}
	for _, m := range muts {
		ts := m.ts
		if ts == ServerTime {
			ts = serverTS
		}
		switch m.op {
		case opSet:
			put(keys.Key{Family: m.family, Qualifier: m.qualifier, Timestamp: ts, Kind: keys.KindSet}, m.value)
		case opDeleteCell:
			put(keys.Key{Family: m.family, Qualifier: m.qualifier, Timestamp: ts, Kind: keys.KindDeleteCell}, nil)
		case opDeleteColumn:
			put(keys.Key{Family: m.family, Qualifier: m.qualifier, Timestamp: keys.MarkerTimestamp, Kind: keys.KindDeleteColumn}, keys.EncodeTimeRange(m.tr))
		case opDeleteFamily:
			put(keys.Key{Family: m.family, Timestamp: keys.MarkerTimestamp, Kind: keys.KindDeleteFamily}, nil)
		case opDeleteRow:
			for _, f := range families {
				put(keys.Key{Family: f, Timestamp: keys.MarkerTimestamp, Kind: keys.KindDeleteFamily}, nil)
			}
		}
	}
	return dst
}

// batch is a decoded batch; keys and values alias the encoded bytes.
type batch struct {
	row          []byte
	keys, values [][]byte
}

// parseBatch splits an encoded batch into its row, keys and values,
// checking lengths only. It trusts no length and never panics; errors wrap
// ErrCorrupt.
func parseBatch(b []byte) (batch, error) {
	if len(b) == 0 || b[0] != batchVersion {
		return batch{}, fmt.Errorf("%w: batch: unknown version", ErrCorrupt)
	}
	d := decoder{b: b, off: 1}
	row := d.bytes(len(b))
	// Each entry takes at least two bytes: no count beyond that is possible.
	cnt := d.count(2)
	if d.err == nil && cnt == 0 {
		d.fail("empty batch")
	}
	out := batch{row: row, keys: make([][]byte, 0, cnt), values: make([][]byte, 0, cnt)}
	for i := 0; i < cnt && d.err == nil; i++ {
		out.keys = append(out.keys, d.bytes(len(b)))
		out.values = append(out.values, d.bytes(len(b)))
	}
	if d.err == nil && d.off != len(b) {
		d.err = fmt.Errorf("%d trailing bytes", len(b)-d.off)
	}
	if d.err != nil {
		return batch{}, fmt.Errorf("%w: batch: %v", ErrCorrupt, d.err)
	}
	return out, nil
}

// decodeBatch parses and fully checks an encoded batch (a commit-log entry
// read back): every key must decode, belong to the batch's row, and carry
// the sequence numbers first, first+1, ... in order. Errors wrap ErrCorrupt.
func decodeBatch(b []byte, first keys.SeqNum) (batch, error) {
	out, err := parseBatch(b)
	if err != nil {
		return batch{}, err
	}
	bad := func(format string, args ...any) (batch, error) {
		return batch{}, fmt.Errorf("%w: batch: "+format, append([]any{ErrCorrupt}, args...)...)
	}
	if err := keys.ValidateRow(out.row); err != nil {
		return bad("row: %v", err)
	}
	for i, key := range out.keys {
		dk, err := keys.Decode(key)
		if err != nil {
			return bad("entry %d: %v", i, err)
		}
		if string(dk.Row) != string(out.row) {
			return bad("entry %d of row %q in a batch of row %q", i, dk.Row, out.row)
		}
		if want := first + keys.SeqNum(i); dk.Seq != want || want > keys.MaxSeq {
			return bad("entry %d has %v, want %v", i, dk.Seq, want)
		}
		if dk.Kind == keys.KindDeleteColumn {
			if _, err := keys.DecodeTimeRange(out.values[i]); err != nil {
				return bad("entry %d: %v", i, err)
			}
		}
	}
	return out, nil
}
