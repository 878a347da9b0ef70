package tabletserver

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"cellar/internal/metadata"
	"cellar/internal/serr"
	"cellar/lock"
	datapb "cellar/proto/cellar/data/v1"
	tabletpb "cellar/proto/cellar/tablet/v1"
	"cellar/sstable"
	"cellar/tablet"
)

func TestFamiliesFromSchema(t *testing.T) {
	mv := func(n int32) *datapb.GcRule {
		return &datapb.GcRule{Rule: &datapb.GcRule_MaxNumVersions{MaxNumVersions: n}}
	}
	age := func(us int64) *datapb.GcRule {
		return &datapb.GcRule{Rule: &datapb.GcRule_MaxAgeMicros{MaxAgeMicros: us}}
	}
	tests := []struct {
		rule    *datapb.GcRule
		want    string
		wantErr bool
	}{
		{nil, tablet.NoGC.String(), false},
		{&datapb.GcRule{}, tablet.NoGC.String(), false},
		{mv(3), tablet.MaxVersions(3).String(), false},
		{age(1e6), tablet.MaxAge(1e9).String(), false},
		{&datapb.GcRule{Rule: &datapb.GcRule_Union_{Union: &datapb.GcRule_Union{Rules: []*datapb.GcRule{mv(2), age(5e6)}}}},
			tablet.Union(tablet.MaxVersions(2), tablet.MaxAge(5e9)).String(), false},
		{&datapb.GcRule{Rule: &datapb.GcRule_Intersection_{Intersection: &datapb.GcRule_Intersection{Rules: []*datapb.GcRule{mv(2), nil}}}},
			tablet.Intersection(tablet.MaxVersions(2), tablet.NoGC).String(), false},
		{mv(0), "", true},
		{age(-1), "", true},
	}
	for _, tc := range tests {
		got, err := FamiliesFromSchema(&datapb.TableSchema{Families: []*datapb.ColumnFamily{{Name: "f", GcRule: tc.rule}}})
		if tc.wantErr {
			if !errors.Is(err, serr.ErrInvalidArgument) {
				t.Errorf("FamiliesFromSchema(%v) error = %v, want ErrInvalidArgument", tc.rule, err)
			}
			continue
		}
		if err != nil || len(got) != 1 || got[0].GC.String() != tc.want {
			t.Errorf("FamiliesFromSchema(%v) = %v, %v, want %s", tc.rule, got, err, tc.want)
		}
	}
	if _, err := FamiliesFromSchema(&datapb.TableSchema{}); !errors.Is(err, serr.ErrInvalidArgument) {
		t.Errorf("no families: %v", err)
	}
	if _, err := FamiliesFromSchema(&datapb.TableSchema{Families: []*datapb.ColumnFamily{nil}}); !errors.Is(err, serr.ErrInvalidArgument) {
		t.Errorf("nil family: %v", err)
	}
}

func TestNextTabletID_Increasing(t *testing.T) {
	e := newEnv(t)
	var last uint64
	for i := range 5 {
		id, err := NextTabletID(e.ctx, e.master)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 && id != FirstTabletID {
			t.Fatalf("first id = %d, want %d", id, FirstTabletID)
		}
		if id <= last {
			t.Fatalf("id %d after %d", id, last)
		}
		last = id
	}
}

