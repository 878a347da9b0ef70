package tabletserver

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"cellar/dfs"
	"cellar/internal/serr"
	"cellar/lock"
	"cellar/memtable"
	datapb "cellar/proto/cellar/data/v1"
	tabletpb "cellar/proto/cellar/tablet/v1"
	"cellar/tablet"
	"cellar/wal"
)

// Lock-service nodes (docs/serving.md).
const (
	serversDir = "/cellar/servers"
	masterNode = "/cellar/master"
)

const rowLockStripes = 1024

// Server lifecycle states.
const (
	runNew int32 = iota
	runServing
	runStopped
)

var _ tabletpb.TabletServerServer = (*Server)(nil)

// Server is one tablet server. It implements tabletpb.TabletServerServer;
// register it on a *grpc.Server. Safe for concurrent use.
type Server struct {
	tabletpb.UnimplementedTabletServerServer

	opts   Options
	logger *slog.Logger
	wal    *wal.Log

	run    atomic.Int32 // runNew, runServing, runStopped
	fenced atomic.Bool  // the lock session has been in jeopardy too long

	rowLocks   [rowLockStripes]sync.RWMutex
	compactSem chan struct{}
	// memPool recycles the arena chunks of flushed memtables across all
	// tablets (two idle memtables at most: bounded however many tablets
	// are served).
	memPool   *memtable.Pool
	splitPoke chan struct{}
	// mem holds user writes back while the memtables are over
	// MemtableBudget; memBytes, memStalls and memFlushes are its figures
	// (the sum at the last poll, writes held back, budget flushes).
	mem                             *memGate
	memBytes, memStalls, memFlushes atomic.Int64

	bgCtx    context.Context
	bgCancel context.CancelFunc
	wg       sync.WaitGroup
	killOnce sync.Once
	stopOnce sync.Once
	walOnce  sync.Once
	walErr   error

	// mu guards the tablet maps.
	mu struct {
		sync.RWMutex
		byID map[uint64]*entry
		// byTable lists each table's entries sorted by start row; ranges
		// never overlap.
		byTable map[uint64][]*entry
		// loading holds ids being opened (not yet served).
		loading map[uint64]bool
		// pinned holds ids of tablets that left this server without a
		// successful flush: their commit-log entries are kept.
		pinned map[uint64]bool
		seq    lock.Sequencer
		reg    bool // registered in the lock service
	}
}

// New prepares a server. It does not touch the file system, register or
// start background work until Start, which opens the shared commit log at
// servers/<id>/log after registering. Errors wrap
// ErrInvalidOptions or the wal's.
func New(ctx context.Context, opts Options) (*Server, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	o := opts.withDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	logger := o.Logger.With("component", "tabletserver", "server", o.ID)
	s := &Server{
		opts:       o,
		logger:     logger,
		compactSem: make(chan struct{}, o.MaxConcurrentCompactions),
		memPool:    memtable.NewPool(2),
		splitPoke:  make(chan struct{}, 1),
		mem:        newMemGate(),
	}
	s.bgCtx, s.bgCancel = context.WithCancel(context.Background())
	s.mu.byID = map[uint64]*entry{}
	s.mu.byTable = map[uint64][]*entry{}
	s.mu.loading = map[uint64]bool{}
	s.mu.pinned = map[uint64]bool{}
	return s, nil
}

func logDir(id string) string { return dfs.Join("servers", id, "log") }

// ID is the server's id.
func (s *Server) ID() string { return s.opts.ID }

// Start registers the server in the lock service (an ephemeral node
// /cellar/servers/<id> holding Addr, with its exclusive lock) and starts
// the session watcher (self-fencing), the commit-log releaser and the split
// checker. The server reads the lock client's States and Lost channels: no
// one else may read States.
func (s *Server) Start(ctx context.Context) error {
	if s.run.Load() != runNew {
		return fmt.Errorf("cellar/tabletserver: Start: %w", serr.ErrNotServing)
	}
	seq, err := s.opts.Lock.Register(ctx, serversDir, s.opts.ID, []byte(s.opts.Addr))
	if err != nil {
		return fmt.Errorf("cellar/tabletserver: register %s: %w", s.opts.ID, err)
	}
	// The commit log is created only once the server is registered: the
	// master treats a log directory whose server is not registered as a
	// dead server's and recovers it, fencing its files.
	l, err := wal.Open(ctx, s.opts.FS, &wal.Options{Dir: logDir(s.opts.ID), Logger: s.logger, Clock: s.opts.Clock, MaxFileSize: s.opts.walMaxFileSize})
	if err != nil {
		return fmt.Errorf("cellar/tabletserver: open commit log: %w", err)
	}
	s.wal = l
	s.mu.Lock()
	s.mu.seq, s.mu.reg = seq, true
	s.mu.Unlock()
	if !s.run.CompareAndSwap(runNew, runServing) {
		return fmt.Errorf("cellar/tabletserver: Start: %w", serr.ErrNotServing)
	}
	s.wg.Add(4)
	go func() { defer s.wg.Done(); s.watchSession() }()
	go func() { defer s.wg.Done(); s.memLoop() }()
	go func() { defer s.wg.Done(); s.releaseLoop() }()
	go func() { defer s.wg.Done(); s.splitLoop() }()
	s.logger.Info("tablet server started", "addr", s.opts.Addr)
	return nil
}

