package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	"cellar/internal/metadata"
	"cellar/internal/serr"
)

// The client finds a user tablet through /cellar/root → root tablet (the
// META tablet's row) → META tablet (the user tablet's row), caches every
// level, and prefetches the table's following METADATA rows.
func TestPaper_5_1_LocateThroughRootAndMeta(t *testing.T) {
	e := newTestEnv(t, 3)
	e.addTable("t", 7, []string{"m"}, []int{1, 2})
	ctx := testCtx(t)
	tbl := e.client.Open("t")
	m := NewMutation()
	m.Set("cf", "q", 5, []byte("v"))
	for _, row := range []string{"a", "z"} {
		if err := tbl.Apply(ctx, row, m); err != nil {
			t.Fatalf("Apply(%q): %v", row, err)
		}
	}
	if got := e.store.get(7, "a"); len(got) != 1 || string(got[0].Value) != "v" {
		t.Fatalf("row a = %v", got)
	}
	if e.servers[1].callCount("MutateRow") != 1 || e.servers[2].callCount("MutateRow") != 1 {
		t.Fatalf("MutateRow calls: ts1 %d, ts2 %d; want 1, 1", e.servers[1].callCount("MutateRow"), e.servers[2].callCount("MutateRow"))
	}
	// Two METADATA reads: the META tablet's row from root, then the user
	// rows (both tablets, prefetched) from META.
	if n := e.servers[0].callCount("ReadRows"); n != 2 {
		t.Errorf("METADATA reads = %d, want 2 (root, META; second tablet prefetched)", n)
	}
	if n := e.client.cache.size(7); n != 2 {
		t.Errorf("cached tablets of table 7 = %d, want 2", n)
	}
	if l := e.client.cache.lookup(0, metadata.TableEnd(0)); l == nil || l.tablet != 2 {
		t.Errorf("META tablet not cached: %v", l)
	}
	r, err := tbl.ReadRow(ctx, "z")
	if err != nil || r == nil || string(r["cf"][0].Value) != "v" || r.Key() != "z" || r["cf"][0].Column != "cf:q" {
		t.Fatalf("ReadRow(z) = %v, %v", r, err)
	}
	if r, err := tbl.ReadRow(ctx, "nope"); err != nil || r != nil {
		t.Fatalf("ReadRow(missing) = %v, %v; want nil, nil", r, err)
	}
	if n := e.servers[0].callCount("ReadRows"); n != 2 {
		t.Errorf("METADATA reads after cached calls = %d, want still 2", n)
	}
	// METADATA itself reads as a table.
	if r, err := e.client.Open("METADATA").ReadRow(ctx, string(metadata.RowKey(7, []byte("m")))); err != nil || r == nil {
		t.Fatalf("ReadRow(METADATA) = %v, %v", r, err)
	}
	if _, err := e.client.Open("missing").ReadRow(ctx, "a"); !errors.Is(err, ErrTableNotFound) {
		t.Fatalf("ReadRow on a missing table: %v, want ErrTableNotFound", err)
	}
}

// A NOT_SERVING answer drops the cache entry; the client relocates through
// METADATA and retries at the new server, even a server-time write (the
// server refused it before applying).
func TestNotServingInvalidatesAndRelocates(t *testing.T) {
	e := newTestEnv(t, 3)
	e.addTable("t", 7, nil, []int{1})
	ctx := testCtx(t)
	tbl := e.client.Open("t")
	m := NewMutation()
	m.Set("cf", "q", 5, []byte("v1"))
	if err := tbl.Apply(ctx, "r", m); err != nil {
		t.Fatal(err)
	}
	e.move(7, 100, nil, nil, 1, 2)
	m2 := NewMutation()
	m2.Set("cf", "q", ServerTime, []byte("v2"))
	if err := tbl.Apply(ctx, "r", m2); err != nil {
		t.Fatalf("Apply after move: %v", err)
	}
	if n := e.servers[1].callCount("MutateRow"); n != 2 {
		t.Errorf("old server MutateRow calls = %d, want 2 (one refused)", n)
	}
	if n := e.servers[2].callCount("MutateRow"); n != 1 {
		t.Errorf("new server MutateRow calls = %d, want 1", n)
	}
	if l := e.client.cache.lookup(7, []byte("r")); l == nil || l.addr != e.servers[2].addr {
		t.Errorf("cache after relocation: %v, want %s", l, e.servers[2].addr)
	}
	// Reads relocate the same way.
	e.move(7, 100, nil, nil, 2, 1)
	r, err := tbl.ReadRow(ctx, "r")
	if err != nil || len(r["cf"]) != 2 {
		t.Fatalf("ReadRow after second move = %v, %v", r, err)
	}
}

