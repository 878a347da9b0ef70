package master

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"cellar/internal/metadata"
	"cellar/internal/serr"
	datapb "cellar/proto/cellar/data/v1"
	tabletpb "cellar/proto/cellar/tablet/v1"
)

// metaRow is one METADATA row to write: a tablet's descriptor and, if
// serverID is set, its location.
type metaRow struct {
	desc           *datapb.TabletDescriptor
	serverID, addr string
	delete         bool // delete the row instead
	create         bool // a new row: write the descriptor too
}

// metaServer returns the address of the server holding METADATA row key.
func (t *term) metaServer(key []byte) (string, error) {
	id := metadata.MetaTabletID
	if bytes.Compare(key, metadata.TableEnd(metadata.TableID)) < 0 {
		id = metadata.RootTabletID
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	ti := t.tablets[id]
	if ti == nil || ti.server == "" || t.servers[ti.server] == nil {
		return "", fmt.Errorf("%w: METADATA tablet %d is not assigned yet", serr.ErrUnavailable, id)
	}
	return t.servers[ti.server].addr, nil
}

func setCell(qual string, value []byte) *datapb.Mutation {
	return &datapb.Mutation{Mutation: &datapb.Mutation_SetCell_{SetCell: &datapb.Mutation_SetCell{
		Family: metadata.Family, Qualifier: []byte(qual), Timestamp: metadata.CellTimestamp, Value: value}}}
}

// writeMeta writes METADATA rows with sync durability, grouped by the
// METADATA tablet that holds them, under the term's sequencer.
func (t *term) writeMeta(ctx context.Context, rows []metaRow) error {
	groups := map[string]*tabletpb.MutateRowsRequest{}
	for _, r := range rows {
		key := metadata.RowKey(r.desc.TableId, r.desc.EndRow)
		addr, err := t.metaServer(key)
		if err != nil {
			return err
		}
		var muts []*datapb.Mutation
		if r.delete {
			muts = []*datapb.Mutation{{Mutation: &datapb.Mutation_DeleteFromRow_{DeleteFromRow: &datapb.Mutation_DeleteFromRow{}}}}
		} else {
			// The descriptor is written when the row is created; later the
			// master only records locations: a split's daughters' rows are
			// written by the splitting server, and the master's copy of a
			// descriptor may lag behind them.
			if r.create {
				muts = append(muts, setCell(metadata.QualTablet, metadata.EncodeTablet(stripServer(r.desc))))
			}
			var loc []byte
			if r.serverID != "" {
				loc = metadata.EncodeLocation(r.serverID, r.addr)
			}
			muts = append(muts, setCell(metadata.QualLocation, loc))
		}
		g := groups[addr]
		if g == nil {
			g = &tabletpb.MutateRowsRequest{Master: seqProto(t.seq), TableId: metadata.TableID}
			groups[addr] = g
		}
		g.Entries = append(g.Entries, &tabletpb.MutateRowsRequest_Entry{RowKey: key, Mutations: muts})
	}
	for addr, req := range groups {
		cl, err := t.m.conns.server(addr)
		if err != nil {
			return err
		}
		rctx, cancel := context.WithTimeout(ctx, t.m.opts.RPCTimeout)
		resp, err := cl.MutateRows(rctx, req)
		cancel()
		if err != nil {
			werr := t.serverErr(err) // a stale sequencer fails the whole request
			if !errors.Is(werr, serr.ErrStaleSequencer) {
				werr = metaWriteErr(status.Code(err), err.Error())
			}
			return fmt.Errorf("write METADATA on %s: %w", addr, werr)
		}
		for i, r := range resp.Results {
			if r.Code != 0 {
				return fmt.Errorf("write METADATA row %d on %s: %w", i, addr, metaWriteErr(codes.Code(r.Code), fmt.Sprintf("%s (%s)", r.Message, r.Reason)))
			}
		}
	}
	return nil
}

// metaWriteErr is a failed METADATA write: ErrUnavailable, which callers
// retry, when its tablet is not served or reachable right now (a server
// starting or a tablet moving), else an internal error.
func metaWriteErr(code codes.Code, msg string) error {
	if code == codes.Unavailable || code == codes.DeadlineExceeded {
		return fmt.Errorf("%w: %s", serr.ErrUnavailable, msg)
	}
	return errors.New(msg)
}

// readUserRows streams every user tablet's METADATA row (from the META
// tablet) to fn, in key order, with its info cells by qualifier. The key
// and cells are fn's to keep.
func (t *term) readUserRows(ctx context.Context, fn func(key []byte, table uint64, end []byte, cells map[string][]byte)) error {
	addr, err := t.metaServer(metadata.TableEnd(metadata.TableID))
	if err != nil {
		return err
	}
	cl, err := t.m.conns.server(addr)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, t.m.opts.RPCTimeout)
	defer cancel()
	stream, err := cl.ReadRows(rctx, &tabletpb.ReadRowsRequest{TableId: metadata.TableID, Rows: &datapb.RowSet{
		RowRanges: []*datapb.RowRange{{StartKey: metadata.TableEnd(metadata.TableID)}}}})
	if err != nil {
		return err
	}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read METADATA: %w", err)
		}
		for _, row := range resp.Rows {
			table, end, err := metadata.ParseRowKey(row.Key)
			if err != nil {
				t.m.log.Error("corrupt METADATA row key; skipped", "key", fmt.Sprintf("%x", row.Key), "err", err)
				continue
			}
			cells := map[string][]byte{}
			for _, c := range row.Cells {
				if c.Family == metadata.Family {
					cells[string(c.Qualifier)] = c.Value
				}
			}
			fn(row.Key, table, end, cells)
		}
	}
}

