package client

import (
	"fmt"

	"cellar/internal/keys"
	datapb "cellar/proto/cellar/data/v1"
	tabletpb "cellar/proto/cellar/tablet/v1"
)

// Mutation is a set of changes to one row, applied atomically and in order
// by Apply. Build it with NewMutation and its methods; a Mutation may be
// reused and applied to several rows. Not safe for concurrent modification;
// reading it (Apply) from several goroutines at once is safe.
//
// The builder methods never fail: bad input (an invalid family name, a
// negative explicit timestamp, a qualifier over the limits) is recorded and
// returned, wrapping ErrInvalidArgument, by the call that applies it.
type Mutation struct {
	ops []*datapb.Mutation
	err error
}

// NewMutation returns an empty Mutation.
func NewMutation() *Mutation { return &Mutation{} }

func (m *Mutation) check(family, column string, ts Timestamp, allowServerTime bool) {
	if m.err != nil {
		return
	}
	if err := keys.ValidateFamily(family); err != nil {
		m.err = fmt.Errorf("%w: %w", ErrInvalidArgument, err)
		return
	}
	if err := keys.ValidateQualifier([]byte(column)); err != nil {
		m.err = fmt.Errorf("%w: %w", ErrInvalidArgument, err)
		return
	}
	if ts == ServerTime && allowServerTime {
		return
	}
	if err := keys.ValidateTimestamp(int64(ts)); err != nil {
		m.err = fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
}

// Set sets the value of column in family at timestamp ts (ServerTime: the
// server assigns it, which makes the mutation non-idempotent).
func (m *Mutation) Set(family, column string, ts Timestamp, value []byte) {
	m.check(family, column, ts, true)
	m.ops = append(m.ops, &datapb.Mutation{Mutation: &datapb.Mutation_SetCell_{SetCell: &datapb.Mutation_SetCell{
		Family: family, Qualifier: []byte(column), Timestamp: int64(ts), Value: value}}})
}

// DeleteCellsInColumn deletes every version of column in family.
func (m *Mutation) DeleteCellsInColumn(family, column string) {
	m.check(family, column, 0, false)
	m.ops = append(m.ops, &datapb.Mutation{Mutation: &datapb.Mutation_DeleteFromColumn_{DeleteFromColumn: &datapb.Mutation_DeleteFromColumn{
		Family: family, Qualifier: []byte(column)}}})
}

// DeleteTimestampRange deletes the versions of column in family with
// timestamps in [start, end); end 0 means unbounded.
func (m *Mutation) DeleteTimestampRange(family, column string, start, end Timestamp) {
	m.check(family, column, start, false)
	if m.err == nil && (end < 0 || (end != 0 && end <= start)) {
		m.err = fmt.Errorf("%w: timestamp range [%d, %d) is empty or negative", ErrInvalidArgument, start, end)
	}
	m.ops = append(m.ops, &datapb.Mutation{Mutation: &datapb.Mutation_DeleteFromColumn_{DeleteFromColumn: &datapb.Mutation_DeleteFromColumn{
		Family: family, Qualifier: []byte(column), TimeRange: &datapb.TimestampRange{Start: int64(start), End: int64(end)}}}})
}

// DeleteCell deletes the one version of column in family at timestamp ts.
func (m *Mutation) DeleteCell(family, column string, ts Timestamp) {
	m.check(family, column, ts, false)
	m.ops = append(m.ops, &datapb.Mutation{Mutation: &datapb.Mutation_DeleteCell_{DeleteCell: &datapb.Mutation_DeleteCell{
		Family: family, Qualifier: []byte(column), Timestamp: int64(ts)}}})
}

// DeleteCellsInFamily deletes every cell of family in the row.
func (m *Mutation) DeleteCellsInFamily(family string) {
	m.check(family, "", 0, false)
	m.ops = append(m.ops, &datapb.Mutation{Mutation: &datapb.Mutation_DeleteFromFamily_{DeleteFromFamily: &datapb.Mutation_DeleteFromFamily{
		Family: family}}})
}

// DeleteRow deletes every cell of the row.
func (m *Mutation) DeleteRow() {
	m.ops = append(m.ops, &datapb.Mutation{Mutation: &datapb.Mutation_DeleteFromRow_{DeleteFromRow: &datapb.Mutation_DeleteFromRow{}}})
}

// validate reports a nil or empty mutation or a recorded builder error.
func (m *Mutation) validate() error {
	if m == nil {
		return fmt.Errorf("%w: nil mutation", ErrInvalidArgument)
	}
	if m.err != nil {
		return m.err
	}
	if len(m.ops) == 0 {
		return fmt.Errorf("%w: empty mutation", ErrInvalidArgument)
	}
	return nil
}

// idempotent reports whether m can be applied twice with the same effect:
// true unless it has a Set with ServerTime.
func (m *Mutation) idempotent() bool {
	for _, op := range m.ops {
		if s := op.GetSetCell(); s != nil && s.Timestamp == int64(ServerTime) {
			return false
		}
	}
	return true
}

// ReadModifyWrite is a set of read-modify-write rules on one row, applied
// atomically by ApplyReadModifyWrite. Not idempotent: never retried once
// sent. Builder errors are returned by ApplyReadModifyWrite.
type ReadModifyWrite struct {
	rules []*tabletpb.ReadModifyWriteRule
	err   error
}

// NewReadModifyWrite returns an empty ReadModifyWrite.
func NewReadModifyWrite() *ReadModifyWrite { return &ReadModifyWrite{} }

func (m *ReadModifyWrite) check(family, column string) {
	if m.err != nil {
		return
	}
	if err := keys.ValidateFamily(family); err != nil {
		m.err = fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	} else if err := keys.ValidateQualifier([]byte(column)); err != nil {
		m.err = fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
}

// AppendValue appends v to the latest value of column in family (an absent
// cell counts as empty).
func (m *ReadModifyWrite) AppendValue(family, column string, v []byte) {
	m.check(family, column)
	m.rules = append(m.rules, &tabletpb.ReadModifyWriteRule{Family: family, Qualifier: []byte(column),
		Rule: &tabletpb.ReadModifyWriteRule_AppendValue{AppendValue: v}})
}

// Increment adds delta to the latest value of column in family, read as a
// 64-bit big-endian signed integer (an absent cell counts as 0).
func (m *ReadModifyWrite) Increment(family, column string, delta int64) {
	m.check(family, column)
	m.rules = append(m.rules, &tabletpb.ReadModifyWriteRule{Family: family, Qualifier: []byte(column),
		Rule: &tabletpb.ReadModifyWriteRule_IncrementAmount{IncrementAmount: delta}})
}

func (m *ReadModifyWrite) validate() error {
	if m == nil {
		return fmt.Errorf("%w: nil ReadModifyWrite", ErrInvalidArgument)
	}
	if m.err != nil {
		return m.err
	}
	if len(m.rules) == 0 {
		return fmt.Errorf("%w: empty ReadModifyWrite", ErrInvalidArgument)
	}
	return nil
}
