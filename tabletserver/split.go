package tabletserver

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	"cellar/dfs"
	"cellar/internal/idalloc"
	"cellar/internal/metadata"
	"cellar/internal/serr"
	"cellar/lock"
	datapb "cellar/proto/cellar/data/v1"
	masterpb "cellar/proto/cellar/master/v1"
	tabletpb "cellar/proto/cellar/tablet/v1"
	"cellar/tablet"
)

// FirstTabletID is the first id NextTabletID hands out (ids below are
// METADATA's and reserved).
const FirstTabletID = idalloc.FirstTablet

// NextTabletID allocates a new tablet id from the lock-service counter the
// master allocates from too (idalloc), so that ids are unique cluster-wide.
func NextTabletID(ctx context.Context, c *lock.Client) (uint64, error) {
	return idalloc.NextTablet(ctx, c)
}

func tabletDir(table, id uint64) string {
	return dfs.Join("tables", strconv.FormatUint(table, 10), "tablets", strconv.FormatUint(id, 10))
}

// SplitTablet splits a tablet at split_row (empty: the tablet's SplitKey),
// commits the split to METADATA and serves both daughters. The left
// daughter gets a new id; the right keeps the parent's id and directory.
func (s *Server) SplitTablet(ctx context.Context, req *tabletpb.SplitTabletRequest) (*tabletpb.SplitTabletResponse, error) {
	if err := s.checkSequencer(ctx, req.GetMaster()); err != nil {
		return nil, serr.Wire.ToStatus(err)
	}
	if !s.serving() {
		return nil, serr.Wire.ToStatus(s.errNotServing())
	}
	s.mu.RLock()
	e := s.mu.byID[req.GetTabletId()]
	s.mu.RUnlock()
	if e == nil {
		return nil, serr.Wire.ToStatus(fmt.Errorf("%w: tablet %d", serr.ErrNotServing, req.GetTabletId()))
	}
	left, right, err := s.split(ctx, e, req.GetSplitRow())
	if err != nil {
		return nil, serr.Wire.ToStatus(err)
	}
	return &tabletpb.SplitTabletResponse{Left: left, Right: right}, nil
}

