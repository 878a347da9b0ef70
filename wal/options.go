package wal

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"cellar/dfs"
	"cellar/internal/clock"
)

// Options configure a Log. The zero value of every field means its default.
type Options struct {
	// Dir is the directory in the FS holding the log files (named %016d.log
	// so that they sort by number); "" is the FS root.
	Dir string
	// MaxFileSize is the size (bytes) past which the log rolls to a new
	// file; a file may exceed it by at most one commit group. Default 64 MiB.
	MaxFileSize int64
	// AsyncSyncInterval bounds how long an entry appended with sync=false
	// stays unwritten or unsynced: within it, the entry is written and
	// synced. Default 50 ms.
	AsyncSyncInterval time.Duration
	// AsyncBufferSize is how many bytes of framed sync=false entries the
	// writer keeps in memory before it writes them to the file, so that a
	// stream of async appends costs one Write per buffer rather than one
	// per entry (as Pebble's NoSync and HBase's ASYNC_WAL do). An entry
	// with sync=true writes the buffer at once. Default 64 KiB; negative
	// writes every group at once.
	AsyncBufferSize int
	// QueueLength is how many appends may wait for the writer goroutine;
	// Append blocks (with its ctx) beyond it. Default 4096.
	QueueLength int
	// MaxGroupBytes caps the bytes of entries one commit group (one Write,
	// at most one Sync) takes from the queue. Default 4 MiB.
	MaxGroupBytes int
	// LowReplicationRollInterval is the least time between two rolls
	// because the live file has fewer replicas than its target
	// (dfs.Degradable): a roll gives the log a full pipeline again, but
	// while too few replicas are live every new file is short too, and
	// rolling at every sync would only churn files. Default 10s.
	LowReplicationRollInterval time.Duration
	// Logger receives lifecycle and failure messages; nil = slog.Default().
	Logger *slog.Logger
	// Clock times the background sync of async appends; nil = clock.Real().
	Clock clock.Clock
}

const (
	defaultMaxFileSize       = 64 << 20
	defaultAsyncSyncInterval = 50 * time.Millisecond
	defaultQueueLength       = 4096
	defaultMaxGroupBytes     = 4 << 20
	defaultAsyncBufferSize   = 64 << 10

	defaultLowReplicationRollInterval = 10 * time.Second
)

// withDefaults returns a copy of o (nil = all defaults) with every zero
// field set to its default.
func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	if c.MaxFileSize == 0 {
		c.MaxFileSize = defaultMaxFileSize
	}
	if c.AsyncSyncInterval == 0 {
		c.AsyncSyncInterval = defaultAsyncSyncInterval
	}
	if c.QueueLength == 0 {
		c.QueueLength = defaultQueueLength
	}
	if c.AsyncBufferSize == 0 {
		c.AsyncBufferSize = defaultAsyncBufferSize
	}
	if c.MaxGroupBytes == 0 {
		c.MaxGroupBytes = defaultMaxGroupBytes
	}
	if c.LowReplicationRollInterval == 0 {
		c.LowReplicationRollInterval = defaultLowReplicationRollInterval
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = clock.Real()
	}
	return c
}

// Validate reports options that cannot work.
func (o *Options) Validate() error {
	if o == nil {
		return nil
	}
	var errs []error
	if err := dfs.CheckPath(o.Dir, true); err != nil {
		errs = append(errs, fmt.Errorf("Dir: %w", err))
	}
	if o.MaxFileSize < 0 {
		errs = append(errs, fmt.Errorf("MaxFileSize %d is negative", o.MaxFileSize))
	}
	if o.AsyncSyncInterval < 0 {
		errs = append(errs, fmt.Errorf("AsyncSyncInterval %v is negative", o.AsyncSyncInterval))
	}
	if o.QueueLength < 0 {
		errs = append(errs, fmt.Errorf("QueueLength %d is negative", o.QueueLength))
	}
	if o.MaxGroupBytes < 0 {
		errs = append(errs, fmt.Errorf("MaxGroupBytes %d is negative", o.MaxGroupBytes))
	}
	if o.LowReplicationRollInterval < 0 {
		errs = append(errs, fmt.Errorf("LowReplicationRollInterval %v is negative", o.LowReplicationRollInterval))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cellar/wal: invalid options: %w", err)
	}
	return nil
}
