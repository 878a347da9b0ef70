package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	tabletpb "cellar/proto/cellar/tablet/v1"
)

// rowOp runs one single-row RPC (fn) on the tablet holding row, relocating
// and retrying with backoff inside ctx (default deadline 60s):
//
//   - NOT_SERVING (nothing applied): drop the cache entry, relocate, retry;
//   - a write that is not idempotent is not sent to a server whose
//     connection cannot be brought up (refused: the server is down); it is
//     relocated and retried like NOT_SERVING;
//   - other UNAVAILABLE (server unreachable, connection broken): retried
//     if idempotent; otherwise the call fails with ErrOutcomeUnknown, since
//     the write may have been applied;
//   - a deadline or cancellation after sending a non-idempotent write:
//     ErrOutcomeUnknown too;
//   - anything else is returned as it is.
func (t *Table) rowOp(ctx context.Context, row []byte, idempotent bool, what string,
	fn func(ctx context.Context, cl tabletpb.TabletServerClient, tableID uint64) error) error {
	ctx, cancel := t.c.callCtx(ctx)
	defer cancel()
	b := t.c.newBackoff()
	var last error
	quick := 0 // retries without a backoff after the tablet moved
	for {
		id, err := t.c.tableID(ctx, t.name)
		if err != nil {
			return t.giveUp(ctx, what, err, last)
		}
		loc, err := t.c.locate(ctx, id, row)
		if err != nil {
			if errors.Is(err, ErrTableNotFound) {
				t.c.forgetTable(t.name)
			}
			return t.giveUp(ctx, what, err, last)
		}
		cl, err := t.c.tabletClient(loc.addr)
		if err != nil {
			return err
		}
		// A write that is not idempotent is sent only to a server that is
		// reachable: one that is down (its tablets being recovered
		// elsewhere) would turn every attempt into ErrOutcomeUnknown,
		// when an unsent request is certainly not applied.
		sent := idempotent || t.c.reachable(ctx, loc.addr)
		if sent {
			err = wireErr(fn(ctx, cl, id))
		} else {
			err = fmt.Errorf("%w: tablet server %s unreachable (request not sent)", ErrUnavailable, loc.addr)
		}
		switch {
		case err == nil:
			return nil
		case !sent:
			t.c.cache.invalidate(loc)
			t.c.log.Debug("unreachable; relocating", "table", t.name, "addr", loc.addr)
		case isNotServing(err):
			t.c.log.Debug("not serving; relocating", "table", t.name, "tablet", loc.tablet, "addr", loc.addr, "err", err)
			if quick < maxQuickRelocations && t.c.relocated(ctx, loc, row) {
				quick++
				last = err
				continue
			}
			t.c.cache.invalidate(loc) // (again, if relocated ran: a no-op)
		case isUnavailable(err):
			t.c.cache.invalidate(loc)
			if !idempotent {
				return fmt.Errorf("cellar/client: %s on table %q row %q: %w (not retried: the server may have applied it before failing): %w",
					what, t.name, row, ErrOutcomeUnknown, err)
			}
			t.c.log.Debug("unavailable; retrying", "table", t.name, "addr", loc.addr, "err", err)
		case isCtxErr(err) && !idempotent:
			return fmt.Errorf("cellar/client: %s on table %q row %q: %w: %w", what, t.name, row, ErrOutcomeUnknown, err)
		case errors.Is(err, ErrTableNotFound):
			t.c.forgetTable(t.name)
			return fmt.Errorf("cellar/client: %s on table %q: %w", what, t.name, err)
		default:
			return fmt.Errorf("cellar/client: %s on table %q row %q: %w", what, t.name, row, err)
		}
		last = err
		if werr := b.wait(ctx); werr != nil {
			return t.giveUp(ctx, what, werr, last)
		}
	}
}

// giveUp builds the error of a call that ran out of time (or failed
// permanently), keeping the last transient error for errors.Is.
func (t *Table) giveUp(ctx context.Context, what string, err, last error) error {
	if last == nil || ctx.Err() == nil {
		return fmt.Errorf("cellar/client: %s on table %q: %w", what, t.name, err)
	}
	return fmt.Errorf("cellar/client: %s on table %q: gave up: %w: %w (last error: %w)", what, t.name, ErrUnavailable, err, last)
}

