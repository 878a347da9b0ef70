package mapreduce

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"iter"
	"os"
)

// mapOutput is a succeeded map task's sorted runs, in creation order.
type mapOutput struct {
	runs []*run
}

// mapTask is the state of one map attempt.
type mapTask struct {
	r       *runner
	ctx     context.Context
	info    TaskInfo
	buf     *sortBuffer
	runs    []*run
	files   []string
	c       Counters
	err     error // sticky: the first emit failure
	memHeld int64 // budget held by the kept in-memory run
}

const recordsPerProgress = 1024

func (r *runner) mapAttempt(ctx context.Context, task, attempt int) (err error) {
	info := TaskInfo{Phase: PhaseMap, Task: task, Attempt: attempt}
	ctx = context.WithValue(ctx, taskInfoKey{}, info)
	t := &mapTask{r: r, ctx: ctx, info: info, buf: &sortBuffer{}}
	defer func() {
		if err != nil {
			t.discard()
		}
	}()
	rr, err := r.splits[task].Open(ctx)
	if err != nil {
		return err
	}
	closed := false
	defer func() {
		if !closed {
			rr.Close() //nolint:errcheck // the attempt already failed
		}
	}()
	emit := Emit(t.emit) // one method value, not one allocation per record
	var unreported int64
	defer func() { r.progress.records.Add(unreported) }()
	for i := int64(0); ; i++ {
		if i%recordsPerProgress == 0 {
			r.progress.records.Add(unreported)
			unreported = 0
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		rec, err := rr.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return &TaskError{Record: i, Err: err}
		}
		t.c.MapInputRecords++
		unreported++
		uerr, stack := callUser(func() error { return r.job.Map(ctx, rec, emit) })
		if uerr == nil {
			uerr = t.err // an emit failure the map function swallowed
		}
		if uerr != nil {
			return userError(uerr, stack, i, rec.Key)
		}
	}
	closed = true
	if err := rr.Close(); err != nil {
		return fmt.Errorf("cellar/mapreduce: close split: %w", err)
	}
	if err := t.finish(); err != nil {
		return err
	}
	t.commit()
	return nil
}

func (t *mapTask) emit(key, value []byte) error {
	if t.err != nil {
		return t.err
	}
	if len(key)+len(value) > MaxRecordSize {
		t.err = fmt.Errorf("%w: emitted %d+%d bytes (max %d)", ErrRecordTooLarge, len(key), len(value), MaxRecordSize)
		return t.err
	}
	n := t.r.job.NumReducers
	p := t.r.job.Partition(key, n)
	if p < 0 || p >= n {
		t.err = fmt.Errorf("%w: partition %d of %d for key %s", ErrBadPartition, p, n, quoteKey(key))
		return t.err
	}
	t.c.MapOutputRecords++
	// Spill on using up this task's fair share of the budget, or, when
	// the budget is exceeded (by other tasks' buffers and kept runs), on
	// holding a quarter of a share: not at every record, which would
	// write a tiny run per record, so the budget may be overshot by up to
	// a quarter while map tasks run.
	used := t.r.memUsed.Add(t.buf.add(p, key, value))
	share := max(t.r.opts.MemoryBudget/int64(t.r.opts.Workers), 1)
	if t.buf.bytes >= share || (used > t.r.opts.MemoryBudget && t.buf.bytes >= share/4) {
		if err := t.spill(t.r.job.Combine); err != nil {
			t.err = err
			return err
		}
	}
	return nil
}

// spill sorts the buffer, combines it if combine is set, and writes it as
// a run file, then empties the buffer (keeping its memory for reuse).
func (t *mapTask) spill(combine ReduceFunc) error {
	if len(t.buf.ents) == 0 {
		return nil
	}
	t.buf.sort()
	path := t.r.spillPath(fmt.Sprintf("map-m%d-a%d", t.info.Task, t.info.Attempt))
	sink, err := createFileSink(path, t.r.job.NumReducers, t.buf.bytes)
	if err != nil {
		return err
	}
	t.files = append(t.files, path)
	if err := t.drain(t.buf, sink, combine); err != nil {
		sink.abandon()
		return err
	}
	if err := sink.close(); err != nil {
		return err
	}
	t.c.Spills++
	t.c.SpilledBytes += sink.off
	t.c.ShuffleBytes += sink.kvBytes
	t.r.progress.spills.Add(1)
	t.runs = append(t.runs, &run{path: path, segs: sink.segs})
	t.r.memUsed.Add(-t.buf.bytes)
	// Reuse the buffer's arrays unless they outgrew a fair share of the
	// budget: retained capacity is memory the budget does not see.
	if int64(cap(t.buf.data))+int64(cap(t.buf.ents))*entryOverhead <= t.r.opts.MemoryBudget/int64(t.r.opts.Workers) {
		t.buf = &sortBuffer{data: t.buf.data[:0], ents: t.buf.ents[:0]}
	} else {
		t.buf = &sortBuffer{}
	}
	return nil
}