func TestLoadUnload_Sequencers(t *testing.T) {
	e := newEnv(t)
	ts := e.startServer(lock.ClientOptions{}, nil)
	d := e.newTablet("", "")
	e.load(ts, d)
	e.load(ts, d) // idempotent
	if err := ts.mutate(e.ctx, "r1", set("cf", "q", 5, "v")); err != nil {
		t.Fatal(err)
	}

	// A sequencer of a master that has since lost its lock is stale.
	stale := &tabletpb.Sequencer{Path: e.seq.Path, Generation: e.seq.Generation + 1000, Mode: e.seq.Mode}
	_, err := ts.cl.LoadTablet(e.ctx, &tabletpb.LoadTabletRequest{Master: stale, Tablet: e.newTablet("", ""), Schema: testSchema()})
	if !errors.Is(serr.Wire.FromStatus(err), serr.ErrStaleSequencer) {
		t.Fatalf("LoadTablet with a stale sequencer = %v, want ErrStaleSequencer", err)
	}
	_, err = ts.cl.UnloadTablet(e.ctx, &tabletpb.UnloadTabletRequest{Master: stale, TabletId: d.TabletId})
	if !errors.Is(serr.Wire.FromStatus(err), serr.ErrStaleSequencer) {
		t.Fatalf("UnloadTablet with a stale sequencer = %v, want ErrStaleSequencer", err)
	}
	_, err = ts.cl.UnloadTablet(e.ctx, &tabletpb.UnloadTabletRequest{TabletId: d.TabletId})
	if !errors.Is(serr.Wire.FromStatus(err), serr.ErrStaleSequencer) {
		t.Fatalf("UnloadTablet without a sequencer = %v, want ErrStaleSequencer", err)
	}
	// Bad descriptors are refused, not a panic.
	for _, bad := range []*datapb.TabletDescriptor{nil, {TableId: testTable}, {TableId: testTable, TabletId: 7, Dir: "../x"},
		{TableId: testTable, TabletId: 7, Dir: "d", StartRow: []byte("b"), EndRow: []byte("a")}} {
		_, err := ts.cl.LoadTablet(e.ctx, &tabletpb.LoadTabletRequest{Master: e.seq, Tablet: bad, Schema: testSchema()})
		if !errors.Is(serr.Wire.FromStatus(err), serr.ErrInvalidArgument) {
			t.Errorf("LoadTablet(%v) = %v, want ErrInvalidArgument", bad, err)
		}
	}

	if _, err := ts.cl.UnloadTablet(e.ctx, &tabletpb.UnloadTabletRequest{Master: e.seq, TabletId: d.TabletId}); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.cl.UnloadTablet(e.ctx, &tabletpb.UnloadTabletRequest{Master: e.seq, TabletId: 12345}); err != nil {
		t.Fatalf("UnloadTablet of an unknown tablet: %v", err)
	}
	if err := ts.mutate(e.ctx, "r1", set("cf", "q", 6, "v")); !errors.Is(err, serr.ErrNotServing) {
		t.Fatalf("write after unload = %v, want ErrNotServing", err)
	}
	// Reload: the write made before the unload was flushed.
	e.load(ts, d)
	rows, _, err := ts.read(e.ctx, &tabletpb.ReadRowsRequest{Rows: &datapb.RowSet{RowKeys: [][]byte{[]byte("r1")}}})
	if err != nil || len(rows) != 1 || string(rows[0].Cells[0].Value) != "v" {
		t.Fatalf("read after reload = %v, %v", rows, err)
	}
	// A schema change reopens the tablet with the new families.
	sch := testSchema()
	sch.Families = append(sch.Families, &datapb.ColumnFamily{Name: "new"})
	if _, err := ts.cl.LoadTablet(e.ctx, &tabletpb.LoadTabletRequest{Master: e.seq, Tablet: d, Schema: sch}); err != nil {
		t.Fatal(err)
	}
	if err := ts.mutate(e.ctx, "r2", set("new", "q", 1, "x")); err != nil {
		t.Fatalf("write to the added family: %v", err)
	}
}

