package master

import (
	"testing"

	"cellar/internal/metadata"
	datapb "cellar/proto/cellar/data/v1"
)

// METADATA writes go to the tablet holding the row: the root for the rows
// of METADATA's own tablets, else the META tablet whose range holds it.
// While a META split is being learned the parent's old range and the left
// daughter's both hold some rows: the served one wins, then the narrower.
func TestMetaTabletForKey(t *testing.T) {
	k1 := metadata.RowKey(5, []byte("m")) // the first META tablet ends here
	k2 := metadata.RowKey(9, nil)         // the second here
	meta := func(id uint64, start, end []byte) *datapb.TabletDescriptor {
		return &datapb.TabletDescriptor{TableId: metadata.TableID, TabletId: id, StartRow: start, EndRow: end}
	}
	tm := &term{
		servers: map[string]*serverInfo{"s1": {id: "s1", addr: "a1"}, "s2": {id: "s2", addr: "a2"}, "s3": {id: "s3", addr: "a3"}},
		tablets: map[uint64]*tabletInfo{
			metadata.RootTabletID: {desc: metadata.RootTablet(), server: "s1"},
			10:                    {desc: meta(10, metadata.TableEnd(metadata.TableID), k1), server: "s2"},
			11:                    {desc: meta(11, k1, k2), server: "s3"},
			metadata.MetaTabletID: {desc: meta(metadata.MetaTabletID, k2, nil), server: "s2"},
			20:                    {desc: &datapb.TabletDescriptor{TableId: 5, TabletId: 20}, server: "s1"}, // a user tablet: never METADATA's
		},
	}
	for _, tc := range []struct {
		key  []byte
		want string
	}{
		{metadata.RowKey(metadata.TableID, k1), "a1"},
		{metadata.RowKey(metadata.TableID, nil), "a1"},
		{metadata.TableEnd(metadata.TableID), "a2"},
		{metadata.RowKey(5, []byte("a")), "a2"},
		{k1, "a3"},
		{metadata.RowKey(8, nil), "a3"},
		{k2, "a2"},
		{metadata.RowKey(1<<50, nil), "a2"},
	} {
		if got, err := tm.metaServer(tc.key); err != nil || got != tc.want {
			t.Errorf("metaServer(%x) = %q, %v; want %q", tc.key, got, err, tc.want)
		}
	}
	// The master has not learned that tablet 11 split at k15: its old
	// range and its left daughter 12's both hold k14.
	k15 := metadata.RowKey(7, nil)
	tm.tablets[12] = &tabletInfo{desc: meta(12, k1, k15), server: "s1"}
	if got, _ := tm.metaServer(metadata.RowKey(6, nil)); got != "a1" {
		t.Errorf("a row both a stale parent range and its left daughter hold went to %q, want the daughter's a1", got)
	}
	tm.tablets[12].server = ""
	if got, _ := tm.metaServer(metadata.RowKey(6, nil)); got != "a3" {
		t.Errorf("with the left daughter unassigned: %q, want the served parent's a3", got)
	}
	// Nothing known or served: ErrUnavailable, which callers retry.
	tm.tablets[11].server = ""
	if _, err := tm.metaServer(metadata.RowKey(6, nil)); err == nil {
		t.Error("a row whose META tablet is not served got a server")
	}
	delete(tm.tablets, metadata.RootTabletID)
	if _, err := tm.metaServer(metadata.RowKey(metadata.TableID, nil)); err == nil {
		t.Error("a root row with no root tablet known got a server")
	}
	if got := tm.metaTabletsLocked(); len(got) != 4 || got[0].desc.TabletId != 10 || got[3].desc.TabletId != metadata.MetaTabletID {
		t.Errorf("metaTabletsLocked: %d tablets, not in row order", len(got))
	}
}

func TestLaterStart(t *testing.T) {
	for _, tc := range []struct{ derived, stored, want string }{
		{"", "", ""},
		{"m", "", "m"},  // a descriptor without a start: derived
		{"m", "c", "m"}, // a parent's row not yet updated after its split
		{"c", "m", "m"}, // a scan that missed the left daughter's row
		{"m", "m", "m"},
	} {
		if got := laterStart([]byte(tc.derived), []byte(tc.stored)); string(got) != tc.want {
			t.Errorf("laterStart(%q, %q) = %q, want %q", tc.derived, tc.stored, got, tc.want)
		}
	}
}

