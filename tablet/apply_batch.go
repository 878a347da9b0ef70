package tablet

import (
	"context"
	"fmt"

	"cellar/internal/bufpool"
	"cellar/internal/keys"
	"cellar/wal"
)

// RowMutation is one row's mutations in an ApplyBatch.
type RowMutation struct {
	Row       []byte
	Mutations []Mutation
}

// ApplyBatch applies many rows' mutations with one commit-log hand-over
// and one place in the commit queue, which is much cheaper than as many
// concurrent Apply calls (the tablet server's MutateRows and bulk loads use
// it). Each row is atomic, as with Apply; the batch is not: a crash can keep
// some of its rows and not others, and a reader may see some rows before
// others until ApplyBatch returns. Rows are applied in order, so of two
// entries for one row the later wins.
//
// Every row is validated before anything is applied: an invalid row fails
// the whole batch with an error naming its index (wrapping what Apply would
// return) and nothing is applied. A batch needing more than half a memtable
// is applied in parts. The context rules are Apply's.
func (t *Tablet) ApplyBatch(ctx context.Context, rows []RowMutation, wo *WriteOptions) error {
	dur := Sync
	if wo != nil {
		dur = wo.Durability
	}
	if dur > SkipLog {
		return fmt.Errorf("%w: durability %d", keys.ErrInvalid, dur)
	}
	ns := make([]int, len(rows))
	needs := make([]int64, len(rows))
	for i, r := range rows {
		if err := t.checkRow(r.Row); err != nil {
			return fmt.Errorf("cellar/tablet: batch row %d: %w", i, err)
		}
		n, need, err := checkMutations(r.Row, r.Mutations, &t.lim)
		if err != nil {
			return fmt.Errorf("cellar/tablet: batch row %d: %w", i, err)
		}
		ns[i], needs[i] = n, need
	}
	for start := 0; start < len(rows); {
		// Take as many rows as fit in half a memtable (at least one).
		end, n, need := start, 0, int64(0)
		for end < len(rows) && (end == start || need+needs[end] <= t.opts.MemtableSize/2) {
			n, need = n+ns[end], need+needs[end]
			end++
		}
		if err := t.applyPart(ctx, rows[start:end], ns[start:end], n, need, dur); err != nil {
			return err
		}
		start = end
	}
	return nil
}

// batchPool keeps the buffers rows are encoded into on their way to the
// log and the memtable.
var batchPool = bufpool.New(1 << 20)

// applyPart applies rows (already validated; ns[i] entries each, need
// arena bytes in all) that fit in one memtable together: one admission, one
// commit-log hand-over, one commit-queue place. Apply is its one-row case.
func (t *Tablet) applyPart(ctx context.Context, rows []RowMutation, ns []int, n int, need int64, dur Durability) error {
	mem, first, ts, req, err := t.admit(ctx, n, need)
	if err != nil {
		return err
	}
	// One row (every Apply) needs no slices on the heap.
	var data1 [1][]byte
	var entry1 [1]wal.Entry
	datas, entries := data1[:], entry1[:]
	if len(rows) > 1 {
		datas, entries = make([][]byte, len(rows)), make([]wal.Entry, len(rows))
	}
	// The rows are encoded one after another into one pooled buffer: the
	// log copies what it keeps and the memtable copies keys and values, so
	// the buffer is free again when this returns. (A slice taken before the
	// buffer grew keeps the old array, which stays valid.)
	buf := batchPool.Get(64*len(rows) + int(need))
	defer batchPool.Put(buf)
	seq := first
	for i, r := range rows {
		start := len(buf.B)
		buf.B = encodeBatch(buf.B, r.Row, r.Mutations, t.lim.families, ns[i], seq, ts)
		datas[i] = buf.B[start:len(buf.B):len(buf.B)]
		entries[i] = wal.Entry{Tablet: uint64(t.opts.ID), Seq: seq, Data: datas[i]}
		seq += keys.SeqNum(ns[i])
	}
	switch {
	case dur == SkipLog:
	case len(entries) == 1:
		err = t.log.Append(ctx, entries[0], dur == Sync)
	default:
		err = t.log.AppendBatch(ctx, entries, dur == Sync)
	}
	for i := 0; err == nil && i < len(datas); i++ {
		var b batch
		if b, err = parseBatch(datas[i]); err == nil {
			err = insertBatch(mem.m, b)
		}
	}
	mem.inflight.Add(-need)
	mem.writers.Done()
	t.commits.finish(req)
	t.mu.inflight.Done()
	if err != nil {
		return fmt.Errorf("cellar/tablet: apply: %w", err)
	}
	return nil
}
