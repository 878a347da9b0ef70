package master

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

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

// metaServer returns the address of the server holding METADATA row key:
// the root tablet's for the rows of METADATA's own tablets, else the
// server of the META tablet whose range holds key.
func (t *term) metaServer(key []byte) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ti := t.metaTabletForLocked(key)
	if ti == nil {
		return "", fmt.Errorf("%w: no METADATA tablet known for row %x yet", serr.ErrUnavailable, key)
	}
	s := t.servers[ti.server]
	if s == nil {
		return "", fmt.Errorf("%w: METADATA tablet %d is not assigned yet", serr.ErrUnavailable, ti.desc.TabletId)
	}
	return s.addr, nil
}

// metaTabletForLocked returns the METADATA tablet holding row key, or nil.
// While a META split is being learned, the parent's old range and its
// left daughter's may both hold key: the served one wins, then the
// narrower (both are on the splitting server anyway, and a server routes
// a row to whichever of its tablets holds it).
func (t *term) metaTabletForLocked(key []byte) *tabletInfo {
	if metadata.InRoot(key) {
		return t.tablets[metadata.RootTabletID]
	}
	var best *tabletInfo
	for _, ti := range t.tablets {
		d := ti.desc
		if !metadata.IsMeta(d) || len(d.StartRow) == 0 || !metadata.Contains(d.StartRow, d.EndRow, key) {
			continue
		}
		if best == nil {
			best = ti
			continue
		}
		served, bestServed := t.servers[ti.server] != nil, t.servers[best.server] != nil
		if served != bestServed {
			if served {
				best = ti
			}
			continue
		}
		if narrower(d, best.desc) {
			best = ti
		}
	}
	return best
}

// narrower reports whether a's range is inside b's and smaller, of two
// ranges holding the same row: it starts later, or ends earlier.
func narrower(a, b *datapb.TabletDescriptor) bool {
	if c := bytes.Compare(a.StartRow, b.StartRow); c != 0 {
		return c > 0
	}
	switch {
	case len(a.EndRow) == 0:
		return false
	case len(b.EndRow) == 0:
		return true
	}
	return bytes.Compare(a.EndRow, b.EndRow) < 0
}

// metaTabletsLocked returns METADATA's META tablets in row order.
func (t *term) metaTabletsLocked() []*tabletInfo {
	var out []*tabletInfo
	for _, ti := range t.tablets {
		if metadata.IsMeta(ti.desc) {
			out = append(out, ti)
		}
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].desc.StartRow, out[j].desc.StartRow) < 0 })
	return out
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

// metaRowFunc receives one METADATA row: its key, parsed, and its info
// cells by qualifier. The key and cells are its to keep.
type metaRowFunc func(key []byte, table uint64, end []byte, cells map[string][]byte)

// readUserRows streams every user tablet's METADATA row to fn, in key
// order, walking the META tablets: each read starts where the previous
// one's tablet ended (the serving tablet's own end row, not the master's
// idea of it, so a META split the master has not learned yet neither
// hides nor repeats rows).
func (t *term) readUserRows(ctx context.Context, fn metaRowFunc) error {
	cur := metadata.TableEnd(metadata.TableID)
	for range maxMetaHops {
		next, err := t.readMetaRange(ctx, cur, nil, fn)
		if err != nil {
			return err
		}
		if next == nil {
			return nil
		}
		if bytes.Compare(next, cur) <= 0 {
			return fmt.Errorf("read METADATA: the tablet holding %x ends at %x", cur, next)
		}
		cur = next
	}
	return fmt.Errorf("%w: read METADATA: more than %d META tablets, or their ranges keep changing", serr.ErrUnavailable, maxMetaHops)
}

// maxMetaHops bounds the META tablets one METADATA scan walks.
const maxMetaHops = 1 << 16

// readRootRows streams the root tablet's rows (METADATA's own tablets) to
// fn in key order.
func (t *term) readRootRows(ctx context.Context, fn metaRowFunc) error {
	_, err := t.readMetaRange(ctx, nil, metadata.TableEnd(metadata.TableID), fn)
	return err
}