// split runs the split procedure on e (see the package doc).
func (s *Server) split(ctx context.Context, e *entry, splitRow []byte) (left, right *datapb.TabletDescriptor, err error) {
	if s.opts.Meta == nil {
		return nil, nil, fmt.Errorf("%w: splits are disabled on this server (no METADATA writer)", serr.ErrInvalidArgument)
	}
	parent := e.desc
	if parent.GetTableId() == metadata.TableID && !metadata.IsMeta(parent) {
		// The root tablet never splits: /cellar/root names one tablet.
		// META tablets split like user tablets, committed in the root.
		return nil, nil, fmt.Errorf("%w: the root tablet does not split", serr.ErrInvalidArgument)
	}
	select {
	case s.compactSem <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	defer func() { <-s.compactSem }()
	e.adminMu.Lock()
	defer e.adminMu.Unlock()
	s.mu.RLock()
	cur := s.mu.byID[parent.GetTabletId()]
	s.mu.RUnlock()
	if cur != e || e.state() != stateServing {
		return nil, nil, fmt.Errorf("%w: tablet %d changed (split or unloaded)", serr.ErrNotServing, parent.GetTabletId())
	}
	if len(splitRow) == 0 {
		if splitRow, err = e.t.SplitKey(); err != nil {
			if errors.Is(err, tablet.ErrNoSplitKey) {
				return nil, nil, fmt.Errorf("%w: %w", serr.ErrInvalidArgument, err)
			}
			return nil, nil, tabletErr(err)
		}
	}
	if !e.contains(splitRow) || string(splitRow) == string(parent.GetStartRow()) {
		return nil, nil, fmt.Errorf("%w: split row %q outside (%q, %q)", serr.ErrInvalidArgument, splitRow, parent.GetStartRow(), parent.GetEndRow())
	}
	// Everything slow happens while the parent still serves: the flush,
	// the id, the intent record.
	if err := e.t.Flush(ctx); err != nil {
		return nil, nil, tabletErr(err)
	}
	newID, err := NextTabletID(ctx, s.opts.Lock)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: allocate tablet id: %w", serr.ErrUnavailable, err)
	}
	left = &datapb.TabletDescriptor{
		TableId: parent.GetTableId(), TabletId: newID,
		StartRow: parent.GetStartRow(), EndRow: splitRow,
		Dir: tabletDir(parent.GetTableId(), newID), State: datapb.TabletState_TABLET_STATE_NORMAL,
	}
	right = &datapb.TabletDescriptor{
		TableId: parent.GetTableId(), TabletId: parent.GetTabletId(),
		StartRow: splitRow, EndRow: parent.GetEndRow(),
		Dir: parent.GetDir(), State: datapb.TabletState_TABLET_STATE_NORMAL,
	}
	parentRow := metadata.RowKey(parent.GetTableId(), parent.GetEndRow())
	// The intent (info:split on the parent's row) lets a master that finds
	// a half-done split finish it. Best effort: the commit point is below.
	if err := s.opts.Meta.MutateRow(ctx, parentRow, []*datapb.Mutation{setCell(metadata.QualSplitting, metadata.EncodeTablet(left))}); err != nil {
		return nil, nil, fmt.Errorf("%w: record split intent: %w", serr.ErrUnavailable, err)
	}

	if h := s.opts.Hooks.AfterSplitIntent; h != nil {
		if err := h(ctx, parent.GetTabletId()); err != nil {
			return nil, nil, err
		}
	}
	// The switch: stop admitting requests, let those in flight finish,
	// split (its flush has little left to do).
	start := time.Now()
	e.setState(statePaused)
	if err := e.waitIdle(ctx); err != nil {
		e.setState(stateServing)
		s.clearIntent(parentRow)
		return nil, nil, err
	}
	lopts, ropts, err := e.t.Split(ctx, splitRow, left.GetDir(), parent.GetDir())
	if err != nil && lopts != nil && ropts != nil {
		// Both manifests are written (the split is committed on disk);
		// only closing the parent failed.
		s.logger.Warn("close of split parent", "tablet", parent.GetTabletId(), "err", err)
		err = nil
	}
	if err != nil {
		s.logger.Error("split failed; reopening the parent", "tablet", parent.GetTabletId(), "err", err)
		s.recoverParent(e, err)
		s.clearIntent(parentRow)
		return nil, nil, tabletErr(err)
	}
	if h := s.opts.Hooks.AfterSplitOnDisk; h != nil {
		if err := h(ctx, parent.GetTabletId()); err != nil {
			return nil, nil, err
		}
	}
	// The split is done on disk: finish it even if the caller gives up.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	// Commit it to METADATA: one row write.
	commit := []*datapb.Mutation{
		setCell(metadata.QualTablet, metadata.EncodeTablet(left)),
		setCell(metadata.QualLocation, metadata.EncodeLocation(s.opts.ID, s.opts.Addr)),
	}
	leftRow := metadata.RowKey(parent.GetTableId(), splitRow)
	committed := true
	if err := s.metaRetry(ctx, leftRow, commit); err != nil {
		// The daughters exist on disk and the parent does not: serve
		// them anyway; the intent stays on the parent's row, and the
		// master finishes the split from it (it sees the right
		// daughter's range in this server's status).
		committed = false
		s.logger.Error("split not committed to METADATA; the master will finish it", "tablet", parent.GetTabletId(), "left", newID, "err", err)
	}
	if h := s.opts.Hooks.AfterSplitCommit; h != nil {
		h(ctx, parent.GetTabletId())
	}
	lopts.ID = tablet.ID(newID)
	lopts.Logger = s.logger.With("tablet", newID)
	ropts.ID = tablet.ID(parent.GetTabletId())
	lt, lerr := tablet.Open(ctx, lopts)
	rt, rerr := tablet.Open(ctx, ropts)
	var news []*entry
	now := s.opts.Clock.Now()
	if lerr == nil {
		le := newEntry(left, e.schema, e.fams, lt, now)
		le.inherited.Store(true)
		news = append(news, le)
	}
	if rerr == nil {
		re := newEntry(right, e.schema, e.fams, rt, now)
		re.inherited.Store(true)
		news = append(news, re)
	}
	s.install(e, news...)
	if lerr != nil || rerr != nil {
		err := errors.Join(lerr, rerr)
		s.logger.Error("open split daughters", "tablet", parent.GetTabletId(), "err", err)
		return nil, nil, fmt.Errorf("open daughters of tablet %d: %w", parent.GetTabletId(), err)
	}
	s.logger.Info("tablet split", "table", parent.GetTableId(), "tablet", parent.GetTabletId(), "left", newID,
		"split_row", fmt.Sprintf("%q", splitRow), "switch", time.Since(start))

	// Best effort, not the commit point: the parent's row now describes the
	// right daughter, and the intent is done. Only after the commit: the
	// intent is what tells the master about an uncommitted split.
	rightDesc := []*datapb.Mutation{
		setCell(metadata.QualTablet, metadata.EncodeTablet(right)),
		{Mutation: &datapb.Mutation_DeleteFromColumn_{DeleteFromColumn: &datapb.Mutation_DeleteFromColumn{Family: metadata.Family, Qualifier: []byte(metadata.QualSplitting)}}},
	}
	if committed {
		if err := s.metaRetry(ctx, parentRow, rightDesc); err != nil {
			s.logger.Warn("update parent METADATA row after split", "tablet", parent.GetTabletId(), "err", err)
		}
	}
	if s.opts.Master != nil {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := s.opts.Master.ReportSplit(rctx, &masterpb.ReportSplitRequest{Parent: parent, Left: s.located(left), Right: s.located(right)})
		cancel()
		if err != nil {
			s.logger.Warn("report split to the master", "tablet", parent.GetTabletId(), "err", err)
		}
	}
	// Rewrite the daughters' inherited files in the background so that
	// their sizes are their own (until then they are not split again).
	for _, n := range news {
		s.spawn(func() {
			if err := s.compact(s.bgCtx, n, true); err != nil && s.bgCtx.Err() == nil {
				s.logger.Warn("compaction of split daughter", "tablet", n.desc.GetTabletId(), "err", err)
			}
		})
	}
	return s.located(left), s.located(right), nil
}

