package testcluster_test

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strconv"
	"testing"
	"time"

	"cellar/client"
	"cellar/dfs"
	"cellar/internal/testcluster"
	"cellar/tablet"
)

// The master's garbage collector deletes what no live tablet references,
// after the grace period (1 s in the test cluster), and nothing else:
// after a split, once both daughters have compacted the parent's files
// away, those files go; after a merge back, once the merged tablet has
// compacted, the directories of both merged tablets go. Every row stays
// readable throughout.
func TestGarbageCollectionAfterSplitAndMerge(t *testing.T) {
	c := testcluster.Start(t, testcluster.Options{MemFS: true})
	cl := dial(t, c)
	fs := c.FS()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := cl.Admin().CreateTable(ctx, "g", map[string]client.GCPolicy{"f": client.MaxVersionsPolicy(1)}); err != nil {
		t.Fatalf("create: %v", err)
	}
	tbl := cl.Open("g")
	want := map[string]string{}
	for i := range 200 {
		row := fmt.Sprintf("%c%03d", 'a'+rune(i%26), i)
		m := client.NewMutation()
		m.Set("f", "q", 1, []byte(row))
		if err := tbl.Apply(ctx, row, m); err != nil {
			t.Fatal(err)
		}
		want[row] = row
	}
	if err := cl.Admin().FlushTable(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	info, err := cl.Admin().TableInfo(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	dirOf := func(id uint64) string {
		return path.Join("tables", strconv.FormatUint(info.ID, 10), "tablets", strconv.FormatUint(id, 10))
	}
	parentDir := dirOf(info.Tablets[0].ID)
	// Recovered edits of a tablet that does not exist go; those of a
	// live tablet stay (they are replayed when it next loads).
	deadEdits := "recovered/999999/some-server/000001.log"
	liveEdits := fmt.Sprintf("recovered/%d/some-server/000001.log", info.Tablets[0].ID)
	for _, name := range []string{deadEdits, liveEdits} {
		f, err := fs.Create(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	waitGone(t, ctx, fs, deadEdits)
	if _, err := fs.Stat(ctx, liveEdits); err != nil {
		t.Fatalf("recovered edits of a live tablet: %v", err)
	}
	if err := fs.Remove(ctx, liveEdits); err != nil {
		t.Fatal(err)
	}
	parentFiles := listFiles(t, ctx, fs, parentDir+"/sst")
	if len(parentFiles) == 0 {
		t.Fatalf("no SSTables in %s after a flush", parentDir)
	}
	checkRows := func(what string) {
		t.Helper()
		for row, val := range want {
			r, err := tbl.ReadRow(ctx, row)
			if err != nil || r == nil || string(r["f"][0].Value) != val {
				t.Fatalf("%s: row %q = %v, %v; want %q", what, row, r, err, val)
			}
		}
	}

	// Split: the daughters compact the shared files away (the server
	// does it after every split); then the collector deletes them.
	if err := cl.Admin().SplitTable(ctx, "g", "m"); err != nil {
		t.Fatalf("split: %v", err)
	}
	waitGone(t, ctx, fs, parentFiles...)
	t.Logf("the split parent's %d SSTables were collected", len(parentFiles))
	checkRows("after the split's garbage collection")
	info, err = cl.Admin().TableInfo(ctx, "g")
	if err != nil || len(info.Tablets) != 2 {
		t.Fatalf("after the split: %+v, %v", info, err)
	}
	leftDir, rightDir := dirOf(info.Tablets[0].ID), dirOf(info.Tablets[1].ID)
	for _, d := range []string{leftDir, rightDir} {
		if len(listFiles(t, ctx, fs, d+"/sst")) == 0 {
			t.Fatalf("daughter %s has no SSTables left", d)
		}
	}

	// Merge back: the merged tablet is compacted (the master asks after a
	// merge), then both merged tablets' directories go.
	if err := mergeRetrying(ctx, cl, "g", "a"); err != nil {
		t.Fatalf("merge: %v", err)
	}
	waitTablets(t, ctx, c, cl, "g", 1)
	waitNoManifest(t, ctx, fs, leftDir, rightDir)
	if n := len(listFiles(t, ctx, fs, leftDir+"/sst")) + len(listFiles(t, ctx, fs, rightDir+"/sst")); n != 0 {
		t.Fatalf("%d SSTables left in the merged tablets' directories", n)
	}
	t.Logf("the merged tablets' directories were collected")
	checkRows("after the merge's garbage collection")

	// Bad merge requests fail cleanly and change nothing.
	for _, bad := range []struct {
		table, row string
		want       error
	}{
		{"g", "a", client.ErrInvalidArgument}, // the only tablet is the last: no right neighbour
		{"METADATA", "", client.ErrInvalidArgument},
		{"nope", "a", client.ErrTableNotFound},
	} {
		if err := cl.Admin().MergeTablets(ctx, bad.table, bad.row); !errors.Is(err, bad.want) {
			t.Errorf("MergeTablets(%q, %q) = %v, want %v", bad.table, bad.row, err, bad.want)
		}
	}
	waitTablets(t, ctx, c, cl, "g", 1)
	checkRows("after bad merge requests")
}

func listFiles(t *testing.T, ctx context.Context, fs dfs.FS, dir string) []string {
	t.Helper()
	ents, err := fs.List(ctx, dir)
	if err != nil && !errors.Is(err, dfs.ErrNotFound) {
		t.Fatalf("list %s: %v", dir, err)
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir {
			out = append(out, dfs.Join(dir, path.Base(e.Name)))
		}
	}
	return out
}

// waitGone waits until none of the files exists.
// waitNoManifest waits until no manifest of any epoch is left in dirs.
func waitNoManifest(t *testing.T, ctx context.Context, fs dfs.FS, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		for {
			info, err := tablet.ReadManifest(ctx, fs, d)
			if err != nil {
				t.Fatalf("read the manifest in %s: %v", d, err)
			}
			if info == nil {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("the manifest in %s was never garbage-collected", d)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

func waitGone(t *testing.T, ctx context.Context, fs dfs.FS, files ...string) {
	t.Helper()
	for {
		left := 0
		for _, f := range files {
			if _, err := fs.Stat(ctx, f); err == nil {
				left++
			} else if !errors.Is(err, dfs.ErrNotFound) {
				t.Fatalf("stat %s: %v", f, err)
			}
		}
		if left == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d of %v never garbage-collected", left, files)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
