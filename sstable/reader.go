package sstable

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync/atomic"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/golang/snappy"

	"cellar/dfs"
	"cellar/internal/bufpool"
)

// Reader reads one table through a dfs.ReadFile (ReadAt only). Open loads
// and checks the footer, index, filter and properties; data blocks are read
// on demand, through the shared Cache when there is one. A Reader is safe for
// concurrent use; its Iterators are not.
type Reader struct {
	f       dfs.ReadFile
	name    string
	cache   *Cache
	cacheID uint64
	format  TableFormat
	dataEnd uint64
	index   []indexEntry
	filter  *bloom.BloomFilter // nil: no filter
	props   Properties
	closed  atomic.Bool
}

// indexEntry is one data block: its last key and where it is.
type indexEntry struct {
	sep []byte
	h   handle
}

// Open reads the footer, index, filter and properties of the table in f and
// checks every checksum and handle against the file size. name is used in
// error messages only. Open takes ownership of f: Reader.Close closes it, and
// so does Open when it fails. A damaged or truncated file gives an error
// wrapping ErrCorrupt (a *CorruptError) naming the file and offset; a failed
// read gives that read's error. opts may be nil.
func Open(f dfs.ReadFile, name string, opts *ReaderOptions) (*Reader, error) {
	r := &Reader{f: f, name: name}
	if opts != nil && opts.Cache != nil {
		r.cache, r.cacheID = opts.Cache, opts.Cache.newID()
	}
	if err := r.load(); err != nil {
		_ = f.Close()
		return nil, err
	}
	return r, nil
}

func (r *Reader) corrupt(off uint64, err error) error {
	var reason corruptReason
	if errors.As(err, &reason) {
		return &CorruptError{File: r.name, Offset: int64(off), Reason: string(reason)}
	}
	return &CorruptError{File: r.name, Offset: int64(off), Reason: "bad block", Err: err}
}

func (r *Reader) load() error {
	size := r.f.Size()
	if size < footerLen {
		return &CorruptError{File: r.name, Offset: 0, Reason: fmt.Sprintf("file of %d bytes is shorter than the %d-byte footer", size, footerLen)}
	}
	footerOff := uint64(size - footerLen)
	buf := make([]byte, footerLen)
	if err := r.readAt(buf, footerOff); err != nil {
		return err
	}
	ft, err := decodeFooter(buf)
	if err != nil {
		return r.corrupt(footerOff, err)
	}
	r.format = ft.Format
	if r.dataEnd, err = ft.checkLayout(footerOff); err != nil {
		return r.corrupt(footerOff, err)
	}
	idx, err := r.readBlockUncached(ft.Index, nil)
	if err != nil {
		return err
	}
	if err := r.loadIndex(idx, ft.Index.Offset); err != nil {
		return err
	}
	pb, err := r.readBlockUncached(ft.Properties, nil)
	if err != nil {
		return err
	}
	if r.props, err = decodeProperties(pb); err != nil {
		return r.corrupt(ft.Properties.Offset, err)
	}
	r.props.FileSize = uint64(size)
	if err := r.checkProperties(); err != nil {
		return r.corrupt(ft.Properties.Offset, err)
	}
	if ft.Filter.Length > 0 {
		fb, err := r.readBlockUncached(ft.Filter, nil)
		if err != nil {
			return err
		}
		if r.filter, err = decodeFilter(fb); err != nil {
			return r.corrupt(ft.Filter.Offset, err)
		}
	}
	return nil
}

// loadIndex decodes the index block into r.index, checking that separators
// increase and that the data blocks tile [0, dataEnd) exactly.
func (r *Reader) loadIndex(b []byte, off uint64) error {
	var it blockIter
	if err := it.init(b); err != nil {
		return r.corrupt(off, err)
	}
	var arena []byte
	var ends []int
	prevStart, next := 0, uint64(0)
	for ok := it.first(); ok; ok = it.nextEntry() {
		h, err := decodeHandle(it.val)
		if err != nil {
			return r.corrupt(off, err)
		}
		if h.Offset != next || h.Length > r.dataEnd || h.Offset > r.dataEnd-h.Length ||
			r.dataEnd-h.Length-h.Offset < blockTrailerLen {
			return r.corrupt(off, reasonf("index entry %d: data block %+v does not follow the previous one within %d bytes", len(r.index), h, r.dataEnd))
		}
		if len(ends) > 0 && bytes.Compare(arena[prevStart:], it.key) >= 0 {
			return r.corrupt(off, reasonf("index entry %d: separators out of order", len(r.index)))
		}
		next, prevStart = h.end(), len(arena)
		arena = append(arena, it.key...)
		ends = append(ends, len(arena))
		r.index = append(r.index, indexEntry{h: h})
	}
	if it.err != nil {
		return r.corrupt(off, it.err)
	}
	if next != r.dataEnd {
		return r.corrupt(off, reasonf("data blocks end at %d, meta blocks start at %d", next, r.dataEnd))
	}
	for i := range r.index {
		r.index[i].sep = arena[startOf(ends, i):ends[i]:ends[i]]
	}
	return nil
}

