package tablet

import (
	"context"
	"errors"
	"fmt"

	"cellar/internal/keys"
	"cellar/wal"
)

// flushLoop is the background flusher: it writes immutable memtables to
// SSTables, oldest first, one at a time. Owned by the Tablet; Close stops it.
func (t *Tablet) flushLoop() {
	defer t.bg.Done()
	for {
		select {
		case <-t.bgCtx.Done():
			return
		case <-t.flushSignal:
		}
		for {
			t.mu.Lock()
			pending := len(t.mu.imm) > 0 && t.mu.bgErr == nil
			t.mu.Unlock()
			if !pending {
				break
			}
			if err := t.flushOldest(t.bgCtx); err != nil {
				t.setBackgroundError(fmt.Errorf("flush: %w", err))
				break
			}
			t.signal(t.compactSignal)
		}
	}
}

func (t *Tablet) setBackgroundError(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mu.bgErr == nil {
		if t.bgCtx.Err() == nil {
			t.logger.Error("background work failed; the tablet refuses writes", "err", err)
		}
		t.mu.bgErr = fmt.Errorf("%w: %w", ErrBackground, err)
	}
	t.notifyLocked()
}

// flushOldest writes the oldest immutable memtable into one new SSTable per
// family (so reading a family never opens another family's files), records
// them and the new flushed sequence number in the manifest, and only then
// drops the memtable and releases the commit log up to that number.
func (t *Tablet) flushOldest(ctx context.Context) error {
	t.mu.Lock()
	mem := t.mu.imm[0]
	t.mu.Unlock()
	// Every writer of mem has inserted and published: a reader that can see
	// the new tables has a snapshot that covers all of mem.
	mem.writers.Wait()
	t.commits.waitVisible(mem.lastSeq)

	info := FlushInfo{Seq: mem.flushSeq, Entries: mem.m.Len()}
	added, err := t.writeMemtable(ctx, mem)
	if err == nil {
		err = t.install(ctx, func(m *manifest, tables map[string][]*table) {
			for _, tb := range added {
				m.families[tb.family] = append(m.families[tb.family], tb.meta)
				tables[tb.family] = append(tables[tb.family], tb)
			}
			m.flushedSeq = max(m.flushedSeq, mem.flushSeq)
		}, func() {
			t.mu.imm = t.mu.imm[1:]
			t.mu.flushed++
			// Before waiters wake: a Flush that returns sees FlushedSeq
			// and Stats covering its memtable.
			t.flushedSeq.Store(uint64(max(keys.SeqNum(t.flushedSeq.Load()), mem.flushSeq)))
			t.stats.flushes.Add(1)
		})
	}
	for _, tb := range added {
		info.Files = append(info.Files, tb.meta.path)
		if err != nil {
			discardOutput(tb, err)
		}
	}
	info.Err = err
	if err == nil {
		mem.unref() // the tablet's own reference: mem is out of imm
		if t.ownLog && t.log != nil {
			if _, rerr := t.releaseLog(); rerr != nil {
				t.logger.Warn("release commit log", "err", rerr)
			}
		}
	}
	if t.opts.Events.FlushEnd != nil {
		t.opts.Events.FlushEnd(info)
	}
	return err
}

// writeMemtable writes mem's entries into new per-family tables and opens
// them for reading. On error nothing is left behind.
func (t *Tablet) writeMemtable(ctx context.Context, mem *memTable) ([]*table, error) {
	writers := map[string]*tableWriter{}
	var order []string
	abandon := func() {
		for _, w := range writers {
			w.abandon(ctx, t.opts.FS)
		}
	}
	it := mem.m.NewIter()
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		key := it.Key()
		fam, err := familyOf(key)
		if err != nil {
			abandon()
			return nil, err
		}
		w := writers[fam]
		if w == nil {
			if w, err = t.newTableWriter(ctx, fam); err != nil {
				abandon()
				return nil, err
			}
			writers[fam] = w
			order = append(order, fam)
		}
		if err := w.add(key, it.Value()); err != nil {
			abandon()
			return nil, err
		}
	}
	var out []*table
	for i, fam := range order {
		meta, err := writers[fam].finish()
		if err == nil {
			var tb *table
			if tb, err = t.openTable(ctx, fam, meta); err == nil {
				out = append(out, tb)
				continue
			}
		}
		for _, f := range order[i:] {
			writers[f].abandon(ctx, t.opts.FS)
		}
		for _, tb := range out {
			tb.r.Close()
			_ = t.opts.FS.Remove(ctx, tb.meta.path)
		}
		return nil, err
	}
	return out, nil
}

