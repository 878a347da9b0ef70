package tablet

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"cellar/internal/keys"
	"cellar/sstable"
)

// Cell is one version of a column.
type Cell struct {
	Family    string
	Qualifier []byte
	Timestamp int64 // µs
	Value     []byte
}

// Row is a row's cells in the cell order: family, qualifier ascending,
// timestamp descending.
type Row struct {
	Key   []byte
	Cells []Cell
}

// Column names one column.
type Column struct {
	Family    string
	Qualifier []byte
}

// ReadOptions filters what a read returns; the zero value returns every
// visible version of every family that the GC policy keeps.
type ReadOptions struct {
	// Families and Columns select cells: with neither, all of them; else a
	// cell is returned when its family is in Families or its column is in
	// Columns.
	Families []string
	Columns  []Column
	// TimeRange keeps versions with timestamps in [Start, End) (End 0 =
	// unbounded).
	TimeRange keys.TimeRange
	// MaxVersions keeps the newest n versions per column within TimeRange
	// (0 = all).
	MaxVersions int
}

// ScanOptions selects the rows of a Scan.
type ScanOptions struct {
	// Start and End bound the rows: [Start, End) intersected with the
	// tablet's range; nil = unbounded.
	Start, End []byte
	Read       ReadOptions
	// Limit stops the scan after this many rows (0 = no limit).
	Limit int
	// NoCacheFill: blocks the scan finds outside the block cache are read
	// into the scan's own buffers and not added to the cache, as HBase's
	// Scan.setCacheBlocks(false). Without it a scan adds the first
	// scanMaxFill blocks it misses in each SSTable (so short scans are
	// cached) and reads past the cache after that, so that a scan of more
	// data than the cache holds neither evicts what point reads need nor
	// allocates a block per read.
	NoCacheFill bool
	// Reuse lets Scan hand fn the same Row, and the same memory for its
	// key, qualifiers and values, row after row: what fn is given is valid
	// only until fn returns, and fn copies what it keeps. It saves every
	// row's allocations for callers that consume a row at once.
	Reuse bool
}

// scanMaxFill is how many missing blocks of each SSTable a scan adds to the
// block cache before it reads past the cache (ScanOptions.NoCacheFill).
const scanMaxFill = 16

// readPlan is a validated ReadOptions.
type readPlan struct {
	families []string        // families to read, sorted
	sel      map[string]bool // the same as a set
	all      map[string]bool // families read whole
	columns  map[string]bool // family + "\x00" + qualifier
	tr       keys.TimeRange
	maxVer   int
}

func (t *Tablet) plan(ro *ReadOptions) (*readPlan, error) {
	if ro != nil && (len(ro.Families) > 0 || len(ro.Columns) > 0) {
		return t.makePlan(ro)
	}
	// Reading whole rows: the selection maps of the zero ReadOptions' plan
	// are made once and shared (plans are read-only).
	t.allPlanOnce.Do(func() { t.allPlan, _ = t.makePlan(&ReadOptions{}) })
	if ro == nil || (ro.TimeRange == (keys.TimeRange{}) && ro.MaxVersions == 0) {
		return t.allPlan, nil
	}
	if ro.MaxVersions < 0 || ro.TimeRange.Start < 0 || ro.TimeRange.End < 0 {
		return nil, fmt.Errorf("%w: negative read option", keys.ErrInvalid)
	}
	p := *t.allPlan
	p.tr, p.maxVer = ro.TimeRange, ro.MaxVersions
	return &p, nil
}

