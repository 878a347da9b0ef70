package mapreduce

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync/atomic"

	"cellar/client"
)

// Defaults for TableOutput.
const (
	// DefaultBatchRows is TableOutput.BatchRows when zero.
	DefaultBatchRows = 1000
	// DefaultBatchBytes is TableOutput.BatchBytes when zero (2 MiB: one
	// ApplyBulk request per server must stay under gRPC's default 4 MiB
	// message limit).
	DefaultBatchBytes = 2 << 20
)

// TableOutput writes a job's reduce output into a Cellar table (Bigtable
// §8, HBase's TableOutputFormat). Each output record is one row: the key is
// the row key and the value a cell list (AppendCells). The writer batches
// rows into ApplyBulk calls of at most BatchRows rows or BatchBytes bytes;
// a Write that fills the batch sends it and blocks until the cluster
// answered (back-pressure: at most one batch is held per reduce task).
// Commit sends what is left. A row the cluster refused fails the attempt
// with a *WriteError listing the failed rows.
//
// # Retries write nothing twice
//
// Writes cannot be rolled back, so a failed reduce attempt may have written
// part of its output before it is retried. Every cell is written with an
// explicit timestamp: the cell's own (copytable and import keep the
// source's), or, for a cell whose Timestamp is client.ServerTime, the
// job's timestamp (Timestamp, fixed once per job by SetupJob, never per
// attempt). A deterministic reduce function emits the same cells in every
// attempt, so the retry rewrites the very same versions (same row, column
// and timestamp, same value) and the table ends as if only the successful
// attempt had run. The explicit timestamps also make each mutation
// idempotent, so the client retries it across tablet moves. A cell written
// by a failed attempt and not by the retry (a non-deterministic reduce)
// would stay: reduce functions must be deterministic.
//
// Use a *TableOutput (SetupJob records the job timestamp in it); it is safe
// for concurrent use by the runner's reduce tasks.
type TableOutput struct {
	// Client is the cluster connection (required).
	Client *client.Client
	// Table receives the rows (required; it must exist).
	Table string
	// Families are the column families the job writes; SetupJob fails
	// with an error wrapping ErrMissingFamily if the table lacks one.
	Families []string
	// Timestamp replaces client.ServerTime in written cells. Default: the
	// time SetupJob ran, in milliseconds (client.Now truncated).
	Timestamp client.Timestamp
	// BatchRows is the most rows per ApplyBulk call. Default
	// DefaultBatchRows.
	BatchRows int
	// BatchBytes is the most value bytes per ApplyBulk call (a single
	// bigger row is sent alone). Default DefaultBatchBytes.
	BatchBytes int

	jobTS atomic.Int64 // the resolved timestamp; 0 before SetupJob
}

var (
	_ Output          = (*TableOutput)(nil)
	_ JobCommitter    = (*TableOutput)(nil)
	_ PartitionWriter = (*tableWriter)(nil)
)