// serving reports whether the server may serve requests now: started, not
// stopped, not fenced, and the lock session's lease still valid.
func (s *Server) serving() bool {
	return s.run.Load() == runServing && !s.fenced.Load() && time.Now().Before(s.opts.Lock.ValidUntil())
}

func (s *Server) errNotServing() error {
	return fmt.Errorf("%w: server %s is not serving", serr.ErrNotServing, s.opts.ID)
}

// Close unloads every tablet (waits for its requests, flushes and closes
// it), stops background work, closes the commit log and deletes the
// server's lock node. It returns the errors met, joined.
func (s *Server) Close() error {
	var errs []error
	s.stopOnce.Do(func() {
		s.stop()
		s.bgCancel()
		s.wg.Wait()
		ctx := context.Background()
		for _, e := range s.snapshot() {
			e.adminMu.Lock()
			e.setState(stateClosed)
			_ = e.waitIdle(ctx)
			if err := e.t.Flush(ctx); err != nil {
				errs = append(errs, fmt.Errorf("flush tablet %d: %w", e.desc.GetTabletId(), err))
			}
			if err := e.t.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close tablet %d: %w", e.desc.GetTabletId(), err))
			}
			s.remove(e)
			e.adminMu.Unlock()
		}
		errs = append(errs, s.closeWAL())
		s.mu.Lock()
		reg := s.mu.reg
		s.mu.reg = false
		s.mu.Unlock()
		if reg {
			p := serversDir + "/" + s.opts.ID
			if err := s.opts.Lock.Release(ctx, p); err != nil && !errors.Is(err, lock.ErrSessionExpired) {
				errs = append(errs, fmt.Errorf("release %s: %w", p, err))
			}
			if err := s.opts.Lock.Delete(ctx, p); err != nil && !errors.Is(err, lock.ErrNotFound) && !errors.Is(err, lock.ErrSessionExpired) {
				errs = append(errs, fmt.Errorf("delete %s: %w", p, err))
			}
		}
		s.logger.Info("tablet server closed")
	})
	return errors.Join(errs...)
}

// Kill stops serving at once, as a crash would: tablets are closed without
// flushing (their data stays in the commit log), nothing is released in the
// lock service (the caller owns the lock client; closing it or letting its
// session expire frees the server's node). For tests. The commit log is
// closed (the wal has no abort), which writes entries already queued and
// seals the file; use memfs.CrashClone to see only what was synced.
func (s *Server) Kill() {
	s.stopOnce.Do(func() {
		s.stop()
		s.bgCancel()
		s.wg.Wait()
		s.killTablets()
	})
}

// killTablets closes every tablet without flushing and closes the log. Used
// by Kill and on session loss (from the watcher, which must not wait for
// the background group).
func (s *Server) killTablets() {
	s.killOnce.Do(func() {
		s.stop()
		for _, e := range s.snapshot() {
			e.setState(stateClosed)
			_ = e.t.Close()
			s.remove(e)
		}
		_ = s.closeWAL()
	})
}

// stop marks the server stopped (under mu, so that install and spawn see
// it consistently).
func (s *Server) stop() {
	s.mu.Lock()
	s.run.Store(runStopped)
	s.mu.Unlock()
}

// spawn runs fn in a goroutine that Close and Kill wait for, unless the
// server has stopped.
func (s *Server) spawn(fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.run.Load() == runStopped {
		return
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); fn() }()
}

func (s *Server) closeWAL() error {
	s.walOnce.Do(func() {
		if s.wal != nil {
			s.walErr = s.wal.Close()
		}
	})
	return s.walErr
}

// snapshot returns every loaded entry.
func (s *Server) snapshot() []*entry {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*entry, 0, len(s.mu.byID))
	for _, e := range s.mu.byID {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].desc.GetTabletId() < out[j].desc.GetTabletId() })
	return out
}

// lookup returns the entry serving (table, row), or nil.
func (s *Server) lookup(table uint64, row []byte) *entry {
	s.mu.RLock()
	defer s.mu.RUnlock()
	es := s.mu.byTable[table]
	i := sort.Search(len(es), func(i int) bool { return string(es[i].desc.GetStartRow()) > string(row) }) - 1
	if i < 0 || !es[i].contains(row) {
		return nil
	}
	return es[i]
}