func startOf(ends []int, i int) int {
	if i == 0 {
		return 0
	}
	return ends[i-1]
}

// checkProperties cross-checks the properties against the index.
func (r *Reader) checkProperties() error {
	p := &r.props
	switch {
	case p.NumDataBlocks != uint64(len(r.index)):
		return reasonf("properties claim %d data blocks, index has %d", p.NumDataBlocks, len(r.index))
	case p.DataBytes != r.dataEnd:
		return reasonf("properties claim %d data bytes, index covers %d", p.DataBytes, r.dataEnd)
	case (p.NumEntries == 0) != (len(r.index) == 0):
		return reasonf("properties claim %d entries in %d data blocks", p.NumEntries, len(r.index))
	case len(r.index) > 0 && !bytes.Equal(p.LargestKey, r.index[len(r.index)-1].sep):
		return reasonf("largest key in properties differs from the last index key")
	}
	return nil
}

// readAt reads exactly len(buf) bytes at off.
func (r *Reader) readAt(buf []byte, off uint64) error {
	n, err := r.f.ReadAt(buf, int64(off))
	if n == len(buf) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, dfs.ErrPastEnd) {
		return &CorruptError{File: r.name, Offset: int64(off), Reason: fmt.Sprintf("short read: %d of %d bytes", n, len(buf)), Err: err}
	}
	if errors.Is(err, dfs.ErrCorrupt) {
		return &CorruptError{File: r.name, Offset: int64(off), Reason: "read failed", Err: err}
	}
	return fmt.Errorf("cellar/sstable: read %s at offset %d: %w", r.name, off, err)
}

// blockBuffers are an iterator's reusable buffers for reading blocks that
// do not go into a cache.
type blockBuffers struct{ raw, dec []byte }

// grow returns b resliced to n bytes, reallocated with a quarter of
// headroom if too small (block sizes vary a little around BlockSize).
func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n, n+n/4)
	}
	return b[:n]
}

// readBlock returns the decoded contents of the data block at h, from the
// cache when possible. A block from the cache, or added to it (fill; then
// filled is true), is shared (never modify it); otherwise it lives in bufs
// and is valid until bufs is used again.
func (r *Reader) readBlock(h handle, bufs *blockBuffers, fill bool) (_ []byte, filled bool, _ error) {
	if r.cache == nil {
		b, err := r.readBlockUncached(h, bufs)
		return b, false, err
	}
	if b, ok := r.cache.get(r.cacheID, h.Offset); ok {
		return b, false, nil
	}
	if !fill {
		b, err := r.readBlockUncached(h, bufs)
		return b, false, err
	}
	// The stored bytes are scratch; the decoded block is the cache's.
	// A point read's iterator is new, with no buffer of its own yet: its
	// scratch for the stored bytes comes from a pool rather than a fresh,
	// zeroed allocation per read.
	var pooled *bufpool.Buf
	scratch := blockBuffers{raw: bufs.raw}
	if cap(scratch.raw) == 0 {
		pooled = rawPool.Get(int(h.Length) + blockTrailerLen)
		scratch.raw = pooled.B
	}
	b, err := r.readBlockUncached(h, &scratch)
	if err == nil && len(b) > 0 && &b[0] == &scratch.raw[0] {
		b = bytes.Clone(b) // an uncompressed block, read into the scratch buffer
	}
	if pooled != nil {
		pooled.B = scratch.raw[:0]
		rawPool.Put(pooled)
	} else {
		bufs.raw = scratch.raw
	}
	if err != nil {
		return nil, false, err
	}
	r.cache.set(r.cacheID, h.Offset, b)
	return b, true, nil
}

