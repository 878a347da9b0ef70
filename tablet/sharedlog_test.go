package tablet

import (
	"context"
	"fmt"
	"testing"

	"cellar/dfs/memfs"
	"cellar/internal/keys"
	"cellar/wal"
)

// TestSharedLogRecovery: two tablets append to one shared log; after a
// crash each recovers its own acknowledged rows from RecoverLogDirs, and
// the owner releases log files using FlushedSeq.
func TestSharedLogRecovery(t *testing.T) {
	ctx := context.Background()
	fs := memfs.New()
	log, err := wal.Open(ctx, fs, &wal.Options{Dir: "srv/log", Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	open := func(fs *memfs.FS, id ID, l *wal.Log, recover bool) *Tablet {
		o := &Options{FS: fs, Dir: fmt.Sprintf("tab/%d", id), ID: id, Log: l, MemtableSize: 8 << 10}
		if recover {
			o.RecoverLogDirs = []string{"srv/log"}
		}
		return openTest(t, o)
	}
	a, b := open(fs, 1, log, false), open(fs, 2, log, false)
	for i := 0; i < 60; i++ {
		for _, tab := range []*Tablet{a, b} {
			row := []byte(fmt.Sprintf("%d-r%03d", tab.opts.ID, i))
			if err := tab.Apply(ctx, row, markerRow(string(row)), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := a.Flush(ctx); err != nil { // a's entries become redundant
		t.Fatal(err)
	}
	crashed := fs.CrashClone()
	a.Close()
	b.Close()
	log.Close()

	log2, err := wal.Open(ctx, crashed, &wal.Options{Dir: "srv/log", Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer log2.Close()
	a, b = open(crashed, 1, log2, true), open(crashed, 2, log2, true)
	for _, tab := range []*Tablet{a, b} {
		want := map[string]bool{}
		for i := 0; i < 60; i++ {
			want[fmt.Sprintf("%d-r%03d", tab.opts.ID, i)] = true
		}
		checkRows(t, tab, want, true)
	}
	// Both tablets flushed what they replayed: every old log file can go.
	flushed := map[uint64]keys.SeqNum{1: a.FlushedSeq(), 2: b.FlushedSeq()}
	released, err := log2.Release(func(f wal.FileInfo) bool {
		for id, s := range f.MaxSeq {
			if s > flushed[id] {
				return false
			}
		}
		return true
	})
	if err != nil || len(released) == 0 {
		t.Fatalf("Release = %v, %v; want the old log files released", released, err)
	}
	// New writes after recovery go on with higher sequence numbers.
	if err := b.Apply(ctx, []byte("2-new"), markerRow("2-new"), nil); err != nil {
		t.Fatal(err)
	}
	if r, _ := b.ReadRow(ctx, []byte("2-new"), nil); r == nil {
		t.Fatal("write after recovery missing")
	}
}
