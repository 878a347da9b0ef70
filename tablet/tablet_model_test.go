package tablet

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"

	"cellar/dfs"
	"cellar/dfs/local"
	"cellar/dfs/memfs"
	"cellar/internal/clock"
	"cellar/internal/keys"
	"cellar/sstable"
)

var (
	flagSeed  = flag.Uint64("tablet.seed", 0, "replay the model-based test with this seed (also env CELLAR_TABLET_SEED)")
	flagSeeds = flag.Int("tablet.seeds", 0, "number of seeds of the model-based test (0 = default)")
)

func TestMain(m *testing.M) {
	if os.Getenv(crashChildEnv) != "" {
		crashChild()
		return
	}
	goleak.VerifyTestMain(m)
}

var traceLen = func() int {
	if v, err := strconv.Atoi(os.Getenv("CELLAR_TABLET_TRACE")); err == nil {
		return v
	}
	return 15
}()

const modelBase int64 = 1_700_000_000_000_000 // µs

func modelFamilies() []FamilyOptions {
	return []FamilyOptions{
		{Name: "a"},
		{Name: "b", GC: MaxVersions(2)},
		{Name: "c", GC: Union(MaxVersions(3), MaxAge(400*time.Microsecond))},
		{Name: "d", GC: Intersection(MaxVersions(1), MaxAge(200*time.Microsecond))},
	}
}

// modelSeeds returns the seeds to run: the replay seed if given, else n
// seeds derived from the time (printed).
func modelSeeds(t *testing.T, n int) []uint64 {
	if *flagSeed != 0 {
		return []uint64{*flagSeed}
	}
	if s := os.Getenv("CELLAR_TABLET_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CELLAR_TABLET_SEED=%q: %v", s, err)
		}
		return []uint64{v}
	}
	if *flagSeeds > 0 {
		n = *flagSeeds
	}
	base := uint64(time.Now().UnixNano())
	out := make([]uint64, n)
	for i := range out {
		out[i] = base + uint64(i)*0x9E3779B97F4A7C15
	}
	return out
}

// TestModel runs random operations against a tablet on memfs and against
// the in-memory model, comparing every read. Replay a failure with
// -tablet.seed=N.
func TestModel(t *testing.T) {
	for _, seed := range modelSeeds(t, 60) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			runModel(t, seed, memfs.New(), 600)
		})
	}
}

// TestModelLocal is a smaller run of the model-based test on dfs/local.
func TestModelLocal(t *testing.T) {
	for _, seed := range modelSeeds(t, 5) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			fs, err := local.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			runModel(t, seed, fs, 300)
		})
	}
}

type modelRun struct {
	t     *testing.T
	seed  uint64
	rng   *rand.Rand
	fs    dfs.FS
	clk   *clock.Fake
	opts  *Options
	tab   *Tablet
	m     *model
	dirs  int
	base  string // directory of the tablets' directories
	trace []string
}

func (r *modelRun) fatalf(format string, args ...any) {
	r.t.Helper()
	n := len(r.trace)
	from := max(0, n-traceLen)
	for i := from; i < n; i++ {
		r.t.Logf("op %d: %s", i, r.trace[i])
	}
	r.t.Fatalf("seed %d (replay with -tablet.seed=%d): %s", r.seed, r.seed, fmt.Sprintf(format, args...))
}

func runModel(t *testing.T, seed uint64, fs dfs.FS, ops int) { runModelIn(t, seed, fs, "t", ops) }

// runModelIn runs the model-based test with the tablets' directories under
// base.
func runModelIn(t *testing.T, seed uint64, fs dfs.FS, base string, ops int) {
	ctx := context.Background()
	t.Logf("seed %d", seed)
	r := &modelRun{t: t, seed: seed, rng: rand.New(rand.NewPCG(seed, seed^0xC0FFEE)), fs: fs, base: base}
	r.clk = clock.NewFake(time.UnixMicro(modelBase))
	r.opts = &Options{
		FS: fs, Dir: base + "/0", ID: 1, Families: modelFamilies(),
		MemtableSize:          int64(6000 + r.rng.IntN(10000)),
		MaxImmutableMemtables: 1 + r.rng.IntN(2),
		CompactionTrigger:     2 + r.rng.IntN(3),
		Clock:                 r.clk,
		Logger:                discardLogger(),
	}
	if seed%2 == 0 {
		// A block cache much smaller than the data: reads both hit and
		// miss it, and scans with NoCacheFill read past it.
		r.opts.Cache = sstable.NewCache(32 << 10)
	}
	r.m = newModel(r.opts.Families)
	var err error
	if r.tab, err = Open(ctx, r.opts); err != nil {
		t.Fatal(err)
	}
	defer func() { r.tab.Close() }()
	for i := 0; i < ops; i++ {
		r.step(ctx)
	}
	r.checkAll(ctx, r.tab, r.m)
	st := r.tab.Stats()
	t.Logf("end: range [%q, %q) seq %d flushed %d rows %d; since the last open: flushes %d compactions %d stalls %d; families %+v",
		r.opts.StartRow, r.opts.EndRow, st.LastSeq, st.FlushedSeq, len(r.m.rows), st.Flushes, st.Compactions, st.WriteStalls, st.Families)
}