// acquire admits a request for (table, row): it returns the entry serving
// the row with the request counted in flight (call e.done()), or an error
// wrapping serr.ErrNotServing.
func (s *Server) acquire(ctx context.Context, table uint64, row []byte) (*entry, error) {
	timer := s.opts.Clock.NewTimer(pauseWait)
	defer timer.Stop()
	for {
		if !s.serving() {
			return nil, s.errNotServing()
		}
		e := s.lookup(table, row)
		if e == nil {
			return nil, fmt.Errorf("%w: table %d row %q", serr.ErrNotServing, table, row)
		}
		retry, err := e.admit(ctx, timer.C())
		if err != nil {
			return nil, err
		}
		if !retry {
			return e, nil
		}
		if e.state() == stateClosed && s.lookup(table, row) == e {
			return nil, fmt.Errorf("%w: tablet %d is closing", serr.ErrNotServing, e.desc.GetTabletId())
		}
	}
}

// install replaces old (may be nil) by news in the maps and then marks old
// closed, so that requests waiting on old look up again and find news. If
// the server has stopped the new entries' tablets are closed instead and
// false is returned.
func (s *Server) install(old *entry, news ...*entry) bool {
	s.mu.Lock()
	if s.run.Load() == runStopped {
		s.mu.Unlock()
		for _, n := range news {
			_ = n.t.Close()
		}
		return false
	}
	if old != nil {
		s.removeLocked(old)
	}
	for _, n := range news {
		id, tbl := n.desc.GetTabletId(), n.desc.GetTableId()
		s.mu.byID[id] = n
		delete(s.mu.pinned, id)
		es := append(s.mu.byTable[tbl], n)
		sort.Slice(es, func(i, j int) bool { return string(es[i].desc.GetStartRow()) < string(es[j].desc.GetStartRow()) })
		s.mu.byTable[tbl] = es
	}
	s.mu.Unlock()
	if old != nil {
		old.setState(stateClosed)
	}
	return true
}

func (s *Server) remove(e *entry) {
	s.mu.Lock()
	s.removeLocked(e)
	s.mu.Unlock()
}

func (s *Server) removeLocked(e *entry) {
	id, tbl := e.desc.GetTabletId(), e.desc.GetTableId()
	if s.mu.byID[id] == e {
		delete(s.mu.byID, id)
	}
	es := s.mu.byTable[tbl]
	for i, x := range es {
		if x == e {
			es = append(es[:i:i], es[i+1:]...)
			break
		}
	}
	if len(es) == 0 {
		delete(s.mu.byTable, tbl)
	} else {
		s.mu.byTable[tbl] = es
	}
}

// lockRow locks the row-lock stripe of (table, row) exclusively (for a
// read-then-write: CheckAndMutate, ReadModifyWrite) and returns the unlock.
func (s *Server) lockRow(table uint64, row []byte) func() {
	m := &s.rowLocks[stripe(table, row)]
	m.Lock()
	return m.Unlock
}

// sharedLockRow locks the stripe shared, for a blind write: blind writes
// of one row run concurrently (the tablet orders them by sequence number
// and shares their commit-log sync), but not with a read-then-write, which
// must see every write acknowledged before it and none in flight.
func (s *Server) sharedLockRow(table uint64, row []byte) func() {
	m := &s.rowLocks[stripe(table, row)]
	m.RLock()
	return m.RUnlock
}

func stripe(table uint64, row []byte) int {
	h := fnv.New64a()
	var b [8]byte
	for i := range b {
		b[i] = byte(table >> (8 * i))
	}
	h.Write(b[:])
	h.Write(row)
	return int(h.Sum64() % rowLockStripes)
}

// tabletErr maps a tablet's errors for the wire: a tablet that is closed
// (split, unloaded) or a row outside it means the row is not served here.
func tabletErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, tablet.ErrClosed) || errors.Is(err, tablet.ErrRowOutOfRange) || errors.Is(err, wal.ErrClosed) ||
		errors.Is(err, tablet.ErrFenced) { // another server opened the tablet: the client relocates
		return fmt.Errorf("%w: %w", serr.ErrNotServing, err)
	}
	return err
}

// openTablet opens a tablet for desc on the shared log.
func (s *Server) openTablet(ctx context.Context, desc *datapb.TabletDescriptor, fams []tablet.FamilyOptions, recover []string) (*tablet.Tablet, error) {
	o := s.tabletOptions(desc, fams)
	o.RecoverLogDirs = recover
	return tablet.Open(ctx, o)
}

