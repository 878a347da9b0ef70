package tablet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cellar/dfs"
	"cellar/dfs/memfs"
	"cellar/internal/clock"
	"cellar/internal/keys"
	"cellar/memtable"
)

func openTest(t *testing.T, o *Options) *Tablet {
	t.Helper()
	if o.FS == nil {
		o.FS = memfs.New()
	}
	if o.Dir == "" {
		o.Dir = "t"
	}
	if o.Families == nil {
		o.Families = []FamilyOptions{{Name: "a"}, {Name: "b"}}
	}
	if o.Logger == nil {
		o.Logger = discardLogger()
	}
	tab, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tab.Close() })
	return tab
}

func TestOptionsValidate(t *testing.T) {
	fs := memfs.New()
	ok := Options{FS: fs, Dir: "t", Families: []FamilyOptions{{Name: "a"}}}
	tests := []struct {
		name string
		edit func(*Options)
	}{
		{"no FS", func(o *Options) { o.FS = nil }},
		{"no dir", func(o *Options) { o.Dir = "" }},
		{"bad dir", func(o *Options) { o.Dir = "/abs" }},
		{"no families", func(o *Options) { o.Families = nil }},
		{"bad family", func(o *Options) { o.Families = []FamilyOptions{{Name: "a b"}} }},
		{"duplicate family", func(o *Options) { o.Families = []FamilyOptions{{Name: "a"}, {Name: "a"}} }},
		{"bad gc", func(o *Options) { o.Families = []FamilyOptions{{Name: "a", GC: MaxVersions(0)}} }},
		{"empty range", func(o *Options) { o.StartRow, o.EndRow = []byte("b"), []byte("b") }},
		{"tiny memtable", func(o *Options) { o.MemtableSize = 10 }},
		{"negative limit", func(o *Options) { o.MaxValueSize = -1 }},
		{"trigger 1", func(o *Options) { o.CompactionTrigger = 1 }},
	}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid options: %v", err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := ok
			tc.edit(&o)
			if _, err := Open(context.Background(), &o); !errors.Is(err, ErrInvalidOptions) {
				t.Errorf("Open = %v, want ErrInvalidOptions", err)
			}
		})
	}
}

// TestApplyErrorsApplyNothing: a rejected Apply takes no sequence number and
// leaves no cell, even when its first mutations were valid.
func TestApplyErrorsApplyNothing(t *testing.T) {
	ctx := context.Background()
	tab := openTest(t, &Options{StartRow: []byte("b"), EndRow: []byte("m"), MaxValueSize: 8})
	tests := []struct {
		name string
		row  string
		muts []Mutation
		want error
	}{
		{"below range", "a", []Mutation{SetCell("a", nil, 1, nil)}, ErrRowOutOfRange},
		{"at end", "m", []Mutation{SetCell("a", nil, 1, nil)}, ErrRowOutOfRange},
		{"unknown family after a good cell", "c", []Mutation{SetCell("a", nil, 1, nil), SetCell("z", nil, 1, nil)}, ErrUnknownFamily},
		{"value over the limit", "c", []Mutation{SetCell("a", nil, 1, nil), SetCell("b", nil, 1, make([]byte, 9))}, keys.ErrLimit},
		{"bad durability", "c", nil, keys.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wo := &WriteOptions{}
			if tc.muts == nil {
				wo.Durability = 9
				tc.muts = []Mutation{SetCell("a", nil, 1, nil)}
			}
			if err := tab.Apply(ctx, []byte(tc.row), tc.muts, wo); !errors.Is(err, tc.want) {
				t.Fatalf("Apply = %v, want %v", err, tc.want)
			}
		})
	}
	if seq := tab.LastSeq(); seq != 0 {
		t.Errorf("LastSeq = %d after rejected Applies, want 0", seq)
	}
	if _, err := tab.ReadRow(ctx, []byte("z"), nil); !errors.Is(err, ErrRowOutOfRange) {
		t.Errorf("ReadRow outside the range = %v", err)
	}
	if _, err := tab.ReadRow(ctx, []byte("c"), &ReadOptions{Families: []string{"nope"}}); !errors.Is(err, ErrUnknownFamily) {
		t.Errorf("ReadRow of an unknown family = %v", err)
	}
	n := 0
	tab.Scan(ctx, nil, func(*Row) bool { n++; return true })
	if n != 0 {
		t.Errorf("Scan found %d rows", n)
	}
}

