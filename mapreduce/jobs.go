package mapreduce

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"iter"
	"slices"
	"strconv"
	"strings"

	"cellar/client"
	"cellar/internal/keys"
)

// The built-in jobs behind `cellar job ...` (HBase's bundled MapReduce
// jobs). Each constructor returns a Job to pass to Run; set NumReducers or
// Name on it as wanted.

// SumCounts is a reduce function (and combiner) for counts: each value is
// an unsigned varint, and it emits their sum as one unsigned varint. A
// value that is not a varint fails the task with ErrCorrupt.
func SumCounts(ctx context.Context, key []byte, values iter.Seq[[]byte], emit Emit) error {
	var sum uint64
	for v := range values {
		n, k := binary.Uvarint(v)
		if k <= 0 || k != len(v) {
			return fmt.Errorf("%w: count value %x is not a uvarint", ErrCorrupt, v)
		}
		sum += n
	}
	var b [binary.MaxVarintLen64]byte
	return emit(key, binary.AppendUvarint(b[:0], sum))
}

// Identity is a reduce function that emits every value under its key.
func Identity(ctx context.Context, key []byte, values iter.Seq[[]byte], emit Emit) error {
	for v := range values {
		if err := emit(key, v); err != nil {
			return err
		}
	}
	return nil
}

// RowCounts is what a row count job found.
type RowCounts struct {
	Rows  int64
	Bytes int64            // bytes of row keys, family names, qualifiers and values read
	Cells map[string]int64 // cell versions per family (with cells set), else nil
}

// Keys of the row count job's output.
const (
	countRows  = "r"
	countBytes = "b"
	countCells = "c" // + family
)

// RowCountJob counts the rows of in (and, with cells, the cell versions
// per family), and the bytes read. Call counts once Run returned without
// error. The counts go through the shuffle with a combiner, so a map task
// retried after a failure counts its rows once.
func RowCountJob(in TableInput, cells bool) (job Job, counts func() (RowCounts, error)) {
	out := &MemOutput{}
	one := binary.AppendUvarint(nil, 1)
	job = Job{
		Name:  "rowcount " + in.Table,
		Input: in,
		Map: func(ctx context.Context, rec Record, emit Emit) error {
			var n int64 = int64(len(rec.Key))
			var buf [binary.MaxVarintLen64]byte
			for fam, items := range rec.Row {
				for i := range items {
					n += int64(len(items[i].Column) + len(items[i].Value))
				}
				if cells {
					if err := emit([]byte(countCells+fam), binary.AppendUvarint(buf[:0], uint64(len(items)))); err != nil {
						return err
					}
				}
			}
			if err := emit([]byte(countRows), one); err != nil {
				return err
			}
			return emit([]byte(countBytes), binary.AppendUvarint(buf[:0], uint64(n)))
		},
		Combine:     SumCounts,
		Reduce:      SumCounts,
		NumReducers: 1,
		Output:      out,
	}
	counts = func() (RowCounts, error) {
		var c RowCounts
		if cells {
			c.Cells = map[string]int64{}
		}
		for _, r := range out.Records() {
			n, k := binary.Uvarint(r.Value)
			if k <= 0 {
				return c, fmt.Errorf("%w: count %x", ErrCorrupt, r.Value)
			}
			switch k := string(r.Key); {
			case k == countRows:
				c.Rows = int64(n)
			case k == countBytes:
				c.Bytes = int64(n)
			case strings.HasPrefix(k, countCells) && cells:
				c.Cells[k[len(countCells):]] = int64(n)
			}
		}
		return c, nil
	}
	return job, counts
}

// rowToCells is the map function of copytable and export: the row as one
// cell list.
func rowToCells(ctx context.Context, rec Record, emit Emit) error {
	if rec.Row == nil {
		return fmt.Errorf("cellar/mapreduce: record %s has no row: the input must be a TableInput", quoteKey(rec.Key))
	}
	return emit(rec.Key, AppendCells(nil, RowCells(rec.Row)))
}

// CopyTableJob copies the rows of in (its range, families and filters)
// into out's table, keeping every cell's timestamp. If out.Families is
// empty it is set, when the job starts, to in.Families or else every family
// of the source table, so a destination lacking one fails the job before
// anything is written (ErrMissingFamily).
func CopyTableJob(in TableInput, out *TableOutput) Job {
	return Job{
		Name:        "copytable " + in.Table + " " + out.Table,
		Input:       in,
		Map:         rowToCells,
		Reduce:      Identity,
		NumReducers: 4,
		Output:      &familiesFrom{TableOutput: out, src: in},
	}
}

