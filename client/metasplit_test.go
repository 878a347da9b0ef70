package client

import (
	"testing"

	"cellar/internal/metadata"
	datapb "cellar/proto/cellar/data/v1"
)

// splitMeta replaces the env's one META tablet by META tablets ending at
// ends (the last unbounded), served by servers[assign[i]]: their rows in
// the root tablet, as a split METADATA has them.
func (e *testEnv) splitMeta(ends [][]byte, assign []int) {
	e.t.Helper()
	e.servers[0].unserve(0, metadata.TableEnd(0))
	start := metadata.TableEnd(0)
	for i, end := range append(ends, nil) {
		id := uint64(2)
		if end != nil {
			id = uint64(50 + i)
		}
		key := metadata.RowKey(0, end)
		e.store.set(0, key, metadata.Family, []byte(metadata.QualTablet), 1,
			metadata.EncodeTablet(&datapb.TabletDescriptor{TableId: 0, TabletId: id, StartRow: start, EndRow: end}))
		s := e.servers[assign[i]]
		e.store.set(0, key, metadata.Family, []byte(metadata.QualLocation), 1, metadata.EncodeLocation(s.id, s.addr))
		s.serve(0, start, end)
		start = end
	}
}

// With METADATA split into several META tablets, a lookup reads the META
// tablet holding the search key and, when that tablet ends before any row
// of the table at or after the key, goes on into the next one (the row
// holding a user row may be the first of the next META tablet). A META
// tablet that moves answers NOT_SERVING, and the client relocates it
// through the root.
func TestLocateThroughSeveralMetaTablets(t *testing.T) {
	e := newTestEnv(t, 3)
	e.addTable("t", 7, []string{"g", "p"}, []int{1, 2, 1})
	e.addTable("u", 8, []string{"k"}, []int{2, 1})
	// META tablets: [root end, (7,"p")) on ts0: table 7's first row;
	// [(7,"p"), (8,"k")) on ts1: table 7's last two; [(8,"k"), ) on ts2.
	e.splitMeta([][]byte{metadata.RowKey(7, []byte("p")), metadata.RowKey(8, []byte("k"))}, []int{0, 1, 2})
	ctx := testCtx(t)
	m := NewMutation()
	m.Set("cf", "q", 5, []byte("v"))
	rows := map[string][]string{"t": {"a", "h", "o", "p", "z"}, "u": {"a", "k", "zz"}}
	for name, rs := range rows {
		tbl := e.client.Open(name)
		for _, row := range rs {
			if err := tbl.Apply(ctx, row, m); err != nil {
				t.Fatalf("Apply(%s, %q): %v", name, row, err)
			}
			r, err := tbl.ReadRow(ctx, row)
			if err != nil || r == nil || string(r["cf"][0].Value) != "v" {
				t.Fatalf("ReadRow(%s, %q) = %v, %v", name, row, r, err)
			}
		}
	}
	if l := e.client.cache.lookup(7, []byte("h")); l == nil || string(l.start) != "g" || string(l.end) != "p" || l.addr != e.servers[2].addr {
		t.Fatalf("table 7 row h located in %v, want [g, p) on ts2", l)
	}
	// Every META tablet was read, and cached with its own range.
	for i, key := range [][]byte{metadata.TableEnd(0), metadata.RowKey(7, []byte("p")), metadata.RowKey(8, []byte("k"))} {
		if e.servers[i].callCount("ReadRows") == 0 {
			t.Errorf("META tablet %d (ts%d) never read", i, i)
		}
		if l := e.client.cache.lookup(0, key); l == nil || l.addr != e.servers[i].addr || string(l.start) != string(key) {
			t.Errorf("META tablet holding %x cached as %v", key, l)
		}
	}

	// The second META tablet moves to ts0 and a user tablet whose row it
	// holds moves too: the client's write gets NOT_SERVING from the user
	// tablet's old server, then from the META tablet's, and relocates
	// both.
	e.servers[1].unserve(0, metadata.RowKey(7, []byte("p")))
	e.servers[0].serve(0, metadata.RowKey(7, []byte("p")), metadata.RowKey(8, []byte("k")))
	e.store.set(0, metadata.RowKey(0, metadata.RowKey(8, []byte("k"))), metadata.Family, []byte(metadata.QualLocation), 1,
		metadata.EncodeLocation(e.servers[0].id, e.servers[0].addr))
	e.move(7, 102, []byte("p"), nil, 1, 2)
	tbl := e.client.Open("t")
	if err := tbl.Apply(ctx, "zzz", m); err != nil {
		t.Fatalf("Apply after the META tablet moved: %v", err)
	}
	if got := e.store.get(7, "zzz"); len(got) != 1 {
		t.Fatalf("row zzz = %v", got)
	}
	if l := e.client.cache.lookup(0, metadata.RowKey(7, nil)); l == nil || l.addr != e.servers[0].addr {
		t.Fatalf("moved META tablet cached as %v, want on ts0", l)
	}
	if l := e.client.cache.lookup(7, []byte("zzz")); l == nil || l.addr != e.servers[2].addr {
		t.Fatalf("moved user tablet cached as %v, want on ts2", l)
	}
}
