package tablet

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"cellar/dfs"
	"cellar/internal/keys"
	"cellar/memtable"
	"cellar/sstable"
)

// memTable is a memtable with the bookkeeping of the write path.
type memTable struct {
	m *memtable.Memtable
	// writers counts Applies that chose this memtable and have not yet
	// finished inserting; Add(1) only under Tablet.mu while it is active.
	writers sync.WaitGroup
	// inflight is the arena bytes reserved by those writers: Size() +
	// inflight bounds what the memtable will hold, so an admitted Apply
	// always fits and a row is never split across memtables.
	inflight atomic.Int64
	// lastSeq is the largest sequence number assigned to it; set when it
	// becomes immutable (under Tablet.mu).
	lastSeq keys.SeqNum
	// flushSeq is what a flush of it records as FlushedSeq: lastSeq, except
	// for memtables filled by replay (see replayLogs).
	flushSeq keys.SeqNum
	// refs counts the tablet's own reference (held from creation until
	// the memtable's flush is installed, or forever if the tablet closes
	// first) and one per read state listing it. At zero the memtable goes
	// back to pool for reuse: no reader can still see its arena.
	refs atomic.Int32
	pool *memtable.Pool
}

func (m *memTable) ref() { m.refs.Add(1) }

func (m *memTable) unref() {
	switch n := m.refs.Add(-1); {
	case n == 0:
		m.pool.Put(m.m)
	case n < 0:
		panic("cellar/tablet: memtable released more often than referenced")
	}
}

// table is an open SSTable shared by read states. It is closed when the
// last read state holding it lets go, and its file is then deleted if it is
// obsolete (compacted away) and owned (created by this tablet).
type table struct {
	meta   fileMeta
	family string
	r      *sstable.Reader
	refs   atomic.Int32
	// obsolete is set once a manifest without this table is durable.
	obsolete atomic.Bool
	owned    bool
	fs       dfs.FS
	// lo and hi are the key bounds of meta.lo and meta.hi (nil =
	// unbounded): reads and compactions see only the keys in [lo, hi).
	lo, hi []byte
}

// newIter returns an iterator over the table's entries within its bounds.
// o says how it uses the block cache (compactions read past it; scans stop
// filling it after a few blocks).
func (t *table) newIter(o sstable.IterOptions) internalIterator {
	it := t.r.NewIterWith(o)
	if t.lo == nil && t.hi == nil {
		return it
	}
	return &boundedIter{it: it, lo: t.lo, hi: t.hi}
}

func (t *table) ref() { t.refs.Add(1) }

func (t *table) unref() error {
	if t.refs.Add(-1) != 0 {
		return nil
	}
	err := t.r.Close()
	if t.obsolete.Load() && t.owned {
		if rerr := t.fs.Remove(context.Background(), t.meta.path); rerr != nil && !errors.Is(rerr, dfs.ErrNotFound) {
			err = errors.Join(err, fmt.Errorf("cellar/tablet: delete obsolete %s: %w", t.meta.path, rerr))
		}
	}
	return err
}

// readState is an immutable snapshot of the sources a read merges. Readers
// hold a reference while they read; it keeps its tables open.
type readState struct {
	refs   atomic.Int32
	mems   []*memTable         // newest first: the active memtable, then immutables
	tables map[string][]*table // per family
}

func (rs *readState) unref() error {
	if rs.refs.Add(-1) != 0 {
		return nil
	}
	for _, m := range rs.mems {
		m.unref()
	}
	var errs []error
	for _, ts := range rs.tables {
		for _, t := range ts {
			errs = append(errs, t.unref())
		}
	}
	return errors.Join(errs...)
}

func newReadState(mems []*memTable, tables map[string][]*table) *readState {
	rs := &readState{mems: mems, tables: tables, refs: atomic.Int32{}}
	rs.refs.Store(1)
	for _, m := range mems {
		m.ref()
	}
	for _, ts := range tables {
		for _, t := range ts {
			t.ref()
		}
	}
	return rs
}

func (t *Tablet) sstDir() string { return dfs.Join(t.opts.Dir, "sst") }

// owns reports whether the tablet may delete the table file path: it is in
// the tablet's own sst directory and was written after the last split that
// kept this directory (see manifest.splitFloor), so no other manifest
// lists it.
func (t *Tablet) owns(path string, splitFloor uint64) bool {
	base, ok := strings.CutPrefix(path, t.sstDir()+"/")
	if !ok {
		return false
	}
	num, ok := parseTableName(base)
	return ok && num >= splitFloor
}

func tableName(num uint64) string { return fmt.Sprintf("%06d.sst", num) }

// parseTableName returns the number of a table file name.
func parseTableName(base string) (uint64, bool) {
	digits, ok := strings.CutSuffix(base, ".sst")
	if !ok || digits == "" {
		return 0, false
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	return n, err == nil
}

// openTable opens the SSTable of meta for reading.
func (t *Tablet) openTable(ctx context.Context, family string, meta fileMeta) (*table, error) {
	f, err := t.opts.FS.Open(ctx, meta.path)
	if err != nil {
		return nil, fmt.Errorf("cellar/tablet: open %s: %w", meta.path, err)
	}
	r, err := sstable.Open(f, meta.path, &sstable.ReaderOptions{Cache: t.opts.Cache})
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("cellar/tablet: open %s: %w", meta.path, err)
	}
	tb := &table{meta: meta, family: family, r: r, owned: t.owns(meta.path, t.splitFloor), fs: t.opts.FS}
	tb.lo, tb.hi = rowBounds(meta.lo, meta.hi)
	return tb, nil
}

// tableWriter writes one new SSTable of a family.
type tableWriter struct {
	path string
	w    *sstable.Writer
	n    uint64
}

// maxTableCreateAttempts bounds newTableWriter's skips past numbers taken.
const maxTableCreateAttempts = 16

func (t *Tablet) newTableWriter(ctx context.Context, family string) (*tableWriter, error) {
	var f dfs.File
	var path string
	for attempt := 1; ; attempt++ {
		num := t.nextFile.Add(1) - 1
		path = dfs.Join(t.sstDir(), tableName(num))
		var err error
		f, err = t.opts.FS.Create(ctx, path)
		if err == nil {
			break
		}
		// A server that had the tablet before (see ErrFenced) may have
		// taken the number since Open looked: skip it.
		if !errors.Is(err, dfs.ErrExist) || attempt == maxTableCreateAttempts {
			return nil, fmt.Errorf("cellar/tablet: create %s: %w", path, err)
		}
	}
	fo := t.fam[family]
	w := sstable.NewWriter(f, &sstable.WriterOptions{
		BlockSize: fo.BlockSize, Compression: fo.Compression, BloomFalsePositive: fo.BloomFalsePositive,
	})
	return &tableWriter{path: path, w: w}, nil
}

func (w *tableWriter) add(key, value []byte) error {
	w.n++
	if err := w.w.Add(key, value); err != nil {
		return fmt.Errorf("cellar/tablet: write %s: %w", w.path, err)
	}
	return nil
}

// finish closes (and syncs) the table and returns its metadata.
func (w *tableWriter) finish() (fileMeta, error) {
	if err := w.w.Close(); err != nil {
		return fileMeta{}, fmt.Errorf("cellar/tablet: finish %s: %w", w.path, err)
	}
	p := w.w.Properties()
	return fileMeta{path: w.path, size: p.FileSize, entries: w.n}, nil
}

// abandon closes and removes a table that will not be installed.
func (w *tableWriter) abandon(ctx context.Context, fs dfs.FS) {
	_ = w.w.Close()
	_ = fs.Remove(ctx, w.path)
}
