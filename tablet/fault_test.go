package tablet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"cellar/dfs"
	"cellar/dfs/faultfs"
	"cellar/dfs/memfs"
	"cellar/internal/keys"
	"cellar/wal"
)

func faultOptions(fs dfs.FS) *Options {
	return &Options{
		FS: fs, Dir: "t", ID: 4,
		Families:     []FamilyOptions{{Name: "a"}, {Name: "b"}},
		MemtableSize: 8 << 10,
		Logger:       discardLogger(),
	}
}

func markerRow(row string) []Mutation {
	v := []byte(row)
	return []Mutation{SetCell("a", []byte("x"), ServerTime, v), SetCell("a", []byte("y"), ServerTime, v), SetCell("b", nil, ServerTime, v)}
}

// checkRows scans tab and compares the rows with want (exact) or checks
// want is a subset (exact=false); every row must be whole.
func checkRows(t *testing.T, tab *Tablet, want map[string]bool, exact bool) {
	t.Helper()
	got := map[string]bool{}
	err := tab.Scan(context.Background(), nil, func(r *Row) bool {
		got[string(r.Key)] = true
		if len(r.Cells) != 3 {
			t.Errorf("torn row %s", fmtRow(r))
		}
		for _, c := range r.Cells {
			if !bytes.Equal(c.Value, r.Key) {
				t.Errorf("torn row %s", fmtRow(r))
			}
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	for r := range want {
		if !got[r] {
			t.Errorf("acknowledged row %q missing", r)
		}
	}
	if exact {
		for r := range got {
			if !want[r] {
				t.Errorf("row %q present but never acknowledged", r)
			}
		}
	}
}

// TestFaultLogSyncFails: when the Nth commit-log Sync fails, that Apply
// fails (is never acknowledged) and so does every later one; a crash at that
// moment leaves exactly the acknowledged rows, whole; a reopen without a
// crash has every acknowledged row, whole.
func TestFaultLogSyncFails(t *testing.T) {
	for _, nth := range []int{1, 2, 3, 7, 20, 41} {
		t.Run(fmt.Sprintf("sync%d", nth), func(t *testing.T) {
			ctx := context.Background()
			inner := memfs.New()
			ffs := faultfs.New(inner, faultfs.Rule{Op: faultfs.OpSync, Pattern: "t/log/*", Nth: nth})
			tab, err := Open(ctx, faultOptions(ffs))
			if err != nil {
				t.Fatal(err)
			}
			acked := map[string]bool{}
			var failed bool
			var crashed *memfs.FS
			for i := 0; i < 80; i++ {
				row := fmt.Sprintf("r%03d", i)
				err := tab.Apply(ctx, []byte(row), markerRow(row), nil)
				switch {
				case err == nil && failed:
					t.Fatalf("Apply %d succeeded after a failed log sync", i)
				case err == nil:
					acked[row] = true
				case !errors.Is(err, faultfs.ErrInjected) && !errors.Is(err, wal.ErrLogFailed):
					t.Fatalf("Apply %d: %v, want the injected fault", i, err)
				default:
					if !failed {
						crashed = inner.CrashClone()
					}
					failed = true
				}
				if i%25 == 24 && !failed {
					if err := tab.Flush(ctx); err != nil {
						t.Fatal(err)
					}
				}
			}
			if !failed {
				t.Fatalf("no Apply failed (faults injected: %d)", ffs.Injected())
			}
			tab.Close() // may report the failed log; the state on disk is what counts
			after, err := Open(ctx, faultOptions(crashed))
			if err != nil {
				t.Fatalf("open after crash: %v", err)
			}
			checkRows(t, after, acked, true)
			after.Close()
			ffs.ClearRules()
			again, err := Open(ctx, faultOptions(ffs))
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			checkRows(t, again, acked, false)
			again.Close()
		})
	}
}

// TestFaultFlushFails: a flush that cannot write its SSTable or install
// its manifest stops the tablet's writes with ErrBackground; nothing
// acknowledged is lost, and the reopened tablet deletes the half-written
// table and flushes again.
func TestFaultFlushFails(t *testing.T) {
	for _, rule := range []faultfs.Rule{
		{Op: faultfs.OpSync, Pattern: "t/sst/*", Nth: 1},
		{Op: faultfs.OpWrite, Pattern: "t/sst/*", Nth: 1},
		{Op: faultfs.OpCreate, Pattern: "t/MANIFEST-1.tmp", Nth: 1},
		{Op: faultfs.OpSync, Pattern: "t/MANIFEST-1.tmp", Nth: 1},
		{Op: faultfs.OpRename, Pattern: "t/MANIFEST-1.tmp", Nth: 1},
	} {
		t.Run(fmt.Sprintf("%v-%s", rule.Op, rule.Pattern), func(t *testing.T) { testFlushFault(t, rule) })
	}
}

func testFlushFault(t *testing.T, rule faultfs.Rule) {
	ctx := context.Background()
	inner := memfs.New()
	ffs := faultfs.New(inner)
	var flushErrs atomic.Int32
	opts := faultOptions(ffs)
	opts.Events.FlushEnd = func(fi FlushInfo) {
		if fi.Err != nil {
			flushErrs.Add(1)
		}
	}
	tab, err := Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	// Armed after Open, which writes a manifest under its epoch too.
	ffs.AddRule(rule)
	acked := map[string]bool{}
	for i := 0; i < 20; i++ {
		row := fmt.Sprintf("r%03d", i)
		if err := tab.Apply(ctx, []byte(row), markerRow(row), nil); err != nil {
			t.Fatal(err)
		}
		acked[row] = true
	}
	if err := tab.Flush(ctx); !errors.Is(err, ErrBackground) || !errors.Is(err, faultfs.ErrInjected) {
		t.Fatalf("Flush = %v, want ErrBackground wrapping the injected fault", err)
	}
	if n := flushErrs.Load(); n != 1 {
		t.Fatalf("FlushEnd reported %d failures, want 1", n)
	}
	if err := tab.Apply(ctx, []byte("late"), markerRow("late"), nil); !errors.Is(err, ErrBackground) {
		t.Fatalf("Apply after a failed flush = %v, want ErrBackground", err)
	}
	checkRows(t, tab, acked, true) // reads still work
	tab.Close()
	ffs.ClearRules()
	again, err := Open(ctx, faultOptions(ffs))
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	checkRows(t, again, acked, true)
	if st := again.Stats(); st.Families[0].Files != 1 {
		t.Fatalf("after reopen family a has %d tables, want 1 (the replayed log flushed)", st.Families[0].Files)
	}
	ents, err := inner.List(ctx, "t/sst")
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 2 {
		t.Fatalf("t/sst holds %d files, want 2 (the failed flush's tables deleted)", len(ents))
	}
}

// TestFaultDuringReplay: Open replays a long log, flushing memtables as
// they fill; when a flush fails part-way, Open fails, and the next Open
// replays again over tables that already hold some of the entries. The
// duplicates are harmless: reads and compactions see each row once.
func TestFaultDuringReplay(t *testing.T) {
	ctx := context.Background()
	inner := memfs.New()
	o := faultOptions(inner)
	o.MemtableSize = 64 << 10 // the replay memtables are smaller (below)
	tab, err := Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	for i := 0; i < 300; i++ {
		row := fmt.Sprintf("r%03d", i)
		muts := markerRow(row)
		if i%3 == 0 {
			muts = append([]Mutation{DeleteRow()}, muts...) // tombstones too
		}
		if err := tab.Apply(ctx, []byte(row), muts, nil); err != nil {
			t.Fatal(err)
		}
		acked[row] = true
	}
	crashed := inner.CrashClone()
	tab.Close()
	ffs := faultfs.New(crashed, faultfs.Rule{Op: faultfs.OpSync, Pattern: "t/sst/*", Nth: 5})
	o = faultOptions(ffs)
	o.MemtableSize = 8 << 10
	o.CompactionTrigger = 2
	if _, err := Open(ctx, o); !errors.Is(err, faultfs.ErrInjected) {
		t.Fatalf("Open with a failing flush = %v, want the injected fault", err)
	}
	ffs.ClearRules()
	again, err := Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	checkRows(t, again, acked, true)
	if err := again.Apply(ctx, []byte("zz"), markerRow("zz"), nil); err != nil {
		t.Fatalf("Apply after replaying duplicates: %v", err) // e.g. a failed background compaction
	}
	acked["zz"] = true
	t.Logf("stats after replay: %+v", again.Stats())
	for _, major := range []bool{false, true} {
		if err := again.Compact(ctx, major); err != nil {
			t.Fatalf("Compact(%v) over duplicated entries: %v", major, err)
		}
		checkRows(t, again, acked, true)
	}
}

// TestCompactionDropsDuplicateKeys: the same key in two tables (left by a
// crash during replay) is written once by merging and major compactions.
func TestCompactionDropsDuplicateKeys(t *testing.T) {
	for _, major := range []bool{false, true} {
		t.Run(fmt.Sprintf("major=%v", major), func(t *testing.T) {
			ctx := context.Background()
			fs := memfs.New()
			tab := openTest(t, &Options{FS: fs})
			muts := []Mutation{DeleteRow(), SetCell("a", nil, 1, []byte("v")), DeleteColumn("a", []byte("q"), keys.TimeRange{})}
			if err := tab.Apply(ctx, []byte("r"), muts, nil); err != nil {
				t.Fatal(err)
			}
			if err := tab.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			// Copy family a's table and install the copy beside it.
			src := tab.Stats()
			path := tab.LiveFiles()[0]
			data := readAll(t, fs, path)
			cp := "t/sst/000100.sst"
			f, _ := fs.Create(ctx, cp)
			f.Write(data)
			f.Close()
			tb, err := tab.openTable(ctx, "a", fileMeta{path: cp, size: uint64(len(data)), entries: src.Families[0].Entries})
			if err != nil {
				t.Fatal(err)
			}
			err = tab.install(ctx, func(m *manifest, tables map[string][]*table) {
				m.families["a"] = append(m.families["a"], tb.meta)
				tables["a"] = append(tables["a"], tb)
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
			tab.mu.Lock()
			inputs := append([]*table(nil), tab.mu.rs.tables["a"]...)
			tab.mu.Unlock()
			if err := tab.compact(ctx, "a", inputs, major); err != nil {
				t.Fatalf("compaction over duplicate keys: %v", err)
			}
			want := map[bool]uint64{false: 3, true: 1}[major] // family delete, set, column delete
			if got := tab.Stats().Families[0].Entries; got != want {
				t.Errorf("family a holds %d entries after the compaction, want %d", got, want)
			}
			row, err := tab.ReadRow(ctx, []byte("r"), nil)
			if err != nil || row == nil || len(row.Cells) != 1 {
				t.Fatalf("ReadRow = %s, %v", fmtRow(row), err)
			}
		})
	}
}

func readAll(t *testing.T, fs dfs.FS, name string) []byte {
	t.Helper()
	f, err := fs.Open(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, f.Size())
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFaultCompactionFails: a compaction that cannot write its output or
// install its manifest fails without losing or duplicating anything; the
// reopened tablet holds the same rows and no leftover output.
func TestFaultCompactionFails(t *testing.T) {
	for _, rule := range []faultfs.Rule{
		{Op: faultfs.OpSync, Pattern: "t/sst/*", Nth: 1},
		{Op: faultfs.OpRename, Pattern: "t/MANIFEST-1.tmp", Nth: 1},
	} {
		t.Run(fmt.Sprintf("%v-%s", rule.Op, rule.Pattern), func(t *testing.T) {
			ctx := context.Background()
			ffs := faultfs.New(memfs.New())
			o := faultOptions(ffs)
			o.CompactionTrigger = 100
			tab, err := Open(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			acked := map[string]bool{}
			for i := 0; i < 30; i++ {
				row := fmt.Sprintf("r%03d", i)
				if err := tab.Apply(ctx, []byte(row), markerRow(row), nil); err != nil {
					t.Fatal(err)
				}
				acked[row] = true
				if i%10 == 9 {
					if err := tab.Flush(ctx); err != nil {
						t.Fatal(err)
					}
				}
			}
			live := tab.LiveFiles()
			ffs.AddRule(rule)
			if err := tab.Compact(ctx, true); !errors.Is(err, faultfs.ErrInjected) {
				t.Fatalf("Compact = %v, want the injected fault", err)
			}
			checkRows(t, tab, acked, true)
			tab.Close()
			ffs.ClearRules()
			again, err := Open(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			defer again.Close()
			checkRows(t, again, acked, true)
			if got := again.LiveFiles(); fmt.Sprint(got) != fmt.Sprint(live) {
				t.Errorf("LiveFiles after a failed compaction = %v, want %v", got, live)
			}
			ents, _ := ffs.List(ctx, "t/sst")
			if len(ents) != len(live) {
				t.Errorf("t/sst holds %d files, want the %d live ones", len(ents), len(live))
			}
			if err := again.Compact(ctx, true); err != nil {
				t.Fatal(err)
			}
			checkRows(t, again, acked, true)
		})
	}
}
