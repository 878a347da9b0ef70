package mapreduce

import (
	"bytes"
	"context"
	"io"
	"iter"
	"os"
)

func (r *runner) reduceAttempt(ctx context.Context, part, attempt int) (err error) {
	info := TaskInfo{Phase: PhaseReduce, Task: part, Attempt: attempt}
	ctx = context.WithValue(ctx, taskInfoKey{}, info)
	var (
		c     Counters
		files []string
	)
	defer func() {
		for _, f := range files {
			os.Remove(f) //nolint:errcheck // the directory goes at the end of Run
		}
	}()
	r.mu.Lock()
	outputs := r.mu.outputs
	r.mu.Unlock()
	var its []kvIter
	for _, o := range outputs {
		for _, run := range o.runs {
			if it := run.iter(part); it != nil {
				its = append(its, it)
			}
		}
	}
	its, err = r.mergeDown(ctx, its, part, &c, &files)
	if err != nil {
		return err
	}
	m := newMerge(its)
	defer func() {
		if cerr := m.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()

	w, err := r.job.Output.Writer(ctx, info)
	if err != nil {
		return err
	}
	committed := false
	defer func() {
		if committed {
			return
		}
		if aerr := w.Abort(context.WithoutCancel(ctx)); aerr != nil {
			r.log.Warn("abort of reduce output failed", "task", part, "attempt", attempt, "err", aerr)
		}
	}()
	var writeErr error // sticky: the first failed Write
	emit := func(k, v []byte) error {
		if writeErr != nil {
			return writeErr
		}
		if writeErr = w.Write(ctx, k, v); writeErr != nil {
			return writeErr
		}
		c.OutputRecords++
		return nil
	}
	g := &grouper{src: m, c: &c}
	g.advance()
	values := iter.Seq[[]byte](g.values) // one method value for all groups
	for n := 0; g.nextKey(); n++ {
		if n%recordsPerProgress == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		c.ReduceInputGroups++
		uerr, stack := callUser(func() error { return r.job.Reduce(ctx, g.key, values, emit) })
		if uerr == nil {
			uerr = writeErr
		}
		if uerr == nil {
			uerr = g.err // the values were cut short by a read error
		}
		if uerr != nil {
			return userError(uerr, stack, -1, g.key)
		}
	}
	if g.err != nil {
		return g.err
	}
	if err := w.Commit(ctx); err != nil {
		return err
	}
	committed = true
	r.addCounters(&c)
	r.progress.partitionsDone.Add(1)
	r.poke()
	return nil
}

// grouper turns a sorted stream into (key, values) groups.
type grouper struct {
	src     kvIter
	c       *Counters
	k, v    []byte // the current record, if ok
	ok      bool
	key     []byte // the current group's key (a copy)
	started bool
	err     error
}

func (g *grouper) advance() {
	k, v, err := g.src.next()
	if err != nil {
		g.ok = false
		if err != io.EOF {
			g.err = err
		}
		return
	}
	g.k, g.v, g.ok = k, v, true
	g.c.ReduceInputRecords++
}

// nextKey skips what is left of the current group and starts the next.
func (g *grouper) nextKey() bool {
	if g.started {
		for g.ok && bytes.Equal(g.k, g.key) {
			g.advance()
		}
	}
	g.started = true
	if !g.ok {
		return false
	}
	g.key = append(g.key[:0], g.k...)
	return true
}

// values is the iter.Seq of the current group's values.
func (g *grouper) values(yield func([]byte) bool) {
	for g.ok && bytes.Equal(g.k, g.key) {
		if !yield(g.v) {
			return
		}
		g.advance()
	}
}
