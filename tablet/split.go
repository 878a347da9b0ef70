package tablet

import (
	"bytes"
	"context"
	"fmt"

	"cellar/dfs"
	"cellar/internal/keys"
	"cellar/sstable"
)

// Stats describes a tablet's state.
type Stats struct {
	// MemtableBytes is the arena bytes used by the active and immutable
	// memtables; ImmutableMemtables counts those waiting for a flush.
	MemtableBytes      int64
	ImmutableMemtables int
	// Families lists each family of the schema, in name order.
	Families []FamilyStats
	// Flushes, Compactions and WriteStalls count events since Open.
	Flushes, Compactions, WriteStalls uint64
	LastSeq, FlushedSeq               keys.SeqNum
}

// FamilyStats describes the SSTables of one family.
type FamilyStats struct {
	Name    string
	Files   int
	Bytes   int64
	Entries uint64
}

// Stats returns a snapshot of the tablet's counters.
func (t *Tablet) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := Stats{
		ImmutableMemtables: len(t.mu.imm),
		Flushes:            t.stats.flushes.Load(),
		Compactions:        t.stats.compactions.Load(),
		WriteStalls:        t.stats.stalls.Load(),
		LastSeq:            t.mu.nextSeq - 1,
		FlushedSeq:         t.FlushedSeq(),
	}
	active, imm := t.memtableSizesLocked()
	s.MemtableBytes = active + imm
	for _, f := range t.lim.families {
		fs := FamilyStats{Name: f}
		for _, fm := range t.mu.man.families[f] {
			fs.Files++
			fs.Bytes += int64(fm.size)
			fs.Entries += fm.entries
		}
		s.Families = append(s.Families, fs)
	}
	return s
}

// MemtableBytes reports the arena bytes of the tablet's memtables: active
// is the active memtable's (with what admitted writers are inserting),
// total adds the immutable ones waiting for their flush. A server's
// memtable budget sums it over its tablets; it is cheaper than Stats.
func (t *Tablet) MemtableBytes() (active, total int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	active, imm := t.memtableSizesLocked()
	active += t.mu.mem.inflight.Load()
	return active, active + imm
}

// memtableSizesLocked returns the arena bytes of the active memtable and
// of the immutable ones together.
func (t *Tablet) memtableSizesLocked() (active, imm int64) {
	for _, m := range t.mu.imm {
		imm += m.m.Size()
	}
	return t.mu.mem.m.Size(), imm
}

// LiveFiles lists the SSTables the tablet's manifest references, including
// files inherited from a split parent. A table-wide garbage collector
// deletes a file only when no tablet's LiveFiles holds it.
func (t *Tablet) LiveFiles() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for _, f := range sortedKeys(t.mu.man.families) {
		for _, fm := range t.mu.man.families[f] {
			out = append(out, fm.path)
		}
	}
	return out
}

// SplitKey returns a row near the middle of the tablet's data by size: the
// middle key of its largest SSTable, or, with no tables, the middle entry of
// its memtables. The row is strictly inside the tablet's range and above
// its first row, so both daughters of a split at it get rows. ErrNoSplitKey
// when there is no such row.
func (t *Tablet) SplitKey() ([]byte, error) {
	rs, _, err := t.acquire()
	if err != nil {
		return nil, err
	}
	defer rs.unref()
	var biggest *table
	for _, ts := range rs.tables {
		for _, tb := range ts {
			if biggest == nil || tb.meta.size > biggest.meta.size {
				biggest = tb
			}
		}
	}
	var mid []byte
	if biggest != nil {
		mid = biggest.r.MidKey()
	}
	if mid == nil {
		mid = memMidKey(t.memIters(rs))
	}
	if mid == nil {
		return nil, ErrNoSplitKey
	}
	k, err := keys.Decode(mid)
	if err != nil {
		return nil, fmt.Errorf("%w: split key: %v", ErrCorrupt, err)
	}
	row := append([]byte{}, k.Row...)
	if t.checkRow(row) != nil || (t.opts.StartRow != nil && bytes.Equal(row, t.opts.StartRow)) {
		return nil, ErrNoSplitKey
	}
	first, err := t.firstRow(rs)
	if err != nil {
		return nil, err
	}
	if first == nil || string(row) <= string(first) {
		return nil, ErrNoSplitKey
	}
	return row, nil
}