var modelRows = []string{"a", "b", "b\x00", "c\x00\x01", "d", "e", "f", "g\xff", "h", "i", "j", "k", "l\x00", "m", "n", "o"}

// rowsIn counts the model's row keys in [start, end).
func rowsIn(start, end []byte) int {
	n := 0
	for _, k := range modelRows {
		if (start == nil || k >= string(start)) && (end == nil || k < string(end)) {
			n++
		}
	}
	return n
}

func (r *modelRun) rowKey() []byte {
	return []byte(modelRows[r.rng.IntN(len(modelRows))])
}

func (r *modelRun) inRange(row []byte) bool {
	return (r.opts.StartRow == nil || string(row) >= string(r.opts.StartRow)) &&
		(r.opts.EndRow == nil || string(row) < string(r.opts.EndRow))
}

func (r *modelRun) family() string { return []string{"a", "b", "c", "d"}[r.rng.IntN(4)] }

func (r *modelRun) qual() []byte {
	return [][]byte{nil, []byte("x"), []byte("y\x00"), []byte("zz")}[r.rng.IntN(4)]
}

func (r *modelRun) ts() int64 {
	if r.rng.IntN(3) == 0 {
		return ServerTime
	}
	return r.clk.Now().UnixMicro() - int64(r.rng.IntN(600))
}

func (r *modelRun) mutation() Mutation {
	switch n := r.rng.IntN(20); {
	case n < 12:
		v := make([]byte, r.rng.IntN(24))
		for i := range v {
			v[i] = byte('a' + r.rng.IntN(26))
		}
		return SetCell(r.family(), r.qual(), r.ts(), v)
	case n < 15:
		ts := r.ts()
		if ts == ServerTime {
			ts = r.clk.Now().UnixMicro()
		}
		return DeleteCell(r.family(), r.qual(), ts)
	case n < 17:
		now := r.clk.Now().UnixMicro()
		start := now - int64(r.rng.IntN(700))
		end := int64(0)
		if r.rng.IntN(2) == 0 {
			end = start + 1 + int64(r.rng.IntN(300))
		}
		return DeleteColumn(r.family(), r.qual(), keys.TimeRange{Start: start, End: end})
	case n < 19:
		return DeleteFamily(r.family())
	}
	return DeleteRow()
}

func (r *modelRun) readOptions() ReadOptions {
	var ro ReadOptions
	if r.rng.IntN(3) == 0 {
		ro.Families = []string{r.family()}
	}
	if r.rng.IntN(4) == 0 {
		ro.Columns = []Column{{Family: r.family(), Qualifier: r.qual()}}
	}
	if r.rng.IntN(4) == 0 {
		now := r.clk.Now().UnixMicro()
		ro.TimeRange = keys.TimeRange{Start: now - int64(r.rng.IntN(600))}
		if r.rng.IntN(2) == 0 {
			ro.TimeRange.End = ro.TimeRange.Start + 1 + int64(r.rng.IntN(400))
		}
	}
	if r.rng.IntN(3) == 0 {
		ro.MaxVersions = 1 + r.rng.IntN(3)
	}
	return ro
}

