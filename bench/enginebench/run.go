package enginebench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Run executes the chosen workloads on fresh databases opened by o and
// returns their results. It stops at the first error: an engine error, a
// context error, or ErrMismatch when the engine returned wrong data. The
// databases live under opts.Dir and are removed unless opts.Keep.
func Run(ctx context.Context, o Opener, opts *Options) (*Report, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if o.Open == nil {
		return nil, fmt.Errorf("%w: Opener %q has no Open", ErrInvalidOptions, o.Name)
	}
	c := opts.withDefaults()
	h := &harness{opener: o, opts: c, vals: newValues(c.Seed, c.ValueSize)}
	rep := &Report{Engine: o.Name, Settings: o.Settings, Options: c, MemoryBudget: o.MemoryBudget, MemoryOverhead: o.MemoryOverhead}
	if o.MemoryLimit > 0 {
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(o.MemoryLimit))
	}
	rep.PeakReset = ResetPeakRSS()
	rep.BaseRSS, _ = CurrentRSS()
	rep.GCPercent, rep.MemoryLimit = GCSettings()
	err := h.run(ctx, rep)
	if cerr := h.close(!c.Keep); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return rep, nil
}

// harness holds the state of one Run.
type harness struct {
	opener Opener
	opts   Options
	vals   *values
	perm   []uint32 // the random fill order, made on first use

	db        Engine
	dbDir     string
	dbCount   int
	filled    bool // db holds opts.Rows rows
	compacted bool // db was compacted since it was filled
}

func (h *harness) run(ctx context.Context, rep *Report) error {
	for _, w := range Workloads {
		if !slices.Contains(h.opts.Workloads, w) {
			continue
		}
		if isRead(w) || w == Compact {
			if !h.filled {
				if err := h.fresh(ctx); err != nil {
					return err
				}
				if _, _, err := h.fill(ctx, FillSeq); err != nil {
					return fmt.Errorf("untimed fill before %s: %w", w, err)
				}
				rep.Notes = append(rep.Notes, fmt.Sprintf("%s ran on a database filled by an untimed fillseq", w))
			}
			if !h.compacted {
				res, err := h.measure(ctx, Compact, h.compact)
				if err != nil {
					return err
				}
				rep.Results = append(rep.Results, res)
			}
			if w == Compact {
				continue
			}
		}
		if isFill(w) {
			if err := h.fresh(ctx); err != nil {
				return err
			}
		}
		res, err := h.measure(ctx, w, func(ctx context.Context) (int64, int64, error) {
			switch w {
			case ReadRandom, ReadMissing:
				return h.read(ctx, w == ReadMissing)
			case Scan:
				return h.scan(ctx)
			default:
				return h.fill(ctx, w)
			}
		})
		if err != nil {
			return err
		}
		rep.Results = append(rep.Results, res)
	}
	return nil
}

// measure times fn and records the peak RSS while it ran.
func (h *harness) measure(ctx context.Context, w string, fn func(context.Context) (ops, bytes int64, err error)) (Result, error) {
	ResetPeakRSS()
	start := time.Now()
	ops, n, err := fn(ctx)
	elapsed := time.Since(start)
	if err != nil {
		return Result{}, fmt.Errorf("%s on %s: %w", w, h.opener.Name, err)
	}
	peak, _ := PeakRSS()
	return Result{Workload: w, Ops: ops, Bytes: n, Elapsed: elapsed, PeakRSS: peak}, nil
}

// fresh closes and removes the current database and opens an empty one.
func (h *harness) fresh(ctx context.Context) error {
	if err := h.close(true); err != nil {
		return err
	}
	h.dbCount++
	dir := filepath.Join(h.opts.Dir, fmt.Sprintf("%s-%d", h.opener.Name, h.dbCount))
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	db, err := h.opener.Open(ctx, dir)
	if err != nil {
		return fmt.Errorf("open %s in %s: %w", h.opener.Name, dir, err)
	}
	h.db, h.dbDir, h.filled, h.compacted = db, dir, false, false
	return nil
}

// close closes the current database, removing its directory if remove.
func (h *harness) close(remove bool) error {
	if h.db == nil {
		return nil
	}
	err := h.db.Close()
	h.db = nil
	if remove {
		err = errors.Join(err, os.RemoveAll(h.dbDir))
	}
	return err
}

// parallel runs fn on opts.Concurrency goroutines and returns the first
// error; the others see ctx cancelled.
func (h *harness) parallel(ctx context.Context, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for range h.opts.Concurrency {
		wg.Go(func() {
			if err := fn(ctx); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		})
	}
	wg.Wait()
	return first
}

// cursor hands out consecutive index ranges [start, end) below n.
type cursor struct {
	next atomic.Int64
	n    int64
}

func (c *cursor) take(k int) (start, end int, ok bool) {
	s := c.next.Add(int64(k)) - int64(k)
	if s >= c.n {
		return 0, 0, false
	}
	return int(s), int(min(s+int64(k), c.n)), true
}