// A write with a server-assigned timestamp whose RPC fails with an
// UNAVAILABLE that is not NOT_SERVING may have been applied: it is not
// retried and fails with ErrOutcomeUnknown. With explicit timestamps it is
// retried.
func TestServerTimeWriteOutcomeUnknown(t *testing.T) {
	e := newTestEnv(t, 2)
	e.addTable("t", 7, nil, []int{1})
	ctx := testCtx(t)
	tbl := e.client.Open("t")
	failOnce := func() {
		fired := false
		e.servers[1].mu.Lock()
		e.servers[1].after = func(string) error {
			if fired {
				return nil
			}
			fired = true
			return status.Error(codes.Unavailable, "connection reset")
		}
		e.servers[1].mu.Unlock()
	}
	failOnce()
	m := NewMutation()
	m.Set("cf", "q", ServerTime, []byte("v"))
	err := tbl.Apply(ctx, "r", m)
	if !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("Apply(ServerTime) = %v, want ErrOutcomeUnknown", err)
	}
	if n := e.servers[1].callCount("MutateRow"); n != 1 {
		t.Fatalf("MutateRow calls = %d, want 1 (no retry)", n)
	}
	failOnce()
	m2 := NewMutation()
	m2.Set("cf", "q", 9, []byte("v"))
	if err := tbl.Apply(ctx, "r", m2); err != nil {
		t.Fatalf("Apply(explicit ts) = %v, want success after retry", err)
	}
	if n := e.servers[1].callCount("MutateRow"); n != 3 {
		t.Fatalf("MutateRow calls = %d, want 3", n)
	}
	failOnce()
	rmw := NewReadModifyWrite()
	rmw.Increment("cf", "n", 1)
	if _, err := tbl.ApplyReadModifyWrite(ctx, "r", rmw); !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("ApplyReadModifyWrite = %v, want ErrOutcomeUnknown", err)
	}
	r, err := tbl.ApplyReadModifyWrite(ctx, "r", rmw)
	if err != nil || len(r["cf"]) != 1 || !bytes.Equal(r["cf"][0].Value, []byte{0, 0, 0, 0, 0, 0, 0, 2}) {
		t.Fatalf("ApplyReadModifyWrite = %v, %v; want n=2", r, err)
	}
}

// A write the server held back over its memtable budget fails with
// ErrOverloaded (nothing applied: not ErrOutcomeUnknown, even with a
// server-assigned timestamp), and is not retried: the server answers just
// before the deadline.
func TestOverloadedWriteIsTyped(t *testing.T) {
	e := newTestEnv(t, 2)
	e.addTable("t", 7, nil, []int{1})
	ctx := testCtx(t)
	tbl := e.client.Open("t")
	e.servers[1].mu.Lock()
	e.servers[1].after = func(string) error {
		return serr.Wire.ToStatus(fmt.Errorf("%w: held back", serr.ErrOverloaded))
	}
	e.servers[1].mu.Unlock()
	m := NewMutation()
	m.Set("cf", "q", ServerTime, []byte("v"))
	err := tbl.Apply(ctx, "r", m)
	if !errors.Is(err, ErrOverloaded) || errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("Apply = %v, want ErrOverloaded (and not ErrOutcomeUnknown)", err)
	}
	if n := e.servers[1].callCount("MutateRow"); n != 1 {
		t.Fatalf("MutateRow calls = %d, want 1 (no retry)", n)
	}
}

func writeRows(t *testing.T, e *testEnv, table uint64, rows ...string) {
	for _, r := range rows {
		e.store.set(table, []byte(r), "cf", []byte("q"), 1, []byte("v"+r))
	}
}

func alphabet() []string {
	var out []string
	for c := 'a'; c <= 'z'; c++ {
		out = append(out, string(c))
	}
	return out
}

