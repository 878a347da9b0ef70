package tabletserver

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"cellar/internal/metadata"
	"cellar/internal/serr"
	"cellar/tablet"
)

// The server-wide memtable budget (HBase's global memstore limit).
//
// Each tablet bounds its own memtables (MemtableSize, plus the immutable
// ones waiting for their flush), but a server holds many tablets: 500
// tablets each filling a 64 MiB memtable would need 32 GiB. The budget
// bounds their sum. memLoop sums every tablet's memtable bytes, several
// times a second (every memPollBusy while above the flush mark):
//
//   - above memFlushMark of the budget it flushes the tablets with the
//     largest active memtables, at most memMaxFlushes at once, until what
//     stays in memory once they finish is under memFlushTarget;
//   - at or above the budget, writes to user tables wait before they touch
//     a tablet (memGate) until the sum is below it again; a write whose
//     deadline passes while it waits fails with ErrOverloaded
//     (RESOURCE_EXHAUSTED), applied nowhere.
//
// METADATA writes never wait: they are small, and splits, merges and the
// master's assignments must go on while user writes are held back.
// The bound is soft: writes admitted before the loop saw the sum cross the
// budget still land, at most one poll interval of them.
const (
	memFlushMark   = 0.9
	memFlushTarget = 0.7
	memPollIdle    = 100 * time.Millisecond
	memPollBusy    = 10 * time.Millisecond
	memMaxFlushes  = 4
	// memMinFlush: a tablet whose active memtable holds less is not
	// worth a flush of its own.
	memMinFlush = 64 << 10
)

// DefaultMemtableBudget is Options.MemtableBudget's default.
const DefaultMemtableBudget int64 = 1 << 30

// memGate holds user writes back while the server is over its budget.
type memGate struct {
	over atomic.Bool
	mu   sync.Mutex
	// clear is closed (and replaced) when the server goes back under.
	clear chan struct{}
}

func newMemGate() *memGate { return &memGate{clear: make(chan struct{})} }

func (g *memGate) set(over bool) {
	if g.over.Load() == over {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.over.Store(over)
	if !over {
		close(g.clear)
		g.clear = make(chan struct{})
	}
}

// admitWrite waits, for a write to a user table, while the server's
// memtables are over budget.
func (s *Server) admitWrite(ctx context.Context, table uint64) error {
	g := s.mem
	if table == metadata.TableID || !g.over.Load() {
		return nil
	}
	g.mu.Lock()
	if !g.over.Load() {
		g.mu.Unlock()
		return nil
	}
	ch := g.clear
	g.mu.Unlock()
	s.memStalls.Add(1)
	// Answer a little before the caller's deadline, so that it learns
	// why (and that nothing was applied) rather than only that its time
	// ran out.
	var timeout <-chan time.Time
	if d, ok := ctx.Deadline(); ok {
		left := time.Until(d)
		t := time.NewTimer(left - min(left/10, 50*time.Millisecond))
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-ch:
		return nil
	case <-timeout:
	case <-ctx.Done():
	}
	return fmt.Errorf("%w: held back until the deadline: the server's memtables are over their budget of %d bytes and flushes have not freed enough yet",
		serr.ErrOverloaded, s.opts.MemtableBudget)
}

// memLoop enforces the budget until the server stops.
func (s *Server) memLoop() {
	flushing := map[uint64]int64{} // tablet id → bytes its flush will free
	done := make(chan uint64, memMaxFlushes)
	wait := memPollIdle
	var lastWarn time.Time
	for {
		select {
		case <-s.bgCtx.Done():
			s.mem.set(false)
			return
		case id := <-done:
			delete(flushing, id)
		case <-time.After(wait):
		}
		total, cands := s.memUsage(flushing)
		budget := s.opts.MemtableBudget
		s.memBytes.Store(total)
		s.mem.set(total >= budget)
		wait = memPollIdle
		if float64(total) < memFlushMark*float64(budget) {
			continue
		}
		wait = memPollBusy
		leaving := int64(0)
		for _, n := range flushing {
			leaving += n
		}
		for _, c := range cands {
			if len(flushing) >= memMaxFlushes || float64(total-leaving) < memFlushTarget*float64(budget) {
				break
			}
			flushing[c.id] = c.active
			leaving += c.active
			s.memFlushes.Add(1)
			e := c.e
			s.spawn(func() {
				if err := e.t.Flush(s.bgCtx); err != nil && s.bgCtx.Err() == nil && !errors.Is(err, tablet.ErrClosed) {
					s.logger.Warn("memtable budget: flush", "tablet", e.desc.GetTabletId(), "err", err)
				}
				done <- e.desc.GetTabletId()
			})
		}
		if total >= budget && time.Since(lastWarn) > 10*time.Second {
			lastWarn = time.Now()
			s.logger.Warn("memtables over the server's budget: user writes held back until flushes free memory",
				"memtable_bytes", total, "budget", budget, "flushing", len(flushing))
		}
	}
}

type memCandidate struct {
	e      *entry
	id     uint64
	active int64
}

// memUsage sums the memtable bytes of every tablet and lists the tablets
// worth flushing (not flushing already), largest active memtable first.
func (s *Server) memUsage(flushing map[uint64]int64) (int64, []memCandidate) {
	var total int64
	var cands []memCandidate
	for _, e := range s.snapshot() {
		active, all := e.t.MemtableBytes()
		total += all
		id := e.desc.GetTabletId()
		if _, busy := flushing[id]; !busy && active >= memMinFlush {
			cands = append(cands, memCandidate{e: e, id: id, active: active})
		}
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].active > cands[j].active })
	return total, cands
}
