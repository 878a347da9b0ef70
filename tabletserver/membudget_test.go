package tabletserver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"cellar/dfs"
	"cellar/internal/metadata"
	"cellar/internal/serr"
	"cellar/lock"
	datapb "cellar/proto/cellar/data/v1"
	tabletpb "cellar/proto/cellar/tablet/v1"
)

// sstGateFS holds the creation of SSTables (flush and compaction outputs)
// while closed is false.
type sstGateFS struct {
	dfs.FS
	mu      sync.Mutex
	open    bool
	opened  chan struct{}
	waiting int
}

func newSSTGateFS(fs dfs.FS) *sstGateFS {
	return &sstGateFS{FS: fs, open: true, opened: make(chan struct{})}
}

func (g *sstGateFS) set(open bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if open && !g.open {
		close(g.opened)
		g.opened = make(chan struct{})
	}
	g.open = open
}

func (g *sstGateFS) blocked() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.waiting
}

func (g *sstGateFS) Create(ctx context.Context, name string) (dfs.File, error) {
	if strings.HasSuffix(name, ".sst") {
		g.mu.Lock()
		if !g.open {
			g.waiting++
			ch := g.opened
			g.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
			}
			g.mu.Lock()
			g.waiting--
		}
		g.mu.Unlock()
	}
	return g.FS.Create(ctx, name)
}

// fill writes n rows of a 1000-byte value with row keys prefix+i.
func fill(t *testing.T, ctx context.Context, ts *tserver, prefix string, n int) {
	t.Helper()
	val := strings.Repeat("v", 1000)
	for i := range n {
		if err := ts.mutate(ctx, fmt.Sprintf("%s%05d", prefix, i), set("cf", "q", 1, val)); err != nil {
			t.Fatalf("write %s%05d: %v", prefix, i, err)
		}
	}
}

func (ts *tserver) flushes(t *testing.T, tablet uint64) uint64 {
	t.Helper()
	e := ts.s.entryByID(tablet)
	if e == nil {
		t.Fatalf("tablet %d not served", tablet)
	}
	return e.t.Stats().Flushes
}

func (s *Server) entryByID(id uint64) *entry {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.mu.byID[id]
}

// The budget flushes the largest memtables first, and only as many as it
// takes to get well under it; no row is lost.
func TestMemtableBudget_FlushesLargestFirst(t *testing.T) {
	e := newEnv(t)
	ts := e.startServer(lock.ClientOptions{}, func(o *Options) {
		o.MemtableSize = 16 << 20 // the tablets' own bound is far away
		o.MemtableBudget = 1 << 20
	})
	a, b, c, d := e.newTablet("", "b"), e.newTablet("b", "c"), e.newTablet("c", "d"), e.newTablet("d", "")
	for _, desc := range []*datapb.TabletDescriptor{a, b, c, d} {
		e.load(ts, desc)
	}
	// 600, 250 and 100 rows of ~1 KB: the sum crosses 90% of the budget
	// while c is written, when a holds more than half of it.
	fill(t, e.ctx, ts, "a", 600)
	fill(t, e.ctx, ts, "b", 250)
	fill(t, e.ctx, ts, "c", 100)
	e.eventually("the budget flush of the largest tablet", func() bool { return ts.flushes(t, a.TabletId) >= 1 })
	e.eventually("memtables back under the flush mark", func() bool {
		st, err := ts.cl.ServerStatus(e.ctx, &tabletpb.ServerStatusRequest{})
		return err == nil && float64(st.MemtableBytes) < memFlushMark*float64(st.MemtableBudget) && st.BudgetFlushes >= 1
	})
	for _, x := range []*datapb.TabletDescriptor{b, c, d} {
		if n := ts.flushes(t, x.TabletId); n != 0 {
			t.Errorf("tablet [%q, %q) flushed %d times; only the largest (a) should have been", x.StartRow, x.EndRow, n)
		}
	}
	for prefix, n := range map[string]int{"a": 600, "b": 250, "c": 100} {
		rows, _, err := ts.read(e.ctx, &tabletpb.ReadRowsRequest{Rows: rangeSet(prefix, prefix+"~")})
		if err != nil || len(rows) != n {
			t.Fatalf("rows %s*: %d, %v; want %d", prefix, len(rows), err, n)
		}
	}
}

