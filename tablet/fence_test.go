package tablet

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"
	"testing"

	"cellar/dfs"
	"cellar/dfs/memfs"
)

// openFenced opens the test tablet on fs with fenceOptions, failing the
// test if it cannot.
func openFenced(t *testing.T, fs dfs.FS) *Tablet {
	t.Helper()
	tab, err := Open(context.Background(), fenceOptions(fs))
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func fenceOptions(fs dfs.FS) *Options {
	o := faultOptions(fs)
	o.CompactionTrigger = 100 // compactions only when the test asks
	return o
}

// applyRows applies marker rows prefix00..prefix<n-1> without a log entry
// (durable only once flushed, so that no commit log is replayed and a
// tablet's state is its manifest) and flushes them.
func applyRows(t *testing.T, tab *Tablet, prefix string, n int, acked map[string]bool) error {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < n; i++ {
		row := fmt.Sprintf("%s%02d", prefix, i)
		if err := tab.Apply(ctx, []byte(row), markerRow(row), &WriteOptions{Durability: SkipLog}); err != nil {
			return err
		}
		if acked != nil {
			acked[row] = true
		}
	}
	return tab.Flush(ctx)
}

func checkFilesExist(t *testing.T, fs dfs.FS, files []string) {
	t.Helper()
	for _, f := range files {
		if _, err := fs.Stat(context.Background(), f); err != nil {
			t.Errorf("file %s listed by the live manifest: %v", f, err)
		}
	}
}

// TestZombieTabletIsFenced: a server paused past its lock session (A)
// resumes after another (B) opened the tablet and wrote to it, and goes on
// compacting and flushing. A's manifest commits must fail with ErrFenced,
// A must delete none of the files B's state lists, and a later opener must
// see exactly B's state.
func TestZombieTabletIsFenced(t *testing.T) {
	ctx := context.Background()
	fs := memfs.New()
	a := openFenced(t, fs)
	defer a.Close()
	acked := map[string]bool{}
	for _, p := range []string{"a", "b"} {
		if err := applyRows(t, a, p, 20, acked); err != nil {
			t.Fatal(err)
		}
	}
	// B takes the tablet over; A is not closed (it is paused, not dead).
	b := openFenced(t, fs)
	if err := applyRows(t, b, "c", 20, acked); err != nil {
		t.Fatal(err)
	}
	bFiles := b.LiveFiles()

	// A resumes: a major compaction of the tables B still lists (their
	// deletion would lose B's data), then a flush.
	if err := a.Compact(ctx, true); !errors.Is(err, ErrFenced) {
		t.Fatalf("zombie's Compact = %v, want ErrFenced", err)
	}
	checkFilesExist(t, fs, bFiles)
	if err := applyRows(t, a, "z", 20, nil); !errors.Is(err, ErrFenced) {
		t.Fatalf("zombie's Flush = %v, want ErrFenced", err)
	}
	if err := a.Apply(ctx, []byte("z99"), markerRow("z99"), nil); !errors.Is(err, ErrFenced) {
		t.Fatalf("zombie's Apply after a fenced flush = %v, want ErrFenced", err)
	}
	checkFilesExist(t, fs, bFiles)
	info, err := ReadManifest(ctx, fs, "t")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(info.Files) != fmt.Sprint(bFiles) {
		t.Fatalf("ReadManifest lists %v, want B's %v", info.Files, bFiles)
	}
	checkRows(t, b, acked, true)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	checkFilesExist(t, fs, bFiles)

	c := openFenced(t, fs)
	defer c.Close()
	checkRows(t, c, acked, true)
	if got := c.LiveFiles(); fmt.Sprint(got) != fmt.Sprint(bFiles) {
		t.Fatalf("C lists %v, want B's %v", got, bFiles)
	}
	// C works normally: its compaction may delete B's tables.
	if err := c.Compact(ctx, true); err != nil {
		t.Fatal(err)
	}
	checkRows(t, c, acked, true)
	checkFilesExist(t, fs, c.LiveFiles())
	// A, closing, deletes nothing either.
	live := c.LiveFiles()
	a.Close()
	checkFilesExist(t, fs, live)
}

// TestZombieCompactionDeletesNothing: the plainest loss. A compacts the
// tables B opened with; without fencing A would delete them (they are its
// obsolete, owned inputs) and rename its manifest over B's.
func TestZombieCompactionDeletesNothing(t *testing.T) {
	ctx := context.Background()
	fs := memfs.New()
	a := openFenced(t, fs)
	defer a.Close()
	acked := map[string]bool{}
	for _, p := range []string{"a", "b"} {
		if err := applyRows(t, a, p, 20, acked); err != nil {
			t.Fatal(err)
		}
	}
	b := openFenced(t, fs)
	bFiles := b.LiveFiles()
	b.Close() // B's readers must not hide a deletion
	if err := a.Compact(ctx, true); !errors.Is(err, ErrFenced) {
		t.Errorf("zombie's Compact = %v, want ErrFenced", err)
	}
	checkFilesExist(t, fs, bFiles)
	c := openFenced(t, fs)
	defer c.Close()
	if got := c.LiveFiles(); fmt.Sprint(got) != fmt.Sprint(bFiles) {
		t.Errorf("C lists %v, want B's %v", got, bFiles)
	}
	checkRows(t, c, acked, true)
}

// TestZombieSplitIsFenced: a split by a Tablet fenced since it began
// does not commit: the newest manifest of the parent's directory is still
// the new opener's, with the parent's range.
func TestZombieSplitIsFenced(t *testing.T) {
	ctx := context.Background()
	fs := memfs.New()
	a := openFenced(t, fs)
	defer a.Close()
	acked := map[string]bool{}
	if err := applyRows(t, a, "a", 20, acked); err != nil {
		t.Fatal(err)
	}
	b := openFenced(t, fs)
	defer b.Close()
	if _, _, err := a.Split(ctx, []byte("a10"), "left", "t"); !errors.Is(err, ErrFenced) {
		t.Fatalf("zombie's Split = %v, want ErrFenced", err)
	}
	info, err := ReadManifest(ctx, fs, "t")
	if err != nil {
		t.Fatal(err)
	}
	if info.StartRow != nil || info.EndRow != nil || info.Split {
		t.Fatalf("parent dir's manifest covers [%q, %q) split=%v after a fenced split; want the whole range",
			info.StartRow, info.EndRow, info.Split)
	}
	checkRows(t, b, acked, true)
}

// TestConcurrentOpens: two Opens of one directory at once never both
// serve it: of those that open, only the newest commits manifests (the
// other's flush fails with ErrFenced); a failed Open fails cleanly. A
// reopen sees exactly the rows of the tablet that committed.
func TestConcurrentOpens(t *testing.T) {
	ctx := context.Background()
	fs := memfs.New()
	for round := 0; round < 20; round++ {
		dir := fmt.Sprintf("race%d", round)
		var tabs [2]*Tablet
		var errs [2]error
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range tabs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				o := fenceOptions(fs)
				o.Dir = dir
				<-start
				tabs[i], errs[i] = Open(ctx, o)
			}()
		}
		close(start)
		wg.Wait()
		committed, opened := 0, 0
		var want map[string]bool
		for i, tab := range tabs {
			if errs[i] != nil {
				// Usually ErrFenced; the racing opener may also have
				// removed the older epoch's temporary manifest, or taken
				// the tablet's own commit log file name first.
				t.Logf("round %d: Open failed: %v", round, errs[i])
				continue
			}
			opened++
			acked := map[string]bool{}
			err := applyRows(t, tab, fmt.Sprintf("t%d-", i), 5, acked)
			switch {
			case err == nil:
				committed++
				want = acked
			case !errors.Is(err, ErrFenced):
				t.Fatalf("round %d: flush = %v, want success or ErrFenced", round, err)
			}
		}
		for _, tab := range tabs {
			if tab != nil {
				tab.Close()
			}
		}
		if committed > 1 || opened == 2 && committed != 1 {
			t.Fatalf("round %d: %d of %d opened tablets committed a flush, want exactly 1 (errors %v)", round, committed, opened, errs)
		}
		o := fenceOptions(fs)
		o.Dir = dir
		again, err := Open(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		checkRows(t, again, want, true)
		again.Close()
	}
}