// ReadRows over two tablets sends one request per tablet in row order,
// clipped to the tablet, and resumes strictly after the last delivered row
// when a stream breaks: every row exactly once, in order.
func TestReadRowsAcrossTabletsResumes(t *testing.T) {
	e := newTestEnv(t, 3)
	e.addTable("t", 7, []string{"m"}, []int{1, 2})
	writeRows(t, e, 7, alphabet()...)
	ctx := testCtx(t)
	tbl := e.client.Open("t")
	e.servers[1].mu.Lock()
	e.servers[1].readFailAfter = 3
	e.servers[1].mu.Unlock()
	e.servers[2].mu.Lock()
	e.servers[2].readFailAfter = 5
	e.servers[2].mu.Unlock()
	var got []string
	err := tbl.ReadRows(ctx, InfiniteRange(""), func(r Row) bool {
		got = append(got, r.Key())
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Join(alphabet(), ""); strings.Join(got, "") != want {
		t.Fatalf("rows = %q, want %q", strings.Join(got, ""), want)
	}
	r1, r2 := e.servers[1].readReqs(), e.servers[2].readReqs()
	if len(r1) != 2 || len(r2) != 2 {
		t.Fatalf("requests: ts1 %d, ts2 %d; want 2, 2", len(r1), len(r2))
	}
	// The resumed request on ts1 starts strictly after "c"; ts2's first
	// starts at the tablet start.
	if rr := r1[1].Rows.RowRanges[0]; string(rr.StartKey) != "c\x00" || string(rr.EndKey) != "m" {
		t.Errorf("resumed range = [%q,%q), want [\"c\\x00\",\"m\")", rr.StartKey, rr.EndKey)
	}
	if rr := r2[0].Rows.RowRanges[0]; string(rr.StartKey) != "m" || len(rr.EndKey) != 0 {
		t.Errorf("second tablet range = [%q,%q), want [\"m\",∞)", rr.StartKey, rr.EndKey)
	}

	// A bounded range, a row list across tablets, a limit, early stop.
	cases := []struct {
		set  RowSet
		opts []ReadOption
		stop string
		want string
	}{
		{NewRange("c", "p"), nil, "", "cdefghijklmno"},
		{PrefixRange("x"), nil, "", "x"},
		{RowList{"z", "b", "n", "b", "zz"}, nil, "", "bnz"},
		{RowRangeList{NewRange("a", "c"), NewRange("b", "e"), NewRange("y", "")}, nil, "", "abcdyz"},
		{InfiniteRange("k"), []ReadOption{LimitRows(4)}, "", "klmn"},
		{InfiniteRange("k"), nil, "o", "klmno"},
	}
	for _, c := range cases {
		var got []string
		err := tbl.ReadRows(ctx, c.set, func(r Row) bool {
			got = append(got, r.Key())
			return r.Key() != c.stop
		}, c.opts...)
		if err != nil || strings.Join(got, "") != c.want {
			t.Errorf("ReadRows(%v) = %q, %v; want %q", c.set, strings.Join(got, ""), err, c.want)
		}
	}
}

func TestApplyBulkRetriesNotServingEntries(t *testing.T) {
	e := newTestEnv(t, 3)
	e.addTable("t", 7, []string{"m"}, []int{1, 2})
	ctx := testCtx(t)
	tbl := e.client.Open("t")
	// Warm the cache, then move the second tablet.
	if _, err := tbl.ReadRow(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	e.move(7, 101, []byte("m"), nil, 2, 1)
	var rows []string
	var muts []*Mutation
	for i, r := range []string{"a", "b", "x", "y"} {
		m := NewMutation()
		m.Set("cf", "q", Timestamp(i+1), []byte(r))
		rows, muts = append(rows, r), append(muts, m)
	}
	rows, muts = append(rows, ""), append(muts, NewMutation())
	errs, err := tbl.ApplyBulk(ctx, rows, muts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if errs[i] != nil {
			t.Errorf("entry %d (%q): %v", i, rows[i], errs[i])
		}
		if got := e.store.get(7, rows[i]); len(got) != 1 {
			t.Errorf("row %q = %v", rows[i], got)
		}
	}
	if !errors.Is(errs[4], ErrInvalidArgument) {
		t.Errorf("empty row entry: %v, want ErrInvalidArgument", errs[4])
	}
	if _, err := tbl.ApplyBulk(ctx, []string{"a"}, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("ApplyBulk(mismatch) = %v, want ErrInvalidArgument", err)
	}
	good := NewMutation()
	good.Set("cf", "q", 1, nil)
	if errs, err := tbl.ApplyBulk(ctx, []string{"c", "d"}, []*Mutation{good, good}); errs != nil || err != nil {
		t.Errorf("ApplyBulk(ok) = %v, %v; want nil, nil", errs, err)
	}
}

// A tablet whose METADATA row has no location is being reassigned: the
// client waits with backoff until it has one.
func TestUnassignedTabletWaits(t *testing.T) {
	e := newTestEnv(t, 2)
	e.addTable("t", 7, nil, []int{-1})
	ctx := testCtx(t)
	tbl := e.client.Open("t")
	done := make(chan error, 1)
	go func() {
		m := NewMutation()
		m.Set("cf", "q", 1, []byte("v"))
		done <- tbl.Apply(ctx, "r", m)
	}()
	// Assign it once the client has looked at least twice.
	for e.servers[0].callCount("ReadRows") < 3 {
		select {
		case err := <-done:
			t.Fatalf("Apply returned before assignment: %v", err)
		default:
		}
		runtimeGosched()
	}
	e.servers[1].serve(7, nil, nil)
	e.setMeta(7, 100, nil, nil, 1)
	if err := <-done; err != nil {
		t.Fatalf("Apply = %v", err)
	}
}

func TestCheckAndMutateAndSampleRowKeys(t *testing.T) {
	e := newTestEnv(t, 3)
	e.addTable("t", 7, []string{"m"}, []int{1, 2})
	ctx := testCtx(t)
	tbl := e.client.Open("t")
	tm, fm := NewMutation(), NewMutation()
	tm.Set("cf", "t", 1, []byte("1"))
	fm.Set("cf", "f", 1, []byte("1"))
	for i, want := range []bool{false, true} {
		matched, err := tbl.CheckAndMutate(ctx, "r", ChainFilters(FamilyFilter("cf"), LatestNFilter(1)), tm, fm)
		if err != nil || matched != want {
			t.Fatalf("CheckAndMutate #%d = %v, %v; want %v", i, matched, err, want)
		}
	}
	if got := len(e.store.get(7, "r")); got != 2 {
		t.Fatalf("cells after CheckAndMutate = %d, want 2", got)
	}
	if _, err := tbl.CheckAndMutate(ctx, "r", nil, nil, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("CheckAndMutate(no mutations) = %v", err)
	}
	e.servers[1].samples = []*tabletpbSample{{RowKey: []byte("f"), OffsetBytes: 100}, {RowKey: []byte("m"), OffsetBytes: 300}}
	e.servers[2].samples = []*tabletpbSample{{RowKey: nil, OffsetBytes: 50}}
	s, err := tbl.SampleRowKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(s), "[{f 100} {m 300} { 350}]"; got != want {
		t.Fatalf("SampleRowKeys = %s, want %s", got, want)
	}
}

func TestBadInput(t *testing.T) {
	e := newTestEnv(t, 1)
	ctx := testCtx(t)
	tbl := e.client.Open("t")
	bad := NewMutation()
	bad.Set("bad family!", "q", 1, nil)
	negTS := NewMutation()
	negTS.Set("cf", "q", -5, nil)
	ok := NewMutation()
	ok.Set("cf", "q", 1, nil)
	cases := []struct {
		name string
		err  error
	}{
		{"empty row", tbl.Apply(ctx, "", ok)},
		{"nil mutation", tbl.Apply(ctx, "r", nil)},
		{"empty mutation", tbl.Apply(ctx, "r", NewMutation())},
		{"bad family", tbl.Apply(ctx, "r", bad)},
		{"negative ts", tbl.Apply(ctx, "r", negTS)},
		{"bad table name", e.client.Open("a/b").Apply(ctx, "r", ok)},
		{"empty table name", e.client.Open("").Apply(ctx, "r", ok)},
		{"read empty row", func() error { _, err := tbl.ReadRow(ctx, ""); return err }()},
		{"nil rowset", tbl.ReadRows(ctx, nil, func(Row) bool { return true })},
		{"nil callback", tbl.ReadRows(ctx, RowList{"a"}, nil)},
		{"empty key in list", tbl.ReadRows(ctx, RowList{""}, func(Row) bool { return true })},
		{"nil rmw", func() error { _, err := tbl.ApplyReadModifyWrite(ctx, "r", nil); return err }()},
		{"create bad family", e.client.Admin().CreateTable(ctx, "x", map[string]GCPolicy{"": nil})},
		{"split empty row", e.client.Admin().SplitTable(ctx, "x", "")},
	}
	for _, c := range cases {
		if !errors.Is(c.err, ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", c.name, c.err)
		}
	}
	if err := tbl.ReadRows(ctx, RowList{"a"}, func(Row) bool { return true }, RowFilter(ColumnFilter("("))); !errors.Is(err, ErrInvalidFilter) {
		t.Errorf("bad regexp: %v, want ErrInvalidFilter", err)
	}
	if _, err := Dial(ctx, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Dial(no addrs) = %v", err)
	}
}

func TestDialFailsNamingAddresses(t *testing.T) {
	// A port nobody listens on: take one and close it.
	addr := freeAddr(t)
	ctx := testCtx(t)
	_, err := Dial(ctx, []string{addr}, WithDialTimeout(300*time.Millisecond))
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("Dial(%s) = %v; want ErrUnavailable naming the address", addr, err)
	}
}

func TestClosedClient(t *testing.T) {
	e := newTestEnv(t, 2)
	e.addTable("t", 7, nil, []int{1})
	ctx := testCtx(t)
	if err := e.client.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.client.Close(); err != nil {
		t.Fatal(err)
	}
	m := NewMutation()
	m.Set("cf", "q", 1, nil)
	if err := e.client.Open("t").Apply(ctx, "r", m); !errors.Is(err, ErrClosed) {
		t.Fatalf("Apply after Close = %v, want ErrClosed", err)
	}
}

// A write that is not idempotent is not sent to a server that is down
// (its connection is refused): it cannot have been applied there, so it
// relocates and succeeds on the tablet's new server instead of failing
// with ErrOutcomeUnknown.
func TestNonIdempotentWriteSkipsDownServer(t *testing.T) {
	e := newTestEnv(t, 3)
	e.addTable("t", 7, nil, []int{1})
	ctx := testCtx(t)
	tbl := e.client.Open("t")
	m := NewMutation()
	m.Set("cf", "q", ServerTime, []byte("v1"))
	if err := tbl.Apply(ctx, "r", m); err != nil {
		t.Fatal(err)
	}
	// Server 1 dies; its tablet is recovered on server 2.
	e.servers[1].srv.Stop()
	e.move(7, 100, nil, nil, 1, 2)
	cc, err := e.client.conn(e.servers[1].addr)
	if err != nil {
		t.Fatal(err)
	}
	for cc.GetState() == connectivity.Ready { // until the client noticed
		if !cc.WaitForStateChange(ctx, connectivity.Ready) {
			t.Fatal("connection to the stopped server still ready")
		}
	}
	m2 := NewMutation()
	m2.Set("cf", "q", ServerTime, []byte("v2"))
	if err := tbl.Apply(ctx, "r", m2); err != nil {
		t.Fatalf("Apply(ServerTime) with the old server down = %v, want success on the new one", err)
	}
	rmw := NewReadModifyWrite()
	rmw.Increment("cf", "n", 1)
	if _, err := tbl.ApplyReadModifyWrite(ctx, "r", rmw); err != nil {
		t.Fatalf("ApplyReadModifyWrite = %v", err)
	}
	if n := e.servers[2].callCount("MutateRow"); n != 1 {
		t.Errorf("new server MutateRow calls = %d, want 1", n)
	}
}

// After NOT_SERVING, a client that finds the tablet at another server in
// METADATA retries there at once, not after a backoff: a move must not look
// longer to the client than it is. The client's backoff here is an hour, so
// a wait would end the call at its deadline instead.
func TestNotServingRetriesAtOnceAfterMove(t *testing.T) {
	e := newTestEnv(t, 3)
	e.addTable("t", 7, []string{"m"}, []int{1, 1})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, e.lockc.Addrs(), WithLogger(slog.New(slog.DiscardHandler)), WithRetryBackoff(time.Hour, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tbl := c.Open("t")
	for _, row := range []string{"a", "x"} {
		m := NewMutation()
		m.Set("cf", "q", 5, []byte("v1"))
		if err := tbl.Apply(ctx, row, m); err != nil {
			t.Fatal(err)
		}
	}
	// Both tablets move; the cached locations are stale for a scan.
	e.move(7, 100, nil, []byte("m"), 1, 2)
	e.move(7, 101, []byte("m"), nil, 1, 0)
	var rows []string
	if err := tbl.ReadRows(ctx, InfiniteRange(""), func(r Row) bool { rows = append(rows, r.Key()); return true }); err != nil {
		t.Fatalf("ReadRows after a move: %v", err)
	}
	if fmt.Sprint(rows) != "[a x]" {
		t.Errorf("ReadRows after a move = %v, want [a x]", rows)
	}
	// And back again, stale for a write with a server timestamp (retried
	// because NOT_SERVING says it was not applied).
	e.move(7, 100, nil, []byte("m"), 2, 1)
	e.move(7, 101, []byte("m"), nil, 0, 1)
	m := NewMutation()
	m.Set("cf", "q", ServerTime, []byte("v2"))
	if err := tbl.Apply(ctx, "x", m); err != nil {
		t.Fatalf("Apply after a move: %v", err)
	}
	if n := e.servers[0].callCount("MutateRow"); n != 1 {
		t.Errorf("server 0 MutateRow calls = %d, want 1 (refused)", n)
	}
}
