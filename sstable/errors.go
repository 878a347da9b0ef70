package sstable

import (
	"errors"
	"fmt"
)

// Sentinel errors. Test them with errors.Is.
var (
	// ErrCorrupt marks every checksum or format failure met while opening or
	// reading a table. The error is a *CorruptError naming the file and the
	// offset of the damaged structure. A corrupt table is never retried.
	ErrCorrupt = errors.New("cellar/sstable: corrupt table")
	// ErrKeyOrder is returned by Writer.Add for a key that is not strictly
	// greater (bytes.Compare) than the previous one. The table is unchanged
	// and the writer stays usable.
	ErrKeyOrder = errors.New("cellar/sstable: keys out of order")
	// ErrInvalidKey is returned by Writer.Add for a key that is not an
	// encoded cell key of internal/keys (no row terminator, or shorter than
	// its row prefix plus the 16-byte trailer).
	ErrInvalidKey = errors.New("cellar/sstable: not an encoded cell key")
	// ErrEntryTooLarge is returned by Writer.Add for an entry whose key and
	// value together exceed MaxEntrySize. The table is unchanged.
	ErrEntryTooLarge = errors.New("cellar/sstable: entry too large")
	// ErrInvalidOptions is returned (from the first Add or Close) when
	// WriterOptions.Validate fails.
	ErrInvalidOptions = errors.New("cellar/sstable: invalid options")
	// ErrClosed is returned by a Writer used after Close, and by an Iterator
	// used after Close.
	ErrClosed = errors.New("cellar/sstable: closed")
)

// CorruptError describes a corrupt table. It unwraps to ErrCorrupt and, when
// the underlying read itself failed (for example dfs.ErrCorrupt from a
// replica-level checksum), to that error too.
type CorruptError struct {
	File   string // the name given to Open
	Offset int64  // file offset (bytes) of the damaged structure
	Reason string
	Err    error // underlying error, or nil
}

func (e *CorruptError) Error() string {
	s := fmt.Sprintf("cellar/sstable: corrupt table %s at offset %d: %s", e.File, e.Offset, e.Reason)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap makes errors.Is(err, ErrCorrupt) true, and keeps the cause.
func (e *CorruptError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrCorrupt, e.Err}
	}
	return []error{ErrCorrupt}
}

// corruptReason is what the pure decoders (block, footer, properties,
// filter) report; the reader turns it into a *CorruptError with the file
// name and offset.
type corruptReason string

func (c corruptReason) Error() string { return "cellar/sstable: " + string(c) }

func (c corruptReason) Unwrap() error { return ErrCorrupt }

func reasonf(format string, args ...any) error { return corruptReason(fmt.Sprintf(format, args...)) }