func TestMutateAndRead_Filters(t *testing.T) {
	e := newEnv(t)
	ts := e.startServer(lock.ClientOptions{}, nil)
	e.load(ts, e.newTablet("", ""))
	for i := range 10 {
		row := fmt.Sprintf("row%02d", i)
		if err := ts.mutate(e.ctx, row, set("cf", "a", 10, "a10"), set("cf", "a", 20, "a20"), set("one", "b", tablet.ServerTime, "b")); err != nil {
			t.Fatal(err)
		}
	}
	// Bad input is an error, never a panic.
	for _, m := range []*datapb.Mutation{nil, {}, {Mutation: &datapb.Mutation_SetCell_{}}, set("nofamily", "q", 1, "v"), set("cf", "q", -7, "v")} {
		_, err := ts.cl.MutateRow(e.ctx, &tabletpb.MutateRowRequest{TableId: testTable, RowKey: []byte("x"), Mutations: []*datapb.Mutation{m}})
		if serr.Wire.Code(serr.Wire.FromStatus(err)) != 3 { // InvalidArgument
			t.Errorf("MutateRow(%v) = %v, want InvalidArgument", m, err)
		}
	}

	rows, _, err := ts.read(e.ctx, &tabletpb.ReadRowsRequest{Rows: rangeSet("row03", "row06")})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || string(rows[0].Key) != "row03" || len(rows[0].Cells) != 3 {
		t.Fatalf("range read = %v", rows)
	}
	latest := &datapb.RowFilter{Filter: &datapb.RowFilter_Chain_{Chain: &datapb.RowFilter_Chain{Filters: []*datapb.RowFilter{
		{Filter: &datapb.RowFilter_FamilyNameRegexFilter{FamilyNameRegexFilter: "cf"}},
		{Filter: &datapb.RowFilter_CellsPerColumnLimitFilter{CellsPerColumnLimitFilter: 1}},
	}}}}
	rows, _, err = ts.read(e.ctx, &tabletpb.ReadRowsRequest{Rows: rangeSet("row00", ""), Filter: latest})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 10 {
		t.Fatalf("filtered read: %d rows", len(rows))
	}
	for _, r := range rows {
		if len(r.Cells) != 1 || string(r.Cells[0].Value) != "a20" {
			t.Fatalf("row %s cells %v, want only a20", r.Key, r.Cells)
		}
	}
	// A filter that removes every cell skips the row.
	block := &datapb.RowFilter{Filter: &datapb.RowFilter_ValueRegexFilter{ValueRegexFilter: []byte("nothing")}}
	rows, msgs, err := ts.read(e.ctx, &tabletpb.ReadRowsRequest{Rows: rangeSet("row00", "row05"), Filter: block})
	if err != nil || len(rows) != 0 {
		t.Fatalf("blocking filter: %v, %v", rows, err)
	}
	if n := len(msgs); n == 0 || string(msgs[n-1].LastScannedRowKey) != "row04" {
		t.Fatalf("blocking filter messages %v, want last_scanned_row_key row04", msgs)
	}
	bad := &datapb.RowFilter{Filter: &datapb.RowFilter_ValueRegexFilter{ValueRegexFilter: []byte("(")}}
	if _, _, err := ts.read(e.ctx, &tabletpb.ReadRowsRequest{Rows: rangeSet("a", "b"), Filter: bad}); serr.Wire.Code(err) != 3 {
		t.Fatalf("bad filter: %v", err)
	}
	if _, _, err := ts.read(e.ctx, &tabletpb.ReadRowsRequest{Rows: &datapb.RowSet{}}); !errors.Is(err, serr.ErrInvalidArgument) {
		t.Fatalf("empty row set: %v", err)
	}
	// Keys and ranges mix, in row order, without duplicates.
	rows, _, err = ts.read(e.ctx, &tabletpb.ReadRowsRequest{Rows: &datapb.RowSet{
		RowKeys:   [][]byte{[]byte("row08"), []byte("row01"), []byte("row02"), []byte("nope")},
		RowRanges: []*datapb.RowRange{{StartKey: []byte("row02"), EndKey: []byte("row04")}},
	}})
	var keys []string
	for _, r := range rows {
		keys = append(keys, string(r.Key))
	}
	if err != nil || fmt.Sprint(keys) != "[row01 row02 row03 row08]" {
		t.Fatalf("mixed read = %v, %v", keys, err)
	}
}

func TestReadRows_LimitAndResume(t *testing.T) {
	e := newEnv(t)
	ts := e.startServer(lock.ClientOptions{}, nil)
	e.load(ts, e.newTablet("", "m"))
	for _, r := range []string{"a", "b", "c", "d", "e"} {
		if err := ts.mutate(e.ctx, r, set("cf", "q", 1, r)); err != nil {
			t.Fatal(err)
		}
	}
	rows, msgs, err := ts.read(e.ctx, &tabletpb.ReadRowsRequest{Rows: rangeSet("a", "z"), RowsLimit: 3})
	if err != nil || len(rows) != 3 || string(rows[2].Key) != "c" {
		t.Fatalf("limited read = %v, %v", rows, err)
	}
	last := msgs[len(msgs)-1]
	if string(last.LastScannedRowKey) != "c" || last.TabletEnd {
		t.Fatalf("last message %v: want last_scanned c, no tablet_end", last)
	}
	// Resume after c: the range passes the tablet's end, so the last
	// message says where the next tablet starts.
	rows, msgs, err = ts.read(e.ctx, &tabletpb.ReadRowsRequest{Rows: rangeSet("c\x00", "z")})
	if err != nil || len(rows) != 2 {
		t.Fatalf("resumed read = %v, %v", rows, err)
	}
	last = msgs[len(msgs)-1]
	if !last.TabletEnd || string(last.ResumeKey) != "m" || string(last.LastScannedRowKey) != "e" {
		t.Fatalf("last message %v: want tablet_end, resume_key m, last_scanned e", last)
	}
	// A range starting outside the served tablet is not served here.
	if _, _, err := ts.read(e.ctx, &tabletpb.ReadRowsRequest{Rows: rangeSet("n", "z")}); !errors.Is(err, serr.ErrNotServing) {
		t.Fatalf("read of an unserved range = %v, want ErrNotServing", err)
	}
}