// A META split reported by its server (ReportSplit) updates the master's
// view like a user split: both daughters on the splitting server, the
// right one keeping the id, and METADATA writes routed by the new ranges.
func TestRecordMetaSplit(t *testing.T) {
	k := metadata.RowKey(5, []byte("m"))
	parent := metadata.MetaTablet()
	tm := &term{
		servers: map[string]*serverInfo{"s1": {id: "s1", addr: "a1"}, "s2": {id: "s2", addr: "a2"}},
		tablets: map[uint64]*tabletInfo{
			metadata.RootTabletID: {desc: metadata.RootTablet(), server: "s2"},
			metadata.MetaTabletID: {desc: parent, server: "s1"},
		},
	}
	left := &datapb.TabletDescriptor{TableId: metadata.TableID, TabletId: 300, StartRow: parent.StartRow, EndRow: k, ServerId: "s1", ServerAddress: "a1"}
	right := &datapb.TabletDescriptor{TableId: metadata.TableID, TabletId: metadata.MetaTabletID, StartRow: k, ServerId: "s1", ServerAddress: "a1"}
	tm.recordSplit(left, right)
	metas := tm.metaTabletsLocked()
	if len(metas) != 2 || metas[0].desc.TabletId != 300 || metas[1].desc.TabletId != metadata.MetaTabletID ||
		string(metas[1].desc.StartRow) != string(k) || metas[0].server != "s1" || metas[1].server != "s1" || metas[0].held {
		t.Fatalf("META tablets after the reported split: %v", metas)
	}
	if !tm.metaDirty {
		t.Error("a reported META split did not ask for a rescan")
	}
	for _, key := range [][]byte{metadata.RowKey(1, nil), k, metadata.RowKey(9, nil)} {
		if got, err := tm.metaServer(key); err != nil || got != "a1" {
			t.Errorf("metaServer(%x) = %q, %v; want a1", key, got, err)
		}
	}
	if ti := tm.metaTabletForLocked(metadata.RowKey(1, nil)); ti == nil || ti.desc.TabletId != 300 {
		t.Errorf("a row below the split row is routed to %v, want the left daughter", ti)
	}
}

// A METADATA scan that began before a split was reported (its read may
// predate the split's rows) does not take the parent's old range back
// from the right daughter; a scan begun after it does update ranges.
func TestScanOlderThanSplitKeepsDaughterRange(t *testing.T) {
	parent := &datapb.TabletDescriptor{TableId: 1, TabletId: 7, Dir: "p"}
	tm := &term{
		servers: map[string]*serverInfo{"s1": {id: "s1", addr: "a1"}},
		tablets: map[uint64]*tabletInfo{7: {desc: parent, server: "s1"}},
	}
	asked := tm.gen // a scan starts reading
	left := &datapb.TabletDescriptor{TableId: 1, TabletId: 9, EndRow: []byte("m"), Dir: "l", ServerId: "s1"}
	right := &datapb.TabletDescriptor{TableId: 1, TabletId: 7, StartRow: []byte("m"), Dir: "p", ServerId: "s1"}
	tm.recordSplit(left, right)
	tm.mergeScanLocked([]*datapb.TabletDescriptor{cloneDesc(parent)}, nil, nil, isUser, asked) // it read the row before the split
	if got := string(tm.tablets[7].desc.StartRow); got != "m" {
		t.Fatalf("the right daughter's start after an older scan = %q, want m", got)
	}
	moved := cloneDesc(right)
	moved.EndRow = []byte("t") // a later split the master learns only from METADATA
	tm.mergeScanLocked([]*datapb.TabletDescriptor{moved}, nil, nil, isUser, tm.gen)
	if got := string(tm.tablets[7].desc.EndRow); got != "t" {
		t.Fatalf("a newer scan did not update the range: end %q, want t", got)
	}
}
