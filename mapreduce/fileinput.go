package mapreduce

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"cellar/dfs"
)

// FileFormat selects how FileInput reads and FileOutput writes files.
type FileFormat uint8

// File formats.
const (
	// FormatText is line-oriented text. Input: one record per line, the
	// key being the decimal byte offset of the line in its file ("0",
	// "42") and the value the line without its '\n' (a '\r' is kept).
	// Output: "key\tvalue\n" per record.
	FormatText FileFormat = iota + 1
	// FormatRecords is the binary record file format of the package doc:
	// length-prefixed (key, value) records, each with a CRC32C.
	FormatRecords
)

func (f FileFormat) String() string {
	switch f {
	case FormatText:
		return "text"
	case FormatRecords:
		return "records"
	}
	return "format(" + strconv.Itoa(int(f)) + ")"
}

// DefaultSplitSize is FileInput.SplitSize when zero: 64 MiB, as in the
// MapReduce paper (§3.1, "16 megabytes to 64 megabytes per piece").
const DefaultSplitSize = 64 << 20

// FileInput reads files on a dfs.FS as a job's input. It is a value; it is
// safe for concurrent use once built.
type FileInput struct {
	// FS holds the files (required).
	FS dfs.FS
	// Paths are files, or directories whose files (one level, sorted by
	// name, ignoring names that start with "_" or "." such as FileOutput's
	// "_SUCCESS") are read. Splits follow the order of Paths. Empty files
	// give no split. At least one path is required.
	Paths []string
	// Format of the files. Default FormatText.
	Format FileFormat
	// SplitSize is the size of a text split in bytes. Default
	// DefaultSplitSize. A line belongs to the split holding its first byte,
	// so no line is lost or read twice. Record files are not splittable:
	// one split per file.
	SplitSize int64
}

var (
	_ Input        = FileInput{}
	_ Split        = (*fileSplit)(nil)
	_ RecordReader = (*textReader)(nil)
	_ RecordReader = (*recordFileReader)(nil)
)

// Splits lists the input's splits. Errors from the FS are returned wrapped;
// a missing path is dfs.ErrNotFound.
func (in FileInput) Splits(ctx context.Context) ([]Split, error) {
	if in.FS == nil || len(in.Paths) == 0 {
		return nil, fmt.Errorf("%w: FileInput needs an FS and at least one path", ErrInvalidJob)
	}
	format := in.Format
	if format == 0 {
		format = FormatText
	}
	if format != FormatText && format != FormatRecords {
		return nil, fmt.Errorf("%w: FileInput format %v", ErrInvalidJob, format)
	}
	splitSize := in.SplitSize
	if splitSize == 0 {
		splitSize = DefaultSplitSize
	}
	if splitSize < 0 {
		return nil, fmt.Errorf("%w: FileInput SplitSize %d", ErrInvalidJob, splitSize)
	}
	var files []dfs.FileInfo
	for _, p := range in.Paths {
		st, err := in.FS.Stat(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("cellar/mapreduce: input %q: %w", p, err)
		}
		if !st.IsDir {
			st.Name = p
			files = append(files, st)
			continue
		}
		ents, err := in.FS.List(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("cellar/mapreduce: input %q: %w", p, err)
		}
		for _, e := range ents {
			if e.IsDir || strings.HasPrefix(e.Name, "_") || strings.HasPrefix(e.Name, ".") {
				continue
			}
			e.Name = dfs.Join(p, e.Name)
			files = append(files, e)
		}
	}
	var splits []Split
	for _, f := range files {
		if f.Size == 0 {
			continue
		}
		if format == FormatRecords {
			splits = append(splits, &fileSplit{fs: in.FS, name: f.Name, format: format, start: 0, end: f.Size})
			continue
		}
		for off := int64(0); off < f.Size; off += splitSize {
			splits = append(splits, &fileSplit{fs: in.FS, name: f.Name, format: format, start: off, end: min(off+splitSize, f.Size)})
		}
	}
	return splits, nil
}

// fileSplit is the byte range [start, end) of one file.
type fileSplit struct {
	fs         dfs.FS
	name       string
	format     FileFormat
	start, end int64
}

func (s *fileSplit) Description() string {
	return fmt.Sprintf("%v %s [%d, %d)", s.format, s.name, s.start, s.end)
}
func (s *fileSplit) Size() int64      { return s.end - s.start }
func (s *fileSplit) Location() string { return "" }