// familyOf returns the family name of an encoded key.
func familyOf(key []byte) (string, error) {
	r, f := keys.RowPrefixLen(key), keys.FamilyPrefixLen(key)
	if r < 0 || f <= r {
		return "", fmt.Errorf("%w: malformed key %x", ErrCorrupt, key)
	}
	return string(key[r : f-1]), nil
}

// install makes a change to the file set durable and visible: edit gets a
// copy of the manifest and of the per-family tables to change; the new
// manifest is written (atomically renamed into place) and then, under mu,
// published with a new read state after locked ran. Tables no longer listed
// become obsolete: deleted (if owned) when the last reader lets go.
func (t *Tablet) install(ctx context.Context, edit func(*manifest, map[string][]*table), locked func()) error {
	t.installMu.Lock()
	defer t.installMu.Unlock()
	t.mu.Lock()
	if t.mu.rs == nil {
		// Closed: Close clears rs holding installMu, so an install that
		// starts after that finds nil here and writes no manifest.
		t.mu.Unlock()
		return ErrClosed
	}
	m := t.mu.man.clone()
	tables := map[string][]*table{}
	for f, ts := range t.mu.rs.tables {
		tables[f] = append([]*table(nil), ts...)
	}
	t.mu.Unlock()
	if t.fenced.Load() {
		return t.fencedError(0)
	}
	edit(m, tables)
	m.nextFileNum = t.nextFile.Load()
	if err := writeManifest(ctx, t.opts.FS, t.opts.Dir, t.epoch, m); err != nil {
		return t.fencedOr(ctx, err)
	}
	// Before anything is marked obsolete (and so deleted): a server that
	// took the tablet over may list the files this commit drops.
	if err := t.checkFence(ctx); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	live := map[*table]bool{}
	for _, ts := range tables {
		for _, tb := range ts {
			live[tb] = true
		}
	}
	for _, ts := range t.mu.rs.tables {
		for _, tb := range ts {
			if !live[tb] {
				tb.obsolete.Store(true)
			}
		}
	}
	t.mu.man = m
	if locked != nil {
		locked()
	}
	t.replaceReadStateLocked(tables)
	t.notifyLocked()
	return nil
}

// releaseLog deletes the tablet's own log files that hold nothing past the
// flushed sequence number.
func (t *Tablet) releaseLog() ([]string, error) {
	flushed := t.FlushedSeq()
	id := uint64(t.opts.ID)
	names, err := t.log.Release(func(f wal.FileInfo) bool { return f.MaxSeq[id] <= flushed })
	if err != nil {
		return names, fmt.Errorf("cellar/tablet: release log: %w", err)
	}
	return names, nil
}

// Flush makes every write applied before the call durable in SSTables
// (a minor compaction of the active memtable) and waits for it.
func (t *Tablet) Flush(ctx context.Context) error {
	var spare *memTable
	t.mu.Lock()
	for {
		if t.mu.rs == nil {
			t.mu.Unlock()
			return ErrClosed
		}
		if t.mu.mem.m.Empty() && t.mu.mem.inflight.Load() == 0 {
			break
		}
		// Rotating ignores MaxImmutableMemtables: each Flush call adds at
		// most one memtable and waits for it, so memory stays bounded by
		// the callers. The new memtable is taken without the lock.
		if spare != nil {
			t.rotateLocked(spare)
			spare = nil
			break
		}
		t.mu.Unlock()
		spare = t.newMemTable()
		t.mu.Lock()
	}
	target := t.mu.rotated
	t.mu.Unlock()
	if spare != nil {
		spare.unref() // not needed after all: back to the pool
	}
	return t.waitFlushed(ctx, target)
}

// waitFlushed waits until n memtables have been flushed in total.
func (t *Tablet) waitFlushed(ctx context.Context, n uint64) error {
	for {
		t.mu.Lock()
		done, bgErr, ch := t.mu.flushed >= n, t.mu.bgErr, t.mu.changed
		gone := t.mu.rs == nil
		t.mu.Unlock()
		switch {
		case done:
			return nil
		case bgErr != nil:
			return bgErr
		case gone:
			return ErrClosed
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// discardOutput closes a new table whose install failed with err, and
// deletes it unless the manifest listing it may have been installed
// anyway, or the tablet was fenced (a server that took it over may have
// read the manifest listing it): then Open's orphan cleanup decides.
func discardOutput(tb *table, err error) {
	tb.obsolete.Store(!errors.Is(err, errManifestOutcomeUnknown) && !errors.Is(err, ErrFenced))
	tb.refs.Store(1)
	_ = tb.unref()
}
