package mapreduce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// Counters are a job's record and byte counts (MapReduce §4.9). Record
// counts cover only the attempts that succeeded, so they do not depend on
// retries; the attempt counts say how many ran and failed.
type Counters struct {
	MapInputRecords      int64 // records read by the map tasks
	MapOutputRecords     int64 // pairs emitted by the map function
	CombineInputRecords  int64 // values given to the combiner
	CombineOutputRecords int64 // pairs emitted by the combiner
	ShuffleBytes         int64 // key+value bytes of map output, after combining, handed to the reduce side
	Spills               int64 // sorted runs written to TempDir (map spills and reduce merge passes)
	SpilledBytes         int64 // bytes written to those runs
	ReduceInputGroups    int64 // distinct keys reduced
	ReduceInputRecords   int64 // values read by the reduce tasks
	OutputRecords        int64 // records written to the Output
	MapAttempts          int64 // map attempts started
	FailedMapAttempts    int64
	ReduceAttempts       int64 // reduce attempts started
	FailedReduceAttempts int64
}

func (c *Counters) add(d *Counters) {
	c.MapInputRecords += d.MapInputRecords
	c.MapOutputRecords += d.MapOutputRecords
	c.CombineInputRecords += d.CombineInputRecords
	c.CombineOutputRecords += d.CombineOutputRecords
	c.ShuffleBytes += d.ShuffleBytes
	c.Spills += d.Spills
	c.SpilledBytes += d.SpilledBytes
	c.ReduceInputGroups += d.ReduceInputGroups
	c.ReduceInputRecords += d.ReduceInputRecords
	c.OutputRecords += d.OutputRecords
}

// Result is what Run reports about a job, also when it fails.
type Result struct {
	Counters
	Splits   int           // map tasks
	Duration time.Duration // wall time of Run
}

// Progress is a snapshot of a running job, passed to RunOptions.Progress.
type Progress struct {
	Phase          Phase // PhaseMap until every map task is done, then PhaseReduce
	Splits         int   // map tasks in the job
	SplitsDone     int   // map tasks that succeeded
	RecordsRead    int64 // input records read so far, failed attempts included
	BytesShuffled  int64 // key+value bytes of the succeeded map tasks' output
	Spills         int64 // sorted runs written to TempDir so far
	Partitions     int   // reduce partitions in the job
	PartitionsDone int   // reduce partitions committed
	Elapsed        time.Duration
	Done           bool // the last call, as Run returns
}

// runner is the state of one Run.
type runner struct {
	job    Job
	opts   RunOptions
	log    *slog.Logger
	tmp    string // local spill directory, removed at the end
	splits []Split
	start  time.Time

	memUsed  atomic.Int64 // bytes of map output held in memory
	fileSeq  atomic.Int64 // names temp files
	progress struct {
		phase          atomic.Int32
		splitsDone     atomic.Int64
		records        atomic.Int64
		shuffled       atomic.Int64
		spills         atomic.Int64
		partitionsDone atomic.Int64
		notify         chan struct{} // cap 1: a coalesced "something finished"
	}

	mu struct {
		sync.Mutex
		counters Counters
		outputs  []*mapOutput // by map task; set when the task succeeds
	}
}

// Run executes job on this machine and returns when every reduce partition
// is committed, a task failed MaxAttempts times, or ctx is done; every
// goroutine it started has ended by then, and its spill directory is gone.
//
// Errors: ErrInvalidJob and ErrInvalidOptions (nothing ran), a *TaskError
// (wrapping ErrTaskFailed and the attempt's error), ctx.Err() (wrapped), or
// an error from the Input, the Output's JobCommitter or the spill directory.
// The Result's counters are filled in either case.
func Run(ctx context.Context, job Job, opts *RunOptions) (Result, error) {
	start := time.Now()
	if err := job.Validate(); err != nil {
		return Result{}, err
	}
	if err := opts.Validate(); err != nil {
		return Result{}, err
	}
	r := &runner{job: job.withDefaults(), opts: opts.withDefaults(), start: start}
	r.log = r.opts.Logger.With("component", "mapreduce", "job", r.job.Name)
	r.progress.notify = make(chan struct{}, 1)
	r.progress.phase.Store(int32(PhaseMap))

	res, err := r.run(ctx)
	res.Duration = time.Since(start)
	if err != nil {
		return res, err
	}
	r.log.Info("job done", "splits", res.Splits, "map_input_records", res.MapInputRecords,
		"shuffle_bytes", res.ShuffleBytes, "spills", res.Spills, "output_records", res.OutputRecords,
		"duration", res.Duration)
	return res, nil
}

