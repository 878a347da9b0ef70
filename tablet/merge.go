package tablet

import (
	"bytes"
	"context"
	"fmt"

	"cellar/dfs"
	"cellar/internal/keys"
	"cellar/sstable"
)

// ManifestInfo describes a tablet's durable state as its manifest records
// it: what a master needs to finish or undo a split or a merge, and what a
// garbage collector needs to know which files a tablet references.
type ManifestInfo struct {
	ID ID
	// StartRow and EndRow are the tablet's range (nil = unbounded).
	StartRow, EndRow []byte
	// Split: the tablet was split and never opens again.
	Split bool
	// FlushedSeq is the sequence number up to which the tablet's writes
	// are in its SSTables.
	FlushedSeq keys.SeqNum
	// Files are the SSTables the manifest lists, every family's.
	Files []string
	// NextFileNum numbers the tablet's next table in Dir/sst: a table
	// there numbered at or above it may be a flush or compaction output
	// not installed yet.
	NextFileNum uint64
	// SplitFloor: the tablet deletes the tables of its own Dir/sst
	// numbered at or above it once it no longer lists them; those below
	// may be shared with a split sibling and are never its to delete.
	SplitFloor uint64
}

// ReadManifest reads the manifest of the highest epoch in dir (the legacy
// MANIFEST being epoch 0): the state of the tablet's newest opener, which
// a server that lost the tablet can no longer change. (nil, nil) when
// there is none.
// Errors for bytes that do not decode wrap ErrCorrupt.
func ReadManifest(ctx context.Context, fs dfs.FS, dir string) (*ManifestInfo, error) {
	m, err := readManifest(ctx, fs, dir)
	if err != nil || m == nil {
		return nil, err
	}
	info := &ManifestInfo{ID: m.id, StartRow: m.startRow, EndRow: m.endRow, Split: m.split,
		FlushedSeq: m.flushedSeq, NextFileNum: m.nextFileNum, SplitFloor: m.splitFloor}
	for _, f := range sortedKeys(m.families) {
		for _, fm := range m.families[f] {
			info.Files = append(info.Files, fm.path)
		}
	}
	return info, nil
}

// SSTableDir is the directory of the SSTables a tablet in dir writes, and
// SSTableNumber parses the number of a table file name there (false for a
// name that is not a table's).
func SSTableDir(dir string) string { return dfs.Join(dir, "sst") }

// SSTableNumber returns the number of a table file's base name.
func SSTableNumber(base string) (uint64, bool) { return parseTableName(base) }

