package master

import (
	"testing"

	datapb "cellar/proto/cellar/data/v1"
)

// A split reported while the master's record of the parent says
// unassigned (a status taken mid-split did not list it) must not leave the
// daughters unassigned and free to be loaded on a second server: the
// report names the splitting server, and without it the daughters stay
// held until a status adopts them.
func TestRecordSplitNeverLeavesDaughtersFree(t *testing.T) {
	parent := &datapb.TabletDescriptor{TableId: 1, TabletId: 7, Dir: "p"}
	left := &datapb.TabletDescriptor{TableId: 1, TabletId: 9, EndRow: []byte("m"), Dir: "l"}
	right := &datapb.TabletDescriptor{TableId: 1, TabletId: 7, StartRow: []byte("m"), Dir: "p"}
	newTerm := func() *term {
		return &term{
			servers: map[string]*serverInfo{"s1": {id: "s1", addr: "127.0.0.1:1"}},
			tablets: map[uint64]*tabletInfo{7: {desc: parent}, 9: {desc: left, held: true}}, // as a scan during the split left them
		}
	}
	free := func(ti *tabletInfo) bool { return ti.server == "" && !ti.busy && !ti.held }

	tm := newTerm()
	l, r := cloneDesc(left), cloneDesc(right)
	l.ServerId, r.ServerId = "s1", "s1"
	tm.recordSplit(l, r)
	for _, id := range []uint64{7, 9} {
		if ti := tm.tablets[id]; ti.server != "s1" || ti.held {
			t.Errorf("tablet %d after a report from s1: server %q held %v, want s1 and not held", id, ti.server, ti.held)
		}
	}

	tm = newTerm()
	tm.recordSplit(cloneDesc(left), cloneDesc(right)) // no server named
	for _, id := range []uint64{7, 9} {
		if ti := tm.tablets[id]; free(ti) {
			t.Errorf("tablet %d after a report naming no server: unassigned and not held (assignAll would load it)", id)
		}
	}
	if !tm.metaDirty {
		t.Error("recordSplit did not ask for a METADATA rescan")
	}
}

// A tablet a METADATA scan finds after the pass's status round (a split's
// left daughter committed, its intent cleared, its server not yet asked)
// must not be assigned until a complete status round asked after that scan:
// its splitting server serves it already.
func TestScannedTabletWaitsForStatusRound(t *testing.T) {
	schema := &datapb.TableSchema{}
	tm := &term{
		servers: map[string]*serverInfo{"s1": {id: "s1", addr: "127.0.0.1:1"}},
		tablets: map[uint64]*tabletInfo{},
		schemas: map[uint64]*datapb.TableSchema{1: schema},
	}
	known := &datapb.TabletDescriptor{TableId: 1, TabletId: 7, StartRow: []byte("m"), Dir: "p"}
	tm.mergeScanLocked([]*datapb.TabletDescriptor{known}, nil, nil, isUser, tm.gen)
	asked := tm.scans // a status round asked now, after the first scan
	left := &datapb.TabletDescriptor{TableId: 1, TabletId: 9, EndRow: []byte("m"), Dir: "l"}
	tm.mergeScanLocked([]*datapb.TabletDescriptor{left, known}, nil, nil, isUser, tm.gen)
	if tm.assignableLocked(tm.tablets[9]) {
		t.Fatal("a tablet found by a scan no status round followed is assignable")
	}
	tm.releaseScannedLocked(asked) // that round's answers came back
	if tm.assignableLocked(tm.tablets[9]) {
		t.Fatal("a status round asked before the scan released the tablet it found")
	}
	if !tm.assignableLocked(tm.tablets[7]) {
		t.Fatal("a tablet the earlier round was asked after is still not assignable")
	}
	tm.releaseScannedLocked(tm.scans) // a round asked after the second scan
	if !tm.assignableLocked(tm.tablets[9]) {
		t.Fatal("a round asked after the scan did not release the tablet")
	}
}
