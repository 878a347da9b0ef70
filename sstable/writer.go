package sstable

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	"github.com/golang/snappy"

	"cellar/dfs"
	"cellar/internal/keys"
)

// Writer builds one table by appending to a dfs.File. Keys are added in
// strictly increasing order; Close writes the meta blocks and the footer,
// then syncs and closes the file. A Writer is not safe for concurrent use.
//
// An I/O error is sticky: every later Add and Close returns it (Close still
// closes the file).
type Writer struct {
	f      dfs.File
	opts   WriterOptions
	err    error // sticky: invalid options or a failed write
	closed bool

	offset    uint64 // bytes written to f
	data      blockBuilder
	index     blockBuilder
	filter    *filterWriter // nil when disabled
	lastKey   []byte
	props     Properties
	cbuf      []byte // compression scratch
	handleBuf []byte
}

// NewWriter returns a Writer appending to f, which should be empty. opts may
// be nil for the defaults; invalid options are reported (wrapping
// ErrInvalidOptions) by the first Add or by Close.
func NewWriter(f dfs.File, opts *WriterOptions) *Writer {
	w := &Writer{f: f, opts: opts.withDefaults(), props: emptyProperties()}
	if err := opts.Validate(); err != nil {
		w.err = err
	}
	w.data.restartInterval = w.opts.RestartInterval
	// Index entries are searched by binary search over all of them, so each
	// is a restart point.
	w.index.restartInterval = 1
	if w.opts.BloomFalsePositive > 0 {
		w.filter = &filterWriter{fp: w.opts.BloomFalsePositive}
	}
	return w
}

// Add appends an entry. key must be an encoded cell key (internal/keys)
// strictly greater than the previous key, else ErrKeyOrder or ErrInvalidKey,
// and key and value together at most MaxEntrySize bytes, else
// ErrEntryTooLarge (the table is unchanged in each case). key and value are copied (or written) before
// Add returns; the caller may reuse them.
func (w *Writer) Add(key, value []byte) error {
	if w.closed {
		return fmt.Errorf("sstable add: %w", ErrClosed)
	}
	if w.err != nil {
		return w.err
	}
	rowLen := keys.RowPrefixLen(key)
	colLen := keys.ColumnPrefixLen(key)
	if rowLen <= 0 || colLen < rowLen {
		return fmt.Errorf("%w: %q", ErrInvalidKey, key)
	}
	if len(key)+len(value) > MaxEntrySize {
		return fmt.Errorf("%w: %d bytes of key and value, limit %d", ErrEntryTooLarge, len(key)+len(value), MaxEntrySize)
	}
	if w.props.NumEntries > 0 && bytes.Compare(key, w.lastKey) <= 0 {
		return fmt.Errorf("%w: %q after %q", ErrKeyOrder, key, w.lastKey)
	}
	w.noteProps(key, value)
	if w.filter != nil {
		w.filter.add(key, rowLen, colLen)
	}
	w.data.add(key, value)
	w.lastKey = append(w.lastKey[:0], key...)
	if w.data.estimatedSize() >= w.opts.BlockSize {
		return w.flushBlock()
	}
	return nil
}

func (w *Writer) noteProps(key, value []byte) {
	p := &w.props
	if p.NumEntries == 0 {
		p.SmallestKey = append([]byte(nil), key...)
		p.MinSeq = keys.MaxSeq
	}
	p.NumEntries++
	p.RawKeyBytes += uint64(len(key))
	p.RawValueBytes += uint64(len(value))
	ts, seq, kind := keys.DecodeTrailer(key)
	if kind.IsTombstone() {
		p.NumTombstones++
	}
	if kind == keys.KindSet || kind == keys.KindDeleteCell {
		p.MinTimestamp = min(p.MinTimestamp, ts)
		p.MaxTimestamp = max(p.MaxTimestamp, ts)
	}
	p.MinSeq = min(p.MinSeq, seq)
	p.MaxSeq = max(p.MaxSeq, seq)
}

