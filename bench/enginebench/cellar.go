package enginebench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"cellar/dfs/local"
	"cellar/sstable"
	"cellar/tablet"
)

// CellarOptions size the Cellar engine under benchmark. Zero fields mean
// the defaults stated on each.
type CellarOptions struct {
	// MemtableSize is the tablet's memtable arena size in bytes; default
	// 64 MiB.
	MemtableSize int64
	// MaxImmutableMemtables is how many full memtables may wait for their
	// flush before writes stall; default the tablet's (2).
	MaxImmutableMemtables int
	// CacheSize is the block cache in bytes; default 256 MiB.
	CacheSize int64
	// BlockSize is the uncompressed data block size in bytes; default 64
	// KiB.
	BlockSize int
	// BloomFalsePositive is the Bloom filter's target false-positive rate;
	// default 0.01 (about 9.6 bits per key, close to Pebble's 10).
	BloomFalsePositive float64
	// Logger receives the tablet's lifecycle messages; default a logger
	// that drops them (they would interleave with the tables).
	Logger *slog.Logger
	// MemoryOverhead is the memory Cellar may use beyond its budget
	// (block cache + memtables): index and filter blocks, write buffers,
	// compaction state and the garbage between two collections. The run
	// sets the Go runtime's soft memory limit to budget + overhead, as a
	// tablet server sets GOMEMLIMIT. Default a quarter of the budget plus
	// 64 MiB; negative: no limit (the heap may grow to twice its live
	// size).
	MemoryOverhead int64
}