func (t *Tablet) makePlan(ro *ReadOptions) (*readPlan, error) {
	p := &readPlan{all: map[string]bool{}, tr: ro.TimeRange, maxVer: ro.MaxVersions}
	if ro.MaxVersions < 0 || ro.TimeRange.Start < 0 || ro.TimeRange.End < 0 {
		return nil, fmt.Errorf("%w: negative read option", keys.ErrInvalid)
	}
	check := func(f string) error {
		if t.fam[f] == nil {
			return fmt.Errorf("%w: %q", ErrUnknownFamily, f)
		}
		return nil
	}
	sel := map[string]bool{}
	if len(ro.Families) == 0 && len(ro.Columns) == 0 {
		for _, f := range t.lim.families {
			p.all[f], sel[f] = true, true
		}
	}
	for _, f := range ro.Families {
		if err := check(f); err != nil {
			return nil, err
		}
		p.all[f], sel[f] = true, true
	}
	for _, c := range ro.Columns {
		if err := check(c.Family); err != nil {
			return nil, err
		}
		if p.columns == nil {
			p.columns = map[string]bool{}
		}
		p.columns[c.Family+"\x00"+string(c.Qualifier)] = true
		sel[c.Family] = true
	}
	p.families, p.sel = sortedKeys(sel), sel
	return p, nil
}

// rowAssembler turns the merged entries of a key range into rows: the
// resolver decides what is visible, then the family's GC policy, the
// column selection, the time range and MaxVersions filter it.
type rowAssembler struct {
	t       *Tablet
	p       *readPlan
	res     *resolver
	now     int64
	rowPfx  []byte // row prefix of the row being assembled
	row     *Row
	col     []byte // column prefix of the last reported version
	ncol    int    // versions kept in col
	famPfx  []byte // family prefix of the last entry
	famName []byte // that family's name as in the key
	famSeen bool   // famName, fam, famOK and gc are set
	fam     string // that family's name (the schema's string: no allocation per cell)
	famOK   bool   // whether that family is selected
	famAll  bool   // whether it is read whole (else by column)
	gc      GCPolicy
	// With reuse, rows alternate between two slots, each with an arena
	// holding its key, qualifiers and values: the row handed out lives in
	// one while the next is assembled in the other.
	reuse  bool
	slots  [2]Row
	arenas [2][]byte
	cur    int
	// scratch holds ReadRow's row and family prefixes between reads.
	scratch [2][]byte
}

// assemblers keeps row assemblers, with their resolvers and scratch
// buffers, between reads: a point read would otherwise allocate each anew.
var assemblers = sync.Pool{New: func() any { return &rowAssembler{res: &resolver{}} }}

func (t *Tablet) newAssembler(p *readPlan, snap keys.SeqNum) *rowAssembler {
	a := assemblers.Get().(*rowAssembler)
	res := a.res
	*res = resolver{snap: snap, fam: res.fam[:0], col: res.col[:0], colDels: res.colDels[:0]}
	*a = rowAssembler{t: t, p: p, res: res, now: t.opts.Clock.Now().UnixMicro(),
		rowPfx: a.rowPfx[:0], col: a.col[:0], famPfx: a.famPfx[:0], famName: a.famName[:0],
		scratch: [2][]byte{a.scratch[0][:0], a.scratch[1][:0]}}
	return a
}

// release hands a back for reuse. Rows it returned stay valid: without
// Reuse they own their memory; with Reuse they were valid only until the
// scan's callback returned, and their arenas are dropped, not pooled.
func (a *rowAssembler) release() {
	a.t, a.p, a.row = nil, nil, nil
	a.slots, a.arenas = [2]Row{}, [2][]byte{}
	assemblers.Put(a)
}

