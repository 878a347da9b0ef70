package mapreduce

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Sentinel errors. Run and the file formats wrap them with detail; test with
// errors.Is.
var (
	// ErrInvalidJob is returned (wrapped) by Job.Validate and by Run for a
	// job that cannot run: no input, no output, a nil Map or Reduce
	// function, or NumReducers below 1. Nothing was executed.
	ErrInvalidJob = errors.New("cellar/mapreduce: invalid job")
	// ErrInvalidOptions is returned (wrapped) by RunOptions.Validate and by
	// Run for negative or out-of-range RunOptions fields.
	ErrInvalidOptions = errors.New("cellar/mapreduce: invalid run options")
	// ErrTaskFailed is returned (wrapped in a *TaskError) by Run when a map
	// or reduce task failed on every one of its MaxAttempts attempts.
	ErrTaskFailed = errors.New("cellar/mapreduce: task failed")
	// ErrPanic wraps the value of a panic recovered from a user function
	// (map, combine, reduce, partition); the attempt fails like one that
	// returned an error, and is retried.
	ErrPanic = errors.New("cellar/mapreduce: user function panicked")
	// ErrCorrupt is returned (wrapped) by the record file decoder for bytes
	// that are not a valid record file: bad magic or version, a length
	// beyond MaxRecordSize or beyond the end of the file, a checksum
	// mismatch, a truncated record. A task failing with it is not retried.
	ErrCorrupt = errors.New("cellar/mapreduce: corrupt record file")
	// ErrRecordTooLarge is returned (wrapped) when a text line or an
	// encoded record exceeds FileInput.MaxRecordSize or MaxRecordSize.
	ErrRecordTooLarge = errors.New("cellar/mapreduce: record too large")
	// ErrNotText is returned (wrapped) by a text output writer for a key
	// holding a tab or newline or a value holding a newline: such a record
	// could not be read back as the same line.
	ErrNotText = errors.New("cellar/mapreduce: record cannot be written as a text line")
	// ErrOutputExists is returned (wrapped) by FileOutput.SetupJob when the
	// output directory already holds entries, as Hadoop refuses to
	// overwrite a previous job's output.
	ErrOutputExists = errors.New("cellar/mapreduce: output directory is not empty")
	// ErrBadCombine is returned (wrapped) when a combiner emits a key other
	// than the one it was called with: a combiner may only merge values.
	ErrBadCombine = errors.New("cellar/mapreduce: combiner changed the key")
	// ErrBadPartition is returned (wrapped) when a Partitioner returns a
	// partition outside [0, NumReducers).
	ErrBadPartition = errors.New("cellar/mapreduce: partition out of range")
	// ErrMissingFamily is returned (wrapped) by TableOutput.SetupJob when
	// the output table lacks a column family the job writes. Nothing was
	// executed.
	ErrMissingFamily = errors.New("cellar/mapreduce: output table lacks a column family")
	// ErrWriteFailed is returned (wrapped in a *WriteError) when the
	// cluster refused rows of a TableOutput batch.
	ErrWriteFailed = errors.New("cellar/mapreduce: table write failed")
	// ErrBadLine is the error of an importtsv input line that does not
	// match the column spec (counted and reported, never written).
	ErrBadLine = errors.New("cellar/mapreduce: bad input line")
)

// Phase says which kind of task a TaskInfo or TaskError is about.
type Phase uint8

// Task phases.
const (
	PhaseMap Phase = iota + 1
	PhaseReduce
)

// String returns "map" or "reduce".
func (p Phase) String() string {
	switch p {
	case PhaseMap:
		return "map"
	case PhaseReduce:
		return "reduce"
	}
	return "phase(" + strconv.Itoa(int(p)) + ")"
}

// TaskError reports the last failed attempt of a task that used up its
// attempts (or failed with an error that is not retried, such as
// ErrCorrupt). It unwraps to both ErrTaskFailed and the attempt's error, so
// errors.Is works for either.
type TaskError struct {
	Phase    Phase
	Task     int    // map task (split) index or reduce partition
	Attempt  int    // the failed attempt, from 1
	Attempts int    // MaxAttempts of the run
	Split    string // map tasks: the split's description
	// Record is the 0-based index, within the split, of the input record
	// being mapped when the map attempt failed; -1 if the failure was not
	// tied to a record (opening the split, spilling, a combiner).
	Record int64
	// Key is the input record's key (map), the key being combined, or the
	// key being reduced; nil when none.
	Key []byte
	// Stack is the goroutine stack of a recovered panic, else empty.
	Stack string
	Err   error
}

func (e *TaskError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cellar/mapreduce: %s task %d", e.Phase, e.Task)
	if e.Split != "" {
		fmt.Fprintf(&b, " (%s)", e.Split)
	}
	fmt.Fprintf(&b, " attempt %d/%d failed", e.Attempt, e.Attempts)
	if e.Record >= 0 {
		fmt.Fprintf(&b, " at record %d", e.Record)
	}
	if e.Key != nil {
		fmt.Fprintf(&b, " key %s", quoteKey(e.Key))
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

// Unwrap returns ErrTaskFailed and the attempt's error.
func (e *TaskError) Unwrap() []error { return []error{ErrTaskFailed, e.Err} }

// quoteKey renders a key for an error message, cut to 64 bytes.
func quoteKey(k []byte) string {
	const max = 64
	if len(k) > max {
		return strconv.Quote(string(k[:max])) + "..."
	}
	return strconv.Quote(string(k))
}
