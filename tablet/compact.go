package tablet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"

	"cellar/internal/keys"
	"cellar/sstable"
)

// Compaction policy. Flushes add one SSTable per family; a family with more
// than CompactionTrigger tables has its smallest tables merged into one
// (size-tiered: the small, recent flush outputs merge first, and big tables
// are rewritten only when enough small ones have accumulated), which keeps
// the tables a read of a family consults at about CompactionTrigger.
// Since every key is unique, the merge order of the tables does not matter.
//
// A merging compaction copies the entries in the tablet's row range (so a
// split daughter sheds its sibling's rows), tombstones included, since the
// data a tombstone masks may sit in a table outside the merge; it drops only
// cells masked by a tombstone in the merge and older writes of a version
// (same column and timestamp, lower sequence number): masking only ever
// grows, so those can never be visible again. Every reader of the new
// tables reads at a snapshot that covers all flushed entries, so none of
// them could still see a dropped cell. A major compaction
// merges all of a family's tables after a flush, so it sees everything a
// tombstone can mask: it writes only the visible versions that the family's
// GC policy keeps, and no tombstones.

// compactLoop runs merging compactions in the background when the picker
// finds a family over its trigger. Owned by the Tablet; Close stops it.
func (t *Tablet) compactLoop() {
	defer t.bg.Done()
	for {
		select {
		case <-t.bgCtx.Done():
			return
		case <-t.compactSignal:
		}
		var err error
		if t.opts.CompactionLimiter == nil {
			err = t.compactPicked(t.bgCtx)
		} else {
			err = t.compactLimited(t.bgCtx, t.opts.CompactionLimiter)
		}
		if err != nil && t.bgCtx.Err() == nil {
			t.setBackgroundError(fmt.Errorf("compaction: %w", err))
		}
	}
}

// compactLimited runs the compactions the picker asks for, each holding a
// slot of lim. The slot is taken before compactMu (as a server's
// CompactTablet does before Compact), so the two never wait for each
// other in opposite orders.
func (t *Tablet) compactLimited(ctx context.Context, lim Limiter) error {
	for {
		if _, inputs := t.pick(); inputs == nil {
			return nil
		}
		if err := lim.Acquire(ctx); err != nil {
			return err
		}
		err := func() error {
			defer lim.Release()
			t.compactMu.Lock()
			defer t.compactMu.Unlock()
			fam, inputs := t.pick()
			if inputs == nil {
				return nil
			}
			return t.compact(ctx, fam, inputs, false)
		}()
		if err != nil {
			return err
		}
	}
}

func (t *Tablet) compactPicked(ctx context.Context) error {
	t.compactMu.Lock()
	defer t.compactMu.Unlock()
	for {
		fam, inputs := t.pick()
		if inputs == nil {
			return nil
		}
		if err := t.compact(ctx, fam, inputs, false); err != nil {
			return err
		}
	}
}

// pick chooses the tables of a merging compaction, or nil.
func (t *Tablet) pick() (string, []*table) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mu.rs == nil || t.mu.bgErr != nil {
		return "", nil
	}
	for _, fam := range t.lim.families {
		ts := t.mu.rs.tables[fam]
		if len(ts) <= t.opts.CompactionTrigger {
			continue
		}
		return fam, pickSmallest(ts, t.opts.CompactionTrigger)
	}
	return "", nil
}

// pickSmallest returns the smallest tables to merge so that a family of
// len(ts) > trigger tables is left with about trigger/2 + 1.
func pickSmallest(ts []*table, trigger int) []*table {
	sorted := append([]*table(nil), ts...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].meta.size < sorted[j].meta.size })
	k := max(len(ts)-trigger/2, 2)
	return sorted[:min(k, len(sorted))]
}

// Compact runs compactions now and waits for them. major=false runs the
// merging compactions the policy asks for; major=true flushes and then
// rewrites each family into one table, dropping tombstones, masked cells
// and versions the GC policy rejects.
func (t *Tablet) Compact(ctx context.Context, major bool) error {
	// Close (and Split) cancel background work and then wait for an
	// explicit compaction to stop: it ends with them.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(t.bgCtx, cancel)()
	t.mu.Lock()
	closed, bgErr := t.mu.rs == nil, t.mu.bgErr
	t.mu.Unlock()
	switch {
	case closed:
		return ErrClosed
	case bgErr != nil:
		return bgErr
	case !major:
		return t.compactPicked(ctx)
	}
	if err := t.Flush(ctx); err != nil {
		return err
	}
	t.compactMu.Lock()
	defer t.compactMu.Unlock()
	for _, fam := range t.lim.families {
		t.mu.Lock()
		if t.mu.rs == nil {
			t.mu.Unlock()
			return ErrClosed
		}
		inputs := append([]*table(nil), t.mu.rs.tables[fam]...)
		t.mu.Unlock()
		if len(inputs) == 0 {
			continue
		}
		if err := t.compact(ctx, fam, inputs, true); err != nil {
			return err
		}
	}
	return nil
}