// While flushes cannot free memory, writes to user tables are held back
// at the budget and fail with ErrOverloaded at their deadline, applied
// nowhere; METADATA writes still go through; once flushes work again the
// held writes proceed.
func TestMemtableBudget_HoldsWritesBackUntilFlushesFree(t *testing.T) {
	e := newEnv(t)
	gate := newSSTGateFS(e.fs)
	ts := e.startServer(lock.ClientOptions{}, func(o *Options) {
		o.FS = gate
		o.MemtableSize = 16 << 20
		o.MemtableBudget = 512 << 10
	})
	// Runs before the server's Close (cleanups run last first), whose
	// flushes would wait on a closed gate.
	t.Cleanup(func() { gate.set(true) })
	user := e.newTablet("", "")
	e.load(ts, user)
	meta := metadata.MetaTablet()
	if _, err := ts.cl.LoadTablet(e.ctx, &tabletpb.LoadTabletRequest{Master: e.seq, Tablet: meta, Schema: metadata.Schema()}); err != nil {
		t.Fatal(err)
	}
	gate.set(false)
	val := strings.Repeat("v", 1000)
	var overloaded error
	i := 0
	for ; i < 3000 && overloaded == nil; i++ {
		ctx, cancel := context.WithTimeout(e.ctx, 300*time.Millisecond)
		overloaded = ts.mutate(ctx, fmt.Sprintf("r%05d", i), set("cf", "q", 1, val))
		cancel()
	}
	if !errors.Is(overloaded, serr.ErrOverloaded) {
		t.Fatalf("write %d with flushes blocked: %v; want ErrOverloaded once the budget is reached", i, overloaded)
	}
	held := fmt.Sprintf("r%05d", i-1)
	st, err := ts.cl.ServerStatus(e.ctx, &tabletpb.ServerStatusRequest{})
	if err != nil || st.MemtableBytes < st.MemtableBudget || st.WritesHeldBack == 0 || gate.blocked() == 0 {
		t.Fatalf("status %+v (%v), flushes waiting %d: want the budget reached, writes held back, a flush blocked", st, err, gate.blocked())
	}
	// METADATA is not held back.
	mctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
	_, err = ts.cl.MutateRow(mctx, &tabletpb.MutateRowRequest{TableId: metadata.TableID, RowKey: metadata.RowKey(testTable, []byte("x")),
		Mutations: []*datapb.Mutation{set(metadata.Family, "q", metadata.CellTimestamp, "m")}})
	cancel()
	if err != nil {
		t.Fatalf("METADATA write while user writes are held back: %v", err)
	}
	// A write waiting when flushes resume goes through.
	waiting := make(chan error, 1)
	go func() { waiting <- ts.mutate(e.ctx, "waiter", set("cf", "q", 1, val)) }()
	e.eventually("the write to be held back", func() bool { return ts.s.memStalls.Load() >= 2 })
	gate.set(true)
	if err := <-waiting; err != nil {
		t.Fatalf("held write after flushes resumed: %v", err)
	}
	rows, _, err := ts.read(e.ctx, &tabletpb.ReadRowsRequest{Rows: rangeSet("", "")})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, r := range rows {
		got[string(r.Key)] = true
	}
	if got[held] {
		t.Errorf("row %s, refused with ErrOverloaded, was applied", held)
	}
	if !got["waiter"] || len(got) != i {
		t.Errorf("%d rows, waiter %v; want the %d acknowledged rows and the waiter", len(got), got["waiter"], i-1)
	}
	e.eventually("memtables back under the budget", func() bool {
		return float64(ts.s.memBytes.Load()) < memFlushMark*float64(ts.s.opts.MemtableBudget) && !ts.s.mem.over.Load()
	})
}
