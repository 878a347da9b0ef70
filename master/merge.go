package master

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"cellar/internal/idalloc"
	"cellar/internal/keys"
	"cellar/internal/metadata"
	"cellar/internal/serr"
	datapb "cellar/proto/cellar/data/v1"
	masterpb "cellar/proto/cellar/master/v1"
	tabletpb "cellar/proto/cellar/tablet/v1"
	"cellar/tablet"
)

// Merge steps, as passed to Hooks.MergeStep.
const (
	MergeStepIntent    = "intent"    // both rows carry the intent
	MergeStepUnloaded  = "unloaded"  // both tablets are unloaded (flushed)
	MergeStepManifest  = "manifest"  // the merged tablet's manifest is written
	MergeStepCommitted = "committed" // the left row is deleted: the merge is decided
)

// MergeTablets merges the tablet of a table holding a row with its right
// neighbour, like a split in reverse (docs/serving.md, "Merges"):
//
//  1. intent: the right tablet's METADATA row gets info:merge (the merged
//     tablet: a new id and directory, the union of both ranges) and
//     info:mergeleft (the left tablet); the left row gets info:mergeinto
//     (the merged id);
//  2. both tablets are unloaded, which flushes them;
//  3. tablet.Merge writes the merged tablet's manifest in its new
//     directory: both parents' SSTables, each bounded by its parent's
//     range; nothing is copied and the parents' directories are untouched;
//  4. commit: the left row is deleted if it still carries info:mergeinto
//     with the merged id (one conditional row mutation, the decision
//     point); the right row's range then starts where the left one did;
//  5. the right row gets the merged tablet's descriptor and loses the
//     intent; the merged tablet is assigned like any other.
//
// Undoing before step 4 deletes info:mergeinto under the same condition,
// so exactly one of "commit" and "undo" happens. A master that takes over
// finds the intent in METADATA and finishes the merge if the left row is
// gone, or undoes it otherwise (resolveMerge).
func (m *Master) MergeTablets(ctx context.Context, req *masterpb.MergeTabletsRequest) (*masterpb.MergeTabletsResponse, error) {
	return wire(m.mergeTablets(ctx, req))
}