func (o *CellarOptions) withDefaults() CellarOptions {
	var c CellarOptions
	if o != nil {
		c = *o
	}
	if c.MemtableSize == 0 {
		c.MemtableSize = 64 << 20
	}
	if c.MaxImmutableMemtables == 0 {
		c.MaxImmutableMemtables = tablet.DefaultMaxImmutableMemtables
	}
	if c.CacheSize == 0 {
		c.CacheSize = 256 << 20
	}
	if c.BlockSize == 0 {
		c.BlockSize = 64 << 10
	}
	if c.BloomFalsePositive == 0 {
		c.BloomFalsePositive = 0.01
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.MemoryOverhead == 0 {
		c.MemoryOverhead = c.budget()/4 + 64<<20
	}
	return c
}

// nonHeapAllowance is the resident memory the stated overhead allows
// beyond the Go memory limit.
const nonHeapAllowance = 32 << 20

// budget is the memory the configuration allows: the block cache and
// every memtable that may exist at once.
func (c *CellarOptions) budget() int64 {
	return c.CacheSize + int64(1+c.MaxImmutableMemtables)*c.MemtableSize
}

// cellarFamily is the one column family the benchmark writes; every row
// holds one cell with an empty qualifier.
const cellarFamily = "f"

// CellarOpener returns the harness's Opener for Cellar: each database is one
// tablet (cellar/tablet) on dfs/local in the harness's directory, with one
// family and its own commit log. A row is one Apply of one SetCell with a
// server-assigned timestamp; the async fills use tablet.Async durability,
// and a fillsync batch issues one tablet.Sync Apply per row, all of the
// batch's rows at once from their own goroutines, so that the log's group
// commit makes them share syncs; the batch returns when every row is
// durable. Point reads are ReadRow with MaxVersions 1; the scan is a
// tablet Scan of every row; Compact is a major compaction (which flushes
// first).
func CellarOpener(o *CellarOptions) Opener {
	c := o.withDefaults()
	budget := c.budget()
	limit, stated, limitText := int64(0), int64(0), "no Go memory limit"
	if c.MemoryOverhead > 0 {
		limit = budget + c.MemoryOverhead
		// The Go limit covers the heap and the runtime's own memory; the
		// rest of the process (thread stacks, binary, C libraries) gets
		// nonHeapAllowance.
		stated = c.MemoryOverhead + nonHeapAllowance
		limitText = fmt.Sprintf("Go memory limit %s (budget + %s), stated overhead %s", FormatSize(limit), FormatSize(c.MemoryOverhead), FormatSize(stated))
	}
	settings := fmt.Sprintf("cellar tablet on dfs/local: block cache %s, memtable %s (+ up to %d immutable), Snappy, %s blocks, "+
		"Bloom fp %.3g on row and column prefixes, own commit log (Async per row; fillsync: one Sync ApplyBatch per batch), %s",
		FormatSize(c.CacheSize), FormatSize(c.MemtableSize), c.MaxImmutableMemtables, FormatSize(int64(c.BlockSize)), c.BloomFalsePositive, limitText)
	return Opener{
		Name:           "cellar",
		Settings:       settings,
		MemoryBudget:   budget,
		MemoryLimit:    limit,
		MemoryOverhead: stated,
		Open: func(ctx context.Context, dir string) (Engine, error) {
			fs, err := local.Open(dir)
			if err != nil {
				return nil, err
			}
			t, err := tablet.Open(ctx, &tablet.Options{
				FS:  fs,
				Dir: "tablet",
				ID:  1,
				Families: []tablet.FamilyOptions{{
					Name:               cellarFamily,
					Compression:        sstable.CompressionSnappy,
					BlockSize:          c.BlockSize,
					BloomFalsePositive: c.BloomFalsePositive,
				}},
				MemtableSize:          c.MemtableSize,
				MaxImmutableMemtables: c.MaxImmutableMemtables,
				Cache:                 sstable.NewCache(c.CacheSize),
				Logger:                c.Logger,
			})
			if err != nil {
				return nil, err
			}
			return &cellarEngine{t: t}, nil
		},
	}
}

// cellarEngine adapts a *tablet.Tablet to Engine.
type cellarEngine struct {
	t *tablet.Tablet
}

var _ Engine = (*cellarEngine)(nil)

var (
	asyncWrite = &tablet.WriteOptions{Durability: tablet.Async}
	syncWrite  = &tablet.WriteOptions{Durability: tablet.Sync}
	latestOnly = tablet.ReadOptions{MaxVersions: 1}
)

func (e *cellarEngine) apply(ctx context.Context, kv KV, wo *tablet.WriteOptions) error {
	return e.t.Apply(ctx, kv.Key, []tablet.Mutation{tablet.SetCell(cellarFamily, nil, tablet.ServerTime, kv.Value)}, wo)
}

func (e *cellarEngine) Write(ctx context.Context, kvs []KV, durable bool) error {
	wo := asyncWrite
	if durable {
		wo = syncWrite
	}
	if len(kvs) == 1 || !durable {
		for _, kv := range kvs {
			if err := e.apply(ctx, kv, wo); err != nil {
				return err
			}
		}
		return nil
	}
	// A synced batch: one ApplyBatch (each row atomic, one commit-log
	// hand-over and one Sync for the batch), as a Pebble batch is one WAL
	// record and one sync.
	rows := make([]tablet.RowMutation, len(kvs))
	for i, kv := range kvs {
		rows[i] = tablet.RowMutation{Row: kv.Key, Mutations: []tablet.Mutation{tablet.SetCell(cellarFamily, nil, tablet.ServerTime, kv.Value)}}
	}
	return e.t.ApplyBatch(ctx, rows, wo)
}

func (e *cellarEngine) Get(ctx context.Context, key, dst []byte) ([]byte, bool, error) {
	row, err := e.t.ReadRow(ctx, key, &latestOnly)
	if err != nil || row == nil {
		return dst, false, err
	}
	if len(row.Cells) != 1 {
		return dst, false, fmt.Errorf("%w: row %q has %d cells, want 1", ErrMismatch, key, len(row.Cells))
	}
	return append(dst, row.Cells[0].Value...), true, nil
}

func (e *cellarEngine) Scan(ctx context.Context, fn func(k, v []byte) bool) error {
	var bad error
	err := e.t.Scan(ctx, &tablet.ScanOptions{Read: latestOnly, Reuse: true}, func(r *tablet.Row) bool {
		if len(r.Cells) != 1 {
			bad = fmt.Errorf("%w: row %q has %d cells, want 1", ErrMismatch, r.Key, len(r.Cells))
			return false
		}
		return fn(r.Key, r.Cells[0].Value)
	})
	return errors.Join(err, bad)
}

func (e *cellarEngine) Compact(ctx context.Context) error { return e.t.Compact(ctx, true) }

func (e *cellarEngine) Close() error { return e.t.Close() }