// SetupJob checks that the table exists and has Families, and fixes the
// job's timestamp. Errors: client.ErrTableNotFound, ErrMissingFamily,
// ErrInvalidJob.
func (o *TableOutput) SetupJob(ctx context.Context) error {
	if o.Client == nil || o.Table == "" {
		return fmt.Errorf("%w: TableOutput needs a Client and a Table", ErrInvalidJob)
	}
	if o.BatchRows < 0 || o.BatchBytes < 0 || (o.Timestamp < 0 && o.Timestamp != client.ServerTime) {
		return fmt.Errorf("%w: TableOutput: negative BatchRows, BatchBytes or Timestamp", ErrInvalidJob)
	}
	info, err := o.Client.Admin().TableInfo(ctx, o.Table)
	if err != nil {
		return fmt.Errorf("cellar/mapreduce: output table %q: %w", o.Table, err)
	}
	have := map[string]bool{}
	for _, f := range info.Families {
		have[f.Name] = true
	}
	var missing []string
	for _, f := range o.Families {
		if !have[f] {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("cellar/mapreduce: output table %q: %w: %s (create them first)", o.Table, ErrMissingFamily, strings.Join(missing, ", "))
	}
	ts := o.Timestamp
	if ts <= 0 {
		ts = client.Now().TruncateToMilliseconds()
	}
	o.jobTS.Store(int64(ts))
	return nil
}

// CommitJob does nothing: every partition's rows are written by then.
func (o *TableOutput) CommitJob(ctx context.Context) error { return nil }

// JobTimestamp is the timestamp written in place of client.ServerTime: set
// by SetupJob (0 before).
func (o *TableOutput) JobTimestamp() client.Timestamp { return client.Timestamp(o.jobTS.Load()) }

// Writer opens a batching writer for one reduce attempt.
func (o *TableOutput) Writer(ctx context.Context, task TaskInfo) (PartitionWriter, error) {
	ts := o.JobTimestamp()
	if ts == 0 {
		// Run calls SetupJob first; a caller using the writer on its own
		// must too, or retries could write different timestamps.
		return nil, fmt.Errorf("%w: TableOutput.SetupJob was not called", ErrInvalidJob)
	}
	return o.newWriter(ts), nil
}

func (o *TableOutput) newWriter(ts client.Timestamp) *tableWriter {
	w := &tableWriter{o: o, tbl: o.Client.Open(o.Table), ts: ts, maxRows: o.BatchRows, maxBytes: o.BatchBytes}
	if w.maxRows == 0 {
		w.maxRows = DefaultBatchRows
	}
	if w.maxBytes == 0 {
		w.maxBytes = DefaultBatchBytes
	}
	return w
}

// tableWriter is one attempt's batch.
type tableWriter struct {
	o                 *TableOutput
	tbl               *client.Table
	ts                client.Timestamp
	maxRows, maxBytes int
	rows              []string
	muts              []*client.Mutation
	bytes             int
	written           int64
}

// Write adds one row to the batch, sending the batch when it is full.
// Errors: ErrCorrupt (the value is not a cell list), *WriteError.
func (w *tableWriter) Write(ctx context.Context, key, value []byte) error {
	cells, err := DecodeCells(value)
	if err != nil {
		return fmt.Errorf("cellar/mapreduce: output row %s: value is not a cell list (AppendCells): %w", quoteKey(key), err)
	}
	return w.add(ctx, string(key), cells)
}

func (w *tableWriter) add(ctx context.Context, row string, cells []Cell) error {
	if len(cells) == 0 {
		return nil
	}
	m := client.NewMutation()
	n := len(row)
	for _, c := range cells {
		ts := c.Timestamp
		if ts == client.ServerTime {
			ts = w.ts
		}
		m.Set(c.Family, c.Qualifier, ts, bytes.Clone(c.Value))
		n += len(c.Family) + len(c.Qualifier) + len(c.Value)
	}
	if len(w.rows) > 0 && w.bytes+n > w.maxBytes {
		if err := w.flush(ctx); err != nil {
			return err
		}
	}
	w.rows = append(w.rows, row)
	w.muts = append(w.muts, m)
	w.bytes += n
	if len(w.rows) >= w.maxRows || w.bytes >= w.maxBytes {
		return w.flush(ctx)
	}
	return nil
}

// flush sends the batch with one ApplyBulk call.
func (w *tableWriter) flush(ctx context.Context) error {
	if len(w.rows) == 0 {
		return nil
	}
	rows, muts := w.rows, w.muts
	w.rows, w.muts, w.bytes = nil, nil, 0
	errs, err := w.tbl.ApplyBulk(ctx, rows, muts)
	if err != nil {
		return fmt.Errorf("cellar/mapreduce: write %d rows to table %q: %w", len(rows), w.o.Table, err)
	}
	if errs != nil {
		we := &WriteError{Table: w.o.Table, Batch: len(rows)}
		for i, e := range errs {
			if e == nil {
				continue
			}
			we.Failed++
			if len(we.Rows) < maxReportedRows {
				we.Rows = append(we.Rows, RowError{Row: rows[i], Err: e})
			}
		}
		return we
	}
	w.written += int64(len(rows))
	return nil
}

// Commit sends the rest of the batch.
func (w *tableWriter) Commit(ctx context.Context) error { return w.flush(ctx) }

// Abort drops the unsent batch; rows already sent stay (see TableOutput:
// the retry rewrites them identically).
func (w *tableWriter) Abort(ctx context.Context) error {
	w.rows, w.muts, w.bytes = nil, nil, 0
	return nil
}

// maxReportedRows bounds WriteError.Rows.
const maxReportedRows = 10

// RowError is one row a table write refused.
type RowError struct {
	Row string
	Err error
}

// WriteError reports the rows of one ApplyBulk batch that the cluster
// refused (the others were written). It unwraps to ErrWriteFailed and the
// first row's error (such as client.ErrUnknownFamily).
type WriteError struct {
	Table  string
	Batch  int        // rows in the batch
	Failed int        // rows refused
	Rows   []RowError // the first refused rows (at most 10)
}

func (e *WriteError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cellar/mapreduce: table %q refused %d of %d rows", e.Table, e.Failed, e.Batch)
	for i, r := range e.Rows {
		if i == 3 {
			fmt.Fprintf(&b, "; ...")
			break
		}
		fmt.Fprintf(&b, "; row %s: %v", quoteKey([]byte(r.Row)), r.Err)
	}
	return b.String()
}

// Unwrap returns ErrWriteFailed and the first row's error.
func (e *WriteError) Unwrap() []error {
	out := []error{ErrWriteFailed}
	if len(e.Rows) > 0 {
		out = append(out, e.Rows[0].Err)
	}
	return out
}
