package tabletserver

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"google.golang.org/grpc/status"

	"cellar/internal/filter"
	"cellar/internal/keys"
	"cellar/internal/rpcerr"
	"cellar/internal/serr"
	datapb "cellar/proto/cellar/data/v1"
	tabletpb "cellar/proto/cellar/tablet/v1"
	"cellar/tablet"
)

// readBatchBytes is about how many bytes of rows one ReadRows message
// carries; readBatchRows bounds the rows examined between two messages
// (so a scan that filters everything out still reports progress).
const (
	readBatchBytes = 1 << 20
	readBatchRows  = 1000
)

// apply applies muts to row on e, checking that the server still serves
// right before the append. The caller holds the row lock.
func (s *Server) apply(ctx context.Context, e *entry, row []byte, muts []tablet.Mutation, wo *tablet.WriteOptions) error {
	if !s.serving() {
		return s.errNotServing()
	}
	e.writes.Add(1)
	err := e.t.Apply(ctx, row, muts, wo)
	s.checkLog(err)
	return tabletErr(err)
}

// checkWriter checks the master sequencer a write carries (the active
// master's METADATA writes) before anything is applied, once per request;
// a write without one (clients, a server's own split commit) is not
// checked.
func (s *Server) checkWriter(ctx context.Context, seq *tabletpb.Sequencer) error {
	if seq == nil {
		return nil
	}
	return s.checkSequencer(ctx, seq)
}

// MutateRow applies mutations to one row atomically.
func (s *Server) MutateRow(ctx context.Context, req *tabletpb.MutateRowRequest) (*tabletpb.MutateRowResponse, error) {
	if err := s.mutateRow(ctx, req); err != nil {
		return nil, serr.Wire.ToStatus(err)
	}
	return &tabletpb.MutateRowResponse{}, nil
}

func (s *Server) mutateRow(ctx context.Context, req *tabletpb.MutateRowRequest) error {
	if err := s.checkWriter(ctx, req.GetMaster()); err != nil {
		return err
	}
	muts, err := mutations(req.GetMutations())
	if err != nil {
		return err
	}
	wo, err := writeOptions(req.GetDurability())
	if err != nil {
		return err
	}
	if err := s.admitWrite(ctx, req.GetTableId()); err != nil {
		return err
	}
	e, err := s.acquire(ctx, req.GetTableId(), req.GetRowKey())
	if err != nil {
		return err
	}
	defer e.done()
	defer s.sharedLockRow(req.GetTableId(), req.GetRowKey())()
	return s.apply(ctx, e, req.GetRowKey(), muts, wo)
}

// MutateRows applies each entry's mutations to its row atomically (the
// batch is not atomic) and reports one result per entry; an entry whose row
// is not served here gets NOT_SERVING and was not applied. A stale master
// sequencer fails the whole request, nothing applied.
func (s *Server) MutateRows(ctx context.Context, req *tabletpb.MutateRowsRequest) (*tabletpb.MutateRowsResponse, error) {
	if err := s.checkWriter(ctx, req.GetMaster()); err != nil {
		return nil, serr.Wire.ToStatus(err)
	}
	wo, err := writeOptions(req.GetDurability())
	if err != nil {
		return nil, serr.Wire.ToStatus(err)
	}
	if err := s.admitWrite(ctx, req.GetTableId()); err != nil {
		return nil, serr.Wire.ToStatus(err)
	}
	n := len(req.GetEntries())
	errs := make([]error, n)
	type group struct {
		e    *entry
		idx  []int
		rows []tablet.RowMutation
	}
	var order []*group
	for i, ent := range req.GetEntries() {
		muts, err := mutations(ent.GetMutations())
		if err != nil {
			errs[i] = err
			continue
		}
		// A row of a tablet already admitted joins its group: acquiring
		// again could wait on a pause that waits for this very request.
		var g *group
		for _, x := range order {
			if x.e.contains(ent.GetRowKey()) {
				g = x
				break
			}
		}
		if g == nil {
			e, err := s.acquire(ctx, req.GetTableId(), ent.GetRowKey())
			if err != nil {
				errs[i] = err
				continue
			}
			g = &group{e: e}
			order = append(order, g)
		}
		g.idx = append(g.idx, i)
		g.rows = append(g.rows, tablet.RowMutation{Row: ent.GetRowKey(), Mutations: muts})
	}
	for _, g := range order {
		s.applyGroup(ctx, req.GetTableId(), g.e, g.rows, g.idx, errs, wo)
		g.e.done()
	}
	resp := &tabletpb.MutateRowsResponse{Results: make([]*tabletpb.MutateRowsResponse_Result, n)}
	for i, err := range errs {
		r := &tabletpb.MutateRowsResponse_Result{}
		if err != nil {
			st := status.Convert(serr.Wire.ToStatus(err))
			r.Code, r.Message, r.Reason = int32(st.Code()), st.Message(), rpcerr.Reason(st.Err())
		}
		resp.Results[i] = r
	}
	return resp, nil
}

