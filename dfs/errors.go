package dfs

import "errors"

// Sentinel errors returned (wrapped) by every FS implementation.
var (
	// ErrNotFound: the file or directory does not exist.
	ErrNotFound = errors.New("cellar/dfs: file not found")
	// ErrExist: Create of a name that exists.
	ErrExist = errors.New("cellar/dfs: file exists")
	// ErrInvalidPath: a name that is not a clean relative path.
	ErrInvalidPath = errors.New("cellar/dfs: invalid path")
	// ErrClosed: a write to a closed file, or use of a closed FS.
	ErrClosed = errors.New("cellar/dfs: file closed")
	// ErrLeaseLost: the writer's lease was recovered by someone else; the
	// writer is fenced and nothing it writes from now on is kept.
	ErrLeaseLost = errors.New("cellar/dfs: write lease lost")
	// ErrIsDir: a file operation on a directory, or Remove of a non-empty one.
	ErrIsDir = errors.New("cellar/dfs: is a directory")
	// ErrNoSpace: the storage refused a write for lack of space.
	ErrNoSpace = errors.New("cellar/dfs: no space left")
	// ErrCorrupt: stored bytes failed their checksum on every replica.
	ErrCorrupt = errors.New("cellar/dfs: corrupt data")
	// ErrInvalidArgument: an option or parameter out of range (for example
	// a replica count above 16).
	ErrInvalidArgument = errors.New("cellar/dfs: invalid argument")
	// ErrPastEnd: a read starting at or past the end of the file. ReadAt
	// also returns io.EOF for short reads, as io.ReaderAt requires.
	ErrPastEnd = errors.New("cellar/dfs: read past end of file")
)