// TestOpenLegacyManifest: a directory written before epochs (only
// MANIFEST) opens: its manifest is epoch 0; the first Open claims epoch 1,
// rewrites the state as MANIFEST-1 and removes the legacy file.
func TestOpenLegacyManifest(t *testing.T) {
	ctx := context.Background()
	fs := memfs.New()
	// A tablet with tables, then its manifest moved to the legacy name
	// and the epoch files removed: the layout of an older version.
	tab := openFenced(t, fs)
	acked := map[string]bool{}
	if err := applyRows(t, tab, "r", 20, acked); err != nil {
		t.Fatal(err)
	}
	files := tab.LiveFiles()
	tab.Close()
	m, err := readManifest(ctx, fs, "t")
	if err != nil || m == nil {
		t.Fatalf("readManifest = %v, %v", m, err)
	}
	for _, name := range strings.Fields(manifestNames(t, fs, "t")) {
		if err := fs.Remove(ctx, "t/"+name); err != nil {
			t.Fatal(err)
		}
	}
	f, err := fs.Create(ctx, "t/MANIFEST")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(m.encode()); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	info, err := ReadManifest(ctx, fs, "t")
	if err != nil || fmt.Sprint(info.Files) != fmt.Sprint(files) {
		t.Fatalf("ReadManifest of the legacy manifest = %+v, %v", info, err)
	}

	tab = openFenced(t, fs)
	defer tab.Close()
	checkRows(t, tab, acked, true)
	if got := manifestNames(t, fs, "t"); got != "CLAIM-1 MANIFEST-1" {
		t.Fatalf("dir holds %s after opening a legacy one, want CLAIM-1 MANIFEST-1", got)
	}
}

