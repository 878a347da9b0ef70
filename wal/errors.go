package wal

import (
	"errors"
	"fmt"
)

// Sentinel errors. Test for them with errors.Is.
var (
	// ErrCorrupt is wrapped by every checksum or format failure met while
	// reading a log file (as a *CorruptError naming the file and offset)
	// and by DecodeEntry.
	ErrCorrupt = errors.New("cellar/wal: corrupt log")
	// ErrLogFailed is wrapped by the error of every Append after a Write,
	// Sync or file roll of the log failed: the log is poisoned, nothing more
	// is acknowledged, and the owner must open a new log (after replaying).
	ErrLogFailed = errors.New("cellar/wal: log failed")
	// ErrClosed is returned by Append after Close, and by a second Close.
	ErrClosed = errors.New("cellar/wal: log closed")
	// ErrOutcomeUnknown is wrapped (together with the context's error) by
	// Append when its ctx ends after the entry was handed to the writer:
	// the entry may or may not be in the log. Before the hand-over Append
	// returns the bare context error and the entry is not applied.
	ErrOutcomeUnknown = errors.New("cellar/wal: append outcome unknown")
)

// CorruptError says where a log file failed its checksum or format. It
// unwraps to ErrCorrupt.
type CorruptError struct {
	File   string // the file's full name in the FS
	Offset int64  // byte offset of the bad fragment or record in the file
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("cellar/wal: corrupt log %s at offset %d: %s", e.File, e.Offset, e.Reason)
}

// Unwrap returns ErrCorrupt.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }
