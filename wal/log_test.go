package wal_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"cellar/dfs"
	"cellar/dfs/faultfs"
	"cellar/dfs/memfs"
	"cellar/internal/clock"
	"cellar/internal/keys"
	"cellar/wal"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.DiscardHandler)

// data is the deterministic payload of entry (tablet, seq).
func data(tablet uint64, seq keys.SeqNum, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(uint64(i) + tablet*31 + uint64(seq)*7)
	}
	return b
}

func openLog(t testing.TB, fs dfs.FS, opts *wal.Options) *wal.Log {
	t.Helper()
	o := wal.Options{Dir: "log", Logger: quiet}
	if opts != nil {
		o = *opts
		o.Dir, o.Logger = "log", quiet
	}
	l, err := wal.Open(context.Background(), fs, &o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

// replayAll replays "log" and returns copies of the entries.
func replayAll(t testing.TB, fs dfs.FS, opts *wal.ReplayOptions) ([]wal.Entry, wal.ReplayStats, error) {
	t.Helper()
	if opts == nil {
		opts = &wal.ReplayOptions{}
	}
	opts.Logger = quiet
	var out []wal.Entry
	st, err := wal.Replay(context.Background(), fs, "log", opts, func(e wal.Entry) error {
		e.Data = bytes.Clone(e.Data)
		out = append(out, e)
		return nil
	})
	return out, st, err
}

func mustAppend(t testing.TB, l *wal.Log, e wal.Entry, sync bool) {
	t.Helper()
	if err := l.Append(context.Background(), e, sync); err != nil {
		t.Fatalf("Append(tablet %d %v): %v", e.Tablet, e.Seq, err)
	}
}

func checkEntries(t *testing.T, got, want []wal.Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("replayed %d entries, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Tablet != want[i].Tablet || got[i].Seq != want[i].Seq || !bytes.Equal(got[i].Data, want[i].Data) {
			t.Fatalf("entry %d = tablet %d %v (%d bytes), want tablet %d %v (%d bytes)",
				i, got[i].Tablet, got[i].Seq, len(got[i].Data), want[i].Tablet, want[i].Seq, len(want[i].Data))
		}
	}
}

func TestAppendCloseReplay(t *testing.T) {
	fs := memfs.New()
	l := openLog(t, fs, nil)
	var want []wal.Entry
	for i := range 100 {
		e := wal.Entry{Tablet: uint64(i % 3), Seq: keys.SeqNum(i + 1), Data: data(uint64(i%3), keys.SeqNum(i+1), i*397%50000)}
		mustAppend(t, l, e, i%2 == 0)
		want = append(want, e)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := l.Close(); !errors.Is(err, wal.ErrClosed) {
		t.Fatalf("second Close = %v, want ErrClosed", err)
	}
	if err := l.Append(context.Background(), want[0], true); !errors.Is(err, wal.ErrClosed) {
		t.Fatalf("Append after Close = %v, want ErrClosed", err)
	}
	got, st, err := replayAll(t, fs, nil)
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	checkEntries(t, got, want)
	if st.Files != 1 || st.Entries != 100 || st.TornTail || st.SkippedCorrupt != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

// TestGroupCommitManyAppenders: concurrent appenders, files rolled under
// them; replay holds every entry, each appender's in its order.
func TestGroupCommitManyAppenders(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	fs := memfs.New()
	l := openLog(t, fs, &wal.Options{MaxFileSize: 256 << 10})
	const appenders, perAppender = 16, 150
	sizes := make([][]int, appenders)
	rng := rand.New(rand.NewPCG(seed, 1))
	for g := range sizes {
		for range perAppender {
			n := rng.IntN(2000)
			if rng.IntN(50) == 0 {
				n = 40000 + rng.IntN(40000) // spans blocks
			}
			sizes[g] = append(sizes[g], n)
		}
	}
	var wg sync.WaitGroup
	for g := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, n := range sizes[g] {
				seq := keys.SeqNum(i + 1)
				if err := l.Append(context.Background(), wal.Entry{Tablet: uint64(g), Seq: seq, Data: data(uint64(g), seq, n)}, i%4 != 0 || i == len(sizes[g])-1); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	files := l.Files()
	stats := l.Stats()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if stats.Entries != appenders*perAppender || stats.Writes < 1 || stats.Writes > stats.Entries || stats.Syncs < 1 {
		t.Fatalf("Stats() = %+v, want %d entries", stats, appenders*perAppender)
	}
	if len(files) < 3 {
		t.Fatalf("Files() = %d files, want several after rolling", len(files))
	}
	maxSeq := map[uint64]keys.SeqNum{}
	for _, f := range files {
		for tab, s := range f.MaxSeq {
			maxSeq[tab] = max(maxSeq[tab], s)
		}
	}
	got, st, err := replayAll(t, fs, nil)
	if err != nil {
		t.Fatalf("Replay (seed %d): %v", seed, err)
	}
	// Files was read before Close: async appends still queued then may
	// have rolled the log once more while Close drained them.
	if st.Entries != appenders*perAppender || st.Files < len(files) || st.Files > len(files)+1 || st.TornTail {
		t.Fatalf("stats = %+v, want %d entries in %d (or one more) files", st, appenders*perAppender, len(files))
	}
	next := make([]keys.SeqNum, appenders)
	for _, e := range got {
		if e.Seq != next[e.Tablet]+1 {
			t.Fatalf("tablet %d: %v after %v (seed %d)", e.Tablet, e.Seq, next[e.Tablet], seed)
		}
		next[e.Tablet] = e.Seq
		if !bytes.Equal(e.Data, data(e.Tablet, e.Seq, sizes[e.Tablet][e.Seq-1])) {
			t.Fatalf("tablet %d %v: data differs (seed %d)", e.Tablet, e.Seq, seed)
		}
	}
	for g := range appenders {
		if maxSeq[uint64(g)] != perAppender {
			t.Fatalf("Files() MaxSeq of tablet %d = %v, want %d", g, maxSeq[uint64(g)], perAppender)
		}
	}
}

// copyFS copies every file of src into a new memfs, truncating the file
// named cut to cutLen bytes.
func copyFS(t testing.TB, src dfs.FS, cut string, cutLen int64) *memfs.FS {
	t.Helper()
	ctx := context.Background()
	dst := memfs.New()
	ents, err := src.List(ctx, "log")
	if err != nil {
		t.Fatal(err)
	}
	for _, fi := range ents {
		name := dfs.Join("log", fi.Name)
		r, err := src.Open(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		n := r.Size()
		if name == cut {
			n = cutLen
		}
		b := make([]byte, n)
		if _, err := r.ReadAt(b, 0); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		r.Close()
		w, err := dst.Create(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// TestTornTail cuts the last file at offsets throughout its last records:
// replay ends cleanly and yields exactly the entries wholly before the cut.
func TestTornTail(t *testing.T) {
	fs := memfs.New()
	l := openLog(t, fs, &wal.Options{MaxFileSize: 48 << 10})
	var want []wal.Entry
	var ends []int64 // end offset of each entry in its file
	var fileOf []string
	sizes := []int{300, 5000, 300, 20000, 30000, 200, 45000, 100, 0, 250, 9}
	for i, n := range sizes {
		e := wal.Entry{Tablet: 1, Seq: keys.SeqNum(i + 1), Data: data(1, keys.SeqNum(i+1), n)}
		mustAppend(t, l, e, true)
		want = append(want, e)
		files := l.Files()
		cur := files[len(files)-1]
		if cur.Size == 0 { // rolled right after this entry
			cur = files[len(files)-2]
		}
		ends = append(ends, cur.Size)
		fileOf = append(fileOf, cur.Name)
	}
	// Simulate a crash: the live file is not sealed.
	crashed := fs.CrashClone()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	files := l.Files()
	last := files[len(files)-1].Name
	if fileOf[len(fileOf)-1] != last {
		t.Fatalf("the last entries are not in the live file %s", last)
	}
	first := 0 // first entry in the last file
	for i := range fileOf {
		if fileOf[i] != last {
			first = i + 1
		}
	}
	if len(want)-first < 4 {
		t.Fatalf("only %d entries in the last file; the test wants at least 4", len(want)-first)
	}
	start := int64(0)
	if first > 0 && fileOf[first-1] == last {
		start = ends[first-1]
	}
	for cut := start; cut <= ends[len(ends)-1]; cut++ {
		// Every offset near a record or block boundary, a stride elsewhere.
		near := false
		for _, e := range ends {
			near = near || (cut >= e-24 && cut <= e+24)
		}
		b := cut % wal.BlockSize
		near = near || b < 24 || b > wal.BlockSize-24
		if !near && cut%61 != 0 {
			continue
		}
		torn := copyFS(t, crashed, last, cut)
		got, st, err := replayAll(t, torn, nil)
		if err != nil {
			t.Fatalf("cut at %d: Replay: %v", cut, err)
		}
		n := first
		for n < len(want) && ends[n] <= cut {
			n++
		}
		checkEntries(t, got, want[:n])
		if wantTorn := cut != start && !slices.Contains(ends[first:], cut); st.TornTail != wantTorn {
			t.Fatalf("cut at %d: TornTail = %v, want %v", cut, st.TornTail, wantTorn)
		}
		if cut%7 != 0 {
			continue
		}
		// A new Log after the crash: the torn file is no longer the last,
		// but it was never sealed, so its tail is still dropped cleanly.
		l2 := openLog(t, torn, nil)
		extra := wal.Entry{Tablet: 2, Seq: 1, Data: []byte("after restart")}
		mustAppend(t, l2, extra, true)
		if err := l2.Close(); err != nil {
			t.Fatal(err)
		}
		got, _, err = replayAll(t, torn, nil)
		if err != nil {
			t.Fatalf("cut at %d, after restart: Replay: %v", cut, err)
		}
		checkEntries(t, got, append(slices.Clone(want[:n]), extra))
	}
}

func flipRule(name string, off int64) faultfs.Rule {
	return faultfs.Rule{Op: faultfs.OpRead, Pattern: name, Action: faultfs.ActionFlip, Offset: off}
}

// TestCorruptionInTheMiddle damages a sealed earlier file, and the last file
// before valid blocks: both are errors naming the file and offset, and
// SkipCorrupt skips and counts them.
func TestCorruptionInTheMiddle(t *testing.T) {
	mem := memfs.New()
	l := openLog(t, mem, &wal.Options{MaxFileSize: 100 << 10})
	const n = 60
	for i := range n {
		mustAppend(t, l, wal.Entry{Tablet: 2, Seq: keys.SeqNum(i + 1), Data: data(2, keys.SeqNum(i+1), 5000)}, true)
	}
	files := l.Files()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("%d files, want at least 3", len(files))
	}
	for _, tc := range []struct {
		name string
		file string
		off  int64
	}{
		{"sealed earlier file", files[0].Name, 12345},
		{"last file, valid blocks follow", files[len(files)-1].Name, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := faultfs.New(mem, flipRule(tc.file, tc.off))
			_, _, err := replayAll(t, fs, nil)
			var ce *wal.CorruptError
			if !errors.Is(err, wal.ErrCorrupt) || !errors.As(err, &ce) {
				t.Fatalf("Replay = %v, want a *CorruptError", err)
			}
			if ce.File != tc.file || ce.Offset > tc.off || ce.Offset < tc.off-wal.BlockSize {
				t.Fatalf("error names %s at %d; want %s before offset %d", ce.File, ce.Offset, tc.file, tc.off)
			}
			got, st, err := replayAll(t, fs, &wal.ReplayOptions{SkipCorrupt: true})
			if err != nil {
				t.Fatalf("Replay with SkipCorrupt: %v", err)
			}
			if st.SkippedCorrupt != 1 || len(got) >= n || len(got) < n-8 {
				t.Fatalf("SkipCorrupt: %d entries of %d, stats %+v", len(got), n, st)
			}
			for i := 1; i < len(got); i++ {
				if got[i].Seq <= got[i-1].Seq {
					t.Fatalf("entries out of order after skipping: %v then %v", got[i-1].Seq, got[i].Seq)
				}
			}
		})
	}
}

// TestStaleFileRejected: a file copied under a later number is not read as
// that file (its fragments carry the old number).
func TestStaleFileRejected(t *testing.T) {
	ctx := context.Background()
	mem := memfs.New()
	l := openLog(t, mem, nil)
	mustAppend(t, l, wal.Entry{Tablet: 1, Seq: 1, Data: []byte("old")}, true)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	r, _ := mem.Open(ctx, "log/0000000000000001.log")
	b := make([]byte, r.Size())
	r.ReadAt(b, 0)
	r.Close()
	w, _ := mem.Create(ctx, "log/0000000000000002.log")
	w.Write(b)
	w.Close()
	got, st, err := replayAll(t, mem, nil)
	if err != nil || len(got) != 1 || !st.TornTail {
		t.Fatalf("Replay = %d entries, %+v, %v; want 1 entry and the stale file dropped as a torn tail", len(got), st, err)
	}
}

// TestPoisonAfterFailedSync: the group whose Sync failed and every later
// Append fail with ErrLogFailed, even once the fault is gone.
func TestPoisonAfterFailedSync(t *testing.T) {
	for _, tc := range []struct {
		name string
		rule faultfs.Rule
		also error
	}{
		{"sync", faultfs.Rule{Op: faultfs.OpSync, Nth: 5}, faultfs.ErrInjected},
		{"write", faultfs.Rule{Op: faultfs.OpWrite, Nth: 5}, faultfs.ErrInjected},
		{"no space", faultfs.Rule{Op: faultfs.OpWrite, Nth: 5, Action: faultfs.ActionNoSpace}, dfs.ErrNoSpace},
		{"torn write", faultfs.Rule{Op: faultfs.OpWrite, Nth: 5, Action: faultfs.ActionShort}, faultfs.ErrInjected},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := memfs.New()
			fs := faultfs.New(mem, tc.rule)
			l := openLog(t, fs, nil)
			var acked []wal.Entry
			var firstErr error
			for i := range 10 {
				e := wal.Entry{Tablet: 1, Seq: keys.SeqNum(i + 1), Data: data(1, keys.SeqNum(i+1), 100)}
				err := l.Append(context.Background(), e, true)
				if err == nil {
					if firstErr != nil {
						t.Fatalf("Append %d acknowledged after the failure %v", i, firstErr)
					}
					acked = append(acked, e)
					continue
				}
				if !errors.Is(err, wal.ErrLogFailed) {
					t.Fatalf("Append %d = %v, want ErrLogFailed", i, err)
				}
				if firstErr == nil {
					firstErr = err
					if !errors.Is(err, tc.also) {
						t.Fatalf("failing Append = %v, want it to wrap %v", err, tc.also)
					}
					fs.ClearRules() // the fault is gone; the log stays failed
				}
			}
			if len(acked) != 4 || firstErr == nil {
				t.Fatalf("%d acknowledged before the failure, want 4", len(acked))
			}
			if err := l.Close(); !errors.Is(err, wal.ErrLogFailed) {
				t.Fatalf("Close of a failed log = %v, want ErrLogFailed", err)
			}
			got, _, err := replayAll(t, mem, &wal.ReplayOptions{})
			if err != nil {
				t.Fatalf("Replay: %v", err)
			}
			if len(got) < len(acked) {
				t.Fatalf("replayed %d entries, fewer than the %d acknowledged", len(got), len(acked))
			}
			checkEntries(t, got[:len(acked)], acked)
		})
	}
}

// TestPoisonConcurrent: with many appenders, once one Append has failed no
// Append that starts later succeeds.
func TestPoisonConcurrent(t *testing.T) {
	fs := faultfs.New(memfs.New(), faultfs.Rule{Op: faultfs.OpSync, Nth: 20})
	l := openLog(t, fs, nil)
	defer func() {
		if err := l.Close(); !errors.Is(err, wal.ErrLogFailed) {
			t.Errorf("Close of a failed log = %v, want ErrLogFailed", err)
		}
	}()
	var failedAt atomic.Int64 // sequence of the first observed failure, +1
	var order atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				start := order.Add(1)
				err := l.Append(context.Background(), wal.Entry{Tablet: uint64(g), Seq: keys.SeqNum(i + 1)}, true)
				if err != nil {
					if !errors.Is(err, wal.ErrLogFailed) {
						t.Errorf("Append = %v, want ErrLogFailed", err)
					}
					failedAt.CompareAndSwap(0, order.Add(1))
					continue
				}
				if f := failedAt.Load(); f != 0 && start > f {
					t.Errorf("an Append started after a failure was acknowledged")
				}
			}
		}()
	}
	wg.Wait()
	if failedAt.Load() == 0 {
		t.Fatal("no Append failed")
	}
}

// TestCrashKeepsAcknowledged: CrashClone while appenders run; every entry
// acknowledged with sync=true before the clone is replayed from it.
func TestCrashKeepsAcknowledged(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	mem := memfs.New()
	l := openLog(t, mem, &wal.Options{MaxFileSize: 64 << 10})
	const appenders = 8
	var acked [appenders]atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	for g := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(g)))
			for i := 1; !stop.Load(); i++ {
				seq := keys.SeqNum(i)
				n := rng.IntN(3000)
				sync := rng.IntN(3) != 0
				if err := l.Append(context.Background(), wal.Entry{Tablet: uint64(g), Seq: seq, Data: data(uint64(g), seq, n)}, sync); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				if sync {
					acked[g].Store(int64(i))
				}
			}
		}()
	}
	var clones []*memfs.FS
	var wants [][appenders]int64
	for range 5 {
		deadline := time.Now().Add(10 * time.Second)
		for acked[0].Load() < int64(20*(len(clones)+1)) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond) // poll for progress, not for ordering
		}
		var want [appenders]int64
		for g := range want {
			want[g] = acked[g].Load()
		}
		clones = append(clones, mem.CrashClone())
		wants = append(wants, want)
	}
	stop.Store(true)
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for c, clone := range clones {
		got, _, err := replayAll(t, clone, nil)
		if err != nil {
			t.Fatalf("clone %d: Replay: %v (seed %d)", c, err, seed)
		}
		var last [appenders]int64
		for _, e := range got {
			if int64(e.Seq) != last[e.Tablet]+1 {
				t.Fatalf("clone %d: tablet %d: %v after seq %d (seed %d)", c, e.Tablet, e.Seq, last[e.Tablet], seed)
			}
			last[e.Tablet] = int64(e.Seq)
		}
		for g := range last {
			if last[g] < wants[c][g] {
				t.Fatalf("clone %d: tablet %d replayed up to seq %d, but %d was acknowledged (seed %d)", c, g, last[g], wants[c][g], seed)
			}
		}
		// A new Log over the crashed state, then replay again: the
		// crashed (unsealed) file's tail is tolerated though not last.
		l2 := openLog(t, clone, nil)
		mustAppend(t, l2, wal.Entry{Tablet: 99, Seq: 1}, true)
		if err := l2.Close(); err != nil {
			t.Fatal(err)
		}
		got2, _, err := replayAll(t, clone, nil)
		if err != nil {
			t.Fatalf("clone %d after reopen: Replay: %v (seed %d)", c, err, seed)
		}
		if len(got2) != len(got)+1 || got2[len(got2)-1].Tablet != 99 {
			t.Fatalf("clone %d after reopen: %d entries, want %d", c, len(got2), len(got)+1)
		}
	}
}

