package dfs

import (
	"context"
	"io"
	"time"
)

// FS is the file system every piece of Cellar's storage writes through. It is
// the plug point between the storage engine and where its bytes live:
// dfs/local (one local directory), dfs/memfs (memory, for tests, with crash
// simulation), and the replicated GFS-style client in this package.
//
// Names are slash-separated paths relative to the file system's root, such as
// "tablets/7/000012.sst"; they must be clean (no "." or ".." elements, no
// leading or trailing slash, no empty elements). Directories exist implicitly:
// Create makes missing parents.
//
// Implementations are safe for concurrent use. Errors wrap the sentinels in
// errors.go so that callers test them with errors.Is.
type FS interface {
	// Create makes a new, empty, write-once file for sequential appends. It
	// fails with ErrExist if name exists. The file's existence is durable
	// when Create returns.
	Create(ctx context.Context, name string) (File, error)
	// Open opens a file for random reads. A file still being written is
	// readable up to the length synced when Open was called.
	Open(ctx context.Context, name string) (ReadFile, error)
	// Stat describes a file or directory; ErrNotFound if there is none.
	Stat(ctx context.Context, name string) (FileInfo, error)
	// List returns the entries directly inside dir ("" is the root), sorted
	// by name; a missing directory lists as empty.
	List(ctx context.Context, dir string) ([]FileInfo, error)
	// Rename atomically moves oldname to newname, replacing newname if it is
	// a file. The rename is durable when it returns.
	Rename(ctx context.Context, oldname, newname string) error
	// Remove deletes a file or an empty directory; ErrNotFound if missing.
	// The removal is durable when it returns (space may be freed later).
	Remove(ctx context.Context, name string) error
}

// File is a file open for sequential appends. It is not safe for concurrent
// use except that Sync may be called concurrently with Write from one other
// goroutine (group commit writes while a sync runs).
type File interface {
	// Write appends p. The bytes are not durable until Sync returns. Write
	// implements io.Writer; errors may be reported by a later Write, Sync or
	// Close instead.
	io.Writer
	// Sync returns when every byte written before the call is durable: on
	// stable storage (fsync) on every replica. After a failed Sync the file
	// must be considered lost for writing: later Writes and Syncs fail.
	Sync(ctx context.Context) error
	// Close syncs the file, then seals it against further writes.
	io.Closer
	// Size is the number of bytes written so far (synced or not).
	Size() int64
}

// LogCreator is implemented by file systems that write a log's file
// (small appends, each synced soon after) differently from bulk data: the
// dfs client sends its packets to every replica at once. A commit log
// creates its files with CreateLog when its FS has it, else with Create.
type LogCreator interface {
	CreateLog(ctx context.Context, name string) (File, error)
}

// Degradable is implemented by files whose writes go to several replicas
// (the dfs client's): Degraded reports whether the current chunk's write
// pipeline has fewer replicas than the file's target (it lost some, or too
// few chunkservers were live when the chunk was allocated). The file stays
// readable and is re-replicated once closed, so a long-lived writer (a
// commit log) should close it and go on in a new file, as HBase rolls its
// WAL on low replication.
type Degradable interface {
	Degraded() bool
}

// ReadFile is a file open for random reads; safe for concurrent use.
type ReadFile interface {
	io.ReaderAt
	io.Closer
	// Size is the readable length fixed at Open.
	Size() int64
}

// FileInfo describes a file or directory.
type FileInfo struct {
	Name    string // base name for List, the full name for Stat
	Size    int64  // bytes (synced length for a file being written)
	IsDir   bool
	ModTime time.Time
}

// LeaseRecoverer is implemented by file systems with writer leases (the
// replicated dfs). RecoverLease ends the current writer's lease on name,
// settles the file's final length and makes it readable; any later Write or
// Sync by the old writer fails with ErrLeaseLost. It is a no-op on a file
// with no writer.
type LeaseRecoverer interface {
	RecoverLease(ctx context.Context, name string) error
}
