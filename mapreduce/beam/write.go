package cellarbeam

import (
	"context"
	"fmt"
	"reflect"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"cellar/client"
	"cellar/mapreduce"
)

func init() {
	register.DoFn2x1[context.Context, Row, error]((*writeFn)(nil))
}

func reflectTypeOf[T any]() reflect.Type { return reflect.TypeFor[T]() }

// WriteConfig says where Write writes.
type WriteConfig struct {
	// Cluster are the lock-service addresses (required).
	Cluster []string
	// Table receives the rows (required; it must exist).
	Table string
	// Families the pipeline writes: the sink fails at setup if the table
	// lacks one.
	Families []string
	// Timestamp replaces -1 (client.ServerTime) in written cells. Default:
	// the time Write was called (pipeline construction), truncated to
	// milliseconds: fixed for the whole pipeline, so a bundle the runner
	// retries rewrites the same cell versions and changes nothing.
	Timestamp int64
	// BatchRows is the most rows per ApplyBulk call (default 1000).
	BatchRows int
}

// Write writes a PCollection of Row into cfg.Table: each bundle's rows are
// batched into ApplyBulk calls (mapreduce.TableOutput) and flushed when the
// bundle finishes, so a bundle that fails is retried whole, rewriting the
// same versions (every cell has an explicit timestamp).
func Write(s beam.Scope, cfg WriteConfig, rows beam.PCollection) {
	s = s.Scope("cellar.Write")
	if cfg.Timestamp <= 0 {
		cfg.Timestamp = int64(client.Now().TruncateToMilliseconds())
	}
	beam.ParDo0(s, &writeFn{Cluster: cfg.Cluster, Table: cfg.Table, Families: cfg.Families, Timestamp: cfg.Timestamp, BatchRows: cfg.BatchRows}, rows)
}

// writeFn is the sink.
type writeFn struct {
	Cluster   []string
	Table     string
	Families  []string
	Timestamp int64
	BatchRows int

	out *mapreduce.TableOutput
	w   mapreduce.PartitionWriter
	buf []byte
}

func (fn *writeFn) Setup(ctx context.Context) error {
	cl, err := clientFor(ctx, fn.Cluster)
	if err != nil {
		return err
	}
	fn.out = &mapreduce.TableOutput{Client: cl, Table: fn.Table, Families: fn.Families, Timestamp: client.Timestamp(fn.Timestamp), BatchRows: fn.BatchRows}
	return fn.out.SetupJob(ctx)
}

func (fn *writeFn) StartBundle(ctx context.Context) error {
	w, err := fn.out.Writer(ctx, mapreduce.TaskInfo{})
	fn.w = w
	return err
}

func (fn *writeFn) ProcessElement(ctx context.Context, row Row) error {
	cells := make([]mapreduce.Cell, len(row.Cells))
	for i, c := range row.Cells {
		cells[i] = mapreduce.Cell{Family: c.Family, Qualifier: string(c.Qualifier), Timestamp: client.Timestamp(c.Timestamp), Value: c.Value}
	}
	fn.buf = mapreduce.AppendCells(fn.buf[:0], cells)
	if err := fn.w.Write(ctx, row.Key, fn.buf); err != nil {
		return fmt.Errorf("cellar/mapreduce/beam: write row %q to table %q: %w", row.Key, fn.Table, err)
	}
	return nil
}

func (fn *writeFn) FinishBundle(ctx context.Context) error {
	if err := fn.w.Commit(ctx); err != nil {
		return fmt.Errorf("cellar/mapreduce/beam: write to table %q: %w", fn.Table, err)
	}
	return nil
}
