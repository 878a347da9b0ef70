package tabletserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"cellar/dfs"
	"cellar/internal/serr"
	"cellar/lock"
	datapb "cellar/proto/cellar/data/v1"
	tabletpb "cellar/proto/cellar/tablet/v1"
	"cellar/tablet"
)

// checkSequencer verifies that a master request carries the active
// master's sequencer (the exclusive lock on /cellar/master).
func (s *Server) checkSequencer(ctx context.Context, seq *tabletpb.Sequencer) error {
	if seq == nil {
		return fmt.Errorf("%w: missing master sequencer", serr.ErrStaleSequencer)
	}
	if seq.GetPath() != masterNode || lock.Mode(seq.GetMode()) != lock.ModeExclusive {
		return fmt.Errorf("%w: sequencer for %s mode %d is not the master's", serr.ErrStaleSequencer, seq.GetPath(), seq.GetMode())
	}
	err := s.opts.Lock.CheckSequencer(ctx, lock.Sequencer{Path: seq.GetPath(), Mode: lock.Mode(seq.GetMode()), Generation: seq.GetGeneration()})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, lock.ErrStaleSequencer):
		return fmt.Errorf("%w: %w", serr.ErrStaleSequencer, err)
	case ctx.Err() != nil:
		return ctx.Err()
	default:
		return fmt.Errorf("%w: check sequencer: %w", serr.ErrUnavailable, err)
	}
}

// validateDescriptor checks a descriptor from the master.
func validateDescriptor(d *datapb.TabletDescriptor, schema *datapb.TableSchema) error {
	switch {
	case d == nil:
		return fmt.Errorf("%w: missing tablet descriptor", serr.ErrInvalidArgument)
	case schema == nil:
		return fmt.Errorf("%w: missing schema", serr.ErrInvalidArgument)
	case d.GetTabletId() == 0:
		return fmt.Errorf("%w: tablet id 0", serr.ErrInvalidArgument)
	case schema.GetTableId() != d.GetTableId():
		return fmt.Errorf("%w: schema of table %d for a tablet of table %d", serr.ErrInvalidArgument, schema.GetTableId(), d.GetTableId())
	case len(d.GetEndRow()) > 0 && bytes.Compare(d.GetStartRow(), d.GetEndRow()) >= 0:
		return fmt.Errorf("%w: empty row range [%q, %q)", serr.ErrInvalidArgument, d.GetStartRow(), d.GetEndRow())
	}
	if err := dfs.CheckPath(d.GetDir(), false); err != nil {
		return fmt.Errorf("%w: tablet dir: %v", serr.ErrInvalidArgument, err)
	}
	return nil
}

// LoadTablet opens a tablet (replaying req.recovered_edits) and serves it
// once Open returns. Loading a tablet already served is a no-op, unless the
// schema's families changed: then the tablet is flushed, closed and
// reopened with the new families.
func (s *Server) LoadTablet(ctx context.Context, req *tabletpb.LoadTabletRequest) (*tabletpb.LoadTabletResponse, error) {
	if err := s.loadTablet(ctx, req); err != nil {
		return nil, serr.Wire.ToStatus(err)
	}
	return &tabletpb.LoadTabletResponse{}, nil
}

func (s *Server) loadTablet(ctx context.Context, req *tabletpb.LoadTabletRequest) error {
	if err := s.checkSequencer(ctx, req.GetMaster()); err != nil {
		return err
	}
	desc, schema := req.GetTablet(), req.GetSchema()
	if err := validateDescriptor(desc, schema); err != nil {
		return err
	}
	// A server restarted on a dead one's address must not take tablets
	// meant for the dead incarnation: the master has not recovered its log.
	if id := desc.GetServerId(); id != "" && id != s.opts.ID {
		return fmt.Errorf("%w: tablet %d was assigned to %s, this is %s", serr.ErrWrongServer, desc.GetTabletId(), id, s.opts.ID)
	}
	for _, d := range req.GetRecoveredEdits() {
		if err := dfs.CheckPath(d, false); err != nil {
			return fmt.Errorf("%w: recovered edits dir: %v", serr.ErrInvalidArgument, err)
		}
	}
	fams, err := FamiliesFromSchema(schema)
	if err != nil {
		return err
	}
	desc = cleanDescriptor(desc)
	id := desc.GetTabletId()
	s.mu.Lock()
	// Not before Start has finished (it opens the commit log the tablet
	// writes to; the master may ask as soon as the server registers), and
	// not once stopped or fenced. The master asks again next pass.
	if s.run.Load() != runServing || s.fenced.Load() {
		s.mu.Unlock()
		return s.errNotServing()
	}
	if s.mu.loading[id] {
		s.mu.Unlock()
		return fmt.Errorf("%w: tablet %d is being loaded", serr.ErrUnavailable, id)
	}
	if old := s.mu.byID[id]; old != nil {
		s.mu.Unlock()
		return s.reload(ctx, old, desc, schema, fams)
	}
	for _, e := range s.mu.byTable[desc.GetTableId()] {
		if overlaps(e.desc, desc) {
			s.mu.Unlock()
			return fmt.Errorf("%w: tablet %d overlaps tablet %d served here", serr.ErrInvalidArgument, id, e.desc.GetTabletId())
		}
	}
	s.mu.loading[id] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.mu.loading, id)
		s.mu.Unlock()
	}()
	t, err := s.openTablet(ctx, desc, fams, req.GetRecoveredEdits())
	if err != nil {
		return fmt.Errorf("load tablet %d: %w", id, err)
	}
	if !s.install(nil, newEntry(desc, schema, fams, t, s.opts.Clock.Now())) {
		return s.errNotServing()
	}
	s.logger.Info("tablet loaded", "table", desc.GetTableId(), "tablet", id, "dir", desc.GetDir(), "recovered", len(req.GetRecoveredEdits()))
	return nil
}

