package mapreduce

import (
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"time"
)

// Defaults for RunOptions.
const (
	// DefaultMemoryBudget is RunOptions.MemoryBudget when zero (64 MiB).
	DefaultMemoryBudget int64 = 64 << 20
	// DefaultMaxAttempts is RunOptions.MaxAttempts when zero (as Hadoop's
	// mapreduce.map.maxattempts).
	DefaultMaxAttempts = 4
	// DefaultMergeFactor is RunOptions.MergeFactor when zero.
	DefaultMergeFactor = 64
	// DefaultProgressInterval is RunOptions.ProgressInterval when zero.
	DefaultProgressInterval = time.Second
)

// RunOptions configures the local runner. A nil *RunOptions, and every zero
// field, means the default. Run never modifies the caller's struct.
type RunOptions struct {
	// Workers bounds how many map tasks, and then how many reduce tasks,
	// run at once. Default runtime.GOMAXPROCS(0). The output does not
	// depend on it.
	Workers int
	// MemoryBudget is how many bytes of map output (keys, values and 32
	// bytes of bookkeeping per record) the shuffle holds in memory across
	// all map tasks before spilling sorted runs to TempDir. A map task
	// spills when its buffer reaches MemoryBudget/Workers, or a quarter of
	// that once the budget is exceeded, so the budget may be overshot by up
	// to a quarter while map tasks run. Default DefaultMemoryBudget. Any
	// positive value works; tiny ones spill at almost every record.
	MemoryBudget int64
	// TempDir is the local directory under which Run creates (and removes
	// when it returns) its directory of spill files. Default os.TempDir().
	TempDir string
	// MaxAttempts is how many times a task is executed before the job
	// fails. Default DefaultMaxAttempts; 1 means no retries.
	MaxAttempts int
	// MergeFactor is the most sorted runs merged at once; a reduce
	// partition with more runs is merged in passes through TempDir.
	// Default DefaultMergeFactor; at least 2.
	MergeFactor int
	// Progress, if set, is called with a snapshot of the job's progress
	// every ProgressInterval, when a split or a partition finishes, and
	// once more, with Done set, before Run returns. Calls are never
	// concurrent, and come from a goroutine Run owns; the function must
	// not block for long.
	Progress func(Progress)
	// ProgressInterval is the period of Progress calls. Default
	// DefaultProgressInterval.
	ProgressInterval time.Duration
	// Logger receives job lifecycle (Info) and retried attempts (Warn).
	// Default slog.Default().
	Logger *slog.Logger
}

func (o *RunOptions) withDefaults() RunOptions {
	var c RunOptions
	if o != nil {
		c = *o
	}
	if c.Workers == 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if c.MemoryBudget == 0 {
		c.MemoryBudget = DefaultMemoryBudget
	}
	if c.TempDir == "" {
		c.TempDir = os.TempDir()
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.MergeFactor == 0 {
		c.MergeFactor = DefaultMergeFactor
	}
	if c.ProgressInterval == 0 {
		c.ProgressInterval = DefaultProgressInterval
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports negative or out-of-range fields; the error wraps
// ErrInvalidOptions. A nil receiver is valid.
func (o *RunOptions) Validate() error {
	if o == nil {
		return nil
	}
	switch {
	case o.Workers < 0:
		return fmt.Errorf("%w: Workers %d", ErrInvalidOptions, o.Workers)
	case o.MemoryBudget < 0:
		return fmt.Errorf("%w: MemoryBudget %d bytes", ErrInvalidOptions, o.MemoryBudget)
	case o.MaxAttempts < 0:
		return fmt.Errorf("%w: MaxAttempts %d", ErrInvalidOptions, o.MaxAttempts)
	case o.MergeFactor < 0 || o.MergeFactor == 1:
		return fmt.Errorf("%w: MergeFactor %d (want 0 or at least 2)", ErrInvalidOptions, o.MergeFactor)
	case o.ProgressInterval < 0:
		return fmt.Errorf("%w: ProgressInterval %v", ErrInvalidOptions, o.ProgressInterval)
	}
	return nil
}