func (r *modelRun) step(ctx context.Context) {
	now := func() int64 { return r.clk.Now().UnixMicro() }
	switch n := r.rng.IntN(100); {
	case n < 55:
		row := r.rowKey()
		if !r.inRange(row) {
			err := r.tab.Apply(ctx, row, []Mutation{SetCell("a", nil, 1, nil)}, nil)
			r.trace = append(r.trace, fmt.Sprintf("Apply(%q) out of range: %v", row, err))
			if !errorsIs(err, ErrRowOutOfRange) {
				r.fatalf("Apply of %q outside the range: %v, want ErrRowOutOfRange", row, err)
			}
			return
		}
		if r.rng.IntN(5) == 0 {
			r.applyBatch(ctx, row, now())
			return
		}
		muts := make([]Mutation, 1+r.rng.IntN(4))
		for i := range muts {
			muts[i] = r.mutation()
		}
		wo := &WriteOptions{Durability: Durability(r.rng.IntN(2))}
		r.trace = append(r.trace, fmt.Sprintf("Apply(%q, %v, %d) at %d", row, muts, wo.Durability, now()))
		if err := r.tab.Apply(ctx, row, muts, wo); err != nil {
			r.fatalf("Apply: %v", err)
		}
		r.m.apply(string(row), muts, now())
	case n < 58:
		row := r.rowKey()
		bad := [][]Mutation{
			{SetCell("nope", nil, 1, nil)},
			{SetCell("a", nil, -5, nil)},
			{SetCell("a", nil, 1, nil), DeleteColumn("b", nil, keys.TimeRange{Start: 5, End: 2})},
			{},
			{Mutation{}},
		}[r.rng.IntN(5)]
		err := r.tab.Apply(ctx, row, bad, nil)
		r.trace = append(r.trace, fmt.Sprintf("bad Apply(%q, %v): %v", row, bad, err))
		if err == nil {
			r.fatalf("bad Apply(%v) succeeded", bad)
		}
	case n < 73:
		row := r.rowKey()
		if !r.inRange(row) {
			return
		}
		ro := r.readOptions()
		r.trace = append(r.trace, fmt.Sprintf("ReadRow(%q, %+v) at %d", row, ro, now()))
		got, err := r.tab.ReadRow(ctx, row, &ro)
		if err != nil {
			r.fatalf("ReadRow: %v", err)
		}
		if want := r.m.read(string(row), &ro, now()); !rowsEqual(got, want) {
			r.fatalf("ReadRow(%q, %+v) =\n%s\nwant\n%s", row, ro, fmtRow(got), fmtRow(want))
		}
	case n < 80:
		so := &ScanOptions{Read: r.readOptions(), Limit: r.rng.IntN(4), NoCacheFill: r.rng.IntN(2) == 0}
		if r.rng.IntN(2) == 0 {
			so.Start = r.rowKey()
		}
		if r.rng.IntN(2) == 0 {
			so.End = r.rowKey()
		}
		r.trace = append(r.trace, fmt.Sprintf("Scan(%+v) at %d", so, now()))
		r.checkScan(ctx, r.tab, r.m.restrict(r.opts.StartRow, r.opts.EndRow), so)
	case n < 85:
		r.clk.Advance(time.Duration(1+r.rng.IntN(120)) * time.Microsecond)
		r.trace = append(r.trace, fmt.Sprintf("Advance to %d", now()))
	case n < 89:
		r.trace = append(r.trace, "Flush")
		if err := r.tab.Flush(ctx); err != nil {
			r.fatalf("Flush: %v", err)
		}
	case n < 92:
		r.trace = append(r.trace, "Compact(minor)")
		if err := r.tab.Compact(ctx, false); err != nil {
			r.fatalf("Compact: %v", err)
		}
	case n < 94:
		r.trace = append(r.trace, fmt.Sprintf("Compact(major) at %d", now()))
		if err := r.tab.Compact(ctx, true); err != nil {
			r.fatalf("Compact(major): %v", err)
		}
		r.m.compact(now())
	case n < 98:
		r.trace = append(r.trace, "Close+Open")
		if err := r.tab.Close(); err != nil {
			r.fatalf("Close: %v", err)
		}
		var err error
		if r.tab, err = Open(ctx, r.opts); err != nil {
			r.fatalf("reopen: %v", err)
		}
	case r.rng.IntN(2) == 0:
		r.split(ctx)
	}
}

