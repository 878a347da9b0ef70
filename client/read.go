package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	datapb "cellar/proto/cellar/data/v1"
	tabletpb "cellar/proto/cellar/tablet/v1"
)

// ReadRows reads the rows of arg in key order and calls f for each one
// (rows whose cells the filter drops entirely are not delivered), until f
// returns false, the limit is reached, or the set is exhausted. f runs on
// the calling goroutine and may keep the Row.
//
// The set is read one tablet at a time, in row order: one ReadRows request
// per tablet with the set clipped to the tablet. Transient failures
// (NOT_SERVING, unreachable server, broken stream) are retried with backoff
// inside ctx's deadline (default 60s), resuming strictly after the last row
// delivered or examined, so f never sees a row twice.
func (t *Table) ReadRows(ctx context.Context, arg RowSet, f func(Row) bool, opts ...ReadOption) error {
	if arg == nil {
		return fmt.Errorf("%w: nil RowSet", ErrInvalidArgument)
	}
	if f == nil {
		return fmt.Errorf("%w: nil callback", ErrInvalidArgument)
	}
	segs, err := arg.segments()
	if err != nil {
		return err
	}
	o := collectRead(opts)
	var filter *datapb.RowFilter
	if o.filter != nil {
		if filter, err = o.filter.proto(); err != nil {
			return err
		}
	}
	ctx, cancel := t.c.callCtx(ctx)
	defer cancel()
	r := &rowReader{t: t, f: f, filter: filter, limit: o.limit, noCache: o.noBlockCache, pending: segs, b: t.c.newBackoff()}
	return r.run(ctx)
}

// rowReader is the state of one ReadRows call.
type rowReader struct {
	t       *Table
	f       func(Row) bool
	filter  *datapb.RowFilter
	limit   int64
	noCache bool
	pending []segment // what is still to read, sorted
	b       *backoff

	delivered int64
	lastKey   []byte // last row delivered or examined (resume strictly after)
	done      bool   // f returned false or the limit was reached
}

func (r *rowReader) run(ctx context.Context) error {
	var last error
	quick := 0 // retries without a backoff after a tablet moved
	for len(r.pending) > 0 && !r.done {
		id, err := r.t.c.tableID(ctx, r.t.name)
		if err != nil {
			return r.t.giveUp(ctx, "read rows", err, last)
		}
		loc, err := r.t.c.locate(ctx, id, r.pending[0].start)
		if err != nil {
			if errors.Is(err, ErrTableNotFound) {
				r.t.c.forgetTable(r.t.name)
			}
			return r.t.giveUp(ctx, "read rows", err, last)
		}
		next, err := r.readTablet(ctx, id, loc)
		if err == nil {
			r.pending = next
			r.b = r.t.c.newBackoff()
			last = nil
			quick = 0
			continue
		}
		notServing := isNotServing(err)
		switch {
		case notServing, isUnavailable(err):
			r.t.c.log.Debug("read interrupted; relocating", "table", r.t.name, "tablet", loc.tablet, "addr", loc.addr, "err", err)
			r.t.c.cache.invalidate(loc)
		case errors.Is(err, ErrTableNotFound):
			r.t.c.forgetTable(r.t.name)
			return fmt.Errorf("cellar/client: read rows of table %q: %w", r.t.name, err)
		default:
			return fmt.Errorf("cellar/client: read rows of table %q: %w", r.t.name, err)
		}
		last = err
		r.pending = after(r.pending, r.lastKey)
		if notServing && quick < maxQuickRelocations && len(r.pending) > 0 && r.t.c.relocated(ctx, loc, r.pending[0].start) {
			quick++
			continue
		}
		if werr := r.b.wait(ctx); werr != nil {
			return r.t.giveUp(ctx, "read rows", werr, last)
		}
	}
	return nil
}

// readTablet reads the part of the pending set inside loc's tablet and
// returns what remains after it.
func (r *rowReader) readTablet(ctx context.Context, id uint64, loc *tabletLoc) ([]segment, error) {
	rs := &datapb.RowSet{}
	for _, s := range r.pending {
		if loc.end != nil && bytes.Compare(s.start, loc.end) >= 0 {
			break
		}
		if s.isKey {
			rs.RowKeys = append(rs.RowKeys, s.start)
			continue
		}
		rr := &datapb.RowRange{StartKey: s.start, EndKey: s.end}
		if bytes.Compare(rr.StartKey, loc.start) < 0 {
			rr.StartKey = loc.start
		}
		if loc.end != nil && (s.end == nil || bytes.Compare(s.end, loc.end) > 0) {
			rr.EndKey = loc.end
		}
		rs.RowRanges = append(rs.RowRanges, rr)
	}
	req := &tabletpb.ReadRowsRequest{TableId: id, Rows: rs, Filter: r.filter, NoBlockCache: r.noCache}
	if r.limit > 0 {
		req.RowsLimit = r.limit - r.delivered
	}
	cl, err := r.t.c.tabletClient(loc.addr)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := cl.ReadRows(sctx, req)
	if err != nil {
		return nil, wireErr(err)
	}
	var tabletEnd bool
	var resume []byte
	for {
		resp, err := st.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, wireErr(err)
		}
		for _, row := range resp.Rows {
			if r.lastKey != nil && bytes.Compare(row.Key, r.lastKey) <= 0 {
				continue // already delivered (never deliver a row twice)
			}
			if !loc.contains(row.Key) {
				continue // not ours: a confused server
			}
			r.lastKey = bytes.Clone(row.Key)
			out := rowFromProto(row)
			if out == nil {
				continue
			}
			r.delivered++
			if !r.f(out) || (r.limit > 0 && r.delivered >= r.limit) {
				r.done = true
				return nil, nil
			}
		}
		if k := resp.LastScannedRowKey; len(k) > 0 && (r.lastKey == nil || bytes.Compare(k, r.lastKey) > 0) && loc.contains(k) {
			r.lastKey = bytes.Clone(k)
		}
		if resp.TabletEnd {
			tabletEnd, resume = true, resp.ResumeKey
		}
	}
	// The tablet is done. If the server's tablet ended before the cached
	// end (it split), continue from its resume key with a fresh lookup.
	if tabletEnd && len(resume) > 0 && (loc.end == nil || bytes.Compare(resume, loc.end) < 0) && bytes.Compare(resume, loc.start) > 0 {
		r.t.c.cache.invalidate(loc)
		return from(r.pending, resume), nil
	}
	if loc.end == nil {
		return nil, nil
	}
	return from(r.pending, loc.end), nil
}
