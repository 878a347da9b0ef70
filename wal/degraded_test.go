package wal_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"cellar/dfs"
	"cellar/dfs/memfs"
	"cellar/internal/clock"
	"cellar/internal/keys"
	"cellar/wal"
)

// degradingFS hands out files that report lost replicas once degrade is
// set (as a dfs file does after its pipeline dropped a replica).
type degradingFS struct {
	dfs.FS
	degrade atomic.Bool
	created atomic.Int32
}

type degradingFile struct {
	dfs.File
	fs       *degradingFS
	degraded atomic.Bool // set at the first Sync after fs.degrade; read by the writer while the syncer syncs
}

func (f *degradingFile) Sync(ctx context.Context) error {
	if f.fs.degrade.Load() {
		f.degraded.Store(true)
	}
	return f.File.Sync(ctx)
}

func (f *degradingFile) Degraded() bool { return f.degraded.Load() }

func (fs *degradingFS) Create(ctx context.Context, name string) (dfs.File, error) {
	f, err := fs.FS.Create(ctx, name)
	if err != nil {
		return nil, err
	}
	fs.created.Add(1)
	return &degradingFile{File: f, fs: fs}, nil
}

// TestRollOnLowReplication: when the live log file reports lost replicas
// after a sync, the log rolls to a new file (which starts with a full
// pipeline) once, and every entry replays.
func TestRollOnLowReplication(t *testing.T) {
	ctx := context.Background()
	fs := &degradingFS{FS: memfs.New()}
	clk := clock.NewFake(time.Unix(1e9, 0))
	l, err := wal.Open(ctx, fs, &wal.Options{Dir: "log", Clock: clk, LowReplicationRollInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	seq := keys.SeqNum(0)
	appendN := func(n int) {
		for range n {
			seq++
			if err := l.Append(ctx, wal.Entry{Tablet: 1, Seq: seq, Data: []byte("x")}, true); err != nil {
				t.Fatal(err)
			}
		}
	}
	appendN(10)
	if got := fs.created.Load(); got != 1 {
		t.Fatalf("%d files created before the fault, want 1", got)
	}
	fs.degrade.Store(true)
	appendN(1) // its sync finds the file degraded
	fs.degrade.Store(false)
	appendN(10) // the next group rolls
	if got := fs.created.Load(); got != 2 {
		t.Errorf("%d files created, want 2 (one low-replication roll)", got)
	}
	if st := l.Stats(); st.LowReplicationRolls != 1 {
		t.Errorf("stats %+v, want 1 low-replication roll", st)
	}
	// Too few replicas for every new file: rolls are spaced by the
	// interval, not one per sync.
	fs.degrade.Store(true)
	appendN(20)
	if got := fs.created.Load(); got != 2 {
		t.Errorf("%d files created within the interval, want still 2", got)
	}
	clk.Advance(time.Minute)
	appendN(5)
	fs.degrade.Store(false)
	if got := fs.created.Load(); got != 3 {
		t.Errorf("%d files created after the interval, want 3", got)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	n := 0
	if _, err := wal.Replay(ctx, fs, "log", nil, func(e wal.Entry) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != int(seq) {
		t.Errorf("replayed %d entries, want %d", n, seq)
	}
}

// TestRollOnLowReplicationWhenIdle: a log that goes idle right after its
// file lost replicas still rolls, on its replication check timer.
func TestRollOnLowReplicationWhenIdle(t *testing.T) {
	ctx := context.Background()
	fs := &degradingFS{FS: memfs.New()}
	clk := clock.NewFake(time.Unix(1e9, 0))
	l, err := wal.Open(ctx, fs, &wal.Options{Dir: "log", Clock: clk, LowReplicationRollInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Append(ctx, wal.Entry{Tablet: 1, Seq: 1, Data: []byte("x")}, true); err != nil {
		t.Fatal(err)
	}
	fs.degrade.Store(true)
	if err := l.Append(ctx, wal.Entry{Tablet: 1, Seq: 2, Data: []byte("y")}, true); err != nil {
		t.Fatal(err)
	}
	fs.degrade.Store(false)
	if got := fs.created.Load(); got != 1 {
		t.Fatalf("%d files before the check, want 1", got)
	}
	clk.Advance(time.Minute)
	waitFor(t, func() bool { return fs.created.Load() == 2 })
	if st := l.Stats(); st.LowReplicationRolls != 1 {
		t.Errorf("stats %+v, want 1 low-replication roll", st)
	}
}