func validRow(row string) error {
	if row == "" {
		return fmt.Errorf("%w: empty row key", ErrInvalidArgument)
	}
	return nil
}

// Apply applies m to row atomically. A mutation with only explicit
// timestamps is idempotent and is retried on transient failures; one with
// a ServerTime Set is retried only when the server refused it before
// applying (NOT_SERVING), and otherwise fails with ErrOutcomeUnknown.
// Idempotent means applying it twice leaves what applying it once does,
// not that nothing comes between: if the first attempt was applied before
// the failure, the retry applies it again, after any other writer's
// mutation of the same cell at the same timestamp (the later write of a
// version wins), as in Bigtable and HBase. Writers that must not undo each
// other write distinct timestamps or use ServerTime.
// Errors: ErrInvalidArgument (empty row, nil or empty mutation, bad
// family name), ErrUnknownFamily, ErrLimit, ErrTableNotFound,
// ErrOutcomeUnknown, ErrUnavailable.
func (t *Table) Apply(ctx context.Context, row string, m *Mutation, opts ...ApplyOption) error {
	if err := validRow(row); err != nil {
		return err
	}
	if err := m.validate(); err != nil {
		return err
	}
	o := collectApply(opts)
	return t.rowOp(ctx, []byte(row), m.idempotent(), "apply", func(ctx context.Context, cl tabletpb.TabletServerClient, id uint64) error {
		_, err := cl.MutateRow(ctx, &tabletpb.MutateRowRequest{TableId: id, RowKey: []byte(row), Mutations: m.ops, Durability: o.durability.proto()})
		return err
	})
}

// CheckAndMutate applies trueMut to row if predicate outputs any cell for
// it (nil predicate: the row has any cell), else falseMut (either may be
// nil: no change). It reports whether the predicate matched. Like a
// ServerTime write it is not idempotent: it is retried only after
// NOT_SERVING and otherwise fails with ErrOutcomeUnknown.
func (t *Table) CheckAndMutate(ctx context.Context, row string, predicate Filter, trueMut, falseMut *Mutation, opts ...ApplyOption) (matched bool, err error) {
	if err := validRow(row); err != nil {
		return false, err
	}
	if trueMut == nil && falseMut == nil {
		return false, fmt.Errorf("%w: CheckAndMutate needs a true or false mutation", ErrInvalidArgument)
	}
	req := &tabletpb.CheckAndMutateRowRequest{RowKey: []byte(row), Durability: collectApply(opts).durability.proto()}
	for _, m := range []*Mutation{trueMut, falseMut} {
		if m == nil {
			continue
		}
		if err := m.validate(); err != nil {
			return false, err
		}
	}
	if trueMut != nil {
		req.TrueMutations = trueMut.ops
	}
	if falseMut != nil {
		req.FalseMutations = falseMut.ops
	}
	if predicate != nil {
		if req.PredicateFilter, err = predicate.proto(); err != nil {
			return false, err
		}
	}
	err = t.rowOp(ctx, []byte(row), false, "check-and-mutate", func(ctx context.Context, cl tabletpb.TabletServerClient, id uint64) error {
		r := req
		r.TableId = id
		resp, err := cl.CheckAndMutateRow(ctx, r)
		if err == nil {
			matched = resp.PredicateMatched
		}
		return err
	})
	return matched, err
}