// Merge writes, in dir, the manifest of a new tablet id that covers the
// ranges of the two adjacent tablets in leftDir and rightDir: [left's
// start, right's end). Nothing is copied: the new manifest lists both
// tablets' SSTables, each bounded by the range of the tablet it comes from
// (a file a tablet inherited from a split may hold rows outside that
// tablet's range, which are not the merged tablet's to see), and its
// flushed sequence number is above every sequence number in those files,
// so that the merged tablet's writes win over everything inherited.
//
// Both tablets must be closed with everything flushed (a server's unload
// does that) and stay closed: Merge reads their manifests and the merged
// tablet shares their files, which it never deletes (they are not in its
// own directory); once no manifest lists them, they are the table-wide
// garbage collector's. dir must not hold a tablet yet. Merge returns the
// merged range. It writes nothing outside dir, so an abandoned merge leaves
// both tablets as they were.
func Merge(ctx context.Context, fs dfs.FS, id ID, leftDir, rightDir, dir string) (start, end []byte, err error) {
	if err := dfs.CheckPath(dir, false); err != nil {
		return nil, nil, fmt.Errorf("%w: merged dir: %v", ErrInvalidOptions, err)
	}
	if dir == leftDir || dir == rightDir || leftDir == rightDir {
		return nil, nil, fmt.Errorf("%w: merge needs three distinct directories", ErrInvalidOptions)
	}
	if m, err := readManifest(ctx, fs, dir); err != nil || m != nil {
		return nil, nil, fmt.Errorf("%w: merged dir %s already holds a tablet (%v)", ErrInvalidOptions, dir, err)
	}
	var parents [2]*manifest
	for i, d := range []string{leftDir, rightDir} {
		m, err := readManifest(ctx, fs, d)
		if err != nil {
			return nil, nil, fmt.Errorf("cellar/tablet: merge: %w", err)
		}
		if m == nil {
			return nil, nil, fmt.Errorf("%w: merge: no tablet in %s", ErrInvalidOptions, d)
		}
		if m.split {
			return nil, nil, fmt.Errorf("cellar/tablet: merge %s: %w", d, ErrSplit)
		}
		parents[i] = m
	}
	l, r := parents[0], parents[1]
	if l.endRow == nil || r.startRow == nil || !bytes.Equal(l.endRow, r.startRow) {
		return nil, nil, fmt.Errorf("%w: merge: [%q, %q) and [%q, %q) are not adjacent",
			ErrInvalidOptions, l.startRow, l.endRow, r.startRow, r.endRow)
	}
	merged := &manifest{id: id, startRow: cloneBytes(l.startRow), endRow: cloneBytes(r.endRow),
		nextFileNum: 1, families: map[string][]fileMeta{}}
	merged.flushedSeq = max(l.flushedSeq, r.flushedSeq)
	for _, p := range parents {
		for fam, files := range p.families {
			if _, ok := merged.families[fam]; !ok {
				merged.families[fam] = nil
			}
			for _, fm := range files {
				fm.lo, fm.hi = intersect(fm.lo, fm.hi, p.startRow, p.endRow)
				merged.families[fam] = addBounded(merged.families[fam], fm)
				seq, err := maxSeqOf(ctx, fs, fm.path)
				if err != nil {
					return nil, nil, err
				}
				merged.flushedSeq = max(merged.flushedSeq, seq)
			}
		}
	}
	// Bounds that the merged range implies anyway are dropped.
	for fam, files := range merged.families {
		for i := range files {
			fm := &files[i]
			if fm.lo != nil && (merged.startRow != nil && string(fm.lo) <= string(merged.startRow) || merged.startRow == nil && len(fm.lo) == 0) {
				fm.lo = nil
			}
			if fm.hi != nil && merged.endRow != nil && string(fm.hi) >= string(merged.endRow) {
				fm.hi = nil
			}
		}
		merged.families[fam] = files
	}
	// A new directory: its first epoch, which the merged tablet's Open
	// claims past.
	if err := writeManifest(ctx, fs, dir, firstEpoch, merged); err != nil {
		return nil, nil, fmt.Errorf("cellar/tablet: merge: %w", err)
	}
	return merged.startRow, merged.endRow, nil
}

// intersect returns [lo, hi) ∩ [start, end), nil meaning unbounded.
func intersect(lo, hi, start, end []byte) ([]byte, []byte) {
	if start != nil && (lo == nil || string(start) > string(lo)) {
		lo = start
	}
	if end != nil && (hi == nil || string(end) < string(hi)) {
		hi = end
	}
	return cloneBytes(lo), cloneBytes(hi)
}

// addBounded appends fm to files, joining it with an entry of the same file
// whose bounds it continues (a file both parents shared from an earlier
// split becomes one entry again).
func addBounded(files []fileMeta, fm fileMeta) []fileMeta {
	for i, o := range files {
		if o.path != fm.path {
			continue
		}
		switch {
		case o.hi != nil && fm.lo != nil && bytes.Equal(o.hi, fm.lo):
			files[i].hi = fm.hi
			return files
		case fm.hi != nil && o.lo != nil && bytes.Equal(fm.hi, o.lo):
			files[i].lo = fm.lo
			return files
		}
	}
	return append(files, fm)
}

// maxSeqOf returns the largest sequence number in an SSTable.
func maxSeqOf(ctx context.Context, fs dfs.FS, path string) (keys.SeqNum, error) {
	f, err := fs.Open(ctx, path)
	if err != nil {
		return 0, fmt.Errorf("cellar/tablet: merge: open %s: %w", path, err)
	}
	r, err := sstable.Open(f, path, nil)
	if err != nil {
		f.Close()
		return 0, fmt.Errorf("cellar/tablet: merge: open %s: %w", path, err)
	}
	seq := r.Properties().MaxSeq
	return seq, r.Close()
}
