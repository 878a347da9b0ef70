package master

import (
	"bytes"
	"context"
	"fmt"

	"cellar/internal/metadata"
	datapb "cellar/proto/cellar/data/v1"
	"cellar/tablet"
)

// splitIntent is an info:split cell found on a tablet's METADATA row: its
// server began a split (docs/serving.md, tabletserver package doc) and
// has not cleared the intent yet.
type splitIntent struct {
	parentKey []byte
	parent    *datapb.TabletDescriptor // the row's tablet, with the range the scan derived
	left      *datapb.TabletDescriptor // the left daughter the split creates
}

// resolveIntents acts on the split and merge intents the last METADATA
// scan found, and reports whether it changed METADATA (the caller scans
// again). Tablets named by an unresolved intent stay held: unassigned and
// not moved.
func (t *term) resolveIntents(ctx context.Context) bool {
	t.mu.Lock()
	var merges []*mergeIntent
	for _, mi := range t.mergeIntents {
		if !t.merging[mi.merged.TabletId] {
			merges = append(merges, mi)
		}
	}
	pending := false // a merge this term runs sets metaDirty itself if it must
	splits := t.splitIntents
	complete := t.statusesComplete
	// The intents are consumed: the next scan finds those still there,
	// so an intent is never acted on from a scan older than this pass's.
	t.mergeIntents, t.splitIntents = nil, nil
	t.mu.Unlock()
	changed := false
	for _, mi := range merges {
		if err := t.resolveMerge(ctx, mi); err != nil {
			t.m.log.Warn("resolve merge intent; retrying in the next pass", "merged", mi.merged.TabletId, "err", err)
			pending = true
			continue
		}
		changed = true
	}
	for _, si := range splits {
		done, retry, err := t.resolveSplit(ctx, si, complete)
		if err != nil {
			t.m.log.Warn("resolve split intent; retrying in the next pass", "tablet", si.parent.TabletId, "err", err)
		}
		changed = changed || done
		pending = pending || retry
	}
	if changed || pending {
		t.mu.Lock()
		t.metaDirty = true
		t.mu.Unlock()
	}
	return changed
}

// resolveSplit finishes or takes back a split whose intent is still on
// its parent's row, when its server can no longer do it:
//
//   - a live server serves the parent's id with the right daughter's range:
//     the split happened but its METADATA commit or clean-up did not;
//     finish it (the left daughter's row, then the parent's row);
//   - a live server serves the parent otherwise, or the master does not
//     know (a load in flight, or a live server that did not answer its
//     status): leave it to that server, decide later;
//   - nobody serves the parent (its server died): the parent's manifest
//     decides. Its rename to the right daughter's range is tablet.Split's
//     commit point, so a manifest with the right daughter's range means
//     finish, one with the parent's range means the split never happened:
//     clear the intent (the left daughter's directory, if any, is garbage).
//
// It reports whether it changed METADATA, and whether the intent must be
// looked at again in the next pass. A split its live server is still
// doing is not: METADATA is scanned again when that server is lost (or
// when the tablet turns out not served); meanwhile, a split that server
// could not commit is still served correctly (it routes by row), only
// its METADATA rows lag.
func (t *term) resolveSplit(ctx context.Context, si *splitIntent, statusesComplete bool) (done, retry bool, err error) {
	id := si.parent.TabletId
	splitRow := si.left.EndRow
	t.mu.Lock()
	ti := t.tablets[id]
	assigned := ti != nil && (ti.server != "" || ti.busy)
	var servedStart []byte
	served := false
	var leftLoc []byte
	for _, s := range t.servers {
		if s.status == nil {
			continue
		}
		for _, ts := range s.status.Tablets {
			switch d := ts.Tablet; {
			case d == nil:
			case d.TabletId == id:
				served, servedStart = true, d.StartRow
			case d.TabletId == si.left.TabletId:
				leftLoc = metadata.EncodeLocation(s.id, s.addr)
			}
		}
	}
	t.mu.Unlock()
	var finish bool
	switch {
	case served:
		if !bytes.Equal(servedStart, splitRow) {
			return false, false, nil // its server is in the middle of it
		}
		finish = true
	case assigned:
		// The master believes a live server has it: that server's
		// status reports it soon, or not (refreshStatuses then
		// unassigns it and asks for a rescan), or the server is lost
		// (a rescan too).
		return false, false, nil
	case !statusesComplete:
		return false, true, nil
	default:
		info, err := tablet.ReadManifest(ctx, t.m.opts.FS, si.parent.Dir)
		if err != nil {
			return false, true, err
		}
		switch {
		case info == nil:
			return false, true, fmt.Errorf("tablet %d has no manifest in %s", id, si.parent.Dir)
		case bytes.Equal(info.StartRow, splitRow) && bytes.Equal(info.EndRow, si.parent.EndRow):
			finish = true
		case bytes.Equal(info.StartRow, si.parent.StartRow) && bytes.Equal(info.EndRow, si.parent.EndRow) && !info.Split:
			finish = false
		default:
			return false, true, fmt.Errorf("tablet %d's manifest covers [%q, %q): neither the parent [%q, %q) nor the right daughter of a split at %q",
				id, info.StartRow, info.EndRow, si.parent.StartRow, si.parent.EndRow, splitRow)
		}
	}
	log := t.m.log.With("table", si.parent.TableId, "tablet", id, "left", si.left.TabletId, "split_row", fmt.Sprintf("%q", splitRow))
	if !finish {
		if err := t.mutateMetaRow(ctx, si.parentKey, deleteColumn(metadata.QualSplitting)); err != nil {
			return false, true, err
		}
		if err := removeTree(ctx, t.m.opts.FS, si.left.Dir); err != nil {
			log.Warn("remove the left daughter of an undone split; garbage collection will", "err", err)
		}
		log.Info("split intent cleared: the split never happened on disk")
		return true, false, nil
	}
	left := stripServer(si.left)
	muts := []*datapb.Mutation{setCell(metadata.QualTablet, metadata.EncodeTablet(left))}
	if leftLoc != nil {
		muts = append(muts, setCell(metadata.QualLocation, leftLoc))
	}
	if err := t.mutateMetaRow(ctx, metadata.RowKey(si.parent.TableId, splitRow), muts...); err != nil {
		return false, true, err
	}
	right := stripServer(si.parent)
	right.StartRow = splitRow
	if err := t.mutateMetaRow(ctx, si.parentKey, setCell(metadata.QualTablet, metadata.EncodeTablet(right)),
		deleteColumn(metadata.QualSplitting)); err != nil {
		return false, true, err
	}
	log.Info("split finished by the master")
	return true, false, nil
}