// rawPool keeps scratch buffers for stored blocks read into the cache.
var rawPool = bufpool.New(4 << 20)

// readBlockUncached reads, checksums and decompresses the block at h (which
// has been checked to lie within the file) using bufs; nil bufs allocates.
func (r *Reader) readBlockUncached(h handle, bufs *blockBuffers) ([]byte, error) {
	if h.Length > maxBlockLen {
		return nil, r.corrupt(h.Offset, reasonf("block of %d bytes is over the %d-byte limit", h.Length, maxBlockLen))
	}
	if bufs == nil {
		bufs = &blockBuffers{}
	}
	bufs.raw = grow(bufs.raw, int(h.Length)+blockTrailerLen)
	if err := r.readAt(bufs.raw, h.Offset); err != nil {
		return nil, err
	}
	b, err := decodeBlockContents(bufs.raw, &bufs.dec)
	if err != nil {
		return nil, r.corrupt(h.Offset, err)
	}
	return b, nil
}

// decodeBlockContents checks the trailer of a stored block (contents +
// trailer) and returns its decoded contents: a subslice of buf when stored
// uncompressed, else *dec grown to the decoded length.
func decodeBlockContents(buf []byte, dec *[]byte) ([]byte, error) {
	if len(buf) < blockTrailerLen {
		return nil, reasonf("block of %d bytes has no trailer", len(buf))
	}
	n := len(buf) - blockTrailerLen
	contents, typ := buf[:n], buf[n]
	want := binary.LittleEndian.Uint32(buf[n+1:])
	if got := blockChecksum(contents, typ); got != want {
		return nil, reasonf("block checksum mismatch: stored %#08x, computed %#08x", want, got)
	}
	switch typ {
	case blockTypeNone:
		return contents[:n:n], nil
	case blockTypeSnappy:
		dl, err := snappy.DecodedLen(contents)
		if err != nil {
			return nil, reasonf("snappy header: %v", err)
		}
		if dl > maxBlockLen || dl > maxSnappyRatio*n+64 {
			return nil, reasonf("snappy block of %d bytes claims %d decoded bytes", n, dl)
		}
		*dec = grow(*dec, dl)
		out, err := snappy.Decode(*dec, contents)
		if err != nil {
			return nil, reasonf("snappy: %v", err)
		}
		if len(out) != dl {
			return nil, reasonf("snappy block decoded to %d bytes, header says %d", len(out), dl)
		}
		return out, nil
	}
	return nil, reasonf("unknown block type %d", typ)
}

// Properties returns the table's properties. The key slices are shared; do
// not modify them.
func (r *Reader) Properties() Properties { return r.props }

// Format returns the table's format version.
func (r *Reader) Format() TableFormat { return r.format }

// MayContain reports whether the table may hold a key with the given row
// prefix (keys.AppendRowPrefix) or column prefix (keys.AppendColumnPrefix).
// False is certain; true may be a false positive. A table written without a
// filter always answers true, except an empty table, which answers false.
func (r *Reader) MayContain(prefix []byte) bool {
	if r.props.NumEntries == 0 {
		return false
	}
	if r.filter == nil {
		return true
	}
	return r.filter.Test(prefix)
}

// MidKey returns the last key of the data block in which the first half of
// the data bytes ends: an approximate middle key by size, and a real key of
// the table. Nil for an empty table. The caller owns the returned slice.
func (r *Reader) MidKey() []byte {
	if len(r.index) == 0 {
		return nil
	}
	half := r.dataEnd / 2
	i := sort.Search(len(r.index), func(i int) bool { return r.index[i].h.end() >= half })
	i = min(i, len(r.index)-1)
	return append([]byte(nil), r.index[i].sep...)
}

// Close drops the table's blocks from the cache and closes the file. Open
// iterators fail afterwards. Calling Close again returns nil.
func (r *Reader) Close() error {
	if r.closed.Swap(true) {
		return nil
	}
	if r.cache != nil {
		for _, e := range r.index {
			r.cache.evict(r.cacheID, e.h.Offset)
		}
	}
	return r.f.Close()
}

// seekIndex returns the position of the first data block whose last key is
// >= key (len(r.index) if none).
func (r *Reader) seekIndex(key []byte) int {
	return sort.Search(len(r.index), func(i int) bool { return bytes.Compare(r.index[i].sep, key) >= 0 })
}