// applyGroup applies the rows of one tablet with one ApplyBatch, holding
// their row locks (taken in stripe order, so batches cannot deadlock). If
// the batch is refused by validation (nothing applied), rows are applied one
// by one so that only the bad ones fail.
func (s *Server) applyGroup(ctx context.Context, table uint64, e *entry, rows []tablet.RowMutation, idx []int, errs []error, wo *tablet.WriteOptions) {
	stripes := make([]int, 0, len(rows))
	seen := map[int]bool{}
	for _, r := range rows {
		if st := stripe(table, r.Row); !seen[st] {
			seen[st] = true
			stripes = append(stripes, st)
		}
	}
	sort.Ints(stripes)
	for _, st := range stripes {
		s.rowLocks[st].RLock()
	}
	defer func() {
		for _, st := range stripes {
			s.rowLocks[st].RUnlock()
		}
	}()
	if !s.serving() {
		for _, i := range idx {
			errs[i] = s.errNotServing()
		}
		return
	}
	e.writes.Add(int64(len(rows)))
	err := e.t.ApplyBatch(ctx, rows, wo)
	s.checkLog(err)
	if err == nil {
		return
	}
	if !isValidation(err) {
		for _, i := range idx {
			errs[i] = tabletErr(err)
		}
		return
	}
	for j, r := range rows {
		errs[idx[j]] = s.apply(ctx, e, r.Row, r.Mutations, wo)
	}
}

// isValidation reports a tablet error that means nothing was applied
// because the input was refused.
func isValidation(err error) bool {
	return errors.Is(err, keys.ErrLimit) || errors.Is(err, keys.ErrInvalid) || errors.Is(err, tablet.ErrUnknownFamily) || errors.Is(err, tablet.ErrRowOutOfRange)
}

// segment is one piece of a ReadRows request: a single row (point) or the
// rows [start, end) (end nil: unbounded).
type segment struct {
	start, end []byte
	point      bool
}

// segments turns a RowSet into sorted, disjoint segments.
func segments(rs *datapb.RowSet) ([]segment, error) {
	var segs []segment
	for _, k := range rs.GetRowKeys() {
		segs = append(segs, segment{start: k, end: append(append([]byte{}, k...), 0), point: true})
	}
	for _, r := range rs.GetRowRanges() {
		if r == nil {
			continue
		}
		sg := segment{start: r.GetStartKey(), end: nilIfEmpty(r.GetEndKey())}
		if sg.end != nil && bytes.Compare(sg.start, sg.end) >= 0 {
			continue // empty range
		}
		segs = append(segs, sg)
	}
	if len(segs) == 0 && len(rs.GetRowKeys())+len(rs.GetRowRanges()) == 0 {
		return nil, fmt.Errorf("%w: empty row set (send explicit ranges)", serr.ErrInvalidArgument)
	}
	sort.Slice(segs, func(i, j int) bool { return bytes.Compare(segs[i].start, segs[j].start) < 0 })
	var out []segment
	for _, sg := range segs {
		if n := len(out); n > 0 {
			last := &out[n-1]
			if last.end == nil || bytes.Compare(sg.start, last.end) < 0 {
				if last.end != nil && (sg.end == nil || bytes.Compare(sg.end, last.end) > 0) {
					last.end = sg.end
				}
				last.point = last.point && sg.point && bytes.Equal(last.start, sg.start)
				continue
			}
		}
		out = append(out, sg)
	}
	return out, nil
}

