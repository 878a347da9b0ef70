package mapreduce

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"

	"cellar/client"
)

// TableInput reads the rows of a Cellar table as a job's input (Bigtable
// §8, HBase's TableInputFormat): one split per tablet of the scanned range,
// each with the tablet's rows, its server's address (Split.Location) and an
// estimated size from SampleRowKeys.
//
// Each record's Key is the row key and Row its cells (Value is nil). The
// reader of a split scans it with client.ReadRows, which follows the rows
// across tablet moves and splits and resumes strictly after the last row it
// delivered; if a scan still gives up (no server answered within the
// client's call deadline, client.ErrUnavailable, or the deadline ended the
// scan), the reader starts a new scan strictly after the last row it
// returned, up to ResumeAttempts times. A split is thus read in
// key order with no row repeated or skipped, although its tablet moves or
// splits during the job. Splits are computed once, at job start: a tablet
// that split later is still read as the one split it was.
//
// A TableInput is a value; it is safe for concurrent use once built.
type TableInput struct {
	// Client is the cluster connection (required).
	Client *client.Client
	// Table is the table to read (required).
	Table string
	// Start and End bound the rows read to [Start, End); End "" is
	// unbounded.
	Start, End string
	// Families, if set, restricts the scan to these column families;
	// Splits fails with an error wrapping client.ErrUnknownFamily if one
	// is not in the table's schema.
	Families []string
	// MaxVersions, if positive, keeps only the newest MaxVersions versions
	// of each column. Default: every version the table holds.
	MaxVersions int
	// Filter, if set, is applied after Families and MaxVersions (chained):
	// columns, values, timestamps.
	Filter client.Filter
	// ResumeAttempts bounds how many times a split's reader restarts a
	// scan that gave up. Default 3.
	ResumeAttempts int
	// BatchRows is how many rows the reader's scan goroutine hands over at
	// a time (bounding the rows buffered ahead of the map function to two
	// batches). Default 64.
	BatchRows int
}

var (
	_ Input        = TableInput{}
	_ Split        = (*tableSplit)(nil)
	_ RecordReader = (*tableReader)(nil)
)

func (in TableInput) check() error {
	if in.Client == nil || in.Table == "" {
		return fmt.Errorf("%w: TableInput needs a Client and a Table", ErrInvalidJob)
	}
	if in.End != "" && in.End <= in.Start {
		return fmt.Errorf("%w: TableInput row range [%q, %q) is empty", ErrInvalidJob, in.Start, in.End)
	}
	if in.MaxVersions < 0 || in.ResumeAttempts < 0 || in.BatchRows < 0 {
		return fmt.Errorf("%w: TableInput: negative MaxVersions, ResumeAttempts or BatchRows", ErrInvalidJob)
	}
	return nil
}

// filter is the scan's filter: nil when everything is read.
func (in TableInput) filter() client.Filter {
	var fs []client.Filter
	if len(in.Families) > 0 {
		q := make([]string, len(in.Families))
		for i, f := range in.Families {
			q[i] = regexp.QuoteMeta(f)
		}
		fs = append(fs, client.FamilyFilter(strings.Join(q, "|")))
	}
	if in.MaxVersions > 0 {
		fs = append(fs, client.LatestNFilter(in.MaxVersions))
	}
	if in.Filter != nil {
		fs = append(fs, in.Filter)
	}
	switch len(fs) {
	case 0:
		return nil
	case 1:
		return fs[0]
	}
	return client.ChainFilters(fs...)
}

// Splits lists one split per tablet overlapping [Start, End), in row
// order. Errors: client.ErrTableNotFound, client.ErrUnknownFamily (a
// family in Families the table lacks), ErrInvalidJob, or the admin call's.
func (in TableInput) Splits(ctx context.Context) ([]Split, error) {
	if err := in.check(); err != nil {
		return nil, err
	}
	info, err := in.Client.Admin().TableInfo(ctx, in.Table)
	if err != nil {
		return nil, fmt.Errorf("cellar/mapreduce: table input %q: %w", in.Table, err)
	}
	have := map[string]bool{}
	for _, f := range info.Families {
		have[f.Name] = true
	}
	for _, f := range in.Families {
		if !have[f] {
			return nil, fmt.Errorf("cellar/mapreduce: table input %q: %w: family %q", in.Table, client.ErrUnknownFamily, f)
		}
	}
	tablets := slices.Clone(info.Tablets)
	slices.SortFunc(tablets, func(a, b client.TabletInfo) int { return strings.Compare(a.StartKey, b.StartKey) })
	sizes := tabletSizes(ctx, in.Client.Open(in.Table), tablets)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	filter := in.filter()
	var out []Split
	for i, t := range tablets {
		start, end := max(t.StartKey, in.Start), t.EndKey
		if in.End != "" && (end == "" || in.End < end) {
			end = in.End
		}
		if end != "" && end <= start {
			continue // the tablet is outside the range
		}
		out = append(out, &tableSplit{in: in, filter: filter, start: start, end: end,
			tablet: t.ID, addr: t.ServerAddr, size: sizes[i]})
	}
	return out, nil
}