// EstimatedSize is the size the file would have if it were closed now,
// except for the meta blocks (bytes).
func (w *Writer) EstimatedSize() int64 {
	return int64(w.offset) + int64(w.data.estimatedSize())
}

// flushBlock writes the pending data block and its index entry, whose
// separator is the block's last key (a real key, so MidKey returns one).
func (w *Writer) flushBlock() error {
	if w.data.empty() {
		return nil
	}
	h, err := w.writeBlock(w.data.finish(), w.opts.Compression == CompressionSnappy)
	if err != nil {
		return err
	}
	w.handleBuf = appendHandle(w.handleBuf[:0], h)
	w.index.add(w.lastKey, w.handleBuf)
	w.props.NumDataBlocks++
	w.data.reset()
	return nil
}

// writeBlock writes contents (compressed when asked and worth it) and the
// block trailer, and returns the block's handle.
func (w *Writer) writeBlock(raw []byte, compress bool) (handle, error) {
	typ, payload := blockTypeNone, raw
	if compress {
		if n := snappy.MaxEncodedLen(len(raw)); cap(w.cbuf) < n {
			w.cbuf = make([]byte, n)
		}
		c := snappy.Encode(w.cbuf[:cap(w.cbuf)], raw)
		if len(c) <= len(raw)-len(raw)/8 {
			typ, payload = blockTypeSnappy, c
		}
	}
	var trailer [blockTrailerLen]byte
	trailer[0] = typ
	binary.LittleEndian.PutUint32(trailer[1:], blockChecksum(payload, typ))
	h := handle{Offset: w.offset, Length: uint64(len(payload))}
	if err := w.write(payload); err != nil {
		return h, err
	}
	return h, w.write(trailer[:])
}

func (w *Writer) write(p []byte) error {
	n, err := w.f.Write(p)
	w.offset += uint64(n)
	if err == nil && n != len(p) {
		err = fmt.Errorf("short write of %d of %d bytes", n, len(p))
	}
	if err != nil {
		w.err = fmt.Errorf("cellar/sstable: write at offset %d: %w", w.offset, err)
	}
	return w.err
}

// Close finishes the table (last data block, filter, properties, index,
// footer), then Syncs and Closes f. It returns the first error met, with f
// closed in every case. Calling Close twice returns ErrClosed.
func (w *Writer) Close() error {
	if w.closed {
		return fmt.Errorf("sstable close: %w", ErrClosed)
	}
	w.closed = true
	err := w.finish()
	if err == nil {
		if err = w.f.Sync(context.Background()); err != nil {
			err = fmt.Errorf("cellar/sstable: sync: %w", err)
		}
	}
	if cerr := w.f.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("cellar/sstable: close: %w", cerr)
	}
	if err == nil {
		w.props.FileSize = w.offset
	}
	w.err = err
	return err
}

func (w *Writer) finish() error {
	if w.err != nil {
		return w.err
	}
	if err := w.flushBlock(); err != nil {
		return err
	}
	var ft footer
	ft.Format = TableFormatV1
	w.props.DataBytes = w.offset
	if w.props.NumEntries > 0 {
		w.props.LargestKey = append([]byte(nil), w.lastKey...)
	} else {
		w.props.MinSeq = 0
	}
	var err error
	if w.filter != nil && w.props.NumEntries > 0 {
		if ft.Filter, err = w.writeBlock(w.filter.finish(), false); err != nil {
			return err
		}
		w.filter = nil
	}
	compress := w.opts.Compression == CompressionSnappy
	if ft.Properties, err = w.writeBlock(encodeProperties(&w.props), compress); err != nil {
		return err
	}
	if ft.Index, err = w.writeBlock(w.index.finish(), compress); err != nil {
		return err
	}
	return w.write(ft.encode())
}

// Properties describes the finished table; valid after a successful Close.
// The key slices are the Writer's; do not modify them.
func (w *Writer) Properties() Properties { return w.props }
