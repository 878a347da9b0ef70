package mapreduce

import (
	"context"
	"fmt"
	"iter"

	"cellar/client"
)

// Record is one input record handed to a MapFunc. Its slices belong to the
// RecordReader and are valid only until the MapFunc returns; copy them to
// keep them.
type Record struct {
	Key   []byte
	Value []byte
	// Row is a table input's row (Key is its key, Value nil); nil for
	// file input. The map function may keep it.
	Row client.Row
}

// Emit outputs one (key, value) pair from a map, combine or reduce function.
// The runner copies both slices before Emit returns, so the caller may reuse
// them. A non-nil error (cancellation, an output write failure, ErrBadCombine)
// should be returned by the calling function as it is. Call it only during
// the function call it was passed to, from that goroutine.
type Emit func(key, value []byte) error

// MapFunc is the user's map function (MapReduce §2.1): called once per input
// record, it emits any number of intermediate (key, value) pairs. It runs
// concurrently with other map tasks, so it must not share mutable state
// without synchronisation. A task may be executed more than once (at-least-
// once execution); only the output of the attempt that succeeds is kept.
type MapFunc func(ctx context.Context, rec Record, emit Emit) error

// ReduceFunc is the user's reduce function (MapReduce §2.1), also used as the
// combiner (§4.3). It is called once per distinct key of its partition, in
// ascending bytes.Compare order of keys, with every value emitted for that
// key: ordered by map task index, then by emission order within the task.
// key is valid only during the call; values may be ranged over once, and
// each value slice is valid only until the next iteration step (copy what
// you keep). Values the function does not consume are skipped.
//
// As a combiner it is called on a map task's buffered output before it is
// spilled or handed to the shuffle, must emit only the key it was given
// (else ErrBadCombine), and must be associative and commutative in effect:
// it may be applied zero, one or several times to any subset of a key's
// values, and the job's output is the same only if that does not matter.
type ReduceFunc func(ctx context.Context, key []byte, values iter.Seq[[]byte], emit Emit) error

// Partitioner assigns an intermediate key to a reduce partition in
// [0, n). It must be deterministic and safe for concurrent use. A result out
// of range fails the map task with ErrBadPartition.
type Partitioner func(key []byte, n int) int

// HashPartition is the default Partitioner (MapReduce §4.1, "hash(key) mod
// R"): FNV-1a (32-bit) of the key, modulo n.
func HashPartition(key []byte, n int) int {
	// FNV-1a inline: hash/fnv's New32a would allocate per call.
	const offset32, prime32 = 2166136261, 16777619
	h := uint32(offset32)
	for _, c := range key {
		h ^= uint32(c)
		h *= prime32
	}
	return int(h % uint32(n))
}

// Input is where a job's records come from: it cuts the input into splits,
// one map task each (MapReduce §3.1). FileInput reads files; a table input
// gives one split per tablet.
type Input interface {
	// Splits lists the input's splits, in a stable order: split i is map
	// task i, and the reduce side orders values by that index.
	Splits(ctx context.Context) ([]Split, error)
}

// Split is one map task's share of the input. Implementations are
// immutable and safe for concurrent use; Open is called once per attempt.
type Split interface {
	// Open starts reading the split from its beginning.
	Open(ctx context.Context) (RecordReader, error)
	// Description names the split for progress and errors, such as
	// "text logs/a.txt [0, 67108864)" or "table t [row1, row9) @ ts3:7000".
	Description() string
	// Size is the estimated size of the split in bytes (0 if unknown).
	Size() int64
	// Location is the preferred place to run the task (a tablet server's
	// or chunkserver's address), "" if none. The local runner ignores it.
	Location() string
}

// RecordReader reads one split's records in order. It is not safe for
// concurrent use.
type RecordReader interface {
	// Next returns the next record, or io.EOF after the last one. The
	// record's slices are valid until the next call to Next or Close.
	Next(ctx context.Context) (Record, error)
	// Close releases the reader's resources.
	Close() error
}

// TaskInfo identifies one attempt of one task. Run puts it in the ctx given
// to user functions and passes it to Output.Writer.
type TaskInfo struct {
	Phase   Phase
	Task    int // map task (split) index or reduce partition
	Attempt int // from 1
}