// readMetaRange reads the METADATA rows of [start, end) (end nil:
// unbounded) that the tablet holding start has, and returns where its
// tablet ended if that cut the range short (nil if the range was read to
// its end).
func (t *term) readMetaRange(ctx context.Context, start, end []byte, fn metaRowFunc) (resume []byte, err error) {
	addr, err := t.metaServer(start)
	if err != nil {
		return nil, err
	}
	cl, err := t.m.conns.server(addr)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, t.m.opts.RPCTimeout)
	defer cancel()
	stream, err := cl.ReadRows(rctx, &tabletpb.ReadRowsRequest{TableId: metadata.TableID, Rows: &datapb.RowSet{
		RowRanges: []*datapb.RowRange{{StartKey: start, EndKey: end}}}})
	if err != nil {
		return nil, fmt.Errorf("read METADATA: %w", serr.Wire.FromStatus(err))
	}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return resume, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read METADATA: %w", serr.Wire.FromStatus(err))
		}
		for _, row := range resp.Rows {
			table, rowEnd, err := metadata.ParseRowKey(row.Key)
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
			fn(row.Key, table, rowEnd, cells)
		}
		if resp.TabletEnd && len(resp.ResumeKey) > 0 && (end == nil || bytes.Compare(resp.ResumeKey, end) < 0) {
			resume = resp.ResumeKey
		}
	}
}