// rowBounds returns the key bounds of the tablet's rows: keys k with
// lo <= k < hi (nil = unbounded). The escaped row prefix is prefix-free
// and order-preserving, so comparing a key with a row's prefix compares
// their rows.
func rowBounds(start, end []byte) (lo, hi []byte) {
	if start != nil {
		lo = keys.AppendRowPrefix(nil, start)
	}
	if end != nil {
		hi = keys.AppendRowPrefix(nil, end)
	}
	return lo, hi
}

// compact merges inputs (tables of fam) into at most one new table and
// installs it in their place.
func (t *Tablet) compact(ctx context.Context, fam string, inputs []*table, major bool) (err error) {
	info := CompactionInfo{Family: fam, Major: major}
	for _, tb := range inputs {
		tb.ref()
		info.Inputs = append(info.Inputs, tb.meta.path)
	}
	defer func() {
		for _, tb := range inputs {
			err = errors.Join(err, tb.unref())
		}
		info.Err = err
		if err == nil {
			t.stats.compactions.Add(1)
		}
		if t.opts.Events.CompactionEnd != nil {
			t.opts.Events.CompactionEnd(info)
		}
	}()
	out, err := t.mergeTables(ctx, fam, inputs, major)
	if err != nil {
		return err
	}
	if out != nil {
		info.Outputs = []string{out.meta.path}
	}
	in := map[*table]bool{}
	for _, tb := range inputs {
		in[tb] = true
	}
	err = t.install(ctx, func(m *manifest, tables map[string][]*table) {
		var keep []*table
		var metas []fileMeta
		for _, tb := range tables[fam] {
			if !in[tb] {
				keep = append(keep, tb)
				metas = append(metas, tb.meta)
			}
		}
		if out != nil {
			keep = append(keep, out)
			metas = append(metas, out.meta)
		}
		tables[fam], m.families[fam] = keep, metas
	}, nil)
	if err != nil && out != nil {
		discardOutput(out, err)
	}
	return err
}

// mergeTables writes the merge of inputs to a new table (nil if empty).
func (t *Tablet) mergeTables(ctx context.Context, fam string, inputs []*table, major bool) (*table, error) {
	children := make([]internalIterator, len(inputs))
	for i, tb := range inputs {
		// A compaction reads each input block once, and the inputs are
		// about to be replaced: it must not evict what reads need.
		children[i] = tb.newIter(sstable.IterOptions{NoCacheFill: true})
	}
	mi := newMergingIter(children)
	defer mi.Close()
	lo, hi := rowBounds(t.opts.StartRow, t.opts.EndRow)
	res := newResolver(keys.MaxSeq)
	var now int64
	gc := t.fam[fam].GC
	if major {
		now = t.opts.Clock.Now().UnixMicro()
	}
	var w *tableWriter
	var prev []byte
	fail := func(err error) (*table, error) {
		if w != nil {
			w.abandon(ctx, t.opts.FS)
		}
		return nil, err
	}
	ok := mi.seekLo(lo)
	for n := 0; ok; ok = mi.Next() {
		if n++; n%1024 == 0 && ctx.Err() != nil {
			return fail(ctx.Err())
		}
		key, value := mi.Key(), mi.Value()
		if hi != nil && bytes.Compare(key, hi) >= 0 {
			break
		}
		// A key may be in two tables after a crash during log replay
		// (replayLogs); keep one copy.
		if bytes.Equal(key, prev) {
			continue
		}
		prev = append(prev[:0], key...)
		v, visible, err := res.add(key, value)
		if err != nil {
			return fail(err)
		}
		if major && (!visible || gc.Garbage(v.idx, v.ts, now)) {
			continue
		}
		// A merging compaction keeps every tombstone but drops the cells
		// they mask and older writes of a version: those can never be
		// visible again, whatever lies outside the merge.
		if !major && !visible && !isTombstone(key) {
			continue
		}
		if w == nil {
			var err error
			if w, err = t.newTableWriter(ctx, fam); err != nil {
				return nil, err
			}
		}
		if err := w.add(key, value); err != nil {
			return fail(err)
		}
	}
	if err := mi.Error(); err != nil {
		return fail(fmt.Errorf("cellar/tablet: compaction read: %w", err))
	}
	if w == nil {
		return nil, nil
	}
	meta, err := w.finish()
	if err != nil {
		_ = t.opts.FS.Remove(ctx, w.path)
		return nil, err
	}
	tb, err := t.openTable(ctx, fam, meta)
	if err != nil {
		_ = t.opts.FS.Remove(ctx, meta.path)
		return nil, err
	}
	return tb, nil
}

// isTombstone reports whether an encoded key is a delete marker.
func isTombstone(key []byte) bool {
	_, _, kind := keys.DecodeTrailer(key)
	return kind.IsTombstone()
}