func TestCheckAndMutate_BothBranches(t *testing.T) {
	e := newEnv(t)
	ts := e.startServer(lock.ClientOptions{}, nil)
	e.load(ts, e.newTablet("", ""))
	cam := func(row string, pred *datapb.RowFilter) bool {
		t.Helper()
		resp, err := ts.cl.CheckAndMutateRow(e.ctx, &tabletpb.CheckAndMutateRowRequest{
			TableId: testTable, RowKey: []byte(row), PredicateFilter: pred,
			TrueMutations:  []*datapb.Mutation{set("cf", "branch", 1, "true")},
			FalseMutations: []*datapb.Mutation{set("cf", "branch", 1, "false")},
		})
		if err != nil {
			t.Fatal(err)
		}
		return resp.PredicateMatched
	}
	branch := func(row string) string {
		rows, _, err := ts.read(e.ctx, &tabletpb.ReadRowsRequest{Rows: &datapb.RowSet{RowKeys: [][]byte{[]byte(row)}}})
		if err != nil || len(rows) != 1 {
			t.Fatalf("read %s: %v %v", row, rows, err)
		}
		for _, c := range rows[0].Cells {
			if string(c.Qualifier) == "branch" {
				return string(c.Value)
			}
		}
		return ""
	}
	if cam("empty", nil) || branch("empty") != "false" {
		t.Fatal("unset predicate on an empty row: want false branch")
	}
	if !cam("empty", nil) || branch("empty") != "true" {
		t.Fatal("unset predicate on a row with cells: want true branch")
	}
	pred := &datapb.RowFilter{Filter: &datapb.RowFilter_ValueRegexFilter{ValueRegexFilter: []byte("gold")}}
	if err := ts.mutate(e.ctx, "p", set("cf", "x", 1, "lead")); err != nil {
		t.Fatal(err)
	}
	if cam("p", pred) || branch("p") != "false" {
		t.Fatal("predicate not matching: want false branch")
	}
	if err := ts.mutate(e.ctx, "p", set("cf", "y", 1, "gold")); err != nil {
		t.Fatal(err)
	}
	if !cam("p", pred) || branch("p") != "true" {
		t.Fatal("predicate matching: want true branch")
	}
}

