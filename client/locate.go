package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"

	"cellar/internal/metadata"
	datapb "cellar/proto/cellar/data/v1"
	tabletpb "cellar/proto/cellar/tablet/v1"
)

// The location cache (Bigtable §5.1).
//
// For each table the client keeps an ordered set of the tablets it knows:
// start and end row, tablet id and the serving server's address. A lookup
// of (table T, row r) that misses reads METADATA, which is itself located
// the same way:
//
//   - T == 0 and r < TableEnd(0): the ROOT tablet, whose location is the
//     lock node /cellar/root;
//   - otherwise the first METADATA row at or after SearchKey(T, r), read
//     from the METADATA tablet holding that key (located recursively: the
//     META tablets' rows live in the root tablet; T == 0 with a row past
//     the root's range is such a lookup, of a META tablet), going on into
//     the next META tablet if that one ends first. The read fetches up to
//     prefetchRows following rows of T too, and caches all of them.
//
// Entries are dropped when a server answers NOT_SERVING or cannot be
// reached; the next lookup reads METADATA again. A METADATA row without a
// location (the tablet is being reassigned) makes the lookup wait with
// backoff. Entries are never refreshed otherwise: a stale entry costs one
// NOT_SERVING round trip.

// prefetchRows is how many METADATA rows a lookup reads at once.
const prefetchRows = 100

// tabletLoc is one cached tablet. Immutable once cached.
type tabletLoc struct {
	table, tablet uint64
	start, end    []byte // end nil: unbounded
	serverID      string
	addr          string
}

func (l *tabletLoc) contains(row []byte) bool { return metadata.Contains(l.start, l.end, row) }

func (l *tabletLoc) String() string {
	return fmt.Sprintf("table %d tablet %d [%q,%q) at %s", l.table, l.tablet, l.start, l.end, l.addr)
}

// locCache is the per-table ordered set of known tablets. Safe for
// concurrent use.
type locCache struct {
	mu     sync.Mutex
	root   *tabletLoc
	tables map[uint64][]*tabletLoc // sorted by start, non-overlapping
}

func newLocCache() *locCache { return &locCache{tables: map[uint64][]*tabletLoc{}} }

// lookup returns the cached tablet of table holding row, or nil.
func (lc *locCache) lookup(table uint64, row []byte) *tabletLoc {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if table == metadata.TableID && bytes.Compare(row, metadata.TableEnd(metadata.TableID)) < 0 {
		return lc.root
	}
	ts := lc.tables[table]
	// The last tablet starting at or before row.
	i := sort.Search(len(ts), func(i int) bool { return bytes.Compare(ts[i].start, row) > 0 }) - 1
	if i >= 0 && ts[i].contains(row) {
		return ts[i]
	}
	return nil
}

// insert caches l, dropping entries it overlaps.
func (lc *locCache) insert(l *tabletLoc) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	ts := lc.tables[l.table]
	out := make([]*tabletLoc, 0, len(ts)+1)
	for _, e := range ts {
		overlaps := (l.end == nil || bytes.Compare(e.start, l.end) < 0) && (e.end == nil || bytes.Compare(l.start, e.end) < 0)
		if !overlaps {
			out = append(out, e)
		}
	}
	i := sort.Search(len(out), func(i int) bool { return bytes.Compare(out[i].start, l.start) > 0 })
	out = slices.Insert(out, i, l)
	lc.tables[l.table] = out
}

func (lc *locCache) setRoot(l *tabletLoc) {
	lc.mu.Lock()
	lc.root = l
	lc.mu.Unlock()
}

// invalidate drops l if it is still cached.
func (lc *locCache) invalidate(l *tabletLoc) {
	if l == nil {
		return
	}
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if lc.root == l {
		lc.root = nil
		return
	}
	ts := lc.tables[l.table]
	if i := slices.Index(ts, l); i >= 0 {
		lc.tables[l.table] = slices.Delete(ts, i, i+1)
	}
}

func (lc *locCache) dropTable(table uint64) {
	lc.mu.Lock()
	delete(lc.tables, table)
	lc.mu.Unlock()
}

// size is the number of cached tablets of table (tests).
func (lc *locCache) size(table uint64) int {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	return len(lc.tables[table])
}

// errRetryLocate marks a lookup failure worth retrying after a backoff
// (unassigned tablet, METADATA server not serving or unreachable,
// METADATA mid-split).
var errRetryLocate = errors.New("cellar/client: location not available yet")