// fill writes every row once, in key order for fillseq and in the seeded
// permutation otherwise.
func (h *harness) fill(ctx context.Context, w string) (int64, int64, error) {
	var order []uint32
	if w != FillSeq {
		if h.perm == nil {
			h.perm = permutation(h.opts.Seed, h.opts.Rows)
		}
		order = h.perm
	}
	batch, sync := 1, false
	if w == FillSync {
		batch, sync = h.opts.SyncBatch, true
	}
	cur := &cursor{n: int64(h.opts.Rows)}
	err := h.parallel(ctx, func(ctx context.Context) error {
		kvs := make([]KV, batch)
		keys := make([]byte, batch*KeySize)
		for {
			start, end, ok := cur.take(batch)
			if !ok {
				return nil
			}
			for j := start; j < end; j++ {
				row := j
				if order != nil {
					row = int(order[j])
				}
				kv := &kvs[j-start]
				kv.Key = rowKey(keys[(j-start)*KeySize:], row)
				kv.Value = h.vals.of(row)
			}
			if err := h.db.Write(ctx, kvs[:end-start], sync); err != nil {
				return err
			}
		}
	})
	if err != nil {
		return 0, 0, err
	}
	h.filled = true
	rows := int64(h.opts.Rows)
	return rows, rows * int64(KeySize+h.opts.ValueSize), nil
}

func (h *harness) compact(ctx context.Context) (int64, int64, error) {
	if err := h.db.Compact(ctx); err != nil {
		return 0, 0, err
	}
	h.compacted = true
	rows := int64(h.opts.Rows)
	return rows, rows * int64(KeySize+h.opts.ValueSize), nil
}

// readChunk is how many reads a worker takes from the cursor at once.
const readChunk = 256

// read makes opts.Reads point reads of seeded random rows: existing keys
// that must be found with their values, or missing keys that must not be.
func (h *harness) read(ctx context.Context, missing bool) (int64, int64, error) {
	salt := uint64(0x7ead)
	if missing {
		salt = 0x3155
	}
	cur := &cursor{n: int64(h.opts.Reads)}
	var found, moved atomic.Int64
	err := h.parallel(ctx, func(ctx context.Context) error {
		var key [KeySize]byte
		var buf []byte
		var nFound, nBytes int64
		defer func() { found.Add(nFound); moved.Add(nBytes) }()
		for {
			start, end, ok := cur.take(readChunk)
			if !ok {
				return nil
			}
			for j := start; j < end; j++ {
				row := int(mix(h.opts.Seed^salt^uint64(j)<<16) % uint64(h.opts.Rows))
				k := rowKey(key[:], row)
				if missing {
					k = missingKey(key[:], row)
				}
				v, ok, err := h.db.Get(ctx, k, buf[:0])
				if err != nil {
					return err
				}
				buf = v
				nBytes += KeySize
				if !ok {
					continue
				}
				nFound++
				if missing {
					return fmt.Errorf("%w: missing key %q found", ErrMismatch, k)
				}
				if err := h.vals.check(row, v); err != nil {
					return err
				}
				nBytes += int64(len(v))
			}
		}
	})
	if err != nil {
		return 0, 0, err
	}
	if want := int64(h.opts.Reads); !missing && found.Load() != want {
		return 0, 0, fmt.Errorf("%w: found %d of %d written keys read", ErrMismatch, found.Load(), want)
	}
	return int64(h.opts.Reads), moved.Load(), nil
}

// scan reads every row once, checking order, keys and values.
func (h *harness) scan(ctx context.Context) (int64, int64, error) {
	var (
		n, moved int64
		prev     []byte
		bad      error
	)
	err := h.db.Scan(ctx, func(k, v []byte) bool {
		if prev != nil && bytes.Compare(prev, k) >= 0 {
			bad = fmt.Errorf("%w: scan returned %q after %q", ErrMismatch, k, prev)
			return false
		}
		prev = append(prev[:0], k...)
		row, err := h.rowOf(k)
		if err == nil {
			err = h.vals.check(row, v)
		}
		if err != nil {
			bad = err
			return false
		}
		n++
		moved += int64(len(k) + len(v))
		return true
	})
	if err = errors.Join(err, bad); err != nil {
		return 0, 0, err
	}
	if n != int64(h.opts.Rows) {
		return 0, 0, fmt.Errorf("%w: scan returned %d rows, want %d", ErrMismatch, n, h.opts.Rows)
	}
	return n, moved, nil
}

func (h *harness) rowOf(k []byte) (int, error) {
	row, err := parseRow(k)
	if err == nil && row >= h.opts.Rows {
		err = fmt.Errorf("%w: scan returned row %d beyond the %d written", ErrMismatch, row, h.opts.Rows)
	}
	return row, err
}
