package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"cellar/bench/enginebench"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/sstable"
)

// pebbleVersion is the Pebble release in go.mod, printed with the results.
const pebbleVersion = "v2.1.7"

// getMode is how the Pebble adapter serves a point read.
type getMode string

const (
	// getPrefixIter reads through an iterator's SeekPrefixGE with
	// UseL6Filters, so that the Bloom filters of the last level (where
	// everything lives after a full compaction) are consulted: DB.Get
	// skips them, which makes missing-key reads pay for a data block.
	getPrefixIter getMode = "prefix-iter"
	// getDBGet reads with DB.Get (no filter on the last level).
	getDBGet getMode = "get"
)

// pebbleConfig sizes Pebble the way the Cellar adapter is sized.
type pebbleConfig struct {
	MemtableSize int64 // bytes per memtable
	CacheSize    int64 // Cellar's block cache, bytes; Pebble gets CacheSize + 2 × MemtableSize
	BlockSize    int   // bytes of uncompressed data per block
	BitsPerKey   int   // Bloom filter bits per key
	Get          getMode
}

func (c pebbleConfig) cacheBytes() int64 { return c.CacheSize + 2*c.MemtableSize }

// pebbleOpener returns the harness's Opener for Pebble configured as c.
func pebbleOpener(c pebbleConfig) (enginebench.Opener, error) {
	if c.Get != getPrefixIter && c.Get != getDBGet {
		return enginebench.Opener{}, fmt.Errorf("%w: pebble get mode %q (want %q or %q)",
			enginebench.ErrInvalidOptions, c.Get, getPrefixIter, getDBGet)
	}
	settings := fmt.Sprintf("pebble %s: block cache %s (= cache %s + 2 × memtable; Pebble's cache also holds its memtables), "+
		"memtable %s, Snappy, %s blocks, Bloom %d bits/key on every level, point reads via %s, "+
		"WAL: one pebble.Sync commit per fillsync batch, pebble.NoSync otherwise, default compaction concurrency",
		pebbleVersion, enginebench.FormatSize(c.cacheBytes()), enginebench.FormatSize(c.CacheSize),
		enginebench.FormatSize(c.MemtableSize), enginebench.FormatSize(int64(c.BlockSize)), c.BitsPerKey, c.Get)
	return enginebench.Opener{
		Name:         "pebble",
		Settings:     settings,
		MemoryBudget: c.cacheBytes(),
		Open: func(_ context.Context, dir string) (enginebench.Engine, error) {
			opts := &pebble.Options{
				CacheSize:    c.cacheBytes(),
				MemTableSize: uint64(c.MemtableSize),
				Logger:       quietLogger{pebble.DefaultLogger},
			}
			for i := range opts.Levels {
				l := &opts.Levels[i]
				l.BlockSize = c.BlockSize
				l.FilterPolicy = bloom.FilterPolicy(c.BitsPerKey)
				l.Compression = func() *sstable.CompressionProfile { return sstable.SnappyCompression }
			}
			db, err := pebble.Open(dir, opts)
			if err != nil {
				return nil, err
			}
			return &pebbleEngine{db: db, get: c.Get}, nil
		},
	}, nil
}

// pebbleEngine adapts a *pebble.DB to enginebench.Engine.
type pebbleEngine struct {
	db  *pebble.DB
	get getMode
}

var _ enginebench.Engine = (*pebbleEngine)(nil)

func (e *pebbleEngine) Write(_ context.Context, kvs []enginebench.KV, sync bool) error {
	wo := pebble.NoSync
	if sync {
		wo = pebble.Sync
	}
	if len(kvs) == 1 {
		return e.db.Set(kvs[0].Key, kvs[0].Value, wo)
	}
	b := e.db.NewBatch()
	for _, kv := range kvs {
		if err := b.Set(kv.Key, kv.Value, nil); err != nil {
			b.Close()
			return err
		}
	}
	return errors.Join(e.db.Apply(b, wo), b.Close())
}

func (e *pebbleEngine) Get(ctx context.Context, key, dst []byte) ([]byte, bool, error) {
	if e.get == getDBGet {
		v, closer, err := e.db.Get(key)
		if errors.Is(err, pebble.ErrNotFound) {
			return dst, false, nil
		}
		if err != nil {
			return dst, false, err
		}
		dst = append(dst, v...)
		return dst, true, closer.Close()
	}
	it, err := e.db.NewIterWithContext(ctx, &pebble.IterOptions{UseL6Filters: true})
	if err != nil {
		return dst, false, err
	}
	found := false
	if it.SeekPrefixGE(key) && bytes.Equal(it.Key(), key) {
		v, err := it.ValueAndErr()
		if err != nil {
			return dst, false, errors.Join(err, it.Close())
		}
		dst, found = append(dst, v...), true
	}
	return dst, found, it.Close()
}

func (e *pebbleEngine) Scan(ctx context.Context, fn func(k, v []byte) bool) error {
	it, err := e.db.NewIterWithContext(ctx, nil)
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return errors.Join(err, it.Close())
		}
		if !fn(it.Key(), v) {
			break
		}
	}
	return it.Close()
}

// Compact flushes the memtable and compacts the whole key space (the
// harness's keys are decimal digits, all below 0xff).
func (e *pebbleEngine) Compact(ctx context.Context) error {
	if err := e.db.Flush(); err != nil {
		return err
	}
	return e.db.Compact(ctx, []byte{}, []byte{0xff}, true)
}

func (e *pebbleEngine) Close() error { return e.db.Close() }

// quietLogger drops Pebble's informational messages (they would interleave
// with the tables) and passes errors to Pebble's default logger.
type quietLogger struct{ pebble.Logger }

func (quietLogger) Infof(string, ...any) {}