// ReadRows streams the rows of the request's RowSet that pass the filter,
// in row order. Every key and range must start within one tablet served
// here (the one holding the smallest requested row); parts past that
// tablet's end are not read, and the last message then says tablet_end
// with resume_key = the tablet's end row. Rows are batched about 1 MiB per
// message; last_scanned_row_key is the last row examined.
//
// A ReadRows scan reads one snapshot of the tablet per segment and does
// not hold the tablet in flight: a split or unload during a long scan does
// not wait for it (the scan finishes on its snapshot, or fails with
// NOT_SERVING and the client resumes after last_scanned_row_key).
func (s *Server) ReadRows(req *tabletpb.ReadRowsRequest, stream tabletpb.TabletServer_ReadRowsServer) error {
	return serr.Wire.ToStatus(s.readRows(req, stream))
}

func (s *Server) readRows(req *tabletpb.ReadRowsRequest, stream tabletpb.TabletServer_ReadRowsServer) error {
	ctx := stream.Context()
	if req.GetRowsLimit() < 0 {
		return fmt.Errorf("%w: negative rows_limit", serr.ErrInvalidArgument)
	}
	f, err := filter.Compile(req.GetFilter())
	if err != nil {
		return err
	}
	segs, err := segments(req.GetRows())
	if err != nil {
		return err
	}
	if len(segs) == 0 {
		return nil // only empty ranges
	}
	e, err := s.acquire(ctx, req.GetTableId(), segs[0].start)
	if err != nil {
		return err
	}
	t := e.t
	end := nilIfEmpty(e.desc.GetEndRow())
	e.done()

	limit := req.GetRowsLimit()
	var (
		resp      = &tabletpb.ReadRowsResponse{}
		respBytes int
		examined  int
		sent      int64
		clipped   bool
		sendErr   error
	)
	flush := func() error {
		if len(resp.Rows) == 0 && resp.LastScannedRowKey == nil {
			return nil
		}
		err := stream.Send(resp)
		resp, respBytes, examined = &tabletpb.ReadRowsResponse{}, 0, 0
		return err
	}
	visit := func(r *tablet.Row) bool {
		e.reads.Add(1)
		resp.LastScannedRowKey = r.Key
		examined++
		cells := f.Apply(r.Key, filterCells(r.Cells))
		if len(cells) > 0 {
			wr := wireRow(r.Key, cells)
			resp.Rows = append(resp.Rows, wr)
			respBytes += rowBytes(wr)
			sent++
		}
		if respBytes >= readBatchBytes || examined >= readBatchRows {
			if sendErr = flush(); sendErr != nil {
				return false
			}
		}
		return limit == 0 || sent < limit
	}
	for _, sg := range segs {
		if limit > 0 && sent >= limit {
			break
		}
		if end != nil && bytes.Compare(sg.start, end) >= 0 {
			clipped = true
			break
		}
		if end != nil && (sg.end == nil || bytes.Compare(sg.end, end) > 0) {
			clipped = true
		}
		if !s.serving() {
			return s.errNotServing()
		}
		if sg.point {
			row, err := t.ReadRow(ctx, sg.start, nil)
			if err != nil {
				return tabletErr(err)
			}
			if row != nil && !visit(row) && sendErr != nil {
				return sendErr
			}
			continue
		}
		if err := t.Scan(ctx, &tablet.ScanOptions{Start: sg.start, End: sg.end, NoCacheFill: req.GetNoBlockCache()}, visit); err != nil {
			return tabletErr(err)
		}
		if sendErr != nil {
			return sendErr
		}
	}
	if end == nil && (len(segs) > 0 && segs[len(segs)-1].end == nil) {
		clipped = true // the scan reached the end of the table
	}
	if clipped && (limit == 0 || sent < limit) {
		resp.TabletEnd = true
		resp.ResumeKey = end
		if resp.LastScannedRowKey == nil && len(resp.Rows) == 0 {
			return stream.Send(resp)
		}
	}
	return flush()
}

func rowBytes(r *datapb.Row) int {
	n := len(r.Key)
	for _, c := range r.Cells {
		n += len(c.Family) + len(c.Qualifier) + len(c.Value) + 8
	}
	return n
}

