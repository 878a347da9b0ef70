package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"cellar/client"
)

// Import batching. A batch is sent with one ApplyBulk call, which makes one
// MutateRows request per tablet server; tablet servers accept requests of up
// to gRPC's default 4 MiB, so a batch stays well under that, and a cell whose
// value alone is large travels in a batch of its own.
const (
	importBatchCells = 1000
	importBatchBytes = 1 << 20
	importEntryCells = 1000 // cells of one row in one mutation
)

// importMaxLineBytes bounds one import line (a 10 MiB value is ~14 MiB of
// base64); a variable for tests.
var importMaxLineBytes = 64 << 20

func exportCmd(s *session) *cobra.Command {
	return &cobra.Command{
		Use:   "export TABLE FILE",
		Short: "Write every cell of TABLE to FILE as JSON lines ('-': standard output)",
		Long: `Write every version of every cell of TABLE, in row order, one JSON object per
line: {"row": BASE64, "family": STRING, "qualifier": BASE64, "timestamp": MICROS,
"value": BASE64}. Every byte round-trips through import. FILE is written to a
temporary file renamed into place when the export is complete, so a failed
export leaves no partial FILE. Like a scan, an export sees each row atomically
but is not a snapshot across rows.`,
		Args: argsRange(2, 2),
		RunE: s.withClient(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			table, name := args[0], args[1]
			var (
				w      io.Writer
				commit = func() error { return nil }
				abort  = func() {}
			)
			if name == "-" {
				w = cmd.OutOrStdout()
			} else {
				f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".part-*")
				if err != nil {
					return err
				}
				w = f
				abort = func() { f.Close(); os.Remove(f.Name()) }
				commit = func() error {
					if err := f.Close(); err != nil {
						return err
					}
					return os.Rename(f.Name(), name)
				}
			}
			bw := bufio.NewWriterSize(w, 1<<20)
			cw, _ := newCellWriter(bw, "json")
			var p *progress
			if name != "-" { // the cells themselves go to the terminal
				p = s.newProgress(cmd, "exporting "+table, "cells")
			}
			defer p.Finish()
			var cells, rows int64
			var werr error
			rctx, cancel := longCall(ctx)
			defer cancel()
			err := c.Open(table).ReadRows(rctx, client.InfiniteRange(""), func(r client.Row) bool {
				rows++
				for _, cell := range rowCells(r) {
					if werr = cw.write(cell); werr != nil {
						return false
					}
					cells++
					p.Add(1)
				}
				return true
			})
			if err == nil {
				err = werr
			}
			if err == nil {
				err = bw.Flush()
			}
			if err == nil {
				err = commit()
			}
			if err != nil {
				abort()
				return tableErr(table, err)
			}
			p.Finish()
			if name != "-" {
				fmt.Fprintf(cmd.OutOrStdout(), "exported %d cells of %d rows to %s\n", cells, rows, name)
			}
			return nil
		}),
	}
}

func importCmd(s *session) *cobra.Command {
	var skipBad bool
	var maxValue int
	cmd := &cobra.Command{
		Use:   "import TABLE FILE [--skip-bad]",
		Short: "Write the cells of a JSON-lines FILE (as export writes it; '-': standard input) into TABLE",
		Long: `Read FILE (as written by export; '-' for standard input) and write each cell with
its own timestamp, in batches. Blank lines are ignored. A malformed line (bad
JSON, a missing or unknown field, bad base64, a family not in TABLE, a row,
qualifier or value over the limits) stops the import with an error naming the
line: the lines before it are written, nothing after it. With --skip-bad such
lines are skipped and counted instead.`,
		Args: argsRange(2, 2),
		RunE: s.withClient(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			table, name := args[0], args[1]
			if maxValue <= 0 {
				return usagef("--max-value-size %d: want a positive number of bytes", maxValue)
			}
			var in io.Reader
			var size int64 = -1
			if name == "-" {
				in = s.input(cmd)
			} else {
				f, err := os.Open(name)
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
				if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
					size = fi.Size()
				}
			}
			info, err := c.Admin().TableInfo(ctx, table)
			if err != nil {
				return tableErr(table, err)
			}
			fams := map[string]bool{}
			for _, f := range info.Families {
				fams[f.Name] = true
			}
			im := &importer{ctx: ctx, t: c.Open(table), fams: fams, maxValue: maxValue, skipBad: skipBad}
			// A file of known size gets a bar of bytes read; standard input a
			// running count of cells written.
			var bp *progress
			if size >= 0 {
				bp = s.newBytesProgress(cmd, "importing into "+table, size)
				defer bp.Finish()
				in = bp.reader(in)
			} else {
				im.p = s.newProgress(cmd, "importing into "+table, "cells")
				defer im.p.Finish()
			}
			err = im.run(bufio.NewReaderSize(in, 1<<20))
			bp.Finish()
			im.p.Finish()
			if err != nil {
				if im.written > 0 {
					return fmt.Errorf("%w (%d cells before it were imported)", err, im.written)
				}
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "imported %d cells", im.written)
			if skipBad {
				fmt.Fprintf(out, "; skipped %d bad lines", im.skipped)
				if im.firstBad != nil {
					fmt.Fprintf(out, " (first: %v)", im.firstBad)
				}
			}
			fmt.Fprintln(out)
			return nil
		}),
	}
	cmd.Flags().BoolVar(&skipBad, "skip-bad", false, "skip malformed or rejected lines and report how many")
	cmd.Flags().IntVar(&maxValue, "max-value-size", defaultMaxValue, "largest value accepted, in bytes (the tablet servers' limit)")
	return cmd
}