func TestReadModifyWrite(t *testing.T) {
	e := newEnv(t)
	ts := e.startServer(lock.ClientOptions{}, nil)
	e.load(ts, e.newTablet("", ""))
	inc := func(n int64) *tabletpb.ReadModifyWriteRule {
		return &tabletpb.ReadModifyWriteRule{Family: "cf", Qualifier: []byte("n"), Rule: &tabletpb.ReadModifyWriteRule_IncrementAmount{IncrementAmount: n}}
	}
	app := func(s string) *tabletpb.ReadModifyWriteRule {
		return &tabletpb.ReadModifyWriteRule{Family: "cf", Qualifier: []byte("s"), Rule: &tabletpb.ReadModifyWriteRule_AppendValue{AppendValue: []byte(s)}}
	}
	rmw := func(rules ...*tabletpb.ReadModifyWriteRule) (*datapb.Row, error) {
		resp, err := ts.cl.ReadModifyWriteRow(e.ctx, &tabletpb.ReadModifyWriteRowRequest{TableId: testTable, RowKey: []byte("r"), Rules: rules})
		return resp.GetRow(), serr.Wire.FromStatus(err)
	}
	if _, err := rmw(inc(5), app("ab")); err != nil {
		t.Fatal(err)
	}
	row, err := rmw(inc(-2), inc(10), app("cd"))
	if err != nil {
		t.Fatal(err)
	}
	if len(row.Cells) != 2 || binary.BigEndian.Uint64(row.Cells[0].Value) != 13 || string(row.Cells[1].Value) != "abcd" {
		t.Fatalf("rmw returned %v, want n=13 s=abcd", row)
	}
	// The stored values agree with what was returned.
	rows, _, err := ts.read(e.ctx, &tabletpb.ReadRowsRequest{Rows: &datapb.RowSet{RowKeys: [][]byte{[]byte("r")}},
		Filter: &datapb.RowFilter{Filter: &datapb.RowFilter_CellsPerColumnLimitFilter{CellsPerColumnLimitFilter: 1}}})
	if err != nil || len(rows) != 1 || !bytes.Equal(rows[0].Cells[0].Value, row.Cells[0].Value) {
		t.Fatalf("read after rmw = %v, %v", rows, err)
	}
	// Incrementing a value that is not 8 bytes fails and changes nothing.
	if _, err := rmw(&tabletpb.ReadModifyWriteRule{Family: "cf", Qualifier: []byte("s"), Rule: &tabletpb.ReadModifyWriteRule_IncrementAmount{IncrementAmount: 1}}); !errors.Is(err, serr.ErrInvalidArgument) {
		t.Fatalf("bad increment = %v, want ErrInvalidArgument", err)
	}
	for _, bad := range []*tabletpb.ReadModifyWriteRule{nil, {Family: "cf"}, {Rule: &tabletpb.ReadModifyWriteRule_AppendValue{}}} {
		if _, err := rmw(bad); !errors.Is(err, serr.ErrInvalidArgument) {
			t.Errorf("rmw(%v) = %v, want ErrInvalidArgument", bad, err)
		}
	}
}

