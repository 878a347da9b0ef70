package wal

import (
	"errors"
	"fmt"
	"io"

	"cellar/dfs"
)

// recordReader reads the records of one log file block by block. It trusts
// no length: every fragment is checked against its block, its checksum and
// the file's log number before its payload is used.
//
// After next returns a *CorruptError, recover moves past the damage (to the
// next fragment, or to the next block that starts with a valid fragment)
// and reports whether anything valid follows; Replay uses that to tell a
// torn tail (nothing valid after the damage) from corruption in the middle.
//
// Not safe for concurrent use.
type recordReader struct {
	f      dfs.ReadFile
	name   string
	logNum uint32
	size   int64

	buf        []byte // BlockSize bytes
	block      []byte // the loaded part of the current block (a prefix of buf)
	blockStart int64  // file offset of the current block
	loaded     bool   // a block has been loaded
	pos        int    // read position in block

	rec    []byte // the record being assembled from fragments
	inRec  bool
	recOff int64 // file offset of the record's first fragment

	skipping   bool // after a resync: drop middle/last fragments until a first/full one
	needResync bool // the last error was in a fragment: recover searches later blocks
	done       bool // nothing more to read
}

func newRecordReader(f dfs.ReadFile, name string, fileNum uint64) *recordReader {
	return &recordReader{f: f, name: name, logNum: uint32(fileNum), size: f.Size(), buf: make([]byte, BlockSize)}
}

// load reads the block starting at file offset start.
func (r *recordReader) load(start int64) error {
	n := int(min(BlockSize, r.size-start))
	got, err := r.f.ReadAt(r.buf[:n], start)
	if got < n || (err != nil && !errors.Is(err, io.EOF)) {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("cellar/wal: read %s at %d: %w", r.name, start, err)
	}
	r.block, r.blockStart, r.loaded, r.pos = r.buf[:n], start, true, 0
	return nil
}

func (r *recordReader) corrupt(off int64, resync bool, format string, args ...any) error {
	r.inRec = false
	r.needResync = resync
	return &CorruptError{File: r.name, Offset: off, Reason: fmt.Sprintf(format, args...)}
}

// fragment returns the next fragment, io.EOF at the clean end of the file,
// a *CorruptError, or an I/O error.
func (r *recordReader) fragment() (typ byte, payload []byte, off int64, err error) {
	for {
		if r.done {
			return 0, nil, 0, io.EOF
		}
		if r.loaded && r.pos+headerLen <= len(r.block) {
			break
		}
		if r.loaded && len(r.block) < BlockSize {
			// The file ends inside this block.
			if r.pos < len(r.block) {
				off := r.blockStart + int64(r.pos)
				r.done = true
				return 0, nil, 0, r.corrupt(off, false, "truncated fragment header (%d of %d bytes)", len(r.block)-r.pos, headerLen)
			}
			r.done = true
			continue
		}
		// Fewer than headerLen bytes left in a full block are padding.
		next := int64(0)
		if r.loaded {
			next = r.blockStart + BlockSize
		}
		if next >= r.size {
			r.done = true
			continue
		}
		if err := r.load(next); err != nil {
			return 0, nil, 0, err
		}
	}
	off = r.blockStart + int64(r.pos)
	typ, payload, reason := parseFragment(r.block[r.pos:], r.logNum)
	if reason != "" {
		r.pos = len(r.block)
		return 0, nil, 0, r.corrupt(off, true, "%s", reason)
	}
	r.pos += headerLen + len(payload)
	return typ, payload, off, nil
}

// next returns the payload of the next record and its offset; the payload
// is valid until the next call. It returns io.EOF at the clean end of the
// file (its end, or its end-of-file marker).
func (r *recordReader) next() ([]byte, int64, error) {
	for {
		typ, p, off, err := r.fragment()
		if err == io.EOF && r.inRec {
			return nil, 0, r.corrupt(r.recOff, false, "file ends inside a record")
		}
		if err != nil {
			return nil, 0, err
		}
		switch typ {
		case fragFull, fragFirst:
			if r.inRec {
				// Read this fragment again after the error.
				r.pos -= headerLen + len(p)
				return nil, 0, r.corrupt(r.recOff, false, "record has no last fragment")
			}
			r.skipping = false
			if typ == fragFull {
				return p, off, nil
			}
			r.rec = append(r.rec[:0], p...)
			r.inRec, r.recOff = true, off
		case fragMiddle, fragLast:
			if !r.inRec {
				if r.skipping {
					continue
				}
				return nil, 0, r.corrupt(off, false, "fragment of type %d outside a record", typ)
			}
			r.rec = append(r.rec, p...)
			if typ == fragLast {
				r.inRec = false
				return r.rec, r.recOff, nil
			}
		case fragEOF:
			if r.inRec {
				return nil, 0, r.corrupt(r.recOff, true, "end-of-file marker inside a record")
			}
			if off+headerLen != r.size {
				return nil, 0, r.corrupt(off, true, "%d bytes after the end-of-file marker", r.size-off-headerLen)
			}
			r.done = true
			return nil, 0, io.EOF
		}
	}
}

// recover moves past the damage next last reported and reports whether
// valid data follows it in the file.
func (r *recordReader) recover() (bool, error) {
	if !r.needResync {
		return !r.done, nil
	}
	r.needResync = false
	for start := r.blockStart + BlockSize; start < r.size; start += BlockSize {
		if err := r.load(start); err != nil {
			return false, err
		}
		if _, _, reason := parseFragment(r.block, r.logNum); reason == "" {
			r.skipping = true
			return true, nil
		}
	}
	r.done = true
	return false, nil
}

// isSealed reports whether the file ends with a valid end-of-file marker,
// that is, it was closed cleanly by the Log that wrote it.
func isSealed(f dfs.ReadFile, fileNum uint64) (bool, error) {
	size := f.Size()
	if size < headerLen || (size-headerLen)%BlockSize+headerLen > BlockSize {
		return false, nil
	}
	var b [headerLen]byte
	if n, err := f.ReadAt(b[:], size-headerLen); n < headerLen {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return false, fmt.Errorf("cellar/wal: read end-of-file marker: %w", err)
	}
	typ, _, reason := parseFragment(b[:], uint32(fileNum))
	return reason == "" && typ == fragEOF, nil
}