// memMidKey returns the middle key of the merged memtables, or nil.
func memMidKey(children []internalIterator) []byte {
	mi := newMergingIter(children)
	defer mi.Close()
	n := 0
	for ok := mi.First(); ok; ok = mi.Next() {
		n++
	}
	i := 0
	for ok := mi.First(); ok; ok = mi.Next() {
		if i == n/2 {
			return append([]byte{}, mi.Key()...)
		}
		i++
	}
	return nil
}

// firstRow returns the smallest row with any entry in the tablet's range.
func (t *Tablet) firstRow(rs *readState) ([]byte, error) {
	children := t.memIters(rs)
	for _, ts := range rs.tables {
		for _, tb := range ts {
			children = append(children, tb.newIter(sstable.IterOptions{}))
		}
	}
	mi := newMergingIter(children)
	defer mi.Close()
	lo, hi := rowBounds(t.opts.StartRow, t.opts.EndRow)
	ok := mi.seekLo(lo)
	if !ok || (hi != nil && bytes.Compare(mi.Key(), hi) >= 0) {
		return nil, mi.Error()
	}
	k, err := keys.Decode(mi.Key())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return append([]byte{}, k.Row...), nil
}

// Split ends this tablet and creates its two daughters: left holds
// [StartRow, splitRow) in leftDir, right [splitRow, EndRow) in rightDir. It
// stops writes (later Applies fail with ErrClosed), flushes everything,
// stops background work, and writes a manifest for each daughter that lists
// the parent's SSTables by path, restricted to the daughter's rows by its
// range; nothing is copied. The returned Options (copies of this tablet's,
// with Dir and the row range changed) open the daughters; give a daughter a
// new ID before opening it if the tablets share a log. The parent is closed.
//
// One daughter may keep the parent's directory (leftDir or rightDir equal
// to the parent's Dir, as the serving layer does for the right daughter):
// its manifest replaces the parent's in one atomic rename, which is the
// split's commit point. Otherwise the parent's manifest is marked split and
// Open refuses it (ErrSplit). Split fails if a daughter's new directory
// already holds a tablet.
//
// Shared files are never deleted: a tablet deletes only tables in its own
// Dir/sst numbered at or above its manifest's split floor. A daughter in a
// new directory owns none of the parent's tables; a daughter that keeps the
// directory gets a split floor above every table the parent wrote; a split
// parent never opens again. Tables that no manifest lists any more (the
// daughters' compactions rewrite them) are the table-wide garbage
// collector's to delete: LiveFiles lists what a tablet references.
func (t *Tablet) Split(ctx context.Context, splitRow []byte, leftDir, rightDir string) (left, right *Options, err error) {
	if err := keys.ValidateRow(splitRow); err != nil {
		return nil, nil, err
	}
	if err := t.checkRow(splitRow); err != nil {
		return nil, nil, err
	}
	if t.opts.StartRow != nil && bytes.Equal(splitRow, t.opts.StartRow) {
		return nil, nil, fmt.Errorf("%w: split at the tablet's first row %q leaves the left daughter empty", ErrRowOutOfRange, splitRow)
	}
	if leftDir == rightDir {
		return nil, nil, fmt.Errorf("%w: both daughters in %s", ErrInvalidOptions, leftDir)
	}
	for _, d := range []string{leftDir, rightDir} {
		if err := dfs.CheckPath(d, false); err != nil {
			return nil, nil, fmt.Errorf("%w: daughter dir: %v", ErrInvalidOptions, err)
		}
		if d == t.opts.Dir {
			continue
		}
		if m, err := readManifest(ctx, t.opts.FS, d); err != nil || m != nil {
			return nil, nil, fmt.Errorf("%w: daughter dir %s already holds a tablet (%v)", ErrInvalidOptions, d, err)
		}
	}
	// Stop writes, wait for those in flight, flush everything.
	t.mu.Lock()
	if t.mu.closed {
		t.mu.Unlock()
		return nil, nil, ErrClosed
	}
	t.mu.closed = true
	t.notifyLocked()
	t.mu.Unlock()
	t.mu.inflight.Wait()
	if err := t.Flush(ctx); err != nil {
		return nil, nil, fmt.Errorf("cellar/tablet: split: %w (the tablet refuses writes; reopen it)", err)
	}
	// No background work may touch the file set from here on: a parent
	// compaction would delete files the daughters reference.
	t.bgCancel()
	t.bg.Wait()
	t.compactMu.Lock()
	t.installMu.Lock()
	// Unlocked before Close, which takes both.
	unlock := func() { t.installMu.Unlock(); t.compactMu.Unlock() }
	t.mu.Lock()
	man := t.mu.man.clone()
	last := t.mu.nextSeq - 1
	t.mu.Unlock()
	man.flushedSeq = max(man.flushedSeq, last)
	type daughter struct {
		dir        string
		start, end []byte
		opts       **Options
	}
	ds := []daughter{{leftDir, t.opts.StartRow, splitRow, &left}, {rightDir, splitRow, t.opts.EndRow, &right}}
	if rightDir != t.opts.Dir {
		ds[0], ds[1] = ds[1], ds[0] // a daughter in the parent's dir goes last: the commit point
	}
	// A Tablet fenced by a newer opener must not split: its manifests no
	// longer count. Checked again after the commit point below.
	if err := t.checkFence(ctx); err != nil {
		unlock()
		return nil, nil, fmt.Errorf("cellar/tablet: split: %w", err)
	}
	inPlace := false
	for _, d := range ds {
		m := man.clone()
		m.startRow, m.endRow, m.split = cloneBytes(d.start), cloneBytes(d.end), false
		if d.dir == t.opts.Dir {
			inPlace = true
			m.nextFileNum = t.nextFile.Load()
			m.splitFloor = m.nextFileNum
		} else {
			m.nextFileNum, m.splitFloor = 1, 0
		}
		// The parent's directory gets this Tablet's epoch; a new one its
		// first, which the daughter's Open then claims past.
		epoch := uint64(firstEpoch)
		if d.dir == t.opts.Dir {
			epoch = t.epoch
		}
		if err := writeManifest(ctx, t.opts.FS, d.dir, epoch, m); err != nil {
			unlock()
			return nil, nil, fmt.Errorf("cellar/tablet: split: %w", err)
		}
		o := t.opts
		o.Dir, o.StartRow, o.EndRow = d.dir, cloneBytes(d.start), cloneBytes(d.end)
		o.Families = append([]FamilyOptions(nil), t.opts.Families...)
		o.RecoverLogDirs = nil
		if t.ownLog {
			o.Log = nil
		}
		*d.opts = &o
	}
	if !inPlace {
		man.split = true
		if err := writeManifest(ctx, t.opts.FS, t.opts.Dir, t.epoch, man); err != nil {
			unlock()
			return nil, nil, fmt.Errorf("cellar/tablet: split: %w", err)
		}
	}
	// The commit point counts only if no newer opener of the parent's
	// directory read an older manifest first: if one exists, readers take
	// its epoch's manifest and the split did not happen.
	if err := t.checkFence(ctx); err != nil {
		unlock()
		return nil, nil, fmt.Errorf("cellar/tablet: split: %w", err)
	}
	unlock()
	t.logger.Info("tablet split", "split_row", fmt.Sprintf("%q", splitRow), "left", leftDir, "right", rightDir)
	return left, right, t.Close()
}