func (m *Master) mergeTablets(ctx context.Context, req *masterpb.MergeTabletsRequest) (*masterpb.MergeTabletsResponse, error) {
	t, err := m.activeTerm()
	if err != nil {
		return nil, err
	}
	table, _, err := t.lookupTable(req.Name)
	if err != nil {
		return nil, err
	}
	if table == metadata.TableID {
		return nil, fmt.Errorf("%w: METADATA's tablets do not merge", serr.ErrInvalidArgument)
	}
	if len(req.Row) > 0 {
		if err := keys.ValidateRow(req.Row); err != nil {
			return nil, fmt.Errorf("%w: row: %w", serr.ErrInvalidArgument, err)
		}
	}
	ctx, cancel := t.bind(ctx)
	defer cancel()

	t.mu.Lock()
	left := t.tabletForLocked(table, req.Row)
	var right *tabletInfo
	if left != nil && len(left.desc.EndRow) > 0 {
		right = t.tabletForLocked(table, left.desc.EndRow)
	}
	switch {
	case left == nil:
		t.mu.Unlock()
		return nil, fmt.Errorf("%w: no tablet of %q holds %q right now; retry", serr.ErrUnavailable, req.Name, req.Row)
	case len(left.desc.EndRow) == 0:
		t.mu.Unlock()
		return nil, fmt.Errorf("%w: the tablet of %q holding %q is the table's last: it has no right neighbour to merge with",
			serr.ErrInvalidArgument, req.Name, req.Row)
	case right == nil || !bytes.Equal(right.desc.StartRow, left.desc.EndRow):
		t.mu.Unlock()
		return nil, fmt.Errorf("%w: the right neighbour of the tablet holding %q is not known right now; retry", serr.ErrUnavailable, req.Row)
	case left.busy || right.busy || left.held || right.held || t.servers[left.server] == nil || t.servers[right.server] == nil:
		// The ids are read under mu: a tablet that is not busy may get a
		// new descriptor from the reconcile loop (mergeScanLocked,
		// refreshStatuses) as soon as mu is released.
		lid, rid := left.desc.TabletId, right.desc.TabletId
		t.mu.Unlock()
		return nil, fmt.Errorf("%w: tablets %d and %d are not both served and idle right now (moving, splitting or recovering); retry",
			serr.ErrUnavailable, lid, rid)
	}
	left.busy, right.busy = true, true
	ldesc, rdesc := cloneDesc(left.desc), cloneDesc(right.desc)
	lsrv, rsrv := *t.servers[left.server], *t.servers[right.server]
	t.mu.Unlock()
	release := func(hold bool) {
		t.mu.Lock()
		left.busy, right.busy = false, false
		left.held, right.held = hold, hold
		if hold {
			t.metaDirty = true
		}
		t.mu.Unlock()
		t.poke()
	}

	newID, err := idalloc.NextTablet(ctx, t.lc)
	if err != nil {
		release(false)
		return nil, fmt.Errorf("%w: allocate tablet id: %w", serr.ErrUnavailable, err)
	}
	merged := &datapb.TabletDescriptor{TableId: table, TabletId: newID, StartRow: ldesc.StartRow, EndRow: rdesc.EndRow,
		Dir: metadata.TabletDir(table, newID), State: datapb.TabletState_TABLET_STATE_NORMAL}
	mi := &mergeIntent{rightKey: metadata.RowKey(table, rdesc.EndRow), right: rdesc, left: ldesc, merged: merged}
	t.mu.Lock()
	t.merging[newID] = true
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		delete(t.merging, newID)
		t.mu.Unlock()
	}()
	log := m.log.With("table", table, "left", ldesc.TabletId, "right", rdesc.TabletId, "merged", newID)

	// abort undoes the merge before its commit point; if the undo cannot
	// be completed, the tablets stay held until resolveMerge does it.
	abort := func(cause error) error {
		if ctx.Err() != nil {
			// The term ended: nothing more is written; the next
			// master finds the intent.
			release(true)
			return cause
		}
		if _, err := t.undoMerge(ctx, mi); err != nil {
			log.Warn("undo merge; the next reconcile pass retries", "err", err)
			release(true)
			return cause
		}
		release(false)
		return cause
	}

	// 1. Intent.
	if err := t.mutateMetaRow(ctx, mi.rightKey, setCell(metadata.QualMerge, metadata.EncodeTablet(merged)),
		setCell(metadata.QualMergeLeft, metadata.EncodeTablet(stripServer(ldesc)))); err != nil {
		return nil, abort(fmt.Errorf("%w: record merge intent: %w", serr.ErrUnavailable, err))
	}
	if err := t.mutateMetaRow(ctx, mi.leftKey(), setCell(metadata.QualMergeInto, []byte(strconv.FormatUint(newID, 10)))); err != nil {
		return nil, abort(fmt.Errorf("%w: record merge intent: %w", serr.ErrUnavailable, err))
	}
	if err := t.mergeStep(ctx, MergeStepIntent); err != nil {
		return nil, abort(err)
	}

	// 2. Unload both (each flushes).
	for _, u := range []struct {
		ti  *tabletInfo
		id  uint64 // from the copy taken under mu: ti.desc is mu's
		srv serverInfo
	}{{left, ldesc.TabletId, lsrv}, {right, rdesc.TabletId, rsrv}} {
		if err := t.unloadSync(ctx, u.srv.addr, u.id); err != nil {
			return nil, abort(fmt.Errorf("%w: unload tablet %d: %w", serr.ErrUnavailable, u.id, err))
		}
		t.mu.Lock()
		u.ti.server = ""
		t.mu.Unlock()
	}
	if err := t.mergeStep(ctx, MergeStepUnloaded); err != nil {
		return nil, abort(err)
	}

	// 3. The merged manifest, after checking that neither parent changed
	// (a split by its server) since the master looked.
	for _, d := range []*datapb.TabletDescriptor{ldesc, rdesc} {
		info, err := tablet.ReadManifest(ctx, t.m.opts.FS, d.Dir)
		if err != nil {
			return nil, abort(fmt.Errorf("%w: read manifest of tablet %d: %w", serr.ErrUnavailable, d.TabletId, err))
		}
		if info == nil || info.Split || !bytes.Equal(info.StartRow, d.StartRow) || !bytes.Equal(info.EndRow, d.EndRow) {
			return nil, abort(fmt.Errorf("%w: tablet %d changed (split?) while the merge began; retry", serr.ErrUnavailable, d.TabletId))
		}
	}
	if _, _, err := tablet.Merge(ctx, t.m.opts.FS, tablet.ID(newID), ldesc.Dir, rdesc.Dir, merged.Dir); err != nil {
		return nil, abort(fmt.Errorf("merge manifests: %w", err))
	}
	if err := t.mergeStep(ctx, MergeStepManifest); err != nil {
		return nil, abort(err)
	}

	// 4. Commit.
	matched, err := t.checkAndMutateMetaRow(ctx, mi.leftKey(), mi.marker(), deleteRow())
	if err != nil {
		// The outcome is unknown: resolveMerge decides from METADATA.
		release(true)
		return nil, fmt.Errorf("%w: commit merge (the master finishes or undoes it): %w", serr.ErrUnavailable, err)
	}
	if !matched {
		return nil, abort(fmt.Errorf("%w: the merge was undone concurrently", serr.ErrUnavailable))
	}
	log.Info("merge committed")
	t.forget(ldesc.TabletId, rdesc.TabletId)
	if err := t.mergeStep(ctx, MergeStepCommitted); err != nil {
		t.mu.Lock()
		t.metaDirty = true
		t.mu.Unlock()
		return nil, err
	}

	// 5. The right row describes the merged tablet; assign it.
	if err := t.finishMerge(ctx, mi); err != nil {
		t.mu.Lock()
		t.metaDirty = true
		t.mu.Unlock()
		t.poke()
		return nil, fmt.Errorf("%w: the merge is committed; the master finishes it: %w", serr.ErrUnavailable, err)
	}
	t.mu.Lock()
	ti := t.tablets[newID] // a scan may have found it already
	if ti == nil {
		ti = &tabletInfo{desc: stripServer(merged)}
		t.tablets[newID] = ti
	}
	t.mu.Unlock()
	t.poke()
	log.Info("tablets merged", "start", strconv.Quote(string(merged.StartRow)), "end", strconv.Quote(string(merged.EndRow)))
	// Wait (bounded) for the merged tablet to be served, then have its
	// server rewrite the inherited files into its own (so the parents'
	// files become garbage) in the background.
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	for wctx.Err() == nil {
		t.mu.Lock()
		s := t.servers[ti.server]
		served := s != nil && !ti.busy
		t.mu.Unlock()
		if served {
			t.compactInBackground(s.addr, merged)
			break
		}
		select {
		case <-wctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	return &masterpb.MergeTabletsResponse{}, nil
}

// mergeIntent is a merge recorded in METADATA.
type mergeIntent struct {
	rightKey            []byte
	right, left, merged *datapb.TabletDescriptor
}

func (mi *mergeIntent) leftKey() []byte { return metadata.RowKey(mi.left.TableId, mi.left.EndRow) }

// marker is the predicate "the left row still names this merge".
func (mi *mergeIntent) marker() *datapb.RowFilter {
	return cellIs(metadata.QualMergeInto, []byte(strconv.FormatUint(mi.merged.TabletId, 10)))
}

// undoMerge takes the merge back if it is not committed: the left row's
// marker goes first (conditionally: the decision point), then the right
// row's intent, then the merged tablet's directory (never referenced). It
// reports whether the merge turned out committed instead.
func (t *term) undoMerge(ctx context.Context, mi *mergeIntent) (committed bool, err error) {
	matched, err := t.checkAndMutateMetaRow(ctx, mi.leftKey(), mi.marker(), deleteColumn(metadata.QualMergeInto))
	if err != nil {
		return false, err
	}
	if !matched {
		cells, err := t.readMetaRow(ctx, mi.leftKey())
		if err != nil {
			return false, err
		}
		if cells[metadata.QualTablet] == nil {
			return true, nil // the left row is gone: committed
		}
	}
	if err := t.mutateMetaRow(ctx, mi.rightKey, deleteColumn(metadata.QualMerge), deleteColumn(metadata.QualMergeLeft)); err != nil {
		return false, err
	}
	if err := removeTree(ctx, t.m.opts.FS, mi.merged.Dir); err != nil {
		t.m.log.Warn("remove the directory of an undone merge; garbage collection will", "dir", mi.merged.Dir, "err", err)
	}
	t.m.log.Info("merge undone", "table", mi.merged.TableId, "left", mi.left.TabletId, "right", mi.right.TabletId, "merged", mi.merged.TabletId)
	return false, nil
}

// finishMerge writes the merged tablet's descriptor into the right row and
// clears the intent (after the commit).
func (t *term) finishMerge(ctx context.Context, mi *mergeIntent) error {
	return t.mutateMetaRow(ctx, mi.rightKey,
		setCell(metadata.QualTablet, metadata.EncodeTablet(stripServer(mi.merged))),
		setCell(metadata.QualLocation, nil),
		deleteColumn(metadata.QualMerge), deleteColumn(metadata.QualMergeLeft))
}

// resolveMerge finishes or undoes a merge found in METADATA that no merge
// of this term is running.
func (t *term) resolveMerge(ctx context.Context, mi *mergeIntent) error {
	committed, err := t.undoMerge(ctx, mi)
	if err != nil {
		return err
	}
	if committed {
		if err := t.finishMerge(ctx, mi); err != nil {
			return err
		}
		t.forget(mi.left.TabletId, mi.right.TabletId)
		t.m.log.Info("merge finished by the master", "table", mi.merged.TableId, "merged", mi.merged.TabletId)
	}
	return nil
}

// forget drops tablets merged away from the state for good.
func (t *term) forget(ids ...uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, id := range ids {
		delete(t.tablets, id)
		t.gone[id] = true
	}
}

// unloadSync unloads a tablet from a server and waits for the answer.
func (t *term) unloadSync(ctx context.Context, addr string, id uint64) error {
	cl, err := t.m.conns.server(addr)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, t.m.opts.RPCTimeout)
	defer cancel()
	_, err = cl.UnloadTablet(rctx, &tabletpb.UnloadTabletRequest{Master: seqProto(t.seq), TabletId: id})
	return t.serverErr(err)
}

// compactInBackground asks a server to major-compact one tablet (best
// effort), so that a merged tablet stops referencing its parents' files.
func (t *term) compactInBackground(addr string, d *datapb.TabletDescriptor) {
	t.mu.Lock()
	if t.ended {
		t.mu.Unlock()
		return
	}
	t.wg.Add(1)
	t.mu.Unlock()
	go func() {
		defer t.wg.Done()
		ctx, cancel := t.bind(context.Background())
		defer cancel()
		cl, err := t.m.conns.server(addr)
		if err == nil {
			_, err = cl.CompactTablet(ctx, &tabletpb.CompactTabletRequest{TableId: d.TableId, TabletId: d.TabletId, Major: true})
		}
		if err != nil && ctx.Err() == nil {
			t.m.log.Warn("compact merged tablet", "tablet", d.TabletId, "err", err)
		}
	}()
}

// mergeStep runs the test hook, if any.
func (t *term) mergeStep(ctx context.Context, step string) error {
	if h := t.m.opts.Hooks.MergeStep; h != nil {
		h(ctx, step)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("merge stopped after step %q: %w", step, errors.Join(err, context.Cause(ctx)))
	}
	return nil
}