// CheckAndMutateRow applies true_mutations if the predicate filter emits
// any cell of the row (unset: the row has any cell), else
// false_mutations, atomically with respect to other writes of the row.
func (s *Server) CheckAndMutateRow(ctx context.Context, req *tabletpb.CheckAndMutateRowRequest) (*tabletpb.CheckAndMutateRowResponse, error) {
	matched, err := s.checkAndMutate(ctx, req)
	if err != nil {
		return nil, serr.Wire.ToStatus(err)
	}
	return &tabletpb.CheckAndMutateRowResponse{PredicateMatched: matched}, nil
}

func (s *Server) checkAndMutate(ctx context.Context, req *tabletpb.CheckAndMutateRowRequest) (bool, error) {
	if err := s.checkWriter(ctx, req.GetMaster()); err != nil {
		return false, err
	}
	f, err := filter.Compile(req.GetPredicateFilter())
	if err != nil {
		return false, err
	}
	var tm, fm []tablet.Mutation
	if len(req.GetTrueMutations()) > 0 {
		if tm, err = mutations(req.GetTrueMutations()); err != nil {
			return false, fmt.Errorf("true mutations: %w", err)
		}
	}
	if len(req.GetFalseMutations()) > 0 {
		if fm, err = mutations(req.GetFalseMutations()); err != nil {
			return false, fmt.Errorf("false mutations: %w", err)
		}
	}
	wo, err := writeOptions(req.GetDurability())
	if err != nil {
		return false, err
	}
	if err := s.admitWrite(ctx, req.GetTableId()); err != nil {
		return false, err
	}
	row := req.GetRowKey()
	e, err := s.acquire(ctx, req.GetTableId(), row)
	if err != nil {
		return false, err
	}
	defer e.done()
	defer s.lockRow(req.GetTableId(), row)()
	e.reads.Add(1)
	r, err := e.t.ReadRow(ctx, row, nil)
	if err != nil {
		return false, tabletErr(err)
	}
	var cells []filter.Cell
	if r != nil {
		cells = filterCells(r.Cells)
	}
	matched := len(cells) > 0
	if f != nil {
		matched = len(f.Apply(row, cells)) > 0
	}
	muts := fm
	if matched {
		muts = tm
	}
	if len(muts) == 0 {
		return matched, nil
	}
	return matched, s.apply(ctx, e, row, muts, wo)
}

// ReadModifyWriteRow applies the rules in order to the latest version of
// each named column (append: concatenate; increment: a 64-bit big-endian
// integer, absent = 0) and writes the results at max(now, the old cell's
// timestamp) µs. It returns the new cells.
func (s *Server) ReadModifyWriteRow(ctx context.Context, req *tabletpb.ReadModifyWriteRowRequest) (*tabletpb.ReadModifyWriteRowResponse, error) {
	row, err := s.readModifyWrite(ctx, req)
	if err != nil {
		return nil, serr.Wire.ToStatus(err)
	}
	return &tabletpb.ReadModifyWriteRowResponse{Row: row}, nil
}

type rmwCell struct {
	family string
	qual   []byte
	ts     int64
	value  []byte
	exists bool
}