// scanMetaIfDirty reads every user tablet's row from the META tablet and
// merges them into the state: new tablets arrive unassigned, and are not
// assigned until a complete status round asked after the scan (a server
// that serves one reports it there), known ones take the row's range.
func (t *term) scanMetaIfDirty(ctx context.Context) error {
	t.mu.Lock()
	dirty := t.metaDirty
	t.mu.Unlock()
	if !dirty {
		return nil
	}
	var descs []*datapb.TabletDescriptor
	var merges []*mergeIntent
	var splits []*splitIntent
	held := map[uint64]bool{}
	inMerge := map[uint64]bool{}
	var prevTable uint64
	var prevEnd []byte
	err := t.readUserRows(ctx, func(key []byte, table uint64, end []byte, cells map[string][]byte) {
		decode := func(qual string) *datapb.TabletDescriptor {
			b, ok := cells[qual]
			if !ok {
				return nil
			}
			d, err := metadata.DecodeTablet(b)
			if err != nil {
				t.m.log.Error("corrupt METADATA cell; skipped", "key", fmt.Sprintf("%x", key), "qualifier", qual, "err", err)
				return nil
			}
			return d
		}
		d := decode(metadata.QualTablet)
		if d == nil {
			return
		}
		d.TableId, d.EndRow, d.StartRow = table, end, nil
		if table == prevTable && prevEnd != nil {
			d.StartRow = prevEnd
		}
		prevTable, prevEnd = table, end
		if merged, left := decode(metadata.QualMerge), decode(metadata.QualMergeLeft); merged != nil && left != nil {
			// Neither tablet of a merge in doubt is taken into the
			// state until resolveMerge decides it.
			merges = append(merges, &mergeIntent{rightKey: key, right: d, left: left, merged: merged})
			held[d.TabletId], held[left.TabletId] = true, true
			inMerge[d.TabletId], inMerge[left.TabletId] = true, true
			return
		}
		if left := decode(metadata.QualSplitting); left != nil {
			splits = append(splits, &splitIntent{parentKey: key, parent: cloneDesc(d), left: left})
			// The left daughter too: its row may be committed while the
			// splitting server is still opening it, and assigning it then
			// would serve it twice. Its server adopts it from its status;
			// resolveSplit settles it if that server is gone.
			held[d.TabletId], held[left.TabletId] = true, true
		}
		descs = append(descs, d)
	})
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.mergeScanLocked(descs, held, inMerge)
	t.mergeIntents, t.splitIntents = merges, splits
	t.metaDirty = false
	return nil
}

// mergeScanLocked merges a METADATA scan's tablets (and which of them
// intents hold) into the state.
func (t *term) mergeScanLocked(descs []*datapb.TabletDescriptor, held, inMerge map[uint64]bool) {
	t.scans++
	for _, d := range descs {
		if inMerge[d.TabletId] || t.gone[d.TabletId] {
			continue
		}
		if ti := t.tablets[d.TabletId]; ti != nil {
			if !ti.busy {
				ti.desc = stripServer(d)
			}
			continue
		}
		// Not assigned until a status round asked after this scan (see
		// tabletInfo.foundInScan): its server may not have been asked yet.
		t.tablets[d.TabletId] = &tabletInfo{desc: stripServer(d), foundInScan: t.scans}
	}
	for id, ti := range t.tablets {
		ti.held = held[id]
	}
}
