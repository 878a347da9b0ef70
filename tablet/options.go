package tablet

import (
	"context"
	"fmt"
	"log/slog"
	"sort"

	"cellar/dfs"
	"cellar/internal/clock"
	"cellar/internal/keys"
	"cellar/memtable"
	"cellar/sstable"
	"cellar/wal"
)

// ID identifies a tablet; it tags the tablet's entries in a shared commit log.
type ID uint64

// Defaults for zero Options fields.
const (
	DefaultMemtableSize          int64 = 64 << 20
	DefaultMaxImmutableMemtables       = 2
	DefaultMaxValueSize                = 10 << 20
	DefaultMaxCellsPerMutation         = 100000
	DefaultCompactionTrigger           = 6
)

// Options configures a Tablet. Open never mutates the caller's struct; zero
// fields mean the defaults documented on each.
type Options struct {
	// FS holds every file of the tablet. Required.
	FS dfs.FS
	// Dir is the tablet's directory in FS (MANIFEST-<epoch>,
	// CLAIM-<epoch>, sst/, log/). Required.
	Dir string
	// ID tags the tablet's entries in the commit log.
	ID ID
	// Families is the schema: at least one, names unique and valid.
	Families []FamilyOptions
	// StartRow and EndRow bound the tablet's rows: [StartRow, EndRow); nil
	// means unbounded on that side.
	StartRow, EndRow []byte
	// MemtableSize is the arena size of each memtable in bytes; default 64
	// MiB. One Apply must fit in an empty memtable. The arena is allocated
	// as it fills, in 256 KiB chunks, so an idle tablet holds one chunk,
	// not MemtableSize bytes; the memtable rotates when its size, which
	// counts the waste at chunk tails, reaches MemtableSize.
	MemtableSize int64
	// MaxImmutableMemtables is how many full memtables may wait for their
	// flush before writes stall (block, honouring ctx); default 2.
	MaxImmutableMemtables int
	// Cache is the shared block cache; nil = a private 64 MiB one.
	Cache *sstable.Cache
	// Log is a shared commit log (one per tablet server). nil: the tablet
	// opens its own under Dir/log, replays it on Open and releases its files
	// as memtables are flushed. With a shared log the tablet only appends:
	// the owner releases files using FlushedSeq and names the directories
	// to recover from in RecoverLogDirs.
	Log *wal.Log
	// RecoverLogDirs are commit-log directories Open replays before the
	// tablet's own log: the shared log of a restarted tablet server, or the
	// per-tablet output of splitting a dead server's log. Entries of other
	// tablets and entries at or below the flushed sequence number are
	// skipped; everything replayed is flushed before Open returns, so the
	// directories are not needed afterwards.
	RecoverLogDirs []string
	// RecoverEntries, if set, is called by Open after RecoverLogDirs are
	// replayed; it calls fn with commit-log entries from any other source
	// (the per-tablet edits split from a dead server's log), with the same
	// filtering. An error from fn or from RecoverEntries fails Open.
	RecoverEntries func(ctx context.Context, fn func(wal.Entry) error) error
	// MaxValueSize is the largest cell value in bytes; default 10 MiB.
	MaxValueSize int
	// MaxCellsPerMutation bounds the mutations of one Apply (after DeleteRow
	// expands to one family delete per family); default 100000.
	MaxCellsPerMutation int
	// CompactionTrigger is the number of SSTables a family may have before
	// a merging compaction runs; reads of a family consult at most about
	// this many files (plus the memtables). Default 6; minimum 2.
	CompactionTrigger int
	// Clock gives server timestamps and the "now" of MaxAge GC; default
	// clock.Real().
	Clock clock.Clock
	// Logger receives lifecycle messages; default slog.Default().
	Logger *slog.Logger
	// Events receives callbacks from background work (never under a lock),
	// possibly after the Flush or Compact call they report has returned;
	// Stats and FlushedSeq are up to date when such a call returns.
	Events EventListener
	// CompactionLimiter, if set, is shared by several tablets (a tablet
	// server's) to bound the background compactions running at once
	// across them: each background compaction holds a slot while it runs.
	// Compact, called explicitly, does not take one (its caller bounds it).
	// nil: no bound beyond one compaction at a time per tablet.
	CompactionLimiter Limiter
	// MemtablePool, if set, is shared by several tablets (a tablet
	// server's): a flushed memtable that no read holds any more goes back
	// to it, and new memtables come from it, so arena chunks are reused
	// rather than allocated (see memtable.Pool). nil: the tablet keeps at most one
	// idle memtable of its own.
	MemtablePool *memtable.Pool
}

