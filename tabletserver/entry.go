package tabletserver

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"cellar/internal/serr"
	datapb "cellar/proto/cellar/data/v1"
	"cellar/tablet"
)

// pauseWait bounds how long a request waits for a tablet that is briefly
// not admitting requests (a split or schema change switching it over)
// before it fails with serr.ErrNotServing.
const pauseWait = 2 * time.Second

type entryState uint8

const (
	stateServing entryState = iota // admitting requests
	statePaused                    // switching over: requests wait (bounded)
	stateClosed                    // gone: requests fail with NOT_SERVING
)

// entry is one loaded tablet. desc, schema, fams and t never change: a
// schema change or a split replaces the entry with new ones.
type entry struct {
	desc   *datapb.TabletDescriptor
	schema *datapb.TableSchema
	fams   []tablet.FamilyOptions
	t      *tablet.Tablet

	// adminMu serializes management operations (unload, reopen, split,
	// compaction of a daughter) on the entry. Taken before mu.
	adminMu sync.Mutex

	// inherited: a split daughter that still lists its parent's SSTables
	// (its Stats bytes count whole parent files); not split automatically
	// until a major compaction has rewritten them.
	inherited atomic.Bool

	reads, writes atomic.Int64

	// mu guards the admission state.
	mu struct {
		sync.Mutex
		state    entryState
		inflight int
		// changed is closed (and replaced) whenever state changes or
		// inflight drops to zero.
		changed chan struct{}
		// rate counters over the last checker interval.
		lastReads, lastWrites int64
		lastAt                time.Time
		rps, wps              float64
	}
}

func newEntry(desc *datapb.TabletDescriptor, schema *datapb.TableSchema, fams []tablet.FamilyOptions, t *tablet.Tablet, now time.Time) *entry {
	e := &entry{desc: desc, schema: schema, fams: fams, t: t}
	e.mu.changed = make(chan struct{})
	e.mu.lastAt = now
	return e
}

func (e *entry) broadcastLocked() {
	close(e.mu.changed)
	e.mu.changed = make(chan struct{})
}

// admit counts a request in flight, waiting (at most until wait fires or
// ctx ends) while the entry is paused. retry reports that the entry changed
// state and the caller should look the row up again.
func (e *entry) admit(ctx context.Context, wait <-chan time.Time) (retry bool, err error) {
	e.mu.Lock()
	switch e.mu.state {
	case stateServing:
		e.mu.inflight++
		e.mu.Unlock()
		return false, nil
	case statePaused:
		ch := e.mu.changed
		e.mu.Unlock()
		select {
		case <-ch:
			return true, nil
		case <-wait:
			return false, fmt.Errorf("%w: tablet %d is switching over", serr.ErrNotServing, e.desc.GetTabletId())
		case <-ctx.Done():
			return false, ctx.Err()
		}
	default:
		e.mu.Unlock()
		return true, nil
	}
}

func (e *entry) done() {
	e.mu.Lock()
	e.mu.inflight--
	if e.mu.inflight == 0 {
		e.broadcastLocked()
	}
	e.mu.Unlock()
}

func (e *entry) setState(st entryState) {
	e.mu.Lock()
	e.mu.state = st
	e.broadcastLocked()
	e.mu.Unlock()
}

func (e *entry) state() entryState {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.mu.state
}

// waitIdle waits until no request is in flight on the entry (the caller has
// stopped admitting new ones).
func (e *entry) waitIdle(ctx context.Context) error {
	for {
		e.mu.Lock()
		if e.mu.inflight == 0 {
			e.mu.Unlock()
			return nil
		}
		ch := e.mu.changed
		e.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// contains reports whether row is in the entry's range.
func (e *entry) contains(row []byte) bool {
	if string(row) < string(e.desc.GetStartRow()) {
		return false
	}
	end := e.desc.GetEndRow()
	return len(end) == 0 || string(row) < string(end)
}

// size is the tablet's approximate bytes: SSTables plus memtables.
func (e *entry) size() int64 {
	st := e.t.Stats()
	n := st.MemtableBytes
	for _, f := range st.Families {
		n += f.Bytes
	}
	return n
}

// tick updates the per-second rates from the counters.
func (e *entry) tick(now time.Time) {
	r, w := e.reads.Load(), e.writes.Load()
	e.mu.Lock()
	defer e.mu.Unlock()
	if d := now.Sub(e.mu.lastAt).Seconds(); d > 0 {
		e.mu.rps = float64(r-e.mu.lastReads) / d
		e.mu.wps = float64(w-e.mu.lastWrites) / d
	}
	e.mu.lastReads, e.mu.lastWrites, e.mu.lastAt = r, w, now
}

func (e *entry) rates() (rps, wps float64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.mu.rps, e.mu.wps
}