// add consumes one entry. When the entry begins a new row, the finished
// previous row (if it has cells) is returned.
func (a *rowAssembler) add(key, value []byte) (*Row, error) {
	var done *Row
	rp := keys.RowPrefixLen(key)
	if rp < 0 {
		return nil, fmt.Errorf("%w: malformed key %x", ErrCorrupt, key)
	}
	if !bytes.Equal(key[:rp], a.rowPfx) {
		done = a.finish()
		a.rowPfx = append(a.rowPfx[:0], key[:rp]...)
	}
	fp := keys.FamilyPrefixLenAt(key, rp)
	if fp <= rp {
		return done, fmt.Errorf("%w: malformed key %x", ErrCorrupt, key)
	}
	if !bytes.Equal(key[:fp], a.famPfx) {
		a.famPfx = append(a.famPfx[:0], key[:fp]...)
		// Rows usually hold the same few families: look the schema up
		// only when the name changes, not on every row.
		if name := key[rp : fp-1]; !a.famSeen || !bytes.Equal(name, a.famName) {
			a.famName, a.famSeen = append(a.famName[:0], name...), true
			if f := a.t.fam[string(name)]; f != nil {
				a.fam, a.gc = f.Name, f.GC
				a.famOK, a.famAll = a.p.sel[f.Name], a.p.all[f.Name]
			} else {
				a.fam, a.famOK, a.famAll = string(name), false, false
			}
		}
	}
	if !a.famOK {
		return done, nil
	}
	v, visible, err := a.res.addAt(key, value, fp)
	if err != nil || !visible || a.gc.Garbage(v.idx, v.ts, a.now) || !a.p.tr.Contains(v.ts) {
		return done, err
	}
	qual, err := keys.QualifierAt(key, fp)
	if err != nil {
		return done, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if !a.famAll && !a.p.columns[a.fam+"\x00"+string(qual)] {
		return done, nil
	}
	col := key[:len(key)-keys.TrailerLen]
	if !bytes.Equal(col, a.col) {
		a.col, a.ncol = append(a.col[:0], col...), 0
	}
	if a.p.maxVer > 0 && a.ncol >= a.p.maxVer {
		return done, nil
	}
	a.ncol++
	if a.row == nil {
		row, err := keys.RowAt(key)
		if err != nil {
			return done, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		if a.reuse {
			a.cur ^= 1
			r := &a.slots[a.cur]
			arena := append(a.arenas[a.cur][:0], row...)
			a.arenas[a.cur] = arena
			r.Key, r.Cells = arena[:len(row):len(row)], r.Cells[:0]
			a.row = r
		} else {
			a.row = &Row{Key: append([]byte{}, row...), Cells: make([]Cell, 0, 4)}
		}
	}
	// One buffer holds the cell's qualifier and value: a fresh allocation,
	// or with reuse the row's arena (a slice taken before the arena grows
	// keeps the old array, which stays valid).
	var buf []byte
	if a.reuse {
		arena := a.arenas[a.cur]
		off := len(arena)
		arena = append(append(arena, qual...), value...)
		a.arenas[a.cur] = arena
		buf = arena[off:len(arena):len(arena)]
	} else {
		buf = make([]byte, len(qual)+len(value))
		copy(buf, qual)
		copy(buf[len(qual):], value)
	}
	a.row.Cells = append(a.row.Cells, Cell{
		Family:    a.fam,
		Qualifier: buf[:len(qual):len(qual)],
		Timestamp: v.ts,
		Value:     buf[len(qual):],
	})
	return done, nil
}

// finish returns the row being assembled (nil if it has no cells) and
// starts over.
func (a *rowAssembler) finish() *Row {
	r := a.row
	a.row = nil
	return r
}

// ReadRow returns the row's visible cells selected by ro, or (nil, nil)
// when it has none. It reads a consistent snapshot: every Apply that
// returned before the call, all or nothing of any concurrent one.
func (t *Tablet) ReadRow(ctx context.Context, row []byte, ro *ReadOptions) (*Row, error) {
	if err := keys.ValidateRow(row); err != nil {
		return nil, err
	}
	if err := t.checkRow(row); err != nil {
		return nil, err
	}
	p, err := t.plan(ro)
	if err != nil {
		return nil, err
	}
	rs, snap, err := t.acquire()
	if err != nil {
		return nil, err
	}
	defer rs.unref()
	a := t.newAssembler(p, snap)
	defer a.release()
	rowPfx := keys.AppendRowPrefix(a.scratch[0], row)
	a.scratch[0] = rowPfx
	// With one column asked for, a table is consulted only if its filter
	// may hold that column or the family's delete marker, which sits at
	// the column with the empty qualifier (a row delete is one per family).
	var colPfx, markerPfx []byte
	if len(p.columns) == 1 && len(p.all) == 0 {
		for _, c := range ro.Columns {
			colPfx = keys.AppendColumnPrefix(nil, row, c.Family, c.Qualifier)
			markerPfx = keys.AppendColumnPrefix(nil, row, c.Family, nil)
		}
	}
	// Each family is a separate key range; a family's tables are consulted
	// only if their Bloom filter may hold the row.
	for _, fam := range p.families {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		children := t.memIters(rs)
		for _, tb := range rs.tables[fam] {
			if tb.r.MayContain(rowPfx) && (colPfx == nil || tb.r.MayContain(colPfx) || tb.r.MayContain(markerPfx)) {
				children = append(children, tb.newIter(sstable.IterOptions{}))
			}
		}
		famPfx := keys.AppendFamilyPrefix(a.scratch[1][:0], row, fam)
		a.scratch[1] = famPfx
		mi := newMergingIter(children)
		for ok := mi.SeekGE(famPfx); ok && bytes.HasPrefix(mi.Key(), famPfx); ok = mi.Next() {
			if _, err = a.add(mi.Key(), mi.Value()); err != nil {
				break
			}
		}
		if err == nil {
			err = mi.Error()
		}
		if cerr := mi.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("cellar/tablet: read row: %w", err)
		}
	}
	return a.finish(), nil
}

func (t *Tablet) memIters(rs *readState) []internalIterator {
	out := make([]internalIterator, 0, len(rs.mems)+4)
	for _, m := range rs.mems {
		if !m.m.Empty() {
			out = append(out, m.m.NewIter())
		}
	}
	return out
}

// Scan calls fn with each row of [so.Start, so.End) (within the tablet's
// range) that has selected cells, in row order, until fn returns false, the
// Limit is reached, or ctx ends. Each row is read atomically; the scan as a
// whole reads one snapshot taken at its start. fn may call the tablet's
// methods.
func (t *Tablet) Scan(ctx context.Context, so *ScanOptions, fn func(*Row) bool) error {
	if so == nil {
		so = &ScanOptions{}
	}
	if so.Limit < 0 {
		return fmt.Errorf("%w: negative limit", keys.ErrInvalid)
	}
	p, err := t.plan(&so.Read)
	if err != nil {
		return err
	}
	start, end := so.Start, so.End
	if t.opts.StartRow != nil && (start == nil || string(start) < string(t.opts.StartRow)) {
		start = t.opts.StartRow
	}
	if t.opts.EndRow != nil && (end == nil || string(end) > string(t.opts.EndRow)) {
		end = t.opts.EndRow
	}
	if start != nil && end != nil && string(start) >= string(end) {
		return nil
	}
	rs, snap, err := t.acquire()
	if err != nil {
		return err
	}
	defer rs.unref()
	children := t.memIters(rs)
	for _, fam := range p.families {
		for _, tb := range rs.tables[fam] {
			children = append(children, tb.newIter(sstable.IterOptions{NoCacheFill: so.NoCacheFill, MaxFill: scanMaxFill}))
		}
	}
	mi := newMergingIter(children)
	defer mi.Close()
	lo, hi := rowBounds(start, end)
	a := t.newAssembler(p, snap)
	defer a.release()
	a.reuse = so.Reuse
	rows := 0
	emit := func(r *Row) bool {
		if r == nil {
			return true
		}
		rows++
		return fn(r) && (so.Limit == 0 || rows < so.Limit)
	}
	ok := mi.seekLo(lo)
	for n := 0; ok; ok = mi.Next() {
		if n++; n%256 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if hi != nil && bytes.Compare(mi.Key(), hi) >= 0 {
			break
		}
		r, err := a.add(mi.Key(), mi.Value())
		if err != nil {
			return fmt.Errorf("cellar/tablet: scan: %w", err)
		}
		if !emit(r) {
			return nil
		}
	}
	if err := mi.Error(); err != nil {
		return fmt.Errorf("cellar/tablet: scan: %w", err)
	}
	emit(a.finish())
	return nil
}