// maxQuickRelocations bounds how many times in a row one call retries at
// once, without a backoff, after NOT_SERVING (see relocated): enough for a
// tablet that moved, split or merged, not a busy loop between servers that
// disagree about who serves a row.
const maxQuickRelocations = 3

// relocated drops a location a server refused with NOT_SERVING and looks
// the row up again. It reports whether the row now lives at another server
// (the tablet moved and METADATA already says where): the caller may then
// retry there at once instead of after a backoff, which would only add to
// the time the move looks unavailable. When METADATA still names the
// refusing server (the new assignment not yet recorded), or the lookup
// fails, the caller backs off as usual.
func (c *Client) relocated(ctx context.Context, refused *tabletLoc, row []byte) bool {
	c.cache.invalidate(refused)
	l, err := c.locate(ctx, refused.table, row)
	return err == nil && l.addr != refused.addr
}

// locate returns the tablet of table holding row (row "": the first
// tablet), from the cache or METADATA, retrying transient failures with
// backoff until ctx ends.
func (c *Client) locate(ctx context.Context, table uint64, row []byte) (*tabletLoc, error) {
	b := c.newBackoff()
	for {
		if l := c.cache.lookup(table, row); l != nil {
			return l, nil
		}
		if c.closed.Load() {
			return nil, ErrClosed
		}
		var (
			l   *tabletLoc
			err error
		)
		if table == metadata.TableID && bytes.Compare(row, metadata.TableEnd(metadata.TableID)) < 0 {
			l, err = c.readRoot(ctx)
		} else {
			l, err = c.readMeta(ctx, table, row)
		}
		if err == nil {
			return l, nil
		}
		if !errors.Is(err, errRetryLocate) {
			return nil, err
		}
		c.log.Debug("tablet location not available; retrying", "table", table, "row", row, "err", err)
		if werr := b.wait(ctx); werr != nil {
			return nil, fmt.Errorf("cellar/client: locate table %d row %q: %w: %w (last error: %v)", table, row, ErrUnavailable, werr, err)
		}
	}
}

// readRoot reads the root tablet's location from /cellar/root.
func (c *Client) readRoot(ctx context.Context) (*tabletLoc, error) {
	n, found, err := c.lock.Get(ctx, rootNode)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: read %s: %v", errRetryLocate, rootNode, err)
	}
	if !found || len(n.Content) == 0 {
		return nil, fmt.Errorf("%w: root tablet unassigned", errRetryLocate)
	}
	id, addr, err := metadata.DecodeLocation(n.Content)
	if err != nil || addr == "" {
		return nil, fmt.Errorf("%w: bad %s content: %v", errRetryLocate, rootNode, err)
	}
	l := &tabletLoc{table: metadata.TableID, tablet: 1, end: metadata.TableEnd(metadata.TableID), serverID: id, addr: addr}
	c.cache.setRoot(l)
	return l, nil
}

// searchKey is where the METADATA scan for (table, row) starts; row ""
// means the table's first tablet.
func searchKey(table uint64, row []byte) []byte {
	if len(row) == 0 {
		return metadata.TableStart(table)
	}
	return metadata.SearchKey(table, row)
}

// maxMetaHops bounds the METADATA tablets one lookup reads in turn.
const maxMetaHops = 64