// importer reads cells and writes them in batches.
type importer struct {
	ctx      context.Context
	t        *client.Table
	fams     map[string]bool
	maxValue int
	skipBad  bool
	p        *progress

	batch      []importEntry
	batchCells int
	batchBytes int
	written    int64
	skipped    int64
	firstBad   error
}

// importEntry is a run of consecutive lines with the same row, as one
// mutation.
type importEntry struct {
	row         string
	m           *client.Mutation
	cells       int
	first, last int64 // line numbers
}

// lineError is a bad line.
type lineError struct {
	line int64
	err  error
}

func (e *lineError) Error() string { return fmt.Sprintf("line %d: %v", e.line, e.err) }
func (e *lineError) Unwrap() error { return e.err }

func (im *importer) run(r *bufio.Reader) error {
	for lineNo := int64(1); ; lineNo++ {
		line, err := readLine(r)
		if err == io.EOF {
			break
		}
		if errors.Is(err, errLineTooLong) {
			if berr := im.bad(&lineError{lineNo, fmt.Errorf("%w: over %d bytes", err, importMaxLineBytes)}); berr != nil {
				return berr
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("line %d: %w", lineNo, err)
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		cell, err := parseCellLine(line)
		if err == nil && !im.fams[cell.Family] {
			err = fmt.Errorf("%w: family %q is not in table %q", client.ErrUnknownFamily, cell.Family, im.t.Name())
		}
		if err == nil && len(cell.Value) > im.maxValue {
			err = fmt.Errorf("%w: value is %d bytes, over the limit of %d", client.ErrLimit, len(cell.Value), im.maxValue)
		}
		if err != nil {
			if berr := im.bad(&lineError{lineNo, err}); berr != nil {
				return berr
			}
			continue
		}
		if err := im.add(cell, lineNo); err != nil {
			return err
		}
	}
	return im.flush()
}

// bad handles a malformed line: with --skip-bad it is counted, otherwise
// the lines before it are written and the import stops.
func (im *importer) bad(err *lineError) error {
	if im.skipBad {
		im.skipped++
		if im.firstBad == nil {
			im.firstBad = err
		}
		return nil
	}
	if ferr := im.flush(); ferr != nil {
		return ferr
	}
	return err
}

func (im *importer) add(cell cellJSON, line int64) error {
	size := len(cell.Row) + len(cell.Qualifier) + len(cell.Value) + 64
	if im.batchCells > 0 && (im.batchCells >= importBatchCells || im.batchBytes+size > importBatchBytes) {
		if err := im.flush(); err != nil {
			return err
		}
	}
	n := len(im.batch)
	if n == 0 || im.batch[n-1].row != string(cell.Row) || im.batch[n-1].cells >= importEntryCells {
		im.batch = append(im.batch, importEntry{row: string(cell.Row), m: client.NewMutation(), first: line})
		n++
	}
	e := &im.batch[n-1]
	e.m.Set(cell.Family, string(cell.Qualifier), client.Timestamp(cell.Timestamp), cell.Value)
	e.cells++
	e.last = line
	im.batchCells++
	im.batchBytes += size
	return nil
}

// flush writes the batch. An entry the servers reject is a bad line (with
// --skip-bad its lines are counted as skipped); any other failure stops.
func (im *importer) flush() error {
	if len(im.batch) == 0 {
		return nil
	}
	rows := make([]string, len(im.batch))
	muts := make([]*client.Mutation, len(im.batch))
	for i, e := range im.batch {
		rows[i], muts[i] = e.row, e.m
	}
	errs, err := im.t.ApplyBulk(im.ctx, rows, muts)
	batch := im.batch
	im.batch, im.batchCells, im.batchBytes = im.batch[:0:0], 0, 0
	if err != nil {
		return err
	}
	var first error
	for i, e := range batch {
		if errs == nil || errs[i] == nil {
			im.written += int64(e.cells)
			im.p.Add(e.cells)
			continue
		}
		lerr := &lineError{e.first, errs[i]}
		if e.last != e.first {
			lerr.err = fmt.Errorf("(row of lines %d-%d) %w", e.first, e.last, errs[i])
		}
		if !im.skipBad || !rejected(errs[i]) {
			if first == nil {
				first = lerr
			}
			continue
		}
		im.skipped += int64(e.cells)
		if im.firstBad == nil {
			im.firstBad = lerr
		}
	}
	return first
}

// rejected reports whether a server refused an entry for its content (as
// opposed to being unreachable).
func rejected(err error) bool {
	return errors.Is(err, client.ErrInvalidArgument) || errors.Is(err, client.ErrLimit) || errors.Is(err, client.ErrUnknownFamily)
}

var errLineTooLong = errors.New("line too long")

// readLine returns the next line without its newline (a last line without
// one is still a line), io.EOF at the end, and errLineTooLong (having
// skipped the rest of the line) for a line over importMaxLineBytes.
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > importMaxLineBytes {
			for err == bufio.ErrBufferFull {
				_, err = r.ReadSlice('\n')
			}
			if err != nil && err != io.EOF {
				return nil, err
			}
			return nil, errLineTooLong
		}
		line = append(line, chunk...)
		switch err {
		case nil:
			return bytes.TrimSuffix(line, []byte("\n")), nil
		case bufio.ErrBufferFull:
			continue
		case io.EOF:
			if len(line) == 0 {
				return nil, io.EOF
			}
			return line, nil
		default:
			return nil, err
		}
	}
}
