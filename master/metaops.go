package master

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"time"

	"cellar/internal/metadata"
	"cellar/internal/serr"
	datapb "cellar/proto/cellar/data/v1"
	tabletpb "cellar/proto/cellar/tablet/v1"
)

// Single-row METADATA operations of merges and intent resolution. Every
// one is sync-durable and idempotent (cells carry metadata.CellTimestamp).
// Writes carry the term's sequencer: a deposed term's are refused, and it
// steps down (serverErr).

func deleteColumn(qual string) *datapb.Mutation {
	return &datapb.Mutation{Mutation: &datapb.Mutation_DeleteFromColumn_{DeleteFromColumn: &datapb.Mutation_DeleteFromColumn{
		Family: metadata.Family, Qualifier: []byte(qual)}}}
}

func deleteRow() *datapb.Mutation {
	return &datapb.Mutation{Mutation: &datapb.Mutation_DeleteFromRow_{DeleteFromRow: &datapb.Mutation_DeleteFromRow{}}}
}

// cellIs is a predicate: the row's info:qual cell holds exactly value
// (ASCII text: a qualifier and a decimal id).
func cellIs(qual string, value []byte) *datapb.RowFilter {
	quote := func(b []byte) []byte { return []byte(regexp.QuoteMeta(string(b))) }
	return &datapb.RowFilter{Filter: &datapb.RowFilter_Chain_{Chain: &datapb.RowFilter_Chain{Filters: []*datapb.RowFilter{
		{Filter: &datapb.RowFilter_FamilyNameRegexFilter{FamilyNameRegexFilter: metadata.Family}},
		{Filter: &datapb.RowFilter_ColumnQualifierRegexFilter{ColumnQualifierRegexFilter: quote([]byte(qual))}},
		{Filter: &datapb.RowFilter_ValueRegexFilter{ValueRegexFilter: quote(value)}},
	}}}}
}

func (t *term) metaClient(key []byte) (tabletpb.TabletServerClient, error) {
	addr, err := t.metaServer(key)
	if err != nil {
		return nil, err
	}
	return t.m.conns.server(addr)
}

// metaRetryWindow bounds how long onMetaRow keeps looking again for a
// METADATA tablet that is moving. It is short on purpose: the reconcile
// loop calls these operations too, and the loop is what assigns an
// unassigned META tablet; a longer wait would hold up that assignment.
const metaRetryWindow = 3 * time.Second

// onMetaRow runs op against the server of the METADATA tablet holding key,
// each attempt within RPCTimeout. While no server is known for that
// tablet, or the one asked answers NOT_SERVING (the META tablet is moving
// or splitting: nothing was applied), it looks again after a short pause,
// for up to metaRetryWindow, so that a merge or an intent's resolution
// does not fail over a move of METADATA itself. Any other error is
// returned as it is (a write that failed otherwise may have been applied).
func (t *term) onMetaRow(ctx context.Context, key []byte, op func(ctx context.Context, cl tabletpb.TabletServerClient) error) error {
	until := time.Now().Add(metaRetryWindow)
	wait := 10 * time.Millisecond
	for {
		cl, err := t.metaClient(key)
		if err == nil {
			rctx, cancel := context.WithTimeout(ctx, t.m.opts.RPCTimeout)
			err = op(rctx, cl)
			cancel()
			if err == nil {
				return nil
			}
			if err = t.serverErr(err); !errors.Is(err, serr.ErrNotServing) {
				return err
			}
		}
		if time.Now().After(until) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 200*time.Millisecond)
	}
}

// mutateMetaRow applies muts to one METADATA row.
func (t *term) mutateMetaRow(ctx context.Context, key []byte, muts ...*datapb.Mutation) error {
	err := t.onMetaRow(ctx, key, func(ctx context.Context, cl tabletpb.TabletServerClient) error {
		_, err := cl.MutateRow(ctx, &tabletpb.MutateRowRequest{Master: seqProto(t.seq), TableId: metadata.TableID, RowKey: key, Mutations: muts})
		return err
	})
	if err != nil {
		return fmt.Errorf("write METADATA row %x: %w", key, err)
	}
	return nil
}

// checkAndMutateMetaRow applies muts to one METADATA row if pred matches
// it, atomically, and reports whether it matched.
func (t *term) checkAndMutateMetaRow(ctx context.Context, key []byte, pred *datapb.RowFilter, muts ...*datapb.Mutation) (bool, error) {
	var matched bool
	err := t.onMetaRow(ctx, key, func(ctx context.Context, cl tabletpb.TabletServerClient) error {
		resp, err := cl.CheckAndMutateRow(ctx, &tabletpb.CheckAndMutateRowRequest{Master: seqProto(t.seq), TableId: metadata.TableID, RowKey: key,
			PredicateFilter: pred, TrueMutations: muts})
		if err == nil {
			matched = resp.PredicateMatched
		}
		return err
	})
	if err != nil {
		return false, fmt.Errorf("check-and-mutate METADATA row %x: %w", key, err)
	}
	return matched, nil
}

// readMetaRow returns the info cells of one METADATA row by qualifier
// (empty when the row does not exist).
func (t *term) readMetaRow(ctx context.Context, key []byte) (map[string][]byte, error) {
	var cells map[string][]byte
	err := t.onMetaRow(ctx, key, func(ctx context.Context, cl tabletpb.TabletServerClient) error {
		cells = map[string][]byte{}
		stream, err := cl.ReadRows(ctx, &tabletpb.ReadRowsRequest{TableId: metadata.TableID, Rows: &datapb.RowSet{RowKeys: [][]byte{key}}})
		if err != nil {
			return err
		}
		for {
			resp, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			for _, r := range resp.Rows {
				for _, c := range r.Cells {
					if c.Family == metadata.Family {
						cells[string(c.Qualifier)] = c.Value
					}
				}
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("read METADATA row %x: %w", key, err)
	}
	return cells, nil
}