// familiesFrom fills the output's families from the source table.
type familiesFrom struct {
	*TableOutput
	src TableInput
}

func (f *familiesFrom) SetupJob(ctx context.Context) error {
	if len(f.Families) == 0 {
		fams := f.src.Families
		if len(fams) == 0 {
			if f.src.Client == nil {
				return fmt.Errorf("%w: TableInput needs a Client", ErrInvalidJob)
			}
			info, err := f.src.Client.Admin().TableInfo(ctx, f.src.Table)
			if err != nil {
				return fmt.Errorf("cellar/mapreduce: source table %q: %w", f.src.Table, err)
			}
			for _, fi := range info.Families {
				fams = append(fams, fi.Name)
			}
		}
		f.Families = fams
	}
	return f.TableOutput.SetupJob(ctx)
}

// ExportJob writes the rows of in to out as record files (set out.Format
// to FormatRecords; ExportJob does). Each record is one row: the key is the
// row key, the value its cells (AppendCells), with every timestamp, so
// ImportJob restores every byte. See the package doc, "Export files".
func ExportJob(in TableInput, out FileOutput) Job {
	out.Format = FormatRecords
	return Job{
		Name:        "export " + in.Table,
		Input:       in,
		Map:         rowToCells,
		Reduce:      Identity,
		NumReducers: 4,
		Output:      out,
	}
}

// ImportJob writes the rows of export files (in, a FileInput; ImportJob
// sets its Format to FormatRecords) into out's table. Rows of a family the
// table lacks fail the job (a *WriteError wrapping client.ErrUnknownFamily
// in the *TaskError).
func ImportJob(in FileInput, out *TableOutput) Job {
	in.Format = FormatRecords
	return Job{
		Name:  "import " + out.Table,
		Input: in,
		Map: func(ctx context.Context, rec Record, emit Emit) error {
			if _, err := DecodeCells(rec.Value); err != nil {
				return fmt.Errorf("row %s is not an export record: %w", quoteKey(rec.Key), err)
			}
			return emit(rec.Key, rec.Value)
		},
		Reduce:      Identity,
		NumReducers: 4,
		Output:      out,
	}
}

// TSVColumn is one column of an importtsv line: the row key (Row set) or
// a cell's family and qualifier.
type TSVColumn struct {
	Row       bool
	Family    string
	Qualifier string
}

// ParseTSVColumns parses an importtsv column spec such as
// "ROW,f:name,f:age": one ROW (the row key) and FAMILY:QUALIFIER for each
// other column, in the order of the fields of a line. Errors wrap
// ErrInvalidJob.
func ParseTSVColumns(spec string) ([]TSVColumn, error) {
	var cols []TSVColumn
	rows := 0
	for _, c := range strings.Split(spec, ",") {
		if c == "ROW" {
			cols = append(cols, TSVColumn{Row: true})
			rows++
			continue
		}
		fam, q, ok := strings.Cut(c, ":")
		if !ok {
			return nil, fmt.Errorf("%w: importtsv column %q: want ROW or FAMILY:QUALIFIER", ErrInvalidJob, c)
		}
		if err := keys.ValidateFamily(fam); err != nil {
			return nil, fmt.Errorf("%w: importtsv column %q: %v", ErrInvalidJob, c, err)
		}
		cols = append(cols, TSVColumn{Family: fam, Qualifier: q})
	}
	if rows != 1 {
		return nil, fmt.Errorf("%w: importtsv columns %q: want exactly one ROW, got %d", ErrInvalidJob, spec, rows)
	}
	if len(cols) < 2 {
		return nil, fmt.Errorf("%w: importtsv columns %q: no cell column", ErrInvalidJob, spec)
	}
	return cols, nil
}

// BadLine is one importtsv input line that was not imported.
type BadLine struct {
	Split  int   // the map task (file split) index
	Offset int64 // byte offset of the line in its file
	Reason string
}

// TSVReport is what an importtsv job did not import.
type TSVReport struct {
	BadLines int64     // lines skipped
	First    []BadLine // the first bad lines, in (split, offset) order (at most 100)
}

// Output keys of importtsv: row keys and bad lines share the shuffle.
const (
	tsvRow = 'r'
	tsvBad = 'b'
)

