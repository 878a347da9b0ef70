package client

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"cellar/internal/rpcerr"
	tabletpb "cellar/proto/cellar/tablet/v1"
)

// ApplyBulk applies muts[i] to rows[i], each row atomically but not the
// batch as a whole. Entries are grouped by tablet server, one MutateRows
// call per server (in parallel). Entries a server refused with NOT_SERVING
// are relocated and retried, as are idempotent entries after any
// transient failure; a non-idempotent entry (a ServerTime Set) whose
// outcome is unknown gets an error wrapping ErrOutcomeUnknown.
//
// The first result is nil if every entry succeeded, else one error per
// entry (nil for those that succeeded). The second is a whole-call error:
// ErrInvalidArgument when len(rows) != len(muts). Bad entries (empty row,
// nil mutation) fail on their own with ErrInvalidArgument.
func (t *Table) ApplyBulk(ctx context.Context, rows []string, muts []*Mutation, opts ...ApplyOption) ([]error, error) {
	if len(rows) != len(muts) {
		return nil, fmt.Errorf("%w: %d rows but %d mutations", ErrInvalidArgument, len(rows), len(muts))
	}
	o := collectApply(opts)
	errs := make([]error, len(rows))
	var pending []int
	for i := range rows {
		if err := validRow(rows[i]); err != nil {
			errs[i] = err
		} else if err := muts[i].validate(); err != nil {
			errs[i] = err
		} else {
			pending = append(pending, i)
		}
	}
	ctx, cancel := t.c.callCtx(ctx)
	defer cancel()
	b := t.c.newBackoff()
	for len(pending) > 0 {
		retry := t.bulkRound(ctx, rows, muts, o, pending, errs)
		if len(retry) == 0 {
			break
		}
		if werr := b.wait(ctx); werr != nil {
			for _, i := range retry {
				errs[i] = fmt.Errorf("cellar/client: apply row %q: gave up: %w: %w (last error: %w)", rows[i], ErrUnavailable, werr, errs[i])
			}
			break
		}
		pending = retry
	}
	for _, err := range errs {
		if err != nil {
			return errs, nil
		}
	}
	return nil, nil
}

// bulkRequestBytes bounds the entries of one MutateRows request.
const bulkRequestBytes = 8 << 20

// bulkRound sends pending entries once and returns those to retry (their
// errs slot holds the last error).
func (t *Table) bulkRound(ctx context.Context, rows []string, muts []*Mutation, o applyOptions, pending []int, errs []error) (retry []int) {
	id, err := t.c.tableID(ctx, t.name)
	if err != nil {
		for _, i := range pending {
			errs[i] = err
		}
		return nil
	}
	type group struct {
		idx  []int
		locs []*tabletLoc
	}
	groups := map[string]*group{}
	for _, i := range pending {
		loc, err := t.c.locate(ctx, id, []byte(rows[i]))
		if err != nil {
			if errors.Is(err, ErrTableNotFound) {
				t.c.forgetTable(t.name)
			}
			errs[i] = err
			continue
		}
		g := groups[loc.addr]
		if g == nil {
			g = &group{}
			groups[loc.addr] = g
		}
		g.idx = append(g.idx, i)
		g.locs = append(g.locs, loc)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for addr, g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Requests stay under bulkRequestBytes (one oversized entry
			// goes alone), far below the message limit.
			for start := 0; start < len(g.idx); {
				req := &tabletpb.MutateRowsRequest{TableId: id, Durability: o.durability.proto()}
				size, end := 0, start
				for ; end < len(g.idx); end++ {
					i := g.idx[end]
					e := &tabletpb.MutateRowsRequest_Entry{RowKey: []byte(rows[i]), Mutations: muts[i].ops}
					n := proto.Size(e)
					if end > start && size+n > bulkRequestBytes {
						break
					}
					req.Entries = append(req.Entries, e)
					size += n
				}
				var resp *tabletpb.MutateRowsResponse
				cl, err := t.c.tabletClient(addr)
				if err == nil {
					resp, err = cl.MutateRows(ctx, req)
					err = wireErr(err)
				}
				if err == nil && len(resp.Results) != end-start {
					err = fmt.Errorf("cellar/client: MutateRows at %s returned %d results for %d entries", addr, len(resp.Results), end-start)
				}
				mu.Lock()
				for k := start; k < end; k++ {
					i := g.idx[k]
					e := err
					if e == nil {
						e = resultErr(resp.Results[k-start])
					}
					if t.classifyBulk(ctx, rows[i], muts[i], g.locs[k], e, &errs[i]) {
						retry = append(retry, i)
					}
				}
				mu.Unlock()
				start = end
			}
		}()
	}
	wg.Wait()
	return retry
}

// classifyBulk records entry i's outcome in *slot and reports whether to
// retry it.
func (t *Table) classifyBulk(ctx context.Context, row string, m *Mutation, loc *tabletLoc, err error, slot *error) bool {
	switch {
	case err == nil:
		*slot = nil
		return false
	case isNotServing(err):
		t.c.cache.invalidate(loc)
		*slot = err
		return true
	case isUnavailable(err):
		t.c.cache.invalidate(loc)
		if !m.idempotent() {
			*slot = fmt.Errorf("cellar/client: apply row %q: %w (not retried: the server may have applied it before failing): %w", row, ErrOutcomeUnknown, err)
			return false
		}
		*slot = err
		return true
	case isCtxErr(err) && !m.idempotent():
		*slot = fmt.Errorf("cellar/client: apply row %q: %w: %w", row, ErrOutcomeUnknown, err)
		return false
	}
	if errors.Is(err, ErrTableNotFound) {
		t.c.forgetTable(t.name)
	}
	*slot = fmt.Errorf("cellar/client: apply row %q: %w", row, err)
	return false
}

// resultErr converts one MutateRows result to an error mapped through
// serr.Wire (nil for success).
func resultErr(r *tabletpb.MutateRowsResponse_Result) error {
	if r == nil {
		return errors.New("cellar/client: missing MutateRows result")
	}
	if codes.Code(r.Code) == codes.OK {
		return nil
	}
	s := status.New(codes.Code(r.Code), r.Message)
	if r.Reason != "" {
		if ds, err := s.WithDetails(&errdetails.ErrorInfo{Domain: rpcerr.Domain, Reason: r.Reason}); err == nil {
			s = ds
		}
	}
	return wireErr(s.Err())
}