// manifestNames lists the epoch-named files of dir, sorted.
func manifestNames(t *testing.T, fs dfs.FS, dir string) string {
	t.Helper()
	ents, err := fs.List(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name, "MANIFEST") || strings.HasPrefix(e.Name, "CLAIM") {
			names = append(names, path.Base(e.Name))
		}
	}
	sort.Strings(names)
	return strings.Join(names, " ")
}

// TestOpenRemovesOlderEpochs: each Open claims the next epoch and removes
// the files of older ones (once its own manifest is durable), never a
// higher one's.
func TestOpenRemovesOlderEpochs(t *testing.T) {
	ctx := context.Background()
	fs := memfs.New()
	for want := uint64(1); want <= 3; want++ {
		tab := openFenced(t, fs)
		tab.Close()
		if got, w := manifestNames(t, fs, "t"), fmt.Sprintf("CLAIM-%d MANIFEST-%d", want, want); got != w {
			t.Fatalf("dir holds %s, want %s", got, w)
		}
	}
	// A claim above a manifest (an opener that failed after claiming) is
	// passed over, not reused, and cleaned up by the next Open.
	f, err := fs.Create(ctx, "t/CLAIM-7")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	tab := openFenced(t, fs)
	defer tab.Close()
	if got := manifestNames(t, fs, "t"); got != "CLAIM-8 MANIFEST-8" {
		t.Fatalf("dir holds %s, want CLAIM-8 MANIFEST-8", got)
	}
}

// TestTableNumberTaken: a table number a previous server took after the
// manifest was written (it still numbers from the manifest's nextFileNum)
// is skipped, both at Open and when a table is created.
func TestTableNumberTaken(t *testing.T) {
	ctx := context.Background()
	fs := memfs.New()
	tab := openFenced(t, fs)
	acked := map[string]bool{}
	if err := applyRows(t, tab, "r", 10, acked); err != nil {
		t.Fatal(err)
	}
	next := tab.nextFile.Load()
	// Taken while the tablet is open: creating tables skips it.
	for i := uint64(0); i < 3; i++ {
		f, err := fs.Create(ctx, dfs.Join("t/sst", tableName(next+i)))
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	if err := applyRows(t, tab, "s", 10, acked); err != nil {
		t.Fatalf("flush with its table numbers taken: %v", err)
	}
	for _, f := range tab.LiveFiles() {
		if n, _ := parseTableName(path.Base(f)); n >= next && n < next+3 {
			t.Fatalf("table %s reuses a taken number", f)
		}
	}
	tab.Close()
	// Taken above everything: the next Open numbers past it.
	f, err := fs.Create(ctx, dfs.Join("t/sst", tableName(100)))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	tab = openFenced(t, fs)
	defer tab.Close()
	if n := tab.nextFile.Load(); n != 101 {
		t.Fatalf("next table number after Open = %d, want 101", n)
	}
	checkRows(t, tab, acked, true)
}