// Limiter hands out a bounded number of slots. Acquire blocks until a slot
// is free or ctx ends (returning ctx's error); Release returns a slot.
// Implementations are safe for concurrent use.
type Limiter interface {
	Acquire(ctx context.Context) error
	Release()
}

// FamilyOptions describes one column family.
type FamilyOptions struct {
	Name string
	// GC is the garbage-collection policy, applied on every read and by
	// major compactions. The zero value keeps everything.
	GC GCPolicy
	// Table settings of this family's SSTables (zero = sstable defaults).
	Compression        sstable.Compression
	BlockSize          int
	BloomFalsePositive float64
}

// EventListener is a struct of callbacks; nil fields are skipped. They run
// on the goroutine that did the work, with no tablet lock held, and must not
// block for long.
type EventListener struct {
	// FlushEnd follows every flush of an immutable memtable (also a failed
	// one: Err set).
	FlushEnd func(FlushInfo)
	// CompactionEnd follows every merging or major compaction of a family.
	CompactionEnd func(CompactionInfo)
	// WriteStallBegin: an Apply found MaxImmutableMemtables pending flushes
	// and waits; WriteStallEnd: it may go on (or gave up on its ctx).
	WriteStallBegin func()
	WriteStallEnd   func()
}

// FlushInfo describes one flush (minor compaction).
type FlushInfo struct {
	// Seq is the last sequence number the flushed memtable held; after a
	// successful flush FlushedSeq() >= Seq.
	Seq     keys.SeqNum
	Entries int
	Files   []string // new SSTables, one per family that had entries
	Err     error
}

// CompactionInfo describes one compaction of one family.
type CompactionInfo struct {
	Family  string
	Major   bool
	Inputs  []string
	Outputs []string
	Err     error
}

func (o *Options) withDefaults() Options {
	c := *o
	if c.MemtableSize == 0 {
		c.MemtableSize = DefaultMemtableSize
	}
	if c.MaxImmutableMemtables == 0 {
		c.MaxImmutableMemtables = DefaultMaxImmutableMemtables
	}
	if c.MaxValueSize == 0 {
		c.MaxValueSize = DefaultMaxValueSize
	}
	if c.MaxCellsPerMutation == 0 {
		c.MaxCellsPerMutation = DefaultMaxCellsPerMutation
	}
	if c.CompactionTrigger == 0 {
		c.CompactionTrigger = DefaultCompactionTrigger
	}
	if c.Cache == nil {
		c.Cache = sstable.NewCache(64 << 20)
	}
	if c.Clock == nil {
		c.Clock = clock.Real()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Families = append([]FamilyOptions(nil), o.Families...)
	sort.Slice(c.Families, func(i, j int) bool { return c.Families[i].Name < c.Families[j].Name })
	c.RecoverLogDirs = append([]string(nil), o.RecoverLogDirs...)
	c.StartRow = cloneBytes(o.StartRow)
	c.EndRow = cloneBytes(o.EndRow)
	return c
}

// Validate reports missing or out-of-range settings; errors wrap
// ErrInvalidOptions.
func (o *Options) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidOptions}, args...)...)
	}
	if o.FS == nil {
		return bad("FS is required")
	}
	if err := dfs.CheckPath(o.Dir, false); err != nil {
		return bad("Dir: %v", err)
	}
	for _, d := range o.RecoverLogDirs {
		if err := dfs.CheckPath(d, false); err != nil {
			return bad("RecoverLogDirs: %v", err)
		}
	}
	if len(o.Families) == 0 {
		return bad("at least one column family is required")
	}
	seen := map[string]bool{}
	for _, f := range o.Families {
		if err := keys.ValidateFamily(f.Name); err != nil {
			return bad("family %q: %v", f.Name, err)
		}
		if seen[f.Name] {
			return bad("family %q declared twice", f.Name)
		}
		seen[f.Name] = true
		if err := f.GC.validate(); err != nil {
			return bad("family %q: %v", f.Name, err)
		}
	}
	if o.StartRow != nil && o.EndRow != nil && string(o.StartRow) >= string(o.EndRow) {
		return bad("empty row range [%q, %q)", o.StartRow, o.EndRow)
	}
	if o.MemtableSize != 0 && (o.MemtableSize < memtable.MinArenaSize || o.MemtableSize > memtable.MaxArenaSize) {
		return bad("MemtableSize %d outside [%d, %d]", o.MemtableSize, memtable.MinArenaSize, memtable.MaxArenaSize)
	}
	if o.MaxImmutableMemtables < 0 || o.MaxValueSize < 0 || o.MaxCellsPerMutation < 0 {
		return bad("negative limit")
	}
	if o.CompactionTrigger != 0 && o.CompactionTrigger < 2 {
		return bad("CompactionTrigger %d below 2", o.CompactionTrigger)
	}
	return nil
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