// applyBatch applies 1-4 rows (row first, then others in range, possibly
// repeated) with ApplyBatch and the same to the model, row by row.
func (r *modelRun) applyBatch(ctx context.Context, row []byte, now int64) {
	rows := []RowMutation{{Row: row}}
	for len(rows) < 1+r.rng.IntN(4) {
		if k := r.rowKey(); r.inRange(k) {
			rows = append(rows, RowMutation{Row: k})
		}
	}
	for i := range rows {
		rows[i].Mutations = make([]Mutation, 1+r.rng.IntN(3))
		for j := range rows[i].Mutations {
			rows[i].Mutations[j] = r.mutation()
		}
	}
	wo := &WriteOptions{Durability: Durability(r.rng.IntN(2))}
	r.trace = append(r.trace, fmt.Sprintf("ApplyBatch(%v, %d) at %d", rows, wo.Durability, now))
	if err := r.tab.ApplyBatch(ctx, rows, wo); err != nil {
		r.fatalf("ApplyBatch: %v", err)
	}
	for _, rm := range rows {
		r.m.apply(string(rm.Row), rm.Mutations, now)
	}
}

func (r *modelRun) checkScan(ctx context.Context, tab *Tablet, m *model, so *ScanOptions) {
	var got []*Row
	if err := tab.Scan(ctx, so, func(row *Row) bool { got = append(got, row); return true }); err != nil {
		r.fatalf("Scan: %v", err)
	}
	want := m.scan(so, r.clk.Now().UnixMicro())
	if len(got) != len(want) {
		r.fatalf("Scan(%+v) returned %d rows, want %d (first got %s, want %s)", so, len(got), len(want), firstRow(got), firstRow(want))
	}
	for i := range got {
		if !rowsEqual(got[i], want[i]) {
			r.fatalf("Scan(%+v) row %d =\n%s\nwant\n%s", so, i, fmtRow(got[i]), fmtRow(want[i]))
		}
	}
}

func firstRow(rs []*Row) string {
	if len(rs) == 0 {
		return "none"
	}
	return fmtRow(rs[0])
}

// checkAll compares a full scan and every row read.
func (r *modelRun) checkAll(ctx context.Context, tab *Tablet, m *model) {
	r.checkScan(ctx, tab, m, &ScanOptions{})
}

// split splits the tablet at its SplitKey (or a random row in range), checks
// the daughter not continued with, and continues on the other.
func (r *modelRun) split(ctx context.Context) {
	// Keep enough rows in play: split only wide tablets, at most twice.
	if r.dirs >= 4 || rowsIn(r.opts.StartRow, r.opts.EndRow) < 6 {
		return
	}
	at, err := r.tab.SplitKey()
	if err != nil {
		if !errorsIs(err, ErrNoSplitKey) {
			r.fatalf("SplitKey: %v", err)
		}
		at = r.rowKey()
		if !r.inRange(at) || (r.opts.StartRow != nil && string(at) == string(r.opts.StartRow)) {
			return
		}
	}
	r.dirs += 2
	ld, rd := fmt.Sprintf("%s/%d", r.base, r.dirs-1), fmt.Sprintf("%s/%d", r.base, r.dirs)
	inPlace := r.rng.IntN(2) == 0
	if inPlace { // the right daughter keeps the parent's directory
		rd = r.opts.Dir
	}
	r.trace = append(r.trace, fmt.Sprintf("Split(%q, %s, %s)", at, ld, rd))
	lo, ro, err := r.tab.Split(ctx, at, ld, rd)
	if err != nil {
		r.fatalf("Split(%q): %v", at, err)
	}
	want := ErrSplit
	if inPlace {
		want = ErrInvalidOptions // the directory now holds the right daughter's range
	}
	if p, err := Open(ctx, r.opts); !errorsIs(err, want) {
		if err == nil {
			p.Close()
		}
		r.fatalf("Open of a split parent: %v, want %v", err, want)
	}
	// Go on with the wider daughter (a coin decides a tie).
	keep, other := lo, ro
	nl, nr := rowsIn(lo.StartRow, lo.EndRow), rowsIn(ro.StartRow, ro.EndRow)
	if nr > nl || (nr == nl && r.rng.IntN(2) == 0) {
		keep, other = ro, lo
	}
	sib, err := Open(ctx, other)
	if err != nil {
		r.fatalf("open daughter: %v", err)
	}
	r.checkAll(ctx, sib, r.m.restrict(other.StartRow, other.EndRow))
	if err := sib.Close(); err != nil {
		r.fatalf("close daughter: %v", err)
	}
	r.opts = keep
	r.m = r.m.restrict(keep.StartRow, keep.EndRow)
	if r.tab, err = Open(ctx, keep); err != nil {
		r.fatalf("open daughter: %v", err)
	}
}