// backwardsClock goes back in time on every call.
type backwardsClock struct {
	clock.Clock
	now atomic.Int64
}

func (c *backwardsClock) Now() time.Time { return time.UnixMicro(c.now.Add(-10)) }

func TestServerTimeMonotonic(t *testing.T) {
	ctx := context.Background()
	clk := &backwardsClock{Clock: clock.Real()}
	clk.now.Store(1_000_000)
	tab := openTest(t, &Options{Clock: clk})
	var last int64
	for i := 0; i < 5; i++ {
		if err := tab.Apply(ctx, []byte("r"), []Mutation{SetCell("a", []byte(fmt.Sprint(i)), ServerTime, nil)}, nil); err != nil {
			t.Fatal(err)
		}
		row, _ := tab.ReadRow(ctx, []byte("r"), nil)
		for _, c := range row.Cells {
			if string(c.Qualifier) == fmt.Sprint(i) {
				if c.Timestamp < last {
					t.Fatalf("server timestamp went back: %d after %d", c.Timestamp, last)
				}
				last = c.Timestamp
			}
		}
	}
}

// TestLaterMutationWins: mutations of one Apply apply in order.
func TestLaterMutationWins(t *testing.T) {
	ctx := context.Background()
	tab := openTest(t, &Options{})
	tests := []struct {
		name string
		muts []Mutation
		want string
	}{
		{"set twice at one timestamp", []Mutation{SetCell("a", nil, 5, []byte("1")), SetCell("a", nil, 5, []byte("2"))}, `a:""@5="2"`},
		{"delete then set", []Mutation{DeleteRow(), SetCell("a", nil, 5, []byte("3"))}, `a:""@5="3"`},
		{"set then delete", []Mutation{SetCell("a", nil, 5, []byte("4")), DeleteFamily("a")}, ``},
		{"set then delete cell", []Mutation{SetCell("a", nil, 6, []byte("5")), DeleteCell("a", nil, 6)}, ``},
		{"old timestamp after column delete", []Mutation{DeleteColumn("a", nil, keys.TimeRange{}), SetCell("a", nil, 1, []byte("6"))}, `a:""@1="6"`},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			row := []byte(fmt.Sprint(i))
			if err := tab.Apply(ctx, row, tc.muts, nil); err != nil {
				t.Fatal(err)
			}
			got, err := tab.ReadRow(ctx, row, nil)
			if err != nil {
				t.Fatal(err)
			}
			s := ""
			if got != nil {
				s = strings.TrimSuffix(strings.TrimPrefix(fmtRow(got), fmt.Sprintf("%q{", row)), "}")
			}
			if s != tc.want {
				t.Errorf("row = %s, want %s", s, tc.want)
			}
		})
	}
}

// blockingFS holds every SSTable Create until release is closed.
type blockingFS struct {
	dfs.FS
	release chan struct{}
}