// TestAsyncSyncedInBackground: an async append becomes durable once
// AsyncSyncInterval passes on the log's clock, without any other append.
func TestAsyncSyncedInBackground(t *testing.T) {
	mem := memfs.New()
	clk := clock.NewFake(time.Unix(0, 0))
	l := openLog(t, mem, &wal.Options{AsyncSyncInterval: time.Second, Clock: clk})
	defer l.Close()
	mustAppend(t, l, wal.Entry{Tablet: 1, Seq: 1, Data: []byte("async")}, false)
	if got, _, _ := replayAll(t, mem.CrashClone(), nil); len(got) != 0 {
		t.Fatalf("crash before the interval kept %d entries; the entry should not be synced yet", len(got))
	}
	waitFor(t, func() bool { return clk.Pending() == 1 })
	clk.Advance(time.Second)
	waitFor(t, func() bool {
		got, _, _ := replayAll(t, mem.CrashClone(), nil)
		return len(got) == 1
	})
}

// TestAsyncEntriesBuffered checks that async entries are kept in memory
// (no Write per entry) until the buffer fills or a sync entry comes, and
// that a sync entry makes every earlier async entry durable with it, in
// order.
func TestAsyncEntriesBuffered(t *testing.T) {
	mem := memfs.New()
	clk := clock.NewFake(time.Unix(0, 0))
	l := openLog(t, mem, &wal.Options{AsyncSyncInterval: time.Hour, AsyncBufferSize: 4096, Clock: clk})
	defer l.Close()
	for i := 1; i <= 10; i++ {
		mustAppend(t, l, wal.Entry{Tablet: 1, Seq: keys.SeqNum(i), Data: []byte("small")}, false)
	}
	if w := l.Stats().Writes; w != 0 {
		t.Fatalf("10 small async entries caused %d Writes, want 0 (buffered)", w)
	}
	mustAppend(t, l, wal.Entry{Tablet: 1, Seq: 11, Data: []byte("sync")}, true)
	if w := l.Stats().Writes; w != 1 {
		t.Fatalf("a sync entry after buffered async ones caused %d Writes, want 1", w)
	}
	got, _, err := replayAll(t, mem.CrashClone(), nil)
	if err != nil || len(got) != 11 {
		t.Fatalf("after the sync entry a crash keeps %d entries (%v), want 11", len(got), err)
	}
	for i, e := range got {
		if e.Seq != keys.SeqNum(i+1) {
			t.Fatalf("entry %d has seq %d, want %d", i, e.Seq, i+1)
		}
	}
	// Filling the buffer writes without waiting for the timer.
	for i := 12; i < 12+4096/16; i++ {
		mustAppend(t, l, wal.Entry{Tablet: 1, Seq: keys.SeqNum(i), Data: make([]byte, 16)}, false)
	}
	// Async Appends return once queued, so wait for the writer.
	waitFor(t, func() bool { return l.Stats().Writes >= 2 })
}

