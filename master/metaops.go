package master

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"

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

// mutateMetaRow applies muts to one METADATA row.
func (t *term) mutateMetaRow(ctx context.Context, key []byte, muts ...*datapb.Mutation) error {
	cl, err := t.metaClient(key)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, t.m.opts.RPCTimeout)
	defer cancel()
	if _, err := cl.MutateRow(rctx, &tabletpb.MutateRowRequest{Master: seqProto(t.seq), TableId: metadata.TableID, RowKey: key, Mutations: muts}); err != nil {
		return fmt.Errorf("write METADATA row %x: %w", key, t.serverErr(err))
	}
	return nil
}

// checkAndMutateMetaRow applies muts to one METADATA row if pred matches
// it, atomically, and reports whether it matched.
func (t *term) checkAndMutateMetaRow(ctx context.Context, key []byte, pred *datapb.RowFilter, muts ...*datapb.Mutation) (bool, error) {
	cl, err := t.metaClient(key)
	if err != nil {
		return false, err
	}
	rctx, cancel := context.WithTimeout(ctx, t.m.opts.RPCTimeout)
	defer cancel()
	resp, err := cl.CheckAndMutateRow(rctx, &tabletpb.CheckAndMutateRowRequest{Master: seqProto(t.seq), TableId: metadata.TableID, RowKey: key,
		PredicateFilter: pred, TrueMutations: muts})
	if err != nil {
		return false, fmt.Errorf("check-and-mutate METADATA row %x: %w", key, t.serverErr(err))
	}
	return resp.PredicateMatched, nil
}

// readMetaRow returns the info cells of one METADATA row by qualifier
// (empty when the row does not exist).
func (t *term) readMetaRow(ctx context.Context, key []byte) (map[string][]byte, error) {
	cl, err := t.metaClient(key)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, t.m.opts.RPCTimeout)
	defer cancel()
	stream, err := cl.ReadRows(rctx, &tabletpb.ReadRowsRequest{TableId: metadata.TableID, Rows: &datapb.RowSet{RowKeys: [][]byte{key}}})
	if err != nil {
		return nil, fmt.Errorf("read METADATA row %x: %w", key, serr.Wire.FromStatus(err))
	}
	cells := map[string][]byte{}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return cells, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read METADATA row %x: %w", key, serr.Wire.FromStatus(err))
		}
		for _, r := range resp.Rows {
			for _, c := range r.Cells {
				if c.Family == metadata.Family {
					cells[string(c.Qualifier)] = c.Value
				}
			}
		}
	}
}