// scanMetaIfDirty reads METADATA and merges it into the state: first the
// root tablet's rows (every META tablet, with its split intents), then
// every user tablet's row from the META tablets. New tablets arrive
// unassigned, and are not assigned until a complete status round asked
// after the scan (a server that serves one reports it there); known ones
// take the row's range. When the root is read but a META tablet is not
// (it is unassigned, or held by its split's intent), the root's part is
// merged and its intents are left for resolveIntents, and the error is
// returned: METADATA stays dirty.
func (t *term) scanMetaIfDirty(ctx context.Context) error {
	t.mu.Lock()
	dirty := t.metaDirty
	t.mu.Unlock()
	if !dirty {
		return nil
	}
	// The root: METADATA's own tablets. Their start rows are derived like
	// user tablets' (the first starts where the root ends).
	var metas []*datapb.TabletDescriptor
	var rootSplits []*splitIntent
	rootHeld := map[uint64]bool{}
	locs := map[uint64]string{}
	rootRows := 0
	prevEnd := metadata.TableEnd(metadata.TableID)
	t.mu.Lock()
	asked := t.gen // descriptors the master set after this are newer than the read
	t.mu.Unlock()
	err := t.readRootRows(ctx, func(key []byte, table uint64, end []byte, cells map[string][]byte) {
		rootRows++
		d := t.decodeCell(key, cells, metadata.QualTablet)
		if d == nil {
			return
		}
		if table != metadata.TableID || (end != nil && bytes.Compare(end, prevEnd) <= 0) {
			t.m.log.Error("root tablet row out of place; skipped", "key", fmt.Sprintf("%x", key))
			return
		}
		d.TableId, d.EndRow, d.StartRow = table, end, laterStart(prevEnd, d.StartRow)
		prevEnd = end
		if _, ok := cells[metadata.QualMerge]; ok {
			t.m.log.Error("merge intent on a META tablet's row ignored: METADATA's tablets do not merge", "key", fmt.Sprintf("%x", key))
		}
		if left := t.decodeCell(key, cells, metadata.QualSplitting); left != nil {
			rootSplits = append(rootSplits, &splitIntent{parentKey: key, parent: cloneDesc(d), left: left})
			rootHeld[d.TabletId], rootHeld[left.TabletId] = true, true
		}
		locs[d.TabletId] = string(cells[metadata.QualLocation])
		metas = append(metas, d)
	})
	if err != nil {
		return fmt.Errorf("root tablet: %w", err)
	}
	t.mu.Lock()
	t.mergeScanLocked(metas, rootHeld, nil, metadata.IsMeta, asked)
	t.rootScanned, t.rootRows, t.metaLocs = true, rootRows, locs
	t.mergeIntents, t.splitIntents = nil, rootSplits
	t.mu.Unlock()

	var descs []*datapb.TabletDescriptor
	var merges []*mergeIntent
	var splits []*splitIntent
	held := map[uint64]bool{}
	inMerge := map[uint64]bool{}
	var prevTable uint64
	var prevUserEnd []byte
	t.mu.Lock()
	asked = t.gen
	t.mu.Unlock()
	err = t.readUserRows(ctx, func(key []byte, table uint64, end []byte, cells map[string][]byte) {
		d := t.decodeCell(key, cells, metadata.QualTablet)
		if d == nil {
			return
		}
		stored := d.StartRow
		d.TableId, d.EndRow, d.StartRow = table, end, nil
		if table == prevTable && prevUserEnd != nil {
			d.StartRow = prevUserEnd
		}
		d.StartRow = laterStart(d.StartRow, stored)
		prevTable, prevUserEnd = table, end
		if merged, left := t.decodeCell(key, cells, metadata.QualMerge), t.decodeCell(key, cells, metadata.QualMergeLeft); merged != nil && left != nil {
			// Neither tablet of a merge in doubt is taken into the
			// state until resolveMerge decides it.
			merges = append(merges, &mergeIntent{rightKey: key, right: d, left: left, merged: merged})
			held[d.TabletId], held[left.TabletId] = true, true
			inMerge[d.TabletId], inMerge[left.TabletId] = true, true
			return
		}
		if left := t.decodeCell(key, cells, metadata.QualSplitting); left != nil {
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
	t.mergeScanLocked(descs, held, inMerge, isUser, asked)
	t.mergeIntents, t.splitIntents = merges, append(rootSplits, splits...)
	t.metaDirty = false
	return nil
}

// laterStart is a scanned row's start row: the previous row's end row
// (derived), unless the row's descriptor names a later one (stored). A
// descriptor's start lags behind after a split commits (the parent's row
// still has the parent's start until it is updated: the derived one is
// right) and never runs ahead of a consistent read (a merge rewrites the
// merged row's descriptor before it clears its intent). But a scan of
// several META tablets is not one snapshot: it may miss a split's left
// daughter's row, committed in an earlier META tablet after that tablet
// was read, and then see the parent's row updated to the right
// daughter's range; the derived start would then cover the left
// daughter's rows too.
func laterStart(derived, stored []byte) []byte {
	if bytes.Compare(stored, derived) > 0 {
		return stored
	}
	return derived
}

// decodeCell decodes a descriptor cell of a METADATA row; nil if absent
// or corrupt (logged).
func (t *term) decodeCell(key []byte, cells map[string][]byte, qual string) *datapb.TabletDescriptor {
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

func isUser(d *datapb.TabletDescriptor) bool { return d.GetTableId() != metadata.TableID }

// mergeScanLocked merges a METADATA scan's tablets (and which of them
// intents hold) into the state. The scan read the rows of the tablets
// part selects (METADATA's META tablets from the root, or user tablets):
// it decides whether those are held. It began reading at assignment
// generation asked: a descriptor the master set since (a split reported
// meanwhile, whose rows the read may predate) is newer than the row, and
// kept.
func (t *term) mergeScanLocked(descs []*datapb.TabletDescriptor, held, inMerge map[uint64]bool, part func(*datapb.TabletDescriptor) bool, asked uint64) {
	t.scans++
	for _, d := range descs {
		if inMerge[d.TabletId] || t.gone[d.TabletId] {
			continue
		}
		if ti := t.tablets[d.TabletId]; ti != nil {
			if !ti.busy && ti.since <= asked {
				ti.desc = stripServer(d)
			}
			continue
		}
		// Not assigned until a status round asked after this scan (see
		// tabletInfo.foundInScan): its server may not have been asked yet.
		t.tablets[d.TabletId] = &tabletInfo{desc: stripServer(d), foundInScan: t.scans}
	}
	for id, ti := range t.tablets {
		if part(ti.desc) {
			ti.held = held[id]
		}
	}
}