func TestAppendBatch(t *testing.T) {
	mem := memfs.New()
	l := openLog(t, mem, nil)
	var es []wal.Entry
	for i := 1; i <= 50; i++ {
		es = append(es, wal.Entry{Tablet: 2, Seq: keys.SeqNum(i), Data: []byte(fmt.Sprint(i))})
	}
	if err := l.AppendBatch(context.Background(), es, true); err != nil {
		t.Fatal(err)
	}
	if s := l.Stats().Syncs; s < 1 || s > 2 {
		t.Errorf("a synced batch of 50 took %d Syncs, want 1 or 2", s)
	}
	got, _, err := replayAll(t, mem.CrashClone(), nil)
	if err != nil || len(got) != 50 {
		t.Fatalf("replay after a synced batch = %d entries (%v), want 50", len(got), err)
	}
	for i, e := range got {
		if e.Seq != keys.SeqNum(i+1) || string(e.Data) != fmt.Sprint(i+1) {
			t.Fatalf("entry %d = %+v", i, e)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.AppendBatch(ctx, es, true); !errors.Is(err, context.Canceled) || errors.Is(err, wal.ErrOutcomeUnknown) {
		t.Fatalf("AppendBatch with a cancelled ctx = %v, want context.Canceled (not applied)", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.AppendBatch(context.Background(), es, true); !errors.Is(err, wal.ErrClosed) {
		t.Fatalf("AppendBatch after Close = %v, want ErrClosed", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestAppendContext(t *testing.T) {
	mem := memfs.New()
	l := openLog(t, mem, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Append(ctx, wal.Entry{Tablet: 1, Seq: 1}, true); !errors.Is(err, context.Canceled) || errors.Is(err, wal.ErrOutcomeUnknown) {
		t.Fatalf("Append with a cancelled ctx = %v, want context.Canceled (not applied)", err)
	}
	mustAppend(t, l, wal.Entry{Tablet: 1, Seq: 2}, true)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got, _, err := replayAll(t, mem, nil)
	if err != nil || len(got) != 1 || got[0].Seq != 2 {
		t.Fatalf("Replay = %v, %v; want only seq 2", got, err)
	}
}

// TestRollFilesRelease: Files reports per-file MaxSeq; Release deletes the
// obsolete sealed files and never the live one; Open numbers after them.
func TestRollFilesRelease(t *testing.T) {
	mem := memfs.New()
	l := openLog(t, mem, &wal.Options{MaxFileSize: 20 << 10})
	for i := range 40 {
		for tab := uint64(1); tab <= 2; tab++ {
			mustAppend(t, l, wal.Entry{Tablet: tab, Seq: keys.SeqNum(i + 1), Data: data(tab, keys.SeqNum(i+1), 1000)}, true)
		}
	}
	files := l.Files()
	if len(files) < 4 {
		t.Fatalf("%d files, want at least 4", len(files))
	}
	for i, f := range files {
		if want := fmt.Sprintf("log/%016d.log", i+1); f.Name != want || f.Num != uint64(i+1) {
			t.Fatalf("file %d = %s (%d), want %s", i, f.Name, f.Num, want)
		}
		if i > 0 && f.MaxSeq[1] < files[i-1].MaxSeq[1] {
			t.Fatalf("MaxSeq goes down from file %d to %d", i-1, i)
		}
	}
	// Tablet 1 flushed through seq 20, tablet 2 through everything.
	obsolete := func(f wal.FileInfo) bool { return f.MaxSeq[1] <= 20 && f.MaxSeq[2] <= 40 }
	removed, err := l.Release(obsolete)
	if err != nil {
		t.Fatalf("Release: %v", err)
	}
	var wantRemoved []string
	for _, f := range files[:len(files)-1] {
		if obsolete(f) {
			wantRemoved = append(wantRemoved, f.Name)
		}
	}
	if len(wantRemoved) == 0 || !slices.Equal(removed, wantRemoved) {
		t.Fatalf("Release removed %v, want %v", removed, wantRemoved)
	}
	if all, _ := l.Release(func(wal.FileInfo) bool { return true }); len(all) != len(files)-1-len(removed) {
		t.Fatalf("Release(all) removed %d files, want every sealed one (%d)", len(all), len(files)-1-len(removed))
	}
	if left := l.Files(); len(left) != 1 || left[0].Name != files[len(files)-1].Name {
		t.Fatalf("Files after Release = %v, want only the live file", left)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopen: numbered after the existing file, which Files reports with
	// its MaxSeq read from disk.
	l2 := openLog(t, mem, nil)
	defer l2.Close()
	f2 := l2.Files()
	if len(f2) != 2 || f2[1].Num != files[len(files)-1].Num+1 {
		t.Fatalf("Files after reopen = %v", f2)
	}
	if f2[0].MaxSeq[1] != 40 || f2[0].MaxSeq[2] != 40 {
		t.Fatalf("MaxSeq of the older file = %v, want 40 for both tablets", f2[0].MaxSeq)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    wal.Options
		ok   bool
	}{
		{"zero", wal.Options{}, true},
		{"dir", wal.Options{Dir: "a/b"}, true},
		{"bad dir", wal.Options{Dir: "/abs"}, false},
		{"negative size", wal.Options{MaxFileSize: -1}, false},
		{"negative interval", wal.Options{AsyncSyncInterval: -time.Second}, false},
		{"negative queue", wal.Options{QueueLength: -1}, false},
		{"negative group", wal.Options{MaxGroupBytes: -1}, false},
	} {
		if err := tc.o.Validate(); (err == nil) != tc.ok {
			t.Errorf("Validate(%s) = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
	if _, err := wal.Open(context.Background(), memfs.New(), &wal.Options{MaxFileSize: -1}); err == nil {
		t.Error("Open with invalid options succeeded")
	}
}

// blockingFS holds every Sync of its files until release is closed, and
// signals each Sync that starts on syncing.
type blockingFS struct {
	dfs.FS
	syncing chan struct{}
	release chan struct{}
}

type blockingFile struct {
	dfs.File
	fs *blockingFS
}

func (b *blockingFS) Create(ctx context.Context, name string) (dfs.File, error) {
	f, err := b.FS.Create(ctx, name)
	if err != nil {
		return nil, err
	}
	return blockingFile{File: f, fs: b}, nil
}

func (f blockingFile) Sync(ctx context.Context) error {
	select {
	case f.fs.syncing <- struct{}{}:
	default:
	}
	<-f.fs.release
	return f.File.Sync(ctx)
}

// TestBackPressureAndContext: while a Sync hangs, the bounded queues fill
// and Append blocks; an Append whose ctx ends while it waits to be handed
// over is not applied, one whose ctx ends after reports an unknown outcome.
func TestBackPressureAndContext(t *testing.T) {
	mem := memfs.New()
	bfs := &blockingFS{FS: mem, syncing: make(chan struct{}, 1), release: make(chan struct{})}
	l := openLog(t, bfs, &wal.Options{QueueLength: 1})
	release := sync.OnceFunc(func() { close(bfs.release) })
	defer release() // unblock the log if the test fails early
	var wg sync.WaitGroup
	appendAsync := func(seq keys.SeqNum) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Append(context.Background(), wal.Entry{Tablet: 1, Seq: seq}, true); err != nil {
				t.Errorf("Append %v: %v", seq, err)
			}
		}()
	}
	appendAsync(1)
	<-bfs.syncing // the syncer now hangs in Sync with seq 1
	appendAsync(2)
	appendAsync(3)
	// Seq 2 and 3 are written (in one group or two); a batch waits in the
	// syncer's queue, and the writer may be blocked handing over another.
	waitFor(t, func() bool { return l.Stats().Entries == 3 })
	appendAsync(4) // fills the request queue or blocks on it
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := l.Append(ctx, wal.Entry{Tablet: 1, Seq: 5}, true)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Append with full queues = %v, want DeadlineExceeded", err)
	}
	unknown := errors.Is(err, wal.ErrOutcomeUnknown)
	release()
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got, _, err := replayAll(t, mem, nil)
	if err != nil {
		t.Fatal(err)
	}
	has5 := slices.ContainsFunc(got, func(e wal.Entry) bool { return e.Seq == 5 })
	if !unknown && has5 {
		t.Fatal("an Append that ended before its hand-over is in the log")
	}
	if len(got) != 4+boolInt(has5) {
		t.Fatalf("replayed %d entries, want 4 (+ seq 5 if handed over: %v)", len(got), unknown)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestRollFailurePoisons: a failed Create of the next file poisons the log;
// everything acknowledged before is replayed.
func TestRollFailurePoisons(t *testing.T) {
	mem := memfs.New()
	fs := faultfs.New(mem, faultfs.Rule{Op: faultfs.OpCreate, Pattern: "log/0000000000000003.log"})
	l := openLog(t, fs, &wal.Options{MaxFileSize: 8 << 10})
	acked := 0
	var err error
	for i := range 100 {
		if err = l.Append(context.Background(), wal.Entry{Tablet: 1, Seq: keys.SeqNum(i + 1), Data: data(1, keys.SeqNum(i+1), 1000)}, true); err != nil {
			break
		}
		acked++
	}
	if !errors.Is(err, wal.ErrLogFailed) || !errors.Is(err, faultfs.ErrInjected) {
		t.Fatalf("Append after a failed roll = %v, want ErrLogFailed wrapping the injected fault", err)
	}
	if err := l.Close(); !errors.Is(err, wal.ErrLogFailed) {
		t.Fatalf("Close = %v, want ErrLogFailed", err)
	}
	got, _, err := replayAll(t, mem, nil)
	if err != nil || len(got) != acked {
		t.Fatalf("Replay = %d entries, %v; want the %d acknowledged", len(got), err, acked)
	}
}

// TestRandomDamage flips random bytes of a multi-file log: Replay with
// SkipCorrupt never fails and yields a subsequence of what was written;
// without it, it yields such a subsequence or an error wrapping ErrCorrupt.
func TestRandomDamage(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	mem := memfs.New()
	l := openLog(t, mem, &wal.Options{MaxFileSize: 40 << 10})
	var want []wal.Entry
	for i := range 120 {
		seq := keys.SeqNum(i + 1)
		e := wal.Entry{Tablet: uint64(i % 4), Seq: seq, Data: data(uint64(i%4), seq, rng.IntN(3000)+[]int{0, 0, 0, 35000}[rng.IntN(4)])}
		mustAppend(t, l, e, i%3 == 0)
		want = append(want, e)
	}
	files := l.Files()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for iter := range 40 {
		fs := faultfs.New(mem)
		for range 1 + rng.IntN(3) {
			f := files[rng.IntN(len(files))]
			fi, err := mem.Stat(context.Background(), f.Name)
			if err != nil || fi.Size == 0 {
				continue
			}
			fs.AddRule(flipRule(f.Name, rng.Int64N(fi.Size)))
		}
		got, _, err := replayAll(t, fs, &wal.ReplayOptions{SkipCorrupt: true})
		if err != nil {
			t.Fatalf("iteration %d: Replay with SkipCorrupt: %v (seed %d)", iter, err, seed)
		}
		checkSubsequence(t, got, want, seed)
		got, _, err = replayAll(t, fs, nil)
		if err != nil && !errors.Is(err, wal.ErrCorrupt) {
			t.Fatalf("iteration %d: Replay: %v, want nil or ErrCorrupt (seed %d)", iter, err, seed)
		}
		checkSubsequence(t, got, want, seed)
	}
}

// checkSubsequence fails unless got is want with some entries left out.
func checkSubsequence(t *testing.T, got, want []wal.Entry, seed uint64) {
	t.Helper()
	j := 0
	for _, g := range got {
		for j < len(want) && (want[j].Tablet != g.Tablet || want[j].Seq != g.Seq) {
			j++
		}
		if j == len(want) {
			t.Fatalf("replayed tablet %d %v, which was not written in this order (seed %d)", g.Tablet, g.Seq, seed)
		}
		if !bytes.Equal(g.Data, want[j].Data) {
			t.Fatalf("replayed tablet %d %v with other data (seed %d)", g.Tablet, g.Seq, seed)
		}
		j++
	}
}