// reload handles LoadTablet of a tablet already served.
func (s *Server) reload(ctx context.Context, old *entry, desc *datapb.TabletDescriptor, schema *datapb.TableSchema, fams []tablet.FamilyOptions) error {
	old.adminMu.Lock()
	defer old.adminMu.Unlock()
	s.mu.RLock()
	cur := s.mu.byID[desc.GetTabletId()]
	s.mu.RUnlock()
	if cur != old {
		return fmt.Errorf("%w: tablet %d changed while loading; retry", serr.ErrUnavailable, desc.GetTabletId())
	}
	if !bytes.Equal(old.desc.GetStartRow(), desc.GetStartRow()) || !bytes.Equal(old.desc.GetEndRow(), desc.GetEndRow()) || old.desc.GetDir() != desc.GetDir() {
		return fmt.Errorf("%w: tablet %d is served here as [%q, %q) in %s", serr.ErrInvalidArgument,
			desc.GetTabletId(), old.desc.GetStartRow(), old.desc.GetEndRow(), old.desc.GetDir())
	}
	if sameFamilies(old.fams, fams) {
		return nil
	}
	// A schema change: flush before pausing, so the switch is short.
	if err := old.t.Flush(ctx); err != nil {
		return tabletErr(err)
	}
	old.setState(statePaused)
	if err := old.waitIdle(ctx); err != nil {
		old.setState(stateServing)
		return err
	}
	if err := old.t.Flush(ctx); err != nil {
		old.setState(stateServing)
		return tabletErr(err)
	}
	if err := old.t.Close(); err != nil {
		s.logger.Warn("close before schema change", "tablet", desc.GetTabletId(), "err", err)
	}
	t, err := s.openTablet(ctx, desc, fams, nil)
	if err != nil {
		s.remove(old)
		old.setState(stateClosed)
		return fmt.Errorf("reopen tablet %d with the new schema: %w", desc.GetTabletId(), err)
	}
	if !s.install(old, newEntry(desc, schema, fams, t, s.opts.Clock.Now())) {
		return s.errNotServing()
	}
	s.logger.Info("tablet reopened with a new schema", "tablet", desc.GetTabletId(), "families", len(fams))
	return nil
}

func overlaps(a, b *datapb.TabletDescriptor) bool {
	// [as, ae) and [bs, be) overlap iff as < be and bs < ae (empty end = +inf).
	less := func(start, end []byte) bool { return len(end) == 0 || bytes.Compare(start, end) < 0 }
	return less(a.GetStartRow(), b.GetEndRow()) && less(b.GetStartRow(), a.GetEndRow())
}

// cleanDescriptor copies a descriptor without server fields.
func cleanDescriptor(d *datapb.TabletDescriptor) *datapb.TabletDescriptor {
	c := proto.Clone(d).(*datapb.TabletDescriptor)
	c.ServerId, c.ServerAddress = "", ""
	return c
}

// UnloadTablet stops serving a tablet: new requests get NOT_SERVING, the
// ones in flight finish, then the tablet is flushed and closed. An unknown
// tablet is not an error. If the flush fails the tablet is served again and
// the error returned.
func (s *Server) UnloadTablet(ctx context.Context, req *tabletpb.UnloadTabletRequest) (*tabletpb.UnloadTabletResponse, error) {
	if err := s.unloadTablet(ctx, req); err != nil {
		return nil, serr.Wire.ToStatus(err)
	}
	return &tabletpb.UnloadTabletResponse{}, nil
}

func (s *Server) unloadTablet(ctx context.Context, req *tabletpb.UnloadTabletRequest) error {
	if err := s.checkSequencer(ctx, req.GetMaster()); err != nil {
		return err
	}
	id := req.GetTabletId()
	for {
		s.mu.RLock()
		e := s.mu.byID[id]
		s.mu.RUnlock()
		if e == nil {
			return nil
		}
		e.adminMu.Lock()
		s.mu.RLock()
		cur := s.mu.byID[id]
		s.mu.RUnlock()
		if cur != e {
			e.adminMu.Unlock()
			continue
		}
		err := s.unloadLocked(ctx, e)
		e.adminMu.Unlock()
		return err
	}
}