// located is a copy of a daughter's descriptor naming this server as its
// location: the master must take the daughters as served here, never as
// unassigned (it would load them on a second server).
func (s *Server) located(d *datapb.TabletDescriptor) *datapb.TabletDescriptor {
	c := proto.Clone(d).(*datapb.TabletDescriptor)
	c.ServerId, c.ServerAddress = s.opts.ID, s.opts.Addr
	return c
}

func setCell(qual string, value []byte) *datapb.Mutation {
	return &datapb.Mutation{Mutation: &datapb.Mutation_SetCell_{SetCell: &datapb.Mutation_SetCell{
		// One fixed timestamp for every METADATA writer: the latest write
		// wins, whatever the writers' clocks (metadata.CellTimestamp).
		Family: metadata.Family, Qualifier: []byte(qual), Timestamp: metadata.CellTimestamp, Value: value,
	}}}
}

// metaRetry writes a METADATA row, retrying a few times.
func (s *Server) metaRetry(ctx context.Context, row []byte, muts []*datapb.Mutation) error {
	var err error
	for attempt := range 5 {
		if err = s.opts.Meta.MutateRow(ctx, row, muts); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(time.Duration(50<<attempt) * time.Millisecond):
		}
	}
	return err
}

func (s *Server) clearIntent(row []byte) {
	ctx, cancel := context.WithTimeout(s.bgCtx, 10*time.Second)
	defer cancel()
	del := []*datapb.Mutation{{Mutation: &datapb.Mutation_DeleteFromColumn_{DeleteFromColumn: &datapb.Mutation_DeleteFromColumn{Family: metadata.Family, Qualifier: []byte(metadata.QualSplitting)}}}}
	if err := s.opts.Meta.MutateRow(ctx, row, del); err != nil {
		s.logger.Warn("clear split intent", "err", err)
	}
}

// recoverParent reopens a parent whose Split failed with splitErr, or
// drops it if it cannot be reopened or was fenced (tablet.ErrFenced:
// another server has it); the master reassigns it.
func (s *Server) recoverParent(e *entry, splitErr error) {
	ctx, cancel := context.WithTimeout(s.bgCtx, time.Minute)
	defer cancel()
	_ = e.t.Close()
	var t *tablet.Tablet
	err := splitErr
	if !errors.Is(splitErr, tablet.ErrFenced) {
		// A fenced parent is not reopened: another server opened the
		// tablet since this one did, and reopening it would fence that
		// server in turn.
		t, err = s.openTablet(ctx, e.desc, e.fams, nil)
	}
	if err != nil {
		s.logger.Error("reopen parent after failed split; dropping it", "tablet", e.desc.GetTabletId(), "err", err)
		s.mu.Lock()
		s.mu.pinned[e.desc.GetTabletId()] = true
		s.removeLocked(e)
		s.mu.Unlock()
		e.setState(stateClosed)
		return
	}
	s.install(e, newEntry(e.desc, e.schema, e.fams, t, s.opts.Clock.Now()))
}

// splitLoop splits tablets that have grown past SplitSize (META tablets:
// MetaSplitSize), every
// checkInterval and after flushes, and updates the rate counters.
func (s *Server) splitLoop() {
	for {
		select {
		case <-s.bgCtx.Done():
			return
		case <-s.opts.Clock.After(s.opts.checkInterval):
			now := s.opts.Clock.Now()
			for _, e := range s.snapshot() {
				e.tick(now)
			}
		case <-s.splitPoke:
		}
		s.checkSplits()
	}
}

func (s *Server) checkSplits() {
	if s.opts.Meta == nil || !s.serving() {
		return
	}
	for _, e := range s.snapshot() {
		if s.bgCtx.Err() != nil {
			return
		}
		limit := s.opts.SplitSize
		if e.desc.GetTableId() == metadata.TableID {
			if !metadata.IsMeta(e.desc) {
				continue // the root tablet never splits
			}
			limit = s.opts.MetaSplitSize
		}
		if e.inherited.Load() || e.state() != stateServing || e.size() <= limit {
			continue
		}
		if _, _, err := s.split(s.bgCtx, e, nil); err != nil && s.bgCtx.Err() == nil {
			s.logger.Warn("automatic split", "tablet", e.desc.GetTabletId(), "err", err)
		}
	}
}
