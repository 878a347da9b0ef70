package tabletserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"cellar/dfs"
	"cellar/internal/clock"
	"cellar/lock"
	datapb "cellar/proto/cellar/data/v1"
	masterpb "cellar/proto/cellar/master/v1"
	"cellar/sstable"
)

// Defaults for zero Options fields.
const (
	DefaultSplitSize                int64 = 256 << 20
	DefaultMetaSplitSize            int64 = 128 << 20
	DefaultMaxConcurrentCompactions       = 2
)

// Options configures a Server. New never mutates the caller's struct; zero
// fields mean the defaults documented on each.
type Options struct {
	// ID is the server's id, unique per process incarnation; its lock node
	// is /cellar/servers/<ID> and its commit log servers/<ID>/log. Default
	// "<Addr>-<unix micros>".
	ID string
	// Addr is the advertised gRPC address (the content of the lock node).
	// Required.
	Addr string
	// FS holds the commit log and every tablet's files. Required.
	FS dfs.FS
	// Lock is a session-holding lock-service client owned by the caller:
	// the server registers with it and fences itself on its session
	// state, but never closes it. Required.
	Lock *lock.Client
	// Meta writes METADATA rows when a tablet splits. nil disables
	// automatic splits (and SplitTablet fails).
	Meta MetaWriter
	// Master is told about completed splits; nil: nobody is told (the
	// master finds the split in METADATA).
	Master MasterReporter
	// SplitSize (bytes): a tablet whose SSTable plus memtable bytes exceed
	// it is split. Default 256 MiB.
	SplitSize int64
	// MetaSplitSize (bytes) is SplitSize for METADATA's META tablets (the
	// root tablet never splits); their splits are committed in the root
	// tablet. Default 128 MiB.
	MetaSplitSize int64
	// MemtableSize (bytes) is passed to every tablet; default the tablet's.
	MemtableSize int64
	// MemtableBudget (bytes) bounds the memtables of all the server's
	// tablets together (active and waiting for their flush): above 90% of
	// it the largest are flushed, at it user writes wait (see
	// membudget.go). Default DefaultMemtableBudget (1 GiB).
	MemtableBudget int64
	// Cache is the block cache shared by every tablet; nil: one private
	// 64 MiB cache for the server.
	Cache *sstable.Cache
	// JeopardyBound: when the lock session has been in jeopardy this long
	// the server stops serving (self-fencing) until it is safe again.
	// Default half the session lease.
	JeopardyBound time.Duration
	// Clock drives the fencing timer and the tablets' clocks; default
	// clock.Real().
	Clock clock.Clock
	// Logger receives lifecycle messages; default slog.Default().
	Logger *slog.Logger
	// MaxConcurrentCompactions bounds the compactions running at once on
	// the server: CompactTablet requests, splits and the tablets' own
	// background compactions. Default 2.
	MaxConcurrentCompactions int
	// Hooks are for tests: they let a test act at a precise point.
	Hooks Hooks

	// checkInterval is the period of the split checker, the log releaser
	// and the rate counters (tests shorten it). Default 5 s.
	checkInterval time.Duration
	// walMaxFileSize is the commit log's roll size (tests shrink it);
	// default the wal's.
	walMaxFileSize int64
}

// Hooks are called at fixed points of the server's work (tests).
type Hooks struct {
	// AfterSplitIntent runs during a split after the intent is recorded on
	// the parent's METADATA row and before the parent pauses; a non-nil
	// error stops the split there, nothing more written.
	AfterSplitIntent func(ctx context.Context, tablet uint64) error
	// AfterSplitOnDisk runs during a split after tablet.Split committed it
	// on disk and before the METADATA commit. A non-nil error stops the
	// split right there, nothing more written, as if the server had died.
	AfterSplitOnDisk func(ctx context.Context, tablet uint64) error
	// AfterSplitCommit runs during a split after the METADATA commit (the
	// left daughter's row) and before the daughters are opened and served;
	// the split goes on when it returns.
	AfterSplitCommit func(ctx context.Context, tablet uint64)
}

// MetaWriter writes one METADATA row (table 0) atomically with sync
// durability; the server uses it to commit splits. The tablet server calls
// it with no lock held.
type MetaWriter interface {
	MutateRow(ctx context.Context, row []byte, muts []*datapb.Mutation) error
}

// MasterReporter tells the active master about a completed split.
type MasterReporter interface {
	ReportSplit(ctx context.Context, req *masterpb.ReportSplitRequest) error
}

// ErrInvalidOptions is wrapped by the errors of Options.Validate.
var ErrInvalidOptions = errors.New("cellar/tabletserver: invalid options")

// Validate reports missing or out-of-range settings; errors wrap
// ErrInvalidOptions.
func (o *Options) Validate() error {
	switch {
	case o == nil:
		return fmt.Errorf("%w: nil options", ErrInvalidOptions)
	case o.Addr == "":
		return fmt.Errorf("%w: Addr is required", ErrInvalidOptions)
	case o.FS == nil:
		return fmt.Errorf("%w: FS is required", ErrInvalidOptions)
	case o.Lock == nil:
		return fmt.Errorf("%w: Lock is required", ErrInvalidOptions)
	case o.SplitSize < 0, o.MetaSplitSize < 0, o.MemtableSize < 0, o.MemtableBudget < 0, o.JeopardyBound < 0, o.MaxConcurrentCompactions < 0:
		return fmt.Errorf("%w: negative size, bound or count", ErrInvalidOptions)
	}
	if o.ID != "" {
		if err := lock.ValidatePath(serversDir + "/" + o.ID); err != nil || len(o.ID) > 200 {
			return fmt.Errorf("%w: ID %q is not a valid lock node name", ErrInvalidOptions, o.ID)
		}
		if err := dfs.CheckPath(dfs.Join("servers", o.ID, "log"), false); err != nil {
			return fmt.Errorf("%w: ID %q is not a valid directory name: %v", ErrInvalidOptions, o.ID, err)
		}
	}
	return nil
}

func (o *Options) withDefaults() Options {
	c := *o
	if c.Clock == nil {
		c.Clock = clock.Real()
	}
	if c.ID == "" {
		c.ID = c.Addr + "-" + strconv.FormatInt(c.Clock.Now().UnixMicro(), 10)
	}
	if c.SplitSize == 0 {
		c.SplitSize = DefaultSplitSize
	}
	if c.MemtableBudget == 0 {
		c.MemtableBudget = DefaultMemtableBudget
	}
	if c.MetaSplitSize == 0 {
		c.MetaSplitSize = DefaultMetaSplitSize
	}
	if c.Cache == nil {
		c.Cache = sstable.NewCache(64 << 20)
	}
	if c.JeopardyBound == 0 {
		c.JeopardyBound = c.Lock.Lease() / 2
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MaxConcurrentCompactions == 0 {
		c.MaxConcurrentCompactions = DefaultMaxConcurrentCompactions
	}
	if c.checkInterval == 0 {
		c.checkInterval = 5 * time.Second
	}
	return c
}