func (s *Server) unloadLocked(ctx context.Context, e *entry) error {
	id := e.desc.GetTabletId()
	// Flush while still serving, so that the final flush has little to do.
	if err := e.t.Flush(ctx); err != nil {
		return tabletErr(err)
	}
	e.setState(stateClosed)
	if err := e.waitIdle(ctx); err != nil {
		e.setState(stateServing)
		return err
	}
	if err := e.t.Flush(ctx); err != nil {
		e.setState(stateServing)
		return tabletErr(err)
	}
	if err := e.t.Close(); err != nil {
		s.logger.Warn("close of unloaded tablet", "tablet", id, "err", err)
	}
	s.remove(e)
	s.logger.Info("tablet unloaded", "table", e.desc.GetTableId(), "tablet", id)
	return nil
}

// entriesFor lists the entries of table (tablet 0 = all of them, else just
// that one).
func (s *Server) entriesFor(table, tabletID uint64) ([]*entry, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if tabletID != 0 {
		e := s.mu.byID[tabletID]
		if e == nil || e.desc.GetTableId() != table {
			return nil, fmt.Errorf("%w: tablet %d of table %d", serr.ErrNotServing, tabletID, table)
		}
		return []*entry{e}, nil
	}
	return append([]*entry(nil), s.mu.byTable[table]...), nil
}

// FlushTablet flushes one tablet or every tablet of a table served here.
func (s *Server) FlushTablet(ctx context.Context, req *tabletpb.FlushTabletRequest) (*tabletpb.FlushTabletResponse, error) {
	if !s.serving() {
		return nil, serr.Wire.ToStatus(s.errNotServing())
	}
	err := s.forEachAdmitted(ctx, req.GetTableId(), req.GetTabletId(), func(e *entry) error { return e.t.Flush(ctx) })
	if err != nil {
		return nil, serr.Wire.ToStatus(tabletErr(err))
	}
	return &tabletpb.FlushTabletResponse{}, nil
}

// forEachAdmitted calls fn for each tablet of table (or just tabletID),
// admitted as a request is: a tablet being switched over (split, schema
// change) is waited for and its successors are handled instead.
func (s *Server) forEachAdmitted(ctx context.Context, table, tabletID uint64, fn func(*entry) error) error {
	timer := s.opts.Clock.NewTimer(pauseWait)
	defer timer.Stop()
	done := map[*entry]bool{}
	for {
		es, err := s.entriesFor(table, tabletID)
		if err != nil {
			return err
		}
		pending := false
		for _, e := range es {
			if done[e] {
				continue
			}
			retry, err := e.admit(ctx, timer.C())
			if err != nil {
				return err
			}
			if retry {
				if e.state() == stateClosed {
					done[e] = true // unloaded or replaced: successors are listed next round
				}
				pending = true
				continue
			}
			err = fn(e)
			e.done()
			if err != nil {
				return err
			}
			done[e] = true
		}
		if !pending {
			return nil
		}
		if !s.serving() {
			return s.errNotServing()
		}
	}
}

// CompactTablet compacts one tablet or every tablet of a table served
// here, at most MaxConcurrentCompactions at a time on the server.
func (s *Server) CompactTablet(ctx context.Context, req *tabletpb.CompactTabletRequest) (*tabletpb.CompactTabletResponse, error) {
	if !s.serving() {
		return nil, serr.Wire.ToStatus(s.errNotServing())
	}
	es, err := s.entriesFor(req.GetTableId(), req.GetTabletId())
	if err != nil {
		return nil, serr.Wire.ToStatus(err)
	}
	for _, e := range es {
		if err := s.compact(ctx, e, req.GetMajor()); err != nil {
			return nil, serr.Wire.ToStatus(tabletErr(err))
		}
	}
	return &tabletpb.CompactTabletResponse{}, nil
}

func (s *Server) compact(ctx context.Context, e *entry, major bool) error {
	select {
	case s.compactSem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.compactSem }()
	if err := e.t.Compact(ctx, major); err != nil {
		return err
	}
	if major {
		e.inherited.Store(false)
	}
	return nil
}

// ServerStatus describes the server and every tablet it serves.
func (s *Server) ServerStatus(ctx context.Context, req *tabletpb.ServerStatusRequest) (*tabletpb.ServerStatusResponse, error) {
	resp := &tabletpb.ServerStatusResponse{ServerId: s.opts.ID, Address: s.opts.Addr, Serving: s.serving(),
		MemtableBudget: s.opts.MemtableBudget, MemtableBytes: s.memBytes.Load(),
		WritesHeldBack: s.memStalls.Load(), BudgetFlushes: s.memFlushes.Load()}
	for _, e := range s.snapshot() {
		st := e.t.Stats()
		ts := &tabletpb.ServerStatusResponse_TabletStatus{Tablet: proto.Clone(e.desc).(*datapb.TabletDescriptor), MemtableBytes: st.MemtableBytes}
		ts.Tablet.ServerId, ts.Tablet.ServerAddress = s.opts.ID, s.opts.Addr
		for _, f := range st.Families {
			ts.SstableBytes += f.Bytes
			ts.SstableFiles += int64(f.Files)
		}
		ts.ReadsPerSecond, ts.WritesPerSecond = e.rates()
		resp.Tablets = append(resp.Tablets, ts)
	}
	return resp, nil
}