func TestMutateRows_PerEntryNotServing(t *testing.T) {
	e := newEnv(t)
	ts := e.startServer(lock.ClientOptions{}, nil)
	e.load(ts, e.newTablet("", "m"))
	resp, err := ts.cl.MutateRows(e.ctx, &tabletpb.MutateRowsRequest{TableId: testTable, Entries: []*tabletpb.MutateRowsRequest_Entry{
		{RowKey: []byte("a"), Mutations: []*datapb.Mutation{set("cf", "q", 1, "a")}},
		{RowKey: []byte("x"), Mutations: []*datapb.Mutation{set("cf", "q", 1, "x")}},
		{RowKey: []byte("b"), Mutations: []*datapb.Mutation{set("nofamily", "q", 1, "b")}},
		{RowKey: []byte("c"), Mutations: []*datapb.Mutation{set("cf", "q", 1, "c")}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	codes := []int32{}
	for _, r := range resp.Results {
		codes = append(codes, r.Code)
	}
	if fmt.Sprint(codes) != "[0 14 3 0]" || resp.Results[1].Reason != "NOT_SERVING" {
		t.Fatalf("results %v, want codes [0 14 3 0] and NOT_SERVING for x", resp.Results)
	}
	rows, _, err := ts.read(e.ctx, &tabletpb.ReadRowsRequest{Rows: rangeSet("", "m")})
	if err != nil || len(rows) != 2 {
		t.Fatalf("rows after MutateRows = %v, %v (want a and c)", rows, err)
	}
	// A single write to an unserved row.
	if err := ts.mutate(e.ctx, "x", set("cf", "q", 1, "x")); !errors.Is(err, serr.ErrNotServing) {
		t.Fatalf("write to unserved row = %v, want ErrNotServing", err)
	}
	_, err = ts.cl.CheckAndMutateRow(e.ctx, &tabletpb.CheckAndMutateRowRequest{TableId: 99, RowKey: []byte("a"), TrueMutations: []*datapb.Mutation{set("cf", "q", 1, "x")}})
	if !errors.Is(serr.Wire.FromStatus(err), serr.ErrNotServing) {
		t.Fatalf("write to unserved table = %v, want ErrNotServing", err)
	}
}

func TestReadModifyWrite_ConcurrentIncrementsAreLinearizable(t *testing.T) {
	e := newEnv(t)
	ts := e.startServer(lock.ClientOptions{}, nil)
	e.load(ts, e.newTablet("", ""))
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				_, err := ts.cl.ReadModifyWriteRow(e.ctx, &tabletpb.ReadModifyWriteRowRequest{TableId: testTable, RowKey: []byte("ctr"),
					Rules: []*tabletpb.ReadModifyWriteRule{{Family: "cf", Qualifier: []byte("n"), Rule: &tabletpb.ReadModifyWriteRule_IncrementAmount{IncrementAmount: 1}}}})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	rows, _, err := ts.read(e.ctx, &tabletpb.ReadRowsRequest{Rows: &datapb.RowSet{RowKeys: [][]byte{[]byte("ctr")}},
		Filter: &datapb.RowFilter{Filter: &datapb.RowFilter_CellsPerColumnLimitFilter{CellsPerColumnLimitFilter: 1}}})
	if err != nil || len(rows) != 1 {
		t.Fatalf("read counter: %v %v", rows, err)
	}
	if got := binary.BigEndian.Uint64(rows[0].Cells[0].Value); got != workers*each {
		t.Fatalf("counter = %d after %d concurrent increments", got, workers*each)
	}
}

// TestReadRows_NoBlockCache: a read with no_block_cache leaves the block
// cache as it found it; the same read without it fills the cache.
func TestReadRows_NoBlockCache(t *testing.T) {
	e := newEnv(t)
	cache := sstable.NewCache(16 << 20)
	ts := e.startServer(lock.ClientOptions{}, func(o *Options) { o.Cache = cache })
	e.load(ts, e.newTablet("", "m"))
	for i := range 200 {
		if err := ts.mutate(e.ctx, fmt.Sprintf("a%04d", i), set("cf", "q", 1, strings.Repeat("v", 1000))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ts.cl.FlushTablet(e.ctx, &tabletpb.FlushTabletRequest{TableId: testTable}); err != nil {
		t.Fatal(err)
	}
	before := cache.Stats().Size
	rows, _, err := ts.read(e.ctx, &tabletpb.ReadRowsRequest{Rows: rangeSet("a", "b"), NoBlockCache: true})
	if err != nil || len(rows) != 200 {
		t.Fatalf("read = %d rows, %v", len(rows), err)
	}
	if got := cache.Stats().Size; got != before {
		t.Fatalf("block cache went from %d to %d bytes on a no_block_cache read", before, got)
	}
	if rows, _, err = ts.read(e.ctx, &tabletpb.ReadRowsRequest{Rows: rangeSet("a", "b")}); err != nil || len(rows) != 200 {
		t.Fatalf("read = %d rows, %v", len(rows), err)
	}
	if got := cache.Stats().Size; got <= before {
		t.Fatalf("block cache at %d bytes after a cached read, was %d", got, before)
	}
}

// TestMetaWrites_StaleSequencerFenced: METADATA writes that carry a master
// sequencer are applied only while it is held. A deposed master's
// MutateRow, MutateRows and CheckAndMutateRow fail whole with
// ErrStaleSequencer and apply nothing; the new master's, and writes with
// no sequencer (clients, split commits), go through.
func TestMetaWrites_StaleSequencerFenced(t *testing.T) {
	e := newEnv(t)
	ts := e.startServer(lock.ClientOptions{}, nil)
	id, err := NextTabletID(e.ctx, e.master)
	if err != nil {
		t.Fatal(err)
	}
	meta := &datapb.TabletDescriptor{TableId: metadata.TableID, TabletId: id, Dir: tabletDir(metadata.TableID, id)}
	if _, err := ts.cl.LoadTablet(e.ctx, &tabletpb.LoadTabletRequest{Master: e.seq, Tablet: meta, Schema: metadata.Schema()}); err != nil {
		t.Fatal(err)
	}
	put := func(v string) *datapb.Mutation {
		return &datapb.Mutation{Mutation: &datapb.Mutation_SetCell_{SetCell: &datapb.Mutation_SetCell{
			Family: metadata.Family, Qualifier: []byte(metadata.QualLocation), Timestamp: metadata.CellTimestamp, Value: []byte(v)}}}
	}
	r1, r2 := metadata.RowKey(testTable, []byte("m")), metadata.RowKey(testTable, nil)
	mutateRow := func(seq *tabletpb.Sequencer, v string) error {
		_, err := ts.cl.MutateRow(e.ctx, &tabletpb.MutateRowRequest{Master: seq, TableId: metadata.TableID, RowKey: r1, Mutations: []*datapb.Mutation{put(v)}})
		return serr.Wire.FromStatus(err)
	}
	mutateRows := func(seq *tabletpb.Sequencer, v string) error {
		resp, err := ts.cl.MutateRows(e.ctx, &tabletpb.MutateRowsRequest{Master: seq, TableId: metadata.TableID, Entries: []*tabletpb.MutateRowsRequest_Entry{
			{RowKey: r1, Mutations: []*datapb.Mutation{put(v)}}, {RowKey: r2, Mutations: []*datapb.Mutation{put(v)}}}})
		if err != nil {
			return serr.Wire.FromStatus(err)
		}
		for i, r := range resp.Results {
			if r.Code != 0 {
				return fmt.Errorf("entry %d: %s (%s)", i, r.Message, r.Reason)
			}
		}
		return nil
	}
	checkAndMutate := func(seq *tabletpb.Sequencer, v string) error {
		// Both branches write, so whatever the predicate says the write is
		// applied unless the request is refused.
		_, err := ts.cl.CheckAndMutateRow(e.ctx, &tabletpb.CheckAndMutateRowRequest{Master: seq, TableId: metadata.TableID, RowKey: r2,
			TrueMutations: []*datapb.Mutation{put(v)}, FalseMutations: []*datapb.Mutation{put(v)}})
		return serr.Wire.FromStatus(err)
	}
	loc := func(row []byte) string {
		t.Helper()
		// Not ts.read: METADATA's table id is 0.
		st, err := ts.cl.ReadRows(e.ctx, &tabletpb.ReadRowsRequest{TableId: metadata.TableID, Rows: &datapb.RowSet{RowKeys: [][]byte{row}}})
		v := ""
		for err == nil {
			var m *tabletpb.ReadRowsResponse
			if m, err = st.Recv(); err == nil && len(m.GetRows()) > 0 {
				v = string(m.Rows[0].Cells[0].Value)
			}
		}
		if !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		return v
	}

	old := e.seq
	if err := mutateRows(old, "old"); err != nil {
		t.Fatalf("MutateRows with the current sequencer: %v", err)
	}
	// A new master takes over: old's generation is no longer held.
	if err := e.master.Release(e.ctx, masterNode); err != nil {
		t.Fatal(err)
	}
	s, err := e.dial(lock.ClientOptions{}).Elect(e.ctx, masterNode, "master:2")
	if err != nil {
		t.Fatal(err)
	}
	cur := &tabletpb.Sequencer{Path: s.Path, Generation: s.Generation, Mode: int32(s.Mode)}

	for name, write := range map[string]func(*tabletpb.Sequencer, string) error{
		"MutateRow": mutateRow, "MutateRows": mutateRows, "CheckAndMutateRow": checkAndMutate} {
		if err := write(old, "stale"); !errors.Is(err, serr.ErrStaleSequencer) {
			t.Errorf("%s with a deposed master's sequencer = %v, want ErrStaleSequencer", name, err)
		}
	}
	if a, b := loc(r1), loc(r2); a != "old" || b != "old" {
		t.Fatalf("after refused writes rows hold %q, %q, want both %q", a, b, "old")
	}
	if err := mutateRow(cur, "new1"); err != nil || loc(r1) != "new1" {
		t.Fatalf("MutateRow with the current sequencer: %v, row holds %q", err, loc(r1))
	}
	if err := checkAndMutate(cur, "new2"); err != nil || loc(r2) != "new2" {
		t.Fatalf("CheckAndMutateRow with the current sequencer: %v, row holds %q", err, loc(r2))
	}
	if err := mutateRows(cur, "new3"); err != nil || loc(r1) != "new3" || loc(r2) != "new3" {
		t.Fatalf("MutateRows with the current sequencer: %v, rows hold %q, %q", err, loc(r1), loc(r2))
	}
	// Writes without a sequencer are not checked.
	if err := mutateRow(nil, "client"); err != nil || loc(r1) != "client" {
		t.Fatalf("MutateRow without a sequencer: %v, row holds %q", err, loc(r1))
	}
}