// tabletSizes estimates each tablet's bytes from SampleRowKeys; zeros if
// the servers cannot say (the sizes only order and describe splits).
func tabletSizes(ctx context.Context, tbl *client.Table, tablets []client.TabletInfo) []int64 {
	sizes := make([]int64, len(tablets))
	samples, err := tbl.SampleRowKeys(ctx)
	if err != nil {
		return sizes
	}
	var prev int64
	for _, s := range samples {
		d := s.OffsetBytes - prev
		prev = s.OffsetBytes
		// A sample key k ends the chunk of rows < k (k "" is the table's
		// end): credit it to the tablet holding the rows just before k.
		i := tabletBefore(tablets, s.Key)
		if i >= 0 {
			sizes[i] += d
		}
	}
	return sizes
}

// tabletBefore returns the index of the tablet whose rows end at or include the
// key just before sample key k: start < k <= end ("" k or end: infinity).
func tabletBefore(tablets []client.TabletInfo, k string) int {
	for i, t := range tablets {
		if k == "" {
			if t.EndKey == "" {
				return i
			}
			continue
		}
		if k > t.StartKey && (t.EndKey == "" || k <= t.EndKey) {
			return i
		}
	}
	return -1
}

// tableSplit is the rows [start, end) of one tablet.
type tableSplit struct {
	in         TableInput
	filter     client.Filter
	start, end string
	tablet     uint64
	addr       string
	size       int64
}

func (s *tableSplit) Description() string {
	end := fmt.Sprintf("%q", s.end)
	if s.end == "" {
		end = "∞"
	}
	return fmt.Sprintf("table %s [%q, %s) tablet %d @ %s", s.in.Table, s.start, end, s.tablet, s.addr)
}
func (s *tableSplit) Size() int64      { return s.size }
func (s *tableSplit) Location() string { return s.addr }

// Open starts a scan goroutine that Close stops.
func (s *tableSplit) Open(ctx context.Context) (RecordReader, error) {
	batch := s.in.BatchRows
	if batch == 0 {
		batch = 64
	}
	resumes := s.in.ResumeAttempts
	if resumes == 0 {
		resumes = 3
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &tableReader{s: s, ch: make(chan []client.Row, 1), cancel: cancel, batch: batch, resumes: resumes}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(r.ch)
		r.err = r.scan(ctx)
	}()
	return r, nil
}

// tableReader hands the rows its scan goroutine reads to Next, in
// batches through a channel of capacity 1 (back-pressure: the goroutine
// blocks when the map function falls behind).
type tableReader struct {
	s       *tableSplit
	ch      chan []client.Row
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	batch   int
	resumes int
	err     error // set by the goroutine before it closes ch

	cur []client.Row
	i   int
	key []byte
}

func (r *tableReader) scan(ctx context.Context) error {
	tbl := r.s.in.Client.Open(r.s.in.Table)
	// A split reads its range once: its blocks would only evict the
	// serving reads' hot set from the block cache.
	opts := []client.ReadOption{client.NoBlockCache()}
	if r.s.filter != nil {
		opts = append(opts, client.RowFilter(r.s.filter))
	}
	start := r.s.start
	var last string
	have := false
	buf := make([]client.Row, 0, r.batch)
	send := func() bool {
		if len(buf) == 0 {
			return true
		}
		select {
		case r.ch <- buf:
			buf = make([]client.Row, 0, r.batch)
			return true
		case <-ctx.Done():
			return false
		}
	}
	for resumed := 0; ; resumed++ {
		err := tbl.ReadRows(ctx, client.NewRange(start, r.s.end), func(row client.Row) bool {
			buf = append(buf, row)
			last, have = row.Key(), true
			if len(buf) == r.batch {
				return send()
			}
			return true
		}, opts...)
		if err == nil {
			if !send() {
				return ctx.Err()
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return nil
		}
		// Resume after the client gave up on unavailable servers or ran
		// out of its own call deadline (the job's ctx is still live).
		transient := errors.Is(err, client.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
		if ctx.Err() != nil || !transient || resumed >= r.resumes {
			return fmt.Errorf("cellar/mapreduce: scan %s: %w", r.s.Description(), err)
		}
		// The scan gave up after its retries: start again strictly after
		// the last row returned (the smallest key above it is last+"\x00").
		if have {
			start = last + "\x00"
		}
	}
}

// Next returns the next row: Key is the row key, Row its cells.
func (r *tableReader) Next(ctx context.Context) (Record, error) {
	for r.i >= len(r.cur) {
		select {
		case b, ok := <-r.ch:
			if !ok {
				if r.err != nil {
					return Record{}, r.err
				}
				return Record{}, io.EOF
			}
			r.cur, r.i = b, 0
		case <-ctx.Done():
			return Record{}, ctx.Err()
		}
	}
	row := r.cur[r.i]
	r.cur[r.i] = nil
	r.i++
	r.key = append(r.key[:0], row.Key()...)
	return Record{Key: r.key, Row: row}, nil
}

// Close stops the scan and waits for its goroutine.
func (r *tableReader) Close() error {
	r.cancel()
	r.wg.Wait()
	return nil
}