const readBufferSize = 64 << 10

func (s *fileSplit) Open(ctx context.Context) (RecordReader, error) {
	f, err := s.fs.Open(ctx, s.name)
	if err != nil {
		return nil, fmt.Errorf("cellar/mapreduce: open %s: %w", s.name, err)
	}
	size := f.Size()
	if s.format == FormatRecords {
		var h [headerSize]byte
		if _, err := f.ReadAt(h[:], 0); err != nil {
			f.Close()
			if errors.Is(err, io.EOF) || errors.Is(err, dfs.ErrPastEnd) {
				return nil, fmt.Errorf("%w: %s: %d-byte file has no header", ErrCorrupt, s.name, size)
			}
			return nil, fmt.Errorf("cellar/mapreduce: read %s: %w", s.name, err)
		}
		if err := checkHeader(h[:]); err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		br := bufio.NewReaderSize(io.NewSectionReader(f, headerSize, size-headerSize), readBufferSize)
		return &recordFileReader{f: f, name: s.name, dec: newRecordDecoder(br, size-headerSize, headerSize)}, nil
	}
	r := &textReader{f: f, name: s.name, pos: s.start, end: min(s.end, size)}
	// A small split needs no large buffer: its last line may run past the
	// end, but bufio then refills.
	bufSize := int(min(max(s.end-s.start, 4<<10), readBufferSize))
	if s.start > 0 {
		// The line holding byte start belongs to this split only if it
		// starts exactly at start, i.e. byte start-1 ends a line.
		var b [1]byte
		if _, err := f.ReadAt(b[:], s.start-1); err != nil {
			f.Close()
			return nil, fmt.Errorf("cellar/mapreduce: read %s: %w", s.name, err)
		}
		r.br = bufio.NewReaderSize(io.NewSectionReader(f, s.start, size-s.start), bufSize)
		if b[0] != '\n' {
			if _, err := r.readLine(); err != nil && err != io.EOF {
				f.Close()
				return nil, err
			}
		}
		return r, nil
	}
	r.br = bufio.NewReaderSize(io.NewSectionReader(f, 0, size), bufSize)
	return r, nil
}

type recordFileReader struct {
	f    dfs.ReadFile
	name string
	dec  *recordDecoder
}

func (r *recordFileReader) Next(ctx context.Context) (Record, error) {
	k, v, err := r.dec.next()
	if err != nil {
		if err == io.EOF {
			return Record{}, io.EOF
		}
		return Record{}, fmt.Errorf("%s: %w", r.name, err)
	}
	return Record{Key: k, Value: v}, nil
}

func (r *recordFileReader) Close() error { return r.f.Close() }

// textReader reads the lines starting in [pos, end) of one file.
type textReader struct {
	f    dfs.ReadFile
	name string
	br   *bufio.Reader
	pos  int64 // offset of the next line's first byte
	end  int64
	line []byte
	key  []byte
}

// readLine reads through the next '\n' (or EOF), returning the line without
// it and advancing pos; io.EOF if nothing is left.
func (r *textReader) readLine() ([]byte, error) {
	r.line = r.line[:0]
	for {
		chunk, err := r.br.ReadSlice('\n')
		if len(r.line)+len(chunk) > MaxRecordSize+1 {
			return nil, fmt.Errorf("%w: %s: line at offset %d longer than %d bytes", ErrRecordTooLarge, r.name, r.pos, MaxRecordSize)
		}
		r.line = append(r.line, chunk...)
		switch {
		case err == nil:
			r.pos += int64(len(r.line))
			return r.line[:len(r.line)-1], nil
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF:
			if len(r.line) == 0 {
				return nil, io.EOF
			}
			r.pos += int64(len(r.line))
			return r.line, nil
		default:
			return nil, fmt.Errorf("cellar/mapreduce: read %s: %w", r.name, err)
		}
	}
}

func (r *textReader) Next(ctx context.Context) (Record, error) {
	if r.pos >= r.end {
		return Record{}, io.EOF
	}
	start := r.pos
	line, err := r.readLine()
	if err != nil {
		return Record{}, err
	}
	r.key = strconv.AppendInt(r.key[:0], start, 10)
	return Record{Key: r.key, Value: line}, nil
}

func (r *textReader) Close() error { return r.f.Close() }
