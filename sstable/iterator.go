package sstable

import "fmt"

// Iterator walks a table's entries in key order: a binary search over the
// index picks the data block, a binary search over its restart points and a
// short scan pick the entry, and Next crosses block boundaries. An Iterator
// is not safe for concurrent use; many may be open on one Reader.
//
// The first error (corruption, I/O) is kept in Error and makes the iterator
// invalid for good.
type Iterator struct {
	r      *Reader
	blk    int    // index of the loaded data block; len(r.index) when exhausted
	block  []byte // contents of block blk when non-nil
	data   blockIter
	bufs   blockBuffers
	err    error
	closed bool
	noFill bool // blocks missing from the cache are read into bufs, not added
	fills  int  // blocks this iterator may still add to the cache (maxFill > 0)
	limit  bool // fills counts down; at 0 the iterator reads past the cache
}

// IterOptions tune an iterator.
type IterOptions struct {
	// NoCacheFill: a block missing from the cache is read into the
	// iterator's own buffer and not added to the cache (blocks already
	// cached are still used). For reads that touch each block once, such
	// as compactions and full scans, which would otherwise evict the
	// blocks point reads need and allocate a block per read. Keys and
	// values stay valid until the next positioning call, as always.
	NoCacheFill bool
	// MaxFill, if positive, is how many missing blocks the iterator adds
	// to the cache before it reads past it as with NoCacheFill: a short
	// scan is cached like point reads, a long one stops evicting after
	// its first MaxFill blocks.
	MaxFill int
}

// NewIter returns an unpositioned iterator; call First or SeekGE.
func (r *Reader) NewIter() *Iterator {
	return &Iterator{r: r, blk: len(r.index)}
}

// NewIterWith is NewIter with options.
func (r *Reader) NewIterWith(o IterOptions) *Iterator {
	return &Iterator{r: r, blk: len(r.index), noFill: o.NoCacheFill, fills: o.MaxFill, limit: o.MaxFill > 0}
}

// loadBlock loads data block i and reports whether it did; past the last
// block it invalidates the iterator.
func (it *Iterator) loadBlock(i int) bool {
	if i >= len(it.r.index) {
		it.blk = len(it.r.index)
		it.data.valid = false
		return false
	}
	h := it.r.index[i].h
	if it.block != nil && it.blk == i {
		// Seeking within the loaded block: no read.
		if err := it.data.init(it.block); err != nil {
			it.setErr(it.r.corrupt(h.Offset, err))
			return false
		}
		return true
	}
	it.blk, it.block = i, nil
	b, filled, err := it.r.readBlock(h, &it.bufs, !it.noFill)
	if filled && it.limit {
		if it.fills--; it.fills <= 0 {
			it.noFill = true
		}
	}
	if err == nil {
		if err = it.data.init(b); err != nil {
			err = it.r.corrupt(h.Offset, err)
		}
	}
	if err != nil {
		it.setErr(err)
		return false
	}
	it.block = b
	return true
}

func (it *Iterator) setErr(err error) {
	if it.err == nil {
		it.err = err
	}
	it.data.valid = false
}

// settle moves forward to the first entry of the next non-empty block when
// the current block is used up, and reports Valid.
func (it *Iterator) settle() bool {
	for !it.data.valid {
		if it.data.err != nil {
			it.setErr(it.r.corrupt(it.r.index[it.blk].h.Offset, it.data.err))
			return false
		}
		if !it.loadBlock(it.blk + 1) {
			return false
		}
		it.data.first()
	}
	return true
}

func (it *Iterator) usable() bool {
	if it.closed {
		it.setErr(fmt.Errorf("sstable iterator: %w", ErrClosed))
	}
	return it.err == nil
}

// SeekGE positions the iterator at the first entry whose key is >= key and
// reports Valid.
func (it *Iterator) SeekGE(key []byte) bool {
	if !it.usable() {
		return false
	}
	if !it.loadBlock(it.r.seekIndex(key)) {
		return false
	}
	it.data.seekGE(key)
	return it.settle()
}

// First positions the iterator at the first entry and reports Valid.
func (it *Iterator) First() bool {
	if !it.usable() || !it.loadBlock(0) {
		return false
	}
	it.data.first()
	return it.settle()
}

// Next advances and reports Valid. Next on an invalid iterator stays
// invalid.
func (it *Iterator) Next() bool {
	if !it.usable() || !it.data.valid {
		return false
	}
	it.data.nextEntry()
	return it.settle()
}

// Valid reports whether the iterator is at an entry.
func (it *Iterator) Valid() bool { return it.err == nil && it.data.valid }

// Key returns the current key; valid until the next positioning call. The
// caller copies it to keep it.
func (it *Iterator) Key() []byte { return it.data.key }

// Value returns the current value; valid until the next positioning call
// (it may alias a cached block: never modify it).
func (it *Iterator) Value() []byte { return it.data.val }

// Error returns the first error met, or nil.
func (it *Iterator) Error() error { return it.err }

// Close releases the iterator and returns Error. The Reader stays open.
func (it *Iterator) Close() error {
	it.closed = true
	it.data, it.bufs, it.block = blockIter{}, blockBuffers{}, nil
	return it.err
}
