package mapreduce

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"

	"cellar/dfs"
)

// FileOutput writes a job's output as one file per reduce partition,
// Dir/part-00000, Dir/part-00001, ..., in Format, plus an empty Dir/_SUCCESS
// once every partition committed (Hadoop's FileOutputCommitter layout).
//
// Each reduce attempt writes Dir/_temporary/part-NNNNN.attempt-A; Commit
// flushes and closes (syncs) it, then renames it onto Dir/part-NNNNN, which
// is atomic on a dfs.FS; Abort removes it. A failed attempt's bytes are thus
// never visible, and a retried partition's file is replaced whole, so every
// record appears exactly once. SetupJob refuses a non-empty Dir
// (ErrOutputExists). FileOutput is a value, safe for concurrent use.
type FileOutput struct {
	// FS receives the files (required).
	FS dfs.FS
	// Dir is the output directory (required, a clean dfs path).
	Dir string
	// Format of the part files. Default FormatText (records whose key holds
	// a tab or newline, or whose value holds a newline, then fail with
	// ErrNotText).
	Format FileFormat
}

var (
	_ Output          = FileOutput{}
	_ JobCommitter    = FileOutput{}
	_ PartitionWriter = (*fileWriter)(nil)
)

// SuccessFile is the name of the marker FileOutput.CommitJob creates.
const SuccessFile = "_SUCCESS"

const tempDir = "_temporary"

// PartName returns the path of partition p's output file.
func (o FileOutput) PartName(p int) string {
	return dfs.Join(o.Dir, fmt.Sprintf("part-%05d", p))
}

func (o FileOutput) check() error {
	if o.FS == nil {
		return fmt.Errorf("%w: FileOutput needs an FS", ErrInvalidJob)
	}
	if err := dfs.CheckPath(o.Dir, false); err != nil {
		return fmt.Errorf("%w: FileOutput Dir: %w", ErrInvalidJob, err)
	}
	if o.Format != 0 && o.Format != FormatText && o.Format != FormatRecords {
		return fmt.Errorf("%w: FileOutput format %v", ErrInvalidJob, o.Format)
	}
	return nil
}

// SetupJob checks the output definition and that Dir is empty or missing.
func (o FileOutput) SetupJob(ctx context.Context) error {
	if err := o.check(); err != nil {
		return err
	}
	ents, err := o.FS.List(ctx, o.Dir)
	if err != nil {
		return fmt.Errorf("cellar/mapreduce: list output %s: %w", o.Dir, err)
	}
	if len(ents) > 0 {
		return fmt.Errorf("%w: %s holds %q", ErrOutputExists, o.Dir, ents[0].Name)
	}
	return nil
}

// CommitJob removes the temporary directory and creates Dir/_SUCCESS.
func (o FileOutput) CommitJob(ctx context.Context) error {
	if err := o.FS.Remove(ctx, dfs.Join(o.Dir, tempDir)); err != nil && !errors.Is(err, dfs.ErrNotFound) {
		return fmt.Errorf("cellar/mapreduce: remove %s/%s: %w", o.Dir, tempDir, err)
	}
	f, err := o.FS.Create(ctx, dfs.Join(o.Dir, SuccessFile))
	if err != nil {
		return fmt.Errorf("cellar/mapreduce: create %s/%s: %w", o.Dir, SuccessFile, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("cellar/mapreduce: close %s/%s: %w", o.Dir, SuccessFile, err)
	}
	return nil
}

// Writer creates the attempt's temporary file.
func (o FileOutput) Writer(ctx context.Context, task TaskInfo) (PartitionWriter, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	final := o.PartName(task.Task)
	temp := dfs.Join(o.Dir, tempDir, fmt.Sprintf("part-%05d.attempt-%d", task.Task, task.Attempt))
	f, err := o.FS.Create(ctx, temp)
	if err != nil {
		return nil, fmt.Errorf("cellar/mapreduce: create %s: %w", temp, err)
	}
	w := &fileWriter{fs: o.FS, f: f, temp: temp, final: final, format: o.Format, bw: bufio.NewWriterSize(f, readBufferSize)}
	if w.format == 0 {
		w.format = FormatText
	}
	if w.format == FormatRecords {
		w.scratch = appendHeader(w.scratch[:0])
		if _, err := w.bw.Write(w.scratch); err != nil {
			w.Abort(ctx) //nolint:errcheck // the create error is the one to report
			return nil, fmt.Errorf("cellar/mapreduce: write %s: %w", temp, err)
		}
	}
	return w, nil
}

type fileWriter struct {
	fs          dfs.FS
	f           dfs.File
	bw          *bufio.Writer
	temp, final string
	format      FileFormat
	scratch     []byte
	closed      bool
}

func (w *fileWriter) Write(ctx context.Context, key, value []byte) error {
	if len(key)+len(value) > MaxRecordSize {
		return fmt.Errorf("%w: output record of %d+%d bytes (max %d)", ErrRecordTooLarge, len(key), len(value), MaxRecordSize)
	}
	if w.format == FormatText {
		if bytes.IndexByte(key, '\t') >= 0 || bytes.IndexByte(key, '\n') >= 0 || bytes.IndexByte(value, '\n') >= 0 {
			return fmt.Errorf("%w: key %s", ErrNotText, quoteKey(key))
		}
		w.scratch = append(w.scratch[:0], key...)
		w.scratch = append(w.scratch, '\t')
		w.scratch = append(w.scratch, value...)
		w.scratch = append(w.scratch, '\n')
	} else {
		w.scratch = appendRecord(w.scratch[:0], key, value)
	}
	if _, err := w.bw.Write(w.scratch); err != nil {
		return fmt.Errorf("cellar/mapreduce: write %s: %w", w.temp, err)
	}
	return nil
}

func (w *fileWriter) Commit(ctx context.Context) error {
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("cellar/mapreduce: write %s: %w", w.temp, err)
	}
	w.closed = true
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("cellar/mapreduce: close %s: %w", w.temp, err)
	}
	if err := w.fs.Rename(ctx, w.temp, w.final); err != nil {
		return fmt.Errorf("cellar/mapreduce: commit %s: %w", w.final, err)
	}
	return nil
}

func (w *fileWriter) Abort(ctx context.Context) error {
	var errs []error
	if !w.closed {
		w.closed = true
		if err := w.f.Close(); err != nil && !errors.Is(err, dfs.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if err := w.fs.Remove(ctx, w.temp); err != nil && !errors.Is(err, dfs.ErrNotFound) {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cellar/mapreduce: abort %s: %w", w.temp, err)
	}
	return nil
}