// ApplyReadModifyWrite applies m to row atomically and returns the new
// cells it wrote. Not idempotent: retried only after NOT_SERVING, otherwise
// failing with ErrOutcomeUnknown.
func (t *Table) ApplyReadModifyWrite(ctx context.Context, row string, m *ReadModifyWrite) (Row, error) {
	if err := validRow(row); err != nil {
		return nil, err
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	var out Row
	err := t.rowOp(ctx, []byte(row), false, "read-modify-write", func(ctx context.Context, cl tabletpb.TabletServerClient, id uint64) error {
		resp, err := cl.ReadModifyWriteRow(ctx, &tabletpb.ReadModifyWriteRowRequest{TableId: id, RowKey: []byte(row), Rules: m.rules})
		if err == nil {
			out = rowFromProto(resp.Row)
		}
		return err
	})
	return out, err
}

// ReadRow reads one row; a missing row (or one whose cells the filter
// drops) is (nil, nil).
func (t *Table) ReadRow(ctx context.Context, row string, opts ...ReadOption) (Row, error) {
	if err := validRow(row); err != nil {
		return nil, err
	}
	var out Row
	err := t.ReadRows(ctx, RowList{row}, func(r Row) bool { out = r; return false }, opts...)
	return out, err
}

// RowKeySample is a row key that splits the table into chunks of about
// OffsetBytes from the start (the last sample's Key is "": the end of the
// table).
type RowKeySample struct {
	Key         string
	OffsetBytes int64
}

// SampleRowKeys returns samples of the table's row keys in key order, with
// approximate byte offsets: the tablet boundaries (and any finer samples
// the servers provide), asked of every server serving a tablet of the
// table. Servers report offsets cumulative over their own tablets of the
// table; the client sums the per-server increments in key order.
func (t *Table) SampleRowKeys(ctx context.Context) ([]RowKeySample, error) {
	ctx, cancel := t.c.callCtx(ctx)
	defer cancel()
	b := t.c.newBackoff()
	var last error
	for {
		out, err := t.sampleOnce(ctx)
		if err == nil {
			return out, nil
		}
		if !isNotServing(err) && !isUnavailable(err) {
			return nil, err
		}
		last = err
		if werr := b.wait(ctx); werr != nil {
			return nil, t.giveUp(ctx, "sample row keys", werr, last)
		}
	}
}

func (t *Table) sampleOnce(ctx context.Context) ([]RowKeySample, error) {
	id, err := t.c.tableID(ctx, t.name)
	if err != nil {
		return nil, err
	}
	// Walk the table's tablets in order.
	var tablets []*tabletLoc
	for row := []byte(nil); ; {
		l, err := t.c.locate(ctx, id, row)
		if err != nil {
			if errors.Is(err, ErrTableNotFound) {
				t.c.forgetTable(t.name)
			}
			return nil, err
		}
		tablets = append(tablets, l)
		if l.end == nil {
			break
		}
		row = l.end
	}
	type sample struct {
		key   []byte
		delta int64
	}
	var all []sample
	asked := map[string]bool{}
	for _, l := range tablets {
		if asked[l.addr] {
			continue
		}
		asked[l.addr] = true
		cl, err := t.c.tabletClient(l.addr)
		if err != nil {
			return nil, err
		}
		resp, err := cl.SampleRowKeys(ctx, &tabletpb.SampleRowKeysRequest{TableId: id})
		if err != nil {
			err = wireErr(err)
			if isNotServing(err) || isUnavailable(err) {
				t.c.cache.invalidate(l)
			}
			return nil, fmt.Errorf("cellar/client: sample row keys of table %q at %s: %w", t.name, l.addr, err)
		}
		var prev int64
		for _, s := range sortedSamples(resp.Samples) {
			if !servedBy(tablets, l.addr, s.RowKey) {
				continue // a tablet the cache does not place there
			}
			d := s.OffsetBytes - prev
			if d < 0 {
				d = s.OffsetBytes
			}
			prev = s.OffsetBytes
			all = append(all, sample{key: s.RowKey, delta: d})
		}
	}
	sortKeyLast := func(a, b []byte) int {
		switch {
		case len(a) == 0 && len(b) == 0:
			return 0
		case len(a) == 0:
			return 1
		case len(b) == 0:
			return -1
		}
		return bytes.Compare(a, b)
	}
	slices.SortStableFunc(all, func(a, b sample) int { return sortKeyLast(a.key, b.key) })
	out := make([]RowKeySample, 0, len(all))
	var off int64
	for _, s := range all {
		off += s.delta
		if n := len(out); n > 0 && out[n-1].Key == string(s.key) {
			out[n-1].OffsetBytes = off
			continue
		}
		out = append(out, RowKeySample{Key: string(s.key), OffsetBytes: off})
	}
	return out, nil
}

// servedBy reports whether sample key k (a tablet's end row or a key
// inside it; "" the table's end) falls in a tablet cached at addr.
func servedBy(tablets []*tabletLoc, addr string, k []byte) bool {
	for _, l := range tablets {
		if l.addr != addr {
			continue
		}
		if len(k) == 0 {
			if l.end == nil {
				return true
			}
			continue
		}
		if bytes.Compare(k, l.start) > 0 && (l.end == nil || bytes.Compare(k, l.end) <= 0) {
			return true
		}
	}
	return false
}
