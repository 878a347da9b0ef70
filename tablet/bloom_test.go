package tablet

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"cellar/dfs"
	"cellar/dfs/memfs"
)

// countingFS counts ReadAt calls per file.
type countingFS struct {
	dfs.FS
	mu    sync.Mutex
	reads map[string]int
}

type countingFile struct {
	dfs.ReadFile
	fs   *countingFS
	name string
}

func (c *countingFS) Open(ctx context.Context, name string) (dfs.ReadFile, error) {
	f, err := c.FS.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	return &countingFile{ReadFile: f, fs: c, name: name}, nil
}

func (f *countingFile) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	f.fs.reads[f.name]++
	f.fs.mu.Unlock()
	return f.ReadFile.ReadAt(p, off)
}

// TestBloomSkipsTables: a point read touches only the tables whose Bloom
// filter may hold the row, and only the family asked for.
func TestBloomSkipsTables(t *testing.T) {
	ctx := context.Background()
	cfs := &countingFS{FS: memfs.New(), reads: map[string]int{}}
	tab := openTest(t, &Options{FS: cfs, CompactionTrigger: 100, Families: []FamilyOptions{
		{Name: "a", BloomFalsePositive: 1e-6}, {Name: "b", BloomFalsePositive: 1e-6}}})
	// Four flushes, four tables per family, each with its own rows.
	for f := 0; f < 4; f++ {
		for i := 0; i < 50; i++ {
			row := []byte(fmt.Sprintf("t%d-r%02d", f, i))
			if err := tab.Apply(ctx, row, []Mutation{SetCell("a", nil, 1, row), SetCell("b", nil, 1, row)}, nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := tab.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	files := tab.LiveFiles()
	if len(files) != 8 {
		t.Fatalf("%d live tables, want 8", len(files))
	}
	cfs.mu.Lock()
	clear(cfs.reads)
	cfs.mu.Unlock()
	for i := 0; i < 50; i += 7 {
		row := []byte(fmt.Sprintf("t2-r%02d", i))
		r, err := tab.ReadRow(ctx, row, &ReadOptions{Families: []string{"a"}})
		if err != nil || r == nil || len(r.Cells) != 1 {
			t.Fatalf("ReadRow(%s) = %v, %v", row, r, err)
		}
	}
	cfs.mu.Lock()
	defer cfs.mu.Unlock()
	var touched []string
	for name, n := range cfs.reads {
		if n > 0 && strings.Contains(name, "/sst/") {
			touched = append(touched, name)
		}
	}
	// Flush 2 wrote tables 5 (a) and 6 (b): numbers start at 1, one per family.
	if len(touched) != 1 || !strings.HasSuffix(touched[0], "000005.sst") {
		t.Fatalf("point reads of one family's rows read tables %v, want only t/sst/000005.sst", touched)
	}
}