// ImportTSVJob imports tab-separated lines (in, a FileInput of text
// files; its Format is set to FormatText) into out's table: each line is a
// row whose fields are cols (ParseTSVColumns), each cell written at the
// job's timestamp (TableOutput.Timestamp). A line with another number of
// fields or an empty row key is counted as bad and skipped; report
// returns them once Run returned without error. out.Families is set to the
// columns' families, so a table lacking one fails the job up front.
func ImportTSVJob(in FileInput, cols []TSVColumn, out *TableOutput) (job Job, report func() TSVReport) {
	in.Format = FormatText
	seen := map[string]bool{}
	out.Families = nil
	for _, c := range cols {
		if !c.Row && !seen[c.Family] {
			seen[c.Family] = true
			out.Families = append(out.Families, c.Family)
		}
	}
	side := &MemOutput{}
	job = Job{
		Name:  "importtsv " + out.Table,
		Input: in,
		Map: func(ctx context.Context, rec Record, emit Emit) error {
			bad := func(reason string) error {
				t, _ := TaskFromContext(ctx)
				off, _ := strconv.ParseInt(string(rec.Key), 10, 64)
				k := binary.BigEndian.AppendUint32([]byte{tsvBad}, uint32(t.Task))
				k = binary.BigEndian.AppendUint64(k, uint64(off))
				return emit(k, []byte(reason))
			}
			fields := bytes.Split(rec.Value, []byte{'\t'})
			if len(fields) != len(cols) {
				return bad(fmt.Sprintf("%d fields, want %d", len(fields), len(cols)))
			}
			var row []byte
			cells := make([]Cell, 0, len(cols)-1)
			for i, c := range cols {
				if c.Row {
					row = fields[i]
					continue
				}
				cells = append(cells, Cell{Family: c.Family, Qualifier: c.Qualifier, Timestamp: client.ServerTime, Value: fields[i]})
			}
			if len(row) == 0 {
				return bad("empty row key")
			}
			if err := keys.ValidateRow(row); err != nil {
				return bad(err.Error())
			}
			return emit(append([]byte{tsvRow}, row...), AppendCells(nil, cells))
		},
		Reduce:      Identity,
		NumReducers: 4,
		Output:      &routeOutput{main: out, side: side},
	}
	report = func() TSVReport {
		var r TSVReport
		recs := side.Records()
		// Partitions interleave the lines: the keys sort as (split, offset).
		slices.SortFunc(recs, func(a, b Record) int { return bytes.Compare(a.Key, b.Key) })
		for _, rec := range recs {
			r.BadLines++
			if len(rec.Key) == 12 && len(r.First) < 100 {
				r.First = append(r.First, BadLine{Split: int(binary.BigEndian.Uint32(rec.Key)),
					Offset: int64(binary.BigEndian.Uint64(rec.Key[4:])), Reason: string(rec.Value)})
			}
		}
		return r
	}
	return job, report
}

// routeOutput sends keys starting with tsvRow (without that byte) to main
// and the rest (likewise) to side.
type routeOutput struct {
	main *TableOutput
	side *MemOutput
}

func (o *routeOutput) SetupJob(ctx context.Context) error  { return o.main.SetupJob(ctx) }
func (o *routeOutput) CommitJob(ctx context.Context) error { return o.main.CommitJob(ctx) }

func (o *routeOutput) Writer(ctx context.Context, task TaskInfo) (PartitionWriter, error) {
	mw, err := o.main.Writer(ctx, task)
	if err != nil {
		return nil, err
	}
	sw, _ := o.side.Writer(ctx, task)
	return &routeWriter{main: mw, side: sw}, nil
}

type routeWriter struct{ main, side PartitionWriter }

func (w *routeWriter) Write(ctx context.Context, key, value []byte) error {
	if len(key) > 0 && key[0] == tsvRow {
		return w.main.Write(ctx, key[1:], value)
	}
	if len(key) == 0 {
		return fmt.Errorf("%w: empty key", ErrInvalidJob)
	}
	return w.side.Write(ctx, key[1:], value)
}

func (w *routeWriter) Commit(ctx context.Context) error {
	if err := w.main.Commit(ctx); err != nil {
		return err
	}
	return w.side.Commit(ctx)
}

func (w *routeWriter) Abort(ctx context.Context) error {
	w.side.Abort(ctx) //nolint:errcheck // memory only
	return w.main.Abort(ctx)
}