func (s *Server) tabletOptions(desc *datapb.TabletDescriptor, fams []tablet.FamilyOptions) *tablet.Options {
	o := &tablet.Options{
		FS:           s.opts.FS,
		Dir:          desc.GetDir(),
		ID:           tablet.ID(desc.GetTabletId()),
		Families:     fams,
		StartRow:     nilIfEmpty(desc.GetStartRow()),
		EndRow:       nilIfEmpty(desc.GetEndRow()),
		MemtableSize: s.opts.MemtableSize,
		Cache:        s.opts.Cache,
		Log:          s.wal,
		Clock:        s.opts.Clock,
		Logger:       s.logger.With("tablet", desc.GetTabletId()),
		// The tablets' own compactions share the server-wide bound with
		// CompactTablet requests and splits.
		CompactionLimiter: semLimiter(s.compactSem),
		MemtablePool:      s.memPool,
	}
	o.Events.FlushEnd = func(tablet.FlushInfo) { s.pokeSplit() }
	return o
}

// semLimiter is a tablet.Limiter over a channel semaphore.
type semLimiter chan struct{}

func (l semLimiter) Acquire(ctx context.Context) error {
	select {
	case l <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l semLimiter) Release() { <-l }

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func (s *Server) pokeSplit() {
	select {
	case s.splitPoke <- struct{}{}:
	default:
	}
}

// watchSession fences the server when its lock session is in jeopardy for
// longer than JeopardyBound, lifts the fence when the session is safe
// again, and stops the server (without flushing) when the session is lost.
func (s *Server) watchSession() {
	var timer interface{ Stop() bool }
	var timerC <-chan time.Time
	stopTimer := func() {
		if timer != nil {
			timer.Stop()
		}
		timer, timerC = nil, nil
	}
	defer stopTimer()
	for {
		select {
		case <-s.bgCtx.Done():
			return
		case <-s.opts.Lock.Lost():
			s.onLost()
			return
		case st := <-s.opts.Lock.States():
			switch st {
			case lock.StateJeopardy:
				if timer == nil {
					t := s.opts.Clock.NewTimer(s.opts.JeopardyBound)
					timer, timerC = t, t.C()
				}
			case lock.StateSafe:
				stopTimer()
				if s.fenced.Swap(false) {
					s.logger.Warn("lock session safe again; serving")
				}
			case lock.StateLost:
				s.onLost()
				return
			}
		case <-timerC:
			timer, timerC = nil, nil
			s.fenced.Store(true)
			s.logger.Error("lock session in jeopardy too long; stopped serving", "bound", s.opts.JeopardyBound)
		}
	}
}

// checkLog stops the server when the shared commit log has failed: no
// write can be acknowledged any more, so the server gives up its tablets
// (without flushing) and its lock node, and the master recovers them from
// the log as after a crash.
func (s *Server) checkLog(err error) {
	if err == nil || !errors.Is(err, wal.ErrLogFailed) {
		return
	}
	s.spawn(func() {
		s.logger.Error("commit log failed; stopping the server", "err", err)
		s.killTablets()
		s.mu.Lock()
		reg := s.mu.reg
		s.mu.reg = false
		s.mu.Unlock()
		if reg {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			p := serversDir + "/" + s.opts.ID
			_ = s.opts.Lock.Release(ctx, p)
			_ = s.opts.Lock.Delete(ctx, p)
		}
	})
}

func (s *Server) onLost() {
	s.fenced.Store(true)
	s.logger.Error("lock session lost; stopping without flushing")
	s.killTablets()
}

// releaseLoop deletes commit-log files whose entries every tablet has
// flushed (or that belong to tablets unloaded from here, which flush
// first). A server that has stopped serving deletes nothing: killTablets
// drops its tablets without flushing them, and the master's recovery reads
// every file of the log.
func (s *Server) releaseLoop() {
	for {
		select {
		case <-s.bgCtx.Done():
			return
		case <-s.opts.Clock.After(s.opts.checkInterval):
		}
		s.releaseLog()
	}
}

func (s *Server) releaseLog() {
	names, err := s.wal.Release(func(f wal.FileInfo) bool {
		s.mu.RLock()
		defer s.mu.RUnlock()
		// stop stores runStopped under mu before killTablets removes a
		// tablet, so a tablet missing from byID while the server still
		// runs was unloaded (flushed), never dropped. A fenced server
		// keeps its log too: its session may expire before it is safe
		// again, and the master then recovers from these files.
		if s.run.Load() != runServing || s.fenced.Load() {
			return false
		}
		for id, maxSeq := range f.MaxSeq {
			if s.mu.loading[id] || s.mu.pinned[id] {
				return false
			}
			e := s.mu.byID[id]
			if e != nil && e.t.FlushedSeq() < maxSeq {
				return false
			}
		}
		return true
	})
	if err != nil {
		s.logger.Warn("commit-log release failed", "err", err)
	} else if len(names) > 0 {
		s.logger.Debug("commit-log files released", "files", len(names))
	}
}