func (r *runner) run(ctx context.Context) (res Result, err error) {
	jc, _ := r.job.Output.(JobCommitter)
	if jc != nil {
		if err := jc.SetupJob(ctx); err != nil {
			return res, fmt.Errorf("cellar/mapreduce: job %s: set up output: %w", r.job.Name, err)
		}
	}
	splits, err := r.job.Input.Splits(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("cellar/mapreduce: job %s: list splits: %w", r.job.Name, err)
	}
	r.splits = splits
	r.mu.outputs = make([]*mapOutput, len(splits))
	res.Splits = len(splits)
	defer func() {
		r.mu.Lock()
		res.Counters = r.mu.counters
		r.mu.Unlock()
	}()
	r.tmp, err = os.MkdirTemp(r.opts.TempDir, "cellar-mapreduce-*")
	if err != nil {
		return res, fmt.Errorf("cellar/mapreduce: job %s: spill directory: %w", r.job.Name, err)
	}
	defer func() {
		if rmErr := os.RemoveAll(r.tmp); rmErr != nil && err == nil {
			err = fmt.Errorf("cellar/mapreduce: job %s: remove spill directory: %w", r.job.Name, rmErr)
		}
	}()
	r.log.Info("job start", "splits", len(splits), "reducers", r.job.NumReducers, "workers", r.opts.Workers)

	// The progress reporter is the only goroutine calling opts.Progress.
	var wg sync.WaitGroup
	stopReporter := make(chan struct{})
	if r.opts.Progress != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.report(stopReporter)
		}()
	}
	defer func() {
		close(stopReporter)
		wg.Wait()
		if r.opts.Progress != nil {
			p := r.snapshot()
			p.Done = true
			r.opts.Progress(p)
		}
	}()

	if err := r.runTasks(ctx, PhaseMap, len(splits), r.mapAttempt); err != nil {
		return res, err
	}
	r.progress.phase.Store(int32(PhaseReduce))
	r.poke()
	if err := r.runTasks(ctx, PhaseReduce, r.job.NumReducers, r.reduceAttempt); err != nil {
		return res, err
	}
	if jc != nil {
		if err := jc.CommitJob(ctx); err != nil {
			return res, fmt.Errorf("cellar/mapreduce: job %s: commit output: %w", r.job.Name, err)
		}
	}
	return res, nil
}

// runTasks runs tasks 0..n-1 of one phase on Workers goroutines, each with
// retries, and returns the first failure after every goroutine ended. A
// failure cancels the tasks still running.
func (r *runner) runTasks(ctx context.Context, phase Phase, n int, attempt func(ctx context.Context, task, attempt int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	for range min(r.opts.Workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for task := range next {
				if ctx.Err() != nil {
					return
				}
				if err := r.runTask(ctx, phase, task, attempt); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					cancel()
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = fmt.Errorf("cellar/mapreduce: job %s: %w", r.job.Name, context.Cause(ctx))
	}
	return firstErr
}

// runTask runs one task's attempts until one succeeds, MaxAttempts failed,
// the error is not worth retrying (corruption), or ctx is done.
func (r *runner) runTask(ctx context.Context, phase Phase, task int, attempt func(ctx context.Context, task, attempt int) error) error {
	for a := 1; ; a++ {
		r.mu.Lock()
		if phase == PhaseMap {
			r.mu.counters.MapAttempts++
		} else {
			r.mu.counters.ReduceAttempts++
		}
		r.mu.Unlock()
		err := attempt(ctx, task, a)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("cellar/mapreduce: job %s: %s task %d: %w", r.job.Name, phase, task, context.Cause(ctx))
		}
		var te *TaskError
		if !errors.As(err, &te) {
			te = &TaskError{Record: -1, Err: err}
		}
		te.Phase, te.Task, te.Attempt, te.Attempts = phase, task, a, r.opts.MaxAttempts
		if phase == PhaseMap {
			te.Split = r.splits[task].Description()
		}
		r.mu.Lock()
		if phase == PhaseMap {
			r.mu.counters.FailedMapAttempts++
		} else {
			r.mu.counters.FailedReduceAttempts++
		}
		r.mu.Unlock()
		if a >= r.opts.MaxAttempts || errors.Is(err, ErrCorrupt) {
			return te
		}
		r.log.Warn("task attempt failed; retrying", "phase", phase.String(), "task", task, "attempt", a, "err", te.Err)
	}
}

// callUser runs a user function, turning a panic into an error wrapping
// ErrPanic and returning the panicking goroutine's stack.
func callUser(fn func() error) (err error, stack string) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%w: %v", ErrPanic, v)
			stack = string(debug.Stack())
		}
	}()
	return fn(), ""
}

// userError wraps a failed user function's error with where it happened.
func userError(err error, stack string, record int64, key []byte) *TaskError {
	var k []byte
	if key != nil {
		k = append([]byte{}, key...)
	}
	return &TaskError{Record: record, Key: k, Stack: stack, Err: err}
}

func (r *runner) addCounters(c *Counters) {
	r.mu.Lock()
	r.mu.counters.add(c)
	r.mu.Unlock()
}

// poke wakes the progress reporter without blocking.
func (r *runner) poke() {
	select {
	case r.progress.notify <- struct{}{}:
	default:
	}
}

func (r *runner) snapshot() Progress {
	return Progress{
		Phase:          Phase(r.progress.phase.Load()),
		Splits:         len(r.splits),
		SplitsDone:     int(r.progress.splitsDone.Load()),
		RecordsRead:    r.progress.records.Load(),
		BytesShuffled:  r.progress.shuffled.Load(),
		Spills:         r.progress.spills.Load(),
		Partitions:     r.job.NumReducers,
		PartitionsDone: int(r.progress.partitionsDone.Load()),
		Elapsed:        time.Since(r.start),
	}
}

func (r *runner) report(stop <-chan struct{}) {
	t := time.NewTicker(r.opts.ProgressInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		case <-r.progress.notify:
		}
		r.opts.Progress(r.snapshot())
	}
}