func (t TaskInfo) String() string {
	return fmt.Sprintf("%s task %d attempt %d", t.Phase, t.Task, t.Attempt)
}

type taskInfoKey struct{}

// TaskFromContext returns the task attempt a user function runs in, if ctx
// came from Run.
func TaskFromContext(ctx context.Context) (TaskInfo, bool) {
	t, ok := ctx.Value(taskInfoKey{}).(TaskInfo)
	return t, ok
}

// Output is where a job's reduce output goes: one PartitionWriter per
// attempt at each reduce partition.
//
// # Commit protocol (the output guarantee)
//
// Run opens a writer for each reduce attempt, writes the attempt's records
// to it in key order, then calls exactly one of Commit (the attempt
// succeeded) or Abort (it failed, or the job was cancelled). Attempts of one
// partition never overlap in time, and Commit is called at most once per
// partition per Run. An Output must make an aborted attempt leave nothing
// visible, and a committed attempt's records visible exactly once, replacing
// anything a previous partial attempt left: then the job's committed output
// holds each reduce output record exactly once, although tasks execute at
// least once. FileOutput does it by writing to a temporary file and renaming
// it into place on Commit; a table output does it by writing every cell
// with an explicit timestamp derived from the job and the key (never from
// the attempt), so a retried attempt rewrites the same cells.
type Output interface {
	// Writer opens the writer for one reduce attempt.
	Writer(ctx context.Context, task TaskInfo) (PartitionWriter, error)
}

// PartitionWriter receives one reduce attempt's output. It is not safe for
// concurrent use.
type PartitionWriter interface {
	// Write adds one output record; the slices may be reused after it
	// returns.
	Write(ctx context.Context, key, value []byte) error
	// Commit makes everything written visible, atomically where the
	// output allows. After an error the runner calls Abort and retries.
	Commit(ctx context.Context) error
	// Abort discards everything written. It is called after a failed
	// Write, reduce function or Commit.
	Abort(ctx context.Context) error
}

// JobCommitter is implemented by Outputs that act before the first and
// after the last task (Hadoop's OutputCommitter): SetupJob is called by
// Run before any task runs and may refuse the job; CommitJob after every
// partition committed, not at all if the job failed.
type JobCommitter interface {
	SetupJob(ctx context.Context) error
	CommitJob(ctx context.Context) error
}

// Job is the definition of a MapReduce job: what to read, the user
// functions, and where the output goes. The zero value is not valid: Input,
// Map, Reduce, Output and NumReducers are required.
type Job struct {
	// Name labels the job in logs. Default "job".
	Name string
	// Input provides the splits (required).
	Input Input
	// Map is the map function (required).
	Map MapFunc
	// Combine is the optional combiner, run on each map task's sorted
	// output before it is spilled or shuffled (see ReduceFunc).
	Combine ReduceFunc
	// Reduce is the reduce function (required).
	Reduce ReduceFunc
	// Partition assigns keys to reduce partitions. Default HashPartition.
	Partition Partitioner
	// NumReducers is the number of reduce partitions R (required, >= 1;
	// unlike most options, zero is an error, not a default).
	NumReducers int
	// Output receives the reduce output (required).
	Output Output
}

// MaxReducers bounds Job.NumReducers: every sorted run keeps a small
// per-partition index, so R is bounded.
const MaxReducers = 1 << 16

func (j Job) withDefaults() Job {
	if j.Name == "" {
		j.Name = "job"
	}
	if j.Partition == nil {
		j.Partition = HashPartition
	}
	return j
}

// Validate reports a job that cannot run; the error wraps ErrInvalidJob.
func (j Job) Validate() error {
	switch {
	case j.Input == nil:
		return fmt.Errorf("%w: no Input", ErrInvalidJob)
	case j.Map == nil:
		return fmt.Errorf("%w: nil Map function", ErrInvalidJob)
	case j.Reduce == nil:
		return fmt.Errorf("%w: nil Reduce function", ErrInvalidJob)
	case j.Output == nil:
		return fmt.Errorf("%w: no Output", ErrInvalidJob)
	case j.NumReducers < 1 || j.NumReducers > MaxReducers:
		return fmt.Errorf("%w: NumReducers %d is outside [1, %d]", ErrInvalidJob, j.NumReducers, MaxReducers)
	}
	return nil
}