func (b *blockingFS) Create(ctx context.Context, name string) (dfs.File, error) {
	if strings.Contains(name, "/sst/") {
		select {
		case <-b.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return b.FS.Create(ctx, name)
}

// TestWriteStall: with the flusher stuck, writes fill the memtable and the
// allowed immutable ones, then stall (WriteStallBegin), honour their ctx,
// and go on once flushes complete (WriteStallEnd).
func TestWriteStall(t *testing.T) {
	ctx := context.Background()
	bfs := &blockingFS{FS: memfs.New(), release: make(chan struct{})}
	stalled := make(chan struct{}, 100)
	var ended atomic.Int32
	// The first stall cancels the Apply that met it.
	var cancelStalled atomic.Pointer[context.CancelFunc]
	tab := openTest(t, &Options{FS: bfs, MemtableSize: 4 << 10, MaxImmutableMemtables: 1, Events: EventListener{
		WriteStallBegin: func() {
			if c := cancelStalled.Swap(nil); c != nil {
				(*c)()
			}
			stalled <- struct{}{}
		},
		WriteStallEnd: func() { ended.Add(1) },
	}})
	val := make([]byte, 300)
	var i int
	for ; ; i++ {
		cctx, cancel := context.WithCancel(ctx)
		cancelStalled.Store(&cancel)
		err := tab.Apply(cctx, []byte(fmt.Sprintf("r%04d", i)), []Mutation{SetCell("a", nil, 1, val)}, nil)
		cancel()
		if errors.Is(err, context.Canceled) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if i > 1000 {
			t.Fatal("no write stall with the flusher blocked")
		}
	}
	<-stalled
	if st := tab.Stats(); st.ImmutableMemtables != 1 || st.WriteStalls == 0 {
		t.Fatalf("stats during the stall: %+v", st)
	}
	if row, _ := tab.ReadRow(ctx, []byte(fmt.Sprintf("r%04d", i)), nil); row != nil {
		t.Fatalf("the Apply that gave up in a stall was applied: %s", fmtRow(row))
	}
	// A stalled writer goes on when the flush completes.
	done := make(chan error, 1)
	go func() { done <- tab.Apply(ctx, []byte("last"), []Mutation{SetCell("a", nil, 1, val)}, nil) }()
	<-stalled
	close(bfs.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if ended.Load() < 2 {
		t.Errorf("WriteStallEnd fired %d times, want 2", ended.Load())
	}
	if err := tab.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	n := 0
	tab.Scan(ctx, nil, func(*Row) bool { n++; return true })
	if n != i+1 {
		t.Errorf("%d rows after the stall, want %d", n, i+1)
	}
}

// TestReadsAreAtomic: concurrent readers never see part of a row mutation,
// across memtable rotations, flushes and compactions running at the same
// time.
func TestReadsAreAtomic(t *testing.T) {
	ctx := context.Background()
	tab := openTest(t, &Options{MemtableSize: 16 << 10, CompactionTrigger: 2})
	const writers, rows = 3, 5
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 300; n++ {
				row := []byte(fmt.Sprint(n % rows))
				v := []byte(fmt.Sprintf("%d-%d", w, n))
				muts := []Mutation{SetCell("a", []byte("x"), ServerTime, v), SetCell("a", []byte("y"), ServerTime, v), SetCell("b", nil, ServerTime, v)}
				if err := tab.Apply(ctx, row, muts, &WriteOptions{Durability: Async}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	check := func(r *Row) error {
		if r == nil {
			return nil
		}
		if len(r.Cells) != 3 {
			return fmt.Errorf("torn read %s", fmtRow(r))
		}
		for _, c := range r.Cells {
			if !bytes.Equal(c.Value, r.Cells[0].Value) {
				return fmt.Errorf("torn read %s", fmtRow(r))
			}
		}
		return nil
	}
	var rg sync.WaitGroup
	rg.Add(2)
	go func() { // flushes and compactions racing with the writers and readers
		defer rg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			var err error
			switch i % 3 {
			case 0:
				err = tab.Flush(ctx)
			case 1:
				err = tab.Compact(ctx, false)
			case 2:
				err = tab.Compact(ctx, true)
			}
			if err != nil {
				errs <- err
				return
			}
		}
	}()
	go func() {
		defer rg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for r := 0; r < rows; r++ {
				row, err := tab.ReadRow(ctx, []byte(fmt.Sprint(r)), &ReadOptions{MaxVersions: 1})
				if err == nil {
					err = check(row)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			err := tab.Scan(ctx, &ScanOptions{Read: ReadOptions{MaxVersions: 1}}, func(r *Row) bool {
				if err := check(r); err != nil {
					errs <- err
					return false
				}
				return true
			})
			if err != nil {
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(stop)
	rg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if st := tab.Stats(); st.Flushes == 0 {
		t.Errorf("no flush happened (%+v): the test did not cross memtables", st)
	}
}

// TestSplitSharesFiles: daughters read the parent's files and never delete
// them (also after compactions and reopens), whether both daughters get new
// directories or the right one keeps the parent's; the parent cannot be
// reopened.
func TestSplitSharesFiles(t *testing.T) {
	for _, inPlace := range []bool{false, true} {
		t.Run(fmt.Sprintf("inPlace=%v", inPlace), func(t *testing.T) { testSplit(t, inPlace) })
	}
}

func testSplit(t *testing.T, inPlace bool) {
	ctx := context.Background()
	fs := memfs.New()
	o := &Options{FS: fs, Dir: "p", MemtableSize: 8 << 10}
	tab := openTest(t, o)
	for i := 0; i < 100; i++ {
		row := []byte(fmt.Sprintf("r%03d", i))
		if err := tab.Apply(ctx, row, []Mutation{SetCell("a", nil, 1, row), SetCell("b", nil, 1, row)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := tab.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	at, err := tab.SplitKey()
	if err != nil {
		t.Fatal(err)
	}
	if string(at) <= "r000" || string(at) > "r099" {
		t.Fatalf("SplitKey = %q", at)
	}
	leftRows := int(at[2]-'0')*10 + int(at[3]-'0')
	parentFiles := tab.LiveFiles()
	if _, _, err := tab.Split(ctx, []byte("r050"), "q", "q"); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("Split into one dir twice = %v", err)
	}
	rightDir := "r"
	if inPlace {
		rightDir = "p"
	}
	lo, ro, err := tab.Split(ctx, at, "l", rightDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := tab.Apply(ctx, []byte("r001"), []Mutation{SetCell("a", nil, 1, nil)}, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Apply on a split parent = %v, want ErrClosed", err)
	}
	want := ErrSplit
	if inPlace {
		want = ErrInvalidOptions
	}
	if _, err := Open(ctx, o); !errors.Is(err, want) {
		t.Fatalf("reopen of a split parent = %v, want %v", err, want)
	}
	// Each daughter in turn: compact everything into its own tables, close,
	// reopen (orphan cleanup), and check its rows.
	for round := 0; round < 2; round++ {
		for _, d := range []*Options{ro, lo} {
			dt, err := Open(ctx, d)
			if err != nil {
				t.Fatal(err)
			}
			if err := dt.Apply(ctx, at, nil, nil); d == lo && !errors.Is(err, ErrRowOutOfRange) {
				t.Errorf("left daughter accepts the split row: %v", err)
			}
			if round == 0 && fmt.Sprint(dt.LiveFiles()) != fmt.Sprint(parentFiles) {
				t.Errorf("daughter lists %v, want the parent's %v", dt.LiveFiles(), parentFiles)
			}
			if err := dt.Compact(ctx, true); err != nil {
				t.Fatal(err)
			}
			n := 0
			err = dt.Scan(ctx, nil, func(r *Row) bool {
				n++
				if (string(r.Key) < string(at)) != (d == lo) {
					t.Errorf("daughter [%q, %q) returned row %q", d.StartRow, d.EndRow, r.Key)
				}
				return true
			})
			if err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{true: leftRows, false: 100 - leftRows}[d == lo]; n != want {
				t.Errorf("daughter [%q, %q) has %d rows, want %d", d.StartRow, d.EndRow, n, want)
			}
			for _, f := range dt.LiveFiles() {
				if slices.Contains(parentFiles, f) {
					t.Errorf("after a major compaction the daughter still lists the parent's %s", f)
				}
			}
			if err := dt.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, f := range parentFiles {
		if _, err := fs.Stat(ctx, f); err != nil {
			t.Errorf("parent file %s: %v (a daughter deleted a shared file)", f, err)
		}
	}
}

// TestOpenDeletesOrphans: an SSTable no manifest lists (a crash between
// writing a table and installing it) is deleted by Open.
func TestOpenDeletesOrphans(t *testing.T) {
	ctx := context.Background()
	fs := memfs.New()
	f, _ := fs.Create(ctx, "t/sst/000099.sst")
	f.Write([]byte("half a table"))
	f.Close()
	tab := openTest(t, &Options{FS: fs})
	if err := tab.Apply(ctx, []byte("r"), []Mutation{SetCell("a", nil, 1, []byte("v"))}, nil); err != nil {
		t.Fatal(err)
	}
	if err := tab.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Stat(ctx, "t/sst/000099.sst"); !errors.Is(err, dfs.ErrNotFound) {
		t.Fatalf("orphan table still there: %v", err)
	}
	if got := tab.LiveFiles(); len(got) != 1 {
		t.Fatalf("LiveFiles = %v", got)
	}
}

// TestSkipLogAndLogRelease: SkipLog writes survive a reopen only once
// flushed; a flush releases the tablet's own log files.
func TestSkipLogAndLogRelease(t *testing.T) {
	ctx := context.Background()
	fs := memfs.New()
	o := &Options{FS: fs}
	tab := openTest(t, o)
	skip := &WriteOptions{Durability: SkipLog}
	tab.Apply(ctx, []byte("lost"), []Mutation{SetCell("a", nil, 1, nil)}, skip)
	tab.Apply(ctx, []byte("logged"), []Mutation{SetCell("a", nil, 1, nil)}, nil)
	tab.Close()
	tab = openTest(t, o)
	if r, _ := tab.ReadRow(ctx, []byte("lost"), nil); r != nil {
		t.Errorf("an unflushed SkipLog write survived a reopen")
	}
	if r, _ := tab.ReadRow(ctx, []byte("logged"), nil); r == nil {
		t.Errorf("a logged write was lost")
	}
	tab.Apply(ctx, []byte("kept"), []Mutation{SetCell("a", nil, 1, nil)}, skip)
	if err := tab.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	logs, _ := fs.List(ctx, "t/log")
	tab.Close()
	if len(logs) != 1 {
		t.Errorf("log dir holds %d files after a flush, want only the live one", len(logs))
	}
	tab = openTest(t, o)
	for _, r := range []string{"logged", "kept"} {
		if row, _ := tab.ReadRow(ctx, []byte(r), nil); row == nil {
			t.Errorf("row %s lost", r)
		}
	}
}

// TestEventsAndStats: flushes and compactions report through the event
// listener and Stats.
func TestEventsAndStats(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	var flushes []FlushInfo
	var comps []CompactionInfo
	tab := openTest(t, &Options{CompactionTrigger: 2, Events: EventListener{
		FlushEnd:      func(fi FlushInfo) { mu.Lock(); flushes = append(flushes, fi); mu.Unlock() },
		CompactionEnd: func(ci CompactionInfo) { mu.Lock(); comps = append(comps, ci); mu.Unlock() },
	}})
	for i := 0; i < 3; i++ {
		if err := tab.Apply(ctx, []byte(fmt.Sprint(i)), []Mutation{SetCell("a", nil, 1, nil), SetCell("b", nil, 1, nil)}, nil); err != nil {
			t.Fatalf("apply %d: %v", i, err)
		}
		if err := tab.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := tab.Compact(ctx, true); err != nil {
		t.Fatal(err)
	}
	// Stats cover every flush and compaction that has returned.
	st := tab.Stats()
	if st.Flushes != 3 || st.FlushedSeq != 6 || st.LastSeq != 6 || st.Families[0].Files != 1 || st.Families[0].Entries != 3 {
		t.Errorf("stats %+v", st)
	}
	// Events are delivered by the background goroutines, possibly after
	// the call they report has returned; Close waits for those goroutines.
	if err := tab.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(flushes) != 3 || len(flushes[0].Files) != 2 || flushes[2].Seq != 6 {
		t.Errorf("flush events %+v", flushes)
	}
	majors := 0
	for _, c := range comps {
		if c.Err != nil {
			t.Errorf("compaction failed: %v", c.Err)
		}
		if c.Major {
			majors++
		}
	}
	if majors != 2 {
		t.Errorf("%d major compaction events, want one per family", majors)
	}
}

// TestObsoleteTablesOutliveReaders: a compaction deletes the tables it
// replaced, but only once no read holds them.
func TestObsoleteTablesOutliveReaders(t *testing.T) {
	ctx := context.Background()
	fs := memfs.New()
	tab := openTest(t, &Options{FS: fs, CompactionTrigger: 100})
	for f := 0; f < 3; f++ {
		for i := 0; i < 10; i++ {
			row := []byte(fmt.Sprintf("r%d%02d", f, i))
			if err := tab.Apply(ctx, row, []Mutation{SetCell("a", nil, 1, row)}, nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := tab.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	old := tab.LiveFiles()
	exist := func(paths []string) int {
		n := 0
		for _, p := range paths {
			if _, err := fs.Stat(ctx, p); err == nil {
				n++
			}
		}
		return n
	}
	rows := 0
	err := tab.Scan(ctx, nil, func(r *Row) bool {
		if rows == 0 {
			if err := tab.Compact(ctx, true); err != nil {
				t.Fatal(err)
			}
			if n := exist(old); n != len(old) {
				t.Errorf("%d of %d replaced tables deleted while a scan reads them", len(old)-n, len(old))
			}
		}
		rows++
		return true
	})
	if err != nil || rows != 30 {
		t.Fatalf("Scan across a compaction: %d rows, %v", rows, err)
	}
	if n := exist(old); n != 0 {
		t.Errorf("%d replaced tables left after the last reader finished", n)
	}
	if got := tab.LiveFiles(); len(got) != 1 {
		t.Errorf("LiveFiles = %v, want one table", got)
	}
}

// TestCloseReleasesStalledWriters: Close ends a write stall (the writer
// gets ErrClosed) and stops the background work.
func TestCloseReleasesStalledWriters(t *testing.T) {
	ctx := context.Background()
	bfs := &blockingFS{FS: memfs.New(), release: make(chan struct{})}
	stalled := make(chan struct{}, 10)
	o := &Options{FS: bfs, Dir: "t", Families: []FamilyOptions{{Name: "a"}}, MemtableSize: 4 << 10,
		MaxImmutableMemtables: 1, Logger: discardLogger(), Events: EventListener{WriteStallBegin: func() { stalled <- struct{}{} }}}
	tab, err := Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			if err := tab.Apply(ctx, []byte(fmt.Sprint(i)), []Mutation{SetCell("a", nil, 1, make([]byte, 300))}, nil); err != nil {
				done <- err
				return
			}
		}
	}()
	<-stalled
	tab.Close() // the flusher's blocked Create gives up with its ctx
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("stalled Apply after Close = %v, want ErrClosed", err)
	}
	if _, err := tab.ReadRow(ctx, []byte("0"), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("ReadRow after Close = %v, want ErrClosed", err)
	}
	close(bfs.release)
	// Everything acknowledged is in the log: a reopen finds it.
	tab, err = Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer tab.Close()
	if r, _ := tab.ReadRow(ctx, []byte("0"), nil); r == nil {
		t.Fatal("row 0 lost")
	}
}

// TestMemtableRecycledOnlyWhenUnread: a flushed memtable's arena goes back
// to the pool only once no read holds it. A scan that started before a
// flush keeps reading the old memtable while new writes fill another.
func TestMemtableRecycledOnlyWhenUnread(t *testing.T) {
	ctx := context.Background()
	pool := memtable.NewPool(2)
	tab := openTest(t, &Options{MemtableSize: 256 << 10, MemtablePool: pool})
	put := func(row, val string) {
		t.Helper()
		if err := tab.Apply(ctx, []byte(row), []Mutation{SetCell("a", nil, 1, []byte(val))}, nil); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 100; i++ {
		put(fmt.Sprintf("r%03d", i), fmt.Sprintf("first-%03d", i))
	}
	rows := 0
	err := tab.Scan(ctx, nil, func(r *Row) bool {
		if rows == 0 {
			if err := tab.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if n := pool.Idle(); n != 0 {
				t.Errorf("%d memtables pooled while a scan reads the flushed one", n)
			}
			// Fill new memtables (taking from the pool, were the old one
			// there) with other values under later rows.
			for i := 0; i < 600; i++ {
				put(fmt.Sprintf("s%03d", i), fmt.Sprintf("second-%03d-%s", i, strings.Repeat("x", 900)))
			}
		}
		if want := fmt.Sprintf("r%03d", rows); string(r.Key) != want && rows < 100 {
			t.Errorf("scan row %d is %q, want %q", rows, r.Key, want)
		} else if rows < 100 && string(r.Cells[0].Value) != fmt.Sprintf("first-%03d", rows) {
			t.Errorf("row %q reads %q, want %q", r.Key, r.Cells[0].Value, fmt.Sprintf("first-%03d", rows))
		}
		rows++
		return rows < 100
	})
	if err != nil {
		t.Fatal(err)
	}
	if rows != 100 {
		t.Fatalf("scan saw %d rows, want 100", rows)
	}
	if n := pool.Idle(); n == 0 {
		t.Errorf("no memtable pooled after the scan ended")
	}
	// The recycled arena serves new writes correctly.
	if err := tab.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	put("t000", "third")
	row, err := tab.ReadRow(ctx, []byte("t000"), nil)
	if err != nil || row == nil || string(row.Cells[0].Value) != "third" {
		t.Fatalf("ReadRow(t000) = %+v, %v", row, err)
	}
	for i := 0; i < 100; i++ {
		row, err := tab.ReadRow(ctx, []byte(fmt.Sprintf("r%03d", i)), nil)
		if err != nil || row == nil || string(row.Cells[0].Value) != fmt.Sprintf("first-%03d", i) {
			t.Fatalf("ReadRow(r%03d) = %+v, %v", i, row, err)
		}
	}
}

// TestCloseDuringCompact: Close while an explicit major compaction runs
// (a tablet server compacts split daughters in the background and may
// unload them meanwhile). The compaction stops or finishes before Close
// returns; no manifest is written after it; nothing panics.
func TestCloseDuringCompact(t *testing.T) {
	ctx := context.Background()
	for round := 0; round < 20; round++ {
		fs := memfs.New()
		tab := openTest(t, &Options{FS: fs, MemtableSize: 64 << 10, CompactionTrigger: 100})
		val := []byte(strings.Repeat("v", 200))
		for f := 0; f < 4; f++ {
			for i := 0; i < 200; i++ {
				if err := tab.Apply(ctx, []byte(fmt.Sprintf("r%04d", i)), []Mutation{SetCell("a", nil, int64(f+1), val)}, nil); err != nil {
					t.Fatal(err)
				}
			}
			if err := tab.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
		done := make(chan error, 1)
		go func() { done <- tab.Compact(ctx, true) }()
		if round%2 == 1 {
			time.Sleep(time.Duration(round) * 100 * time.Microsecond)
		}
		if err := tab.Close(); err != nil {
			t.Fatalf("round %d: Close: %v", round, err)
		}
		after, err := readManifest(ctx, fs, "t")
		if err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, context.Canceled) {
			t.Fatalf("round %d: Compact = %v, want nil, ErrClosed or canceled", round, err)
		}
		later, err := readManifest(ctx, fs, "t")
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(after) != fmt.Sprint(later) {
			t.Fatalf("round %d: the manifest changed after Close returned", round)
		}
	}
}

// fixedClock always says the same time.
type fixedClock struct {
	clock.Clock
	now time.Time
}

func (c fixedClock) Now() time.Time { return c.now }

// TestServerTimeMonotonicAcrossReopen: a tablet reopened (moved) on a
// server whose clock is behind the last one's continues its server
// timestamps from the newest in its files, so an overwrite still reads as
// the latest value; a replayed (unflushed) write counts too. A timestamp
// more than MaxServerTimestampLead ahead of the clock does not drag server
// time along.
func TestServerTimeMonotonicAcrossReopen(t *testing.T) {
	ctx := context.Background()
	fs := memfs.New()
	t0 := time.Unix(1_000_000, 0)
	set := func(tab *Tablet, q, v string) {
		t.Helper()
		if err := tab.Apply(ctx, []byte("r"), []Mutation{SetCell("a", []byte(q), ServerTime, []byte(v))}, nil); err != nil {
			t.Fatal(err)
		}
	}
	get := func(tab *Tablet, q string) Cell {
		t.Helper()
		row, err := tab.ReadRow(ctx, []byte("r"), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range row.Cells {
			if string(c.Qualifier) == q {
				return c // newest version first
			}
		}
		t.Fatalf("no cell a:%s", q)
		return Cell{}
	}
	open := func(now time.Time) *Tablet {
		tab, err := Open(ctx, &Options{FS: fs, Dir: "t", Families: []FamilyOptions{{Name: "a"}}, Logger: discardLogger(), Clock: fixedClock{clock.Real(), now}})
		if err != nil {
			t.Fatal(err)
		}
		return tab
	}
	a := open(t0)
	set(a, "q", "old")
	if err := a.Close(); err != nil { // unflushed: replayed from the log
		t.Fatal(err)
	}
	b := open(t0.Add(-5 * time.Second)) // this server's clock is 5 s behind
	set(b, "q", "new")
	if c := get(b, "q"); string(c.Value) != "new" || c.Timestamp < t0.UnixMicro() {
		t.Fatalf("after the move: a:q = %q@%d, want \"new\" at or after %d", c.Value, c.Timestamp, t0.UnixMicro())
	}
	// A far-future explicit timestamp stays the writer's business.
	future := t0.Add(time.Hour).UnixMicro()
	if err := b.Apply(ctx, []byte("r"), []Mutation{SetCell("a", []byte("f"), future, []byte("x"))}, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	b.Close()
	c := open(t0)
	defer c.Close()
	set(c, "s", "v")
	if ts := get(c, "s").Timestamp; ts >= future || ts < t0.UnixMicro() {
		t.Fatalf("server timestamp %d after reopening with a cell at %d: want the clock's time, not the far-future one", ts, future)
	}
}