func (s *Server) readModifyWrite(ctx context.Context, req *tabletpb.ReadModifyWriteRowRequest) (*datapb.Row, error) {
	rules := req.GetRules()
	if len(rules) == 0 {
		return nil, fmt.Errorf("%w: no rules", serr.ErrInvalidArgument)
	}
	var cols []tablet.Column
	for i, r := range rules {
		if r == nil || r.GetRule() == nil {
			return nil, fmt.Errorf("%w: rule %d has no operation", serr.ErrInvalidArgument, i)
		}
		if r.GetFamily() == "" {
			return nil, fmt.Errorf("%w: rule %d has no family", serr.ErrInvalidArgument, i)
		}
		cols = append(cols, tablet.Column{Family: r.GetFamily(), Qualifier: r.GetQualifier()})
	}
	wo, err := writeOptions(req.GetDurability())
	if err != nil {
		return nil, err
	}
	if err := s.admitWrite(ctx, req.GetTableId()); err != nil {
		return nil, err
	}
	row := req.GetRowKey()
	e, err := s.acquire(ctx, req.GetTableId(), row)
	if err != nil {
		return nil, err
	}
	defer e.done()
	defer s.lockRow(req.GetTableId(), row)()
	e.reads.Add(1)
	old, err := e.t.ReadRow(ctx, row, &tablet.ReadOptions{Columns: cols, MaxVersions: 1})
	if err != nil {
		return nil, tabletErr(err)
	}
	type colKey struct{ f, q string }
	state := map[colKey]*rmwCell{}
	var order []*rmwCell
	if old != nil {
		for _, c := range old.Cells {
			k := colKey{c.Family, string(c.Qualifier)}
			if state[k] == nil { // newest first: keep the latest version
				state[k] = &rmwCell{family: c.Family, qual: c.Qualifier, ts: c.Timestamp, value: c.Value, exists: true}
			}
		}
	}
	now := s.opts.Clock.Now().UnixMicro()
	var touched []*rmwCell
	for i, r := range rules {
		k := colKey{r.GetFamily(), string(r.GetQualifier())}
		c := state[k]
		if c == nil {
			c = &rmwCell{family: r.GetFamily(), qual: r.GetQualifier()}
			state[k] = c
		}
		var nv []byte
		switch x := r.GetRule().(type) {
		case *tabletpb.ReadModifyWriteRule_AppendValue:
			nv = append(append([]byte{}, c.value...), x.AppendValue...)
		case *tabletpb.ReadModifyWriteRule_IncrementAmount:
			var v int64
			if c.exists {
				if len(c.value) != 8 {
					return nil, fmt.Errorf("%w: rule %d: increment of a %d-byte value (want 8-byte big-endian)", serr.ErrInvalidArgument, i, len(c.value))
				}
				v = int64(binary.BigEndian.Uint64(c.value))
			}
			nv = binary.BigEndian.AppendUint64(nil, uint64(v+x.IncrementAmount))
		default:
			return nil, fmt.Errorf("%w: rule %d has no operation", serr.ErrInvalidArgument, i)
		}
		c.value, c.ts, c.exists = nv, max(now, c.ts), true
		if !containsCell(touched, c) {
			touched = append(touched, c)
		}
	}
	order = touched
	muts := make([]tablet.Mutation, 0, len(order))
	out := &datapb.Row{Key: row}
	for _, c := range order {
		muts = append(muts, tablet.SetCell(c.family, c.qual, c.ts, c.value))
		out.Cells = append(out.Cells, &datapb.Cell{Family: c.family, Qualifier: c.qual, Timestamp: c.ts, Value: c.value})
	}
	if err := s.apply(ctx, e, row, muts, wo); err != nil {
		return nil, err
	}
	sort.Slice(out.Cells, func(i, j int) bool {
		a, b := out.Cells[i], out.Cells[j]
		if a.Family != b.Family {
			return a.Family < b.Family
		}
		return bytes.Compare(a.Qualifier, b.Qualifier) < 0
	})
	return out, nil
}

func containsCell(cs []*rmwCell, c *rmwCell) bool {
	for _, x := range cs {
		if x == c {
			return true
		}
	}
	return false
}

// SampleRowKeys returns, for the tablets of the table served here in row
// order, each tablet's end row and the approximate bytes of the table up to
// it (counting only the tablets served here).
func (s *Server) SampleRowKeys(ctx context.Context, req *tabletpb.SampleRowKeysRequest) (*tabletpb.SampleRowKeysResponse, error) {
	if !s.serving() {
		return nil, serr.Wire.ToStatus(s.errNotServing())
	}
	s.mu.RLock()
	es := append([]*entry(nil), s.mu.byTable[req.GetTableId()]...)
	s.mu.RUnlock()
	if len(es) == 0 {
		return nil, serr.Wire.ToStatus(fmt.Errorf("%w: no tablet of table %d", serr.ErrNotServing, req.GetTableId()))
	}
	resp := &tabletpb.SampleRowKeysResponse{}
	var off int64
	for _, e := range es {
		off += e.size()
		resp.Samples = append(resp.Samples, &tabletpb.SampleRowKeysResponse_Sample{RowKey: e.desc.GetEndRow(), OffsetBytes: off})
	}
	return resp, nil
}