// readMeta reads the METADATA rows of table from the one holding row on,
// caches them and returns the tablet holding row.
//
// METADATA is split into several META tablets, and the row holding row
// may be the first of the META tablet after the one holding the search
// key (a META tablet ends at some row's key: the rows of table after the
// search key may all be in the next one). A read that the METADATA
// tablet cut short at its end without finding a row goes on from that
// end, which the serving tablet reports (not the cached entry's end, which
// a META split may have made stale).
func (c *Client) readMeta(ctx context.Context, table uint64, row []byte) (*tabletLoc, error) {
	sk := searchKey(table, row)
	tableEnd := metadata.TableEnd(table)
	start := sk
	var rows []*datapb.Row
	for hop := 0; ; hop++ {
		meta, err := c.locate(ctx, metadata.TableID, start)
		if err != nil {
			return nil, err
		}
		cl, err := c.tabletClient(meta.addr)
		if err != nil {
			return nil, err
		}
		req := &tabletpb.ReadRowsRequest{
			TableId:   metadata.TableID,
			Rows:      &datapb.RowSet{RowRanges: []*datapb.RowRange{{StartKey: start, EndKey: tableEnd}}},
			Filter:    &datapb.RowFilter{Filter: &datapb.RowFilter_CellsPerColumnLimitFilter{CellsPerColumnLimitFilter: 1}},
			RowsLimit: prefetchRows,
		}
		var resume []byte
		rows, resume, err = readRange(ctx, cl, req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if isNotServing(err) || isUnavailable(err) {
				c.cache.invalidate(meta)
				return nil, fmt.Errorf("%w: METADATA %v: %v", errRetryLocate, meta, err)
			}
			return nil, fmt.Errorf("cellar/client: read METADATA from %v: %w", meta, err)
		}
		if len(rows) > 0 || resume == nil || bytes.Compare(resume, tableEnd) >= 0 {
			break
		}
		if bytes.Compare(resume, start) <= 0 || hop == maxMetaHops {
			return nil, fmt.Errorf("%w: METADATA tablet %v ends at %x, reading from %x", errRetryLocate, meta, resume, start)
		}
		start = resume
	}
	var first *tabletLoc
	var prevEnd []byte // the previous row's end row, for rows without start_row
	for i, r := range rows {
		t, endRow, err := metadata.ParseRowKey(r.Key)
		if err != nil {
			return nil, fmt.Errorf("cellar/client: METADATA row %q: %w", r.Key, err)
		}
		if t != table {
			break
		}
		var desc *datapb.TabletDescriptor
		var loc []byte
		for _, cell := range r.Cells {
			if cell.Family != metadata.Family {
				continue
			}
			switch string(cell.Qualifier) {
			case metadata.QualTablet:
				if desc == nil {
					if desc, err = metadata.DecodeTablet(cell.Value); err != nil {
						return nil, fmt.Errorf("cellar/client: METADATA row %q: %w", r.Key, err)
					}
				}
			case metadata.QualLocation:
				if loc == nil {
					loc = cell.Value
				}
			}
		}
		if desc == nil {
			if i == 0 {
				return nil, fmt.Errorf("%w: METADATA row %q has no %s:%s", errRetryLocate, r.Key, metadata.Family, metadata.QualTablet)
			}
			break
		}
		start := desc.StartRow
		if len(start) == 0 && i > 0 {
			start = prevEnd
		}
		l := &tabletLoc{table: table, tablet: desc.TabletId, start: bytes.Clone(start), end: bytes.Clone(endRow)}
		if len(l.end) == 0 {
			l.end = nil
		}
		prevEnd = l.end
		if i == 0 && !l.contains(row) {
			return nil, fmt.Errorf("%w: METADATA row %q [%q,%q) does not hold row %q (split in progress?)",
				errRetryLocate, r.Key, l.start, l.end, row)
		}
		if len(loc) > 0 {
			if l.serverID, l.addr, err = metadata.DecodeLocation(loc); err != nil || l.addr == "" {
				l.addr = ""
			}
		}
		if l.addr == "" {
			if i == 0 {
				return nil, fmt.Errorf("%w: tablet %d of table %d is unassigned", errRetryLocate, l.tablet, table)
			}
			continue
		}
		c.cache.insert(l)
		if i == 0 {
			first = l
		}
		if l.end == nil {
			break
		}
	}
	if first == nil {
		return nil, fmt.Errorf("%w: table id %d has no tablets in METADATA", ErrTableNotFound, table)
	}
	return first, nil
}

// readRange reads a whole (small) ReadRows stream of one range, and
// returns where the serving tablet cut it short (its end row; nil if the
// range was read to its end or to the end of the table).
func readRange(ctx context.Context, cl tabletpb.TabletServerClient, req *tabletpb.ReadRowsRequest) (rows []*datapb.Row, resume []byte, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := cl.ReadRows(ctx, req)
	if err != nil {
		return nil, nil, wireErr(err)
	}
	for {
		resp, err := st.Recv()
		if err == io.EOF {
			return rows, resume, nil
		}
		if err != nil {
			return nil, nil, wireErr(err)
		}
		rows = append(rows, resp.Rows...)
		if resp.TabletEnd && len(resp.ResumeKey) > 0 {
			resume = resp.ResumeKey
		}
	}
}