// drain passes a sorted buffer to sink, through combine if it is set.
func (t *mapTask) drain(b *sortBuffer, sink runSink, combine ReduceFunc) error {
	if combine == nil {
		for i := range b.ents {
			e := &b.ents[i]
			if err := sink.add(int(e.part), b.key(e), b.value(e)); err != nil {
				return err
			}
		}
		return nil
	}
	cs := &combineState{t: t, b: b, sink: sink}
	values, emit := iter.Seq[[]byte](cs.values), Emit(cs.emit) // once, not per group
	call := func() error { return combine(t.ctx, cs.key, values, emit) }
	ents := b.ents
	for i := 0; i < len(ents); {
		cs.part, cs.key = ents[i].part, b.key(&ents[i])
		j := i + 1
		for j < len(ents) && ents[j].part == cs.part && bytes.Equal(b.key(&ents[j]), cs.key) {
			j++
		}
		cs.group, cs.err = ents[i:j], nil
		uerr, stack := callUser(call)
		if uerr == nil {
			uerr = cs.err
		}
		if uerr != nil {
			return userError(fmt.Errorf("combiner: %w", uerr), stack, -1, cs.key)
		}
		i = j
	}
	return nil
}

// combineState is the group drain is combining; its methods are the
// combiner's values and emit.
type combineState struct {
	t     *mapTask
	b     *sortBuffer
	sink  runSink
	part  uint32
	key   []byte
	group []entry
	err   error // sticky: the first failed emit of the group
}

func (cs *combineState) values(yield func([]byte) bool) {
	for k := range cs.group {
		cs.t.c.CombineInputRecords++
		if !yield(cs.b.value(&cs.group[k])) {
			return
		}
	}
}

func (cs *combineState) emit(k, v []byte) error {
	if cs.err != nil {
		return cs.err
	}
	if !bytes.Equal(k, cs.key) {
		cs.err = fmt.Errorf("%w: called with %s, emitted %s", ErrBadCombine, quoteKey(cs.key), quoteKey(k))
		return cs.err
	}
	cs.t.c.CombineOutputRecords++
	cs.err = cs.sink.add(int(cs.part), k, v)
	return cs.err
}

// finish sorts (and combines) the last buffer and keeps it in memory as
// the task's last run, or spills it when the memory budget is exceeded.
func (t *mapTask) finish() error {
	r := t.r
	if combine := r.job.Combine; combine != nil && len(t.buf.ents) > 0 {
		t.buf.sort()
		nb := &sortBuffer{}
		if err := t.drain(t.buf, &memSink{b: nb}, combine); err != nil {
			return err
		}
		r.memUsed.Add(nb.bytes - t.buf.bytes)
		t.buf = nb // already sorted
	} else {
		t.buf.sort()
	}
	if len(t.buf.ents) == 0 {
		return nil
	}
	if r.memUsed.Load() > r.opts.MemoryBudget {
		return t.spill(nil)
	}
	t.buf.finish(r.job.NumReducers)
	t.c.ShuffleBytes += int64(len(t.buf.data))
	t.runs = append(t.runs, &run{mem: t.buf})
	t.memHeld = t.buf.bytes
	t.buf = &sortBuffer{}
	return nil
}

// commit publishes the succeeded attempt's runs and counters.
func (t *mapTask) commit() {
	r := t.r
	r.mu.Lock()
	r.mu.outputs[t.info.Task] = &mapOutput{runs: t.runs}
	r.mu.counters.add(&t.c)
	r.mu.Unlock()
	r.progress.splitsDone.Add(1)
	r.progress.shuffled.Add(t.c.ShuffleBytes)
	r.poke()
}

// discard drops a failed attempt's memory and files.
func (t *mapTask) discard() {
	t.r.memUsed.Add(-t.buf.bytes - t.memHeld)
	t.buf, t.memHeld, t.runs = &sortBuffer{}, 0, nil
	for _, f := range t.files {
		os.Remove(f) //nolint:errcheck // the directory goes at the end of Run
	}
	t.files = nil
}
