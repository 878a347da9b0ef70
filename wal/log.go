package wal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"cellar/dfs"
	"cellar/internal/bufpool"
	"cellar/internal/clock"
	"cellar/internal/keys"
)

// Group commit.
//
// Append encodes its entry and hands a request to the writer goroutine over
// a bounded channel (a full channel blocks Append: back-pressure). The
// writer takes the first request, then everything else already queued (up
// to MaxGroupBytes), frames the whole group into one buffer, and does one
// Write. It acknowledges the group's async requests at once and hands its
// sync requests, as one batch, to the syncer goroutine. The syncer takes
// every batch handed over so far, does one Sync for all of them (a Sync
// covers every byte written before it starts) and wakes their waiters.
// While the syncer syncs, the writer writes the next groups, and while
// either works new requests queue up, so the number of Syncs per second
// stays near what the device allows while the entries per Sync grow with
// the load.
//
// Any failed Write, Sync, seal or roll poisons the log: the error is kept,
// the waiters of that Write or Sync and of every later one fail with it (it
// wraps ErrLogFailed), and nothing is acknowledged again. A Sync that failed
// may have lost bytes that an earlier Write put in the page cache, so going
// on in the same file could acknowledge entries that a crash would lose.
//
// Rolling and Close: the writer waits until the syncer has answered every
// batch, then writes the end-of-file marker and closes (so syncs) the file.
// Close fences new Appends (sendMu), lets the writer drain the queue and
// seal the file, then stops both goroutines.

// request is one Append waiting for the writer.
// recPool keeps the buffers of encoded entries: the writer frames an entry
// into the file's buffer and has no further use for it.
var recPool = bufpool.New(64 << 10)

type request struct {
	rec    []byte       // the encoded entry
	buf    *bufpool.Buf // rec's buffer, back to recPool once framed
	tablet uint64
	seq    keys.SeqNum
	sync   bool
	done   chan error // buffered: the writer never blocks on a caller who left; nil: nobody waits
}

// Log is an open commit log: one live file, written by a writer goroutine
// and synced by a syncer goroutine, both stopped by Close. Append, Files,
// Release, Stats and Close are safe for concurrent use.
type Log struct {
	fs     dfs.FS
	opts   Options
	logger *slog.Logger

	queue chan *request
	stop  chan struct{} // closed by Close after fencing Appends
	wg    sync.WaitGroup

	// sendMu is held shared by Append while it hands a request over and
	// exclusively by Close to set closed, so that no request is queued
	// after the writer has drained the queue for the last time.
	sendMu sync.RWMutex
	closed bool // guarded by sendMu

	failed atomic.Pointer[error] // the poison, once a write or sync failed
	// degraded is set by the syncer when the live file's replication
	// dropped (dfs.Degradable); the writer then rolls to a new file.
	degraded atomic.Bool

	stats struct {
		entries, bytes, writes, syncs, lowReplicationRolls atomic.Int64
	}

	mu struct {
		sync.Mutex
		rolled []FileInfo // sealed files, oldest first (Release removes them)
		cur    FileInfo   // the live file
	}
	releaseMu sync.Mutex // serialises Release calls

	// The syncer goroutine takes batches of sync waiters from syncq;
	// syncPending counts batches handed over and not yet answered.
	syncq       chan syncBatch
	syncPending sync.WaitGroup
	syncedTo    atomic.Int64 // bytes of the live file known durable

	// Owned by the writer goroutine (the syncer reads f while it has a
	// batch; the writer replaces f only when the syncer is idle).
	f          dfs.File
	num        uint64 // f's file number
	written    int64  // bytes written to f
	fr         framer
	pend       []byte // framed records not yet written to f (async only)
	buf        []byte
	timer      clock.Timer
	timerArmed bool
	// lastLowRoll is when the log last rolled for low replication.
	lastLowRoll time.Time
	closeErr    error
}

// Open starts a new log file in opts.Dir, numbered after any log files
// already there, and starts the writer goroutine. It does not replay: call
// Replay before Open to recover what earlier logs hold. It reads the older
// files only to fill Files (their per-tablet MaxSeq, for Release).
func Open(ctx context.Context, fs dfs.FS, opts *Options) (*Log, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	o := opts.withDefaults()
	old, err := listFiles(ctx, fs, o.Dir)
	if err != nil {
		return nil, err
	}
	for i := range old {
		if err := scanFile(ctx, fs, &old[i]); err != nil {
			return nil, err
		}
	}
	num := uint64(1)
	if len(old) > 0 {
		num = old[len(old)-1].Num + 1
	}
	l := &Log{
		fs:     fs,
		opts:   o,
		logger: o.Logger.With("component", "wal", "dir", o.Dir),
		queue:  make(chan *request, o.QueueLength),
		syncq:  make(chan syncBatch, o.QueueLength),
		stop:   make(chan struct{}),
	}
	cur, err := l.createFile(ctx, num)
	if err != nil {
		return nil, err
	}
	l.mu.rolled, l.mu.cur = old, cur
	l.wg.Add(2)
	go l.run()
	go l.runSyncer()
	l.logger.Info("wal: opened", "file", l.mu.cur.Name, "older_files", len(old))
	return l, nil
}

// scanFile fills fi.MaxSeq from the entries of an older file, reading past
// any damage it can (Replay is where damage is reported).
func scanFile(ctx context.Context, fs dfs.FS, fi *FileInfo) error {
	fi.MaxSeq = map[uint64]keys.SeqNum{}
	o := ReplayOptions{SkipCorrupt: true, Logger: slog.New(slog.DiscardHandler)}
	_, err := readFile(ctx, fs, *fi, true, o, func(e Entry) error {
		fi.MaxSeq[e.Tablet] = max(fi.MaxSeq[e.Tablet], e.Seq)
		return nil
	})
	return err
}

func (l *Log) createFile(ctx context.Context, num uint64) (FileInfo, error) {
	name := dfs.Join(l.opts.Dir, fileName(num))
	create := l.fs.Create
	if lc, ok := l.fs.(dfs.LogCreator); ok {
		create = lc.CreateLog
	}
	f, err := create(ctx, name)
	if err != nil {
		return FileInfo{}, fmt.Errorf("cellar/wal: create %s: %w", name, err)
	}
	l.f, l.num, l.written = f, num, 0
	l.syncedTo.Store(0)
	l.fr = framer{logNum: uint32(num)}
	return FileInfo{Name: name, Num: num, MaxSeq: map[uint64]keys.SeqNum{}}, nil
}

// Append adds e to the log. With sync=true it returns once e is durable
// (after a Sync shared with the other appends of its group). With
// sync=false it returns once e is queued to the writer, behind every entry
// queued before it; the writer writes and syncs it within
// AsyncSyncInterval (or with the next sync=true entry), and a failure of
// the log after that is reported by later calls, not this one: that is what
// sync=false trades for speed. Safe for concurrent use; entries appended by
// one goroutine are logged in call order.
//
// If ctx ends before the entry is handed to the writer, Append returns the
// context's error and the entry is not in the log. If ctx ends after, the
// error wraps ErrOutcomeUnknown and the context's error: the entry may be
// in the log. After a failed Write or Sync every Append fails with an error
// wrapping ErrLogFailed; after Close with ErrClosed.
func (l *Log) Append(ctx context.Context, e Entry, sync bool) error {
	if p := l.failed.Load(); p != nil {
		return *p
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	buf := recPool.Get(EncodedEntryLen(e))
	buf.B = EncodeEntry(buf.B, e)
	req := &request{
		rec:    buf.B,
		buf:    buf,
		tablet: e.Tablet,
		seq:    e.Seq,
		sync:   sync,
	}
	if sync {
		// Only a synced Append waits for its outcome; an async one is
		// told of a failure by the next Append (the log is poisoned).
		req.done = make(chan error, 1)
	}
	l.sendMu.RLock()
	if l.closed {
		l.sendMu.RUnlock()
		return ErrClosed
	}
	select {
	case l.queue <- req:
		l.sendMu.RUnlock()
	case <-ctx.Done():
		l.sendMu.RUnlock()
		return ctx.Err()
	}
	if !sync {
		return nil
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("cellar/wal: append tablet %d %v: %w: %w", e.Tablet, e.Seq, ErrOutcomeUnknown, ctx.Err())
	}
}

// AppendBatch appends es in order, as Append would one by one, but hands
// them to the writer together and waits once, so a batch of entries from one
// goroutine costs about what one Append does (they usually share one Write
// and, with sync, one Sync). Each entry is framed separately: a crash may
// keep a prefix of the batch. The context rules are Append's: if ctx ends
// before any entry is handed over, nothing is applied; after, the error
// wraps ErrOutcomeUnknown.
func (l *Log) AppendBatch(ctx context.Context, es []Entry, sync bool) error {
	if p := l.failed.Load(); p != nil {
		return *p
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	reqs := make([]request, len(es))
	done := make(chan error, len(es))
	for i, e := range es {
		buf := recPool.Get(EncodedEntryLen(e))
		buf.B = EncodeEntry(buf.B, e)
		reqs[i] = request{rec: buf.B, buf: buf, tablet: e.Tablet, seq: e.Seq, sync: sync, done: done}
	}
	l.sendMu.RLock()
	if l.closed {
		l.sendMu.RUnlock()
		return ErrClosed
	}
	sent := 0
	for i := range reqs {
		select {
		case l.queue <- &reqs[i]:
			sent++
			continue
		case <-ctx.Done():
		}
		break
	}
	l.sendMu.RUnlock()
	var first error
	for i := 0; i < sent; i++ {
		select {
		case err := <-done:
			if err != nil && first == nil {
				first = err
			}
		case <-ctx.Done():
			return fmt.Errorf("cellar/wal: append batch of %d: %w: %w", len(es), ErrOutcomeUnknown, ctx.Err())
		}
	}
	switch {
	case first != nil:
		return first
	case sent < len(es) && sent > 0:
		return fmt.Errorf("cellar/wal: append batch: %d of %d entries handed over: %w: %w", sent, len(es), ErrOutcomeUnknown, ctx.Err())
	case sent < len(es):
		return ctx.Err()
	}
	return nil
}

// run is the writer goroutine.
func (l *Log) run() {
	defer l.wg.Done()
	var group []*request
	// Files that can lose replicas (dfs files) get a periodic check.
	var replCheck clock.Timer
	var replCheckC <-chan time.Time
	if _, ok := l.f.(dfs.Degradable); ok {
		replCheck = l.opts.Clock.NewTimer(l.opts.LowReplicationRollInterval)
		defer replCheck.Stop()
		replCheckC = replCheck.C()
	}
	for {
		select {
		case <-replCheckC:
			l.checkReplication()
			replCheck.Reset(l.opts.LowReplicationRollInterval)
		case req := <-l.queue:
			group = l.collect(append(group[:0], req))
			l.commit(group)
			clear(group)
		case <-l.timerC():
			l.timerArmed = false
			if l.failed.Load() == nil {
				if err := l.flush(); err != nil {
					continue
				}
				if l.written > l.syncedTo.Load() {
					l.handToSyncer(syncBatch{upTo: l.written})
				}
			}
		case <-l.stop:
			for drained := false; !drained; {
				select {
				case req := <-l.queue:
					group = l.collect(append(group[:0], req))
					l.commit(group)
					clear(group)
				default:
					drained = true
				}
			}
			l.finish()
			return
		}
	}
}

// timerC is the background sync timer's channel; nil (never ready) until
// the first async write creates the timer.
func (l *Log) timerC() <-chan time.Time {
	if l.timer == nil {
		return nil
	}
	return l.timer.C()
}

// collect adds to group what is already queued, up to MaxGroupBytes.
func (l *Log) collect(group []*request) []*request {
	n := len(group[0].rec)
	for n < l.opts.MaxGroupBytes {
		select {
		case req := <-l.queue:
			group = append(group, req)
			n += len(req.rec)
		default:
			return group
		}
	}
	return group
}

// poison records the first failure; later ones are reported as that one.
func (l *Log) poison(err error) error {
	err = fmt.Errorf("%w: %w", ErrLogFailed, err)
	if l.failed.CompareAndSwap(nil, &err) {
		l.logger.Error("wal: log failed; no further appends are acknowledged", "err", err)
		return err
	}
	return *l.failed.Load()
}

func (l *Log) fail(group []*request, err error) {
	for _, r := range group {
		if r.done != nil {
			r.done <- err
		}
	}
}

// commit frames one group. Groups with a sync=true entry are written (with
// whatever async entries were buffered before them) in one Write and handed
// to the syncer; async-only groups stay buffered until AsyncBufferSize bytes
// are pending, the background timer fires, or the file rolls or closes.
func (l *Log) commit(group []*request) {
	if p := l.failed.Load(); p != nil {
		l.fail(group, *p)
		return
	}
	hasSync := false
	for _, r := range group {
		l.pend = l.fr.appendRecord(l.pend, r.rec)
		recPool.Put(r.buf)
		r.rec, r.buf = nil, nil
		hasSync = hasSync || r.sync
	}
	l.stats.entries.Add(int64(len(group)))
	l.mu.Lock()
	for _, r := range group {
		l.mu.cur.MaxSeq[r.tablet] = max(l.mu.cur.MaxSeq[r.tablet], r.seq)
	}
	l.mu.Unlock()
	if hasSync || l.opts.AsyncBufferSize < 0 || len(l.pend) >= l.opts.AsyncBufferSize ||
		l.written+int64(len(l.pend)) >= l.opts.MaxFileSize {
		if err := l.flush(); err != nil {
			l.fail(group, err)
			return
		}
	}
	if p := l.failed.Load(); p != nil {
		// A Sync failed while this group was written.
		l.fail(group, *p)
		return
	}
	var waiters []*request
	for _, r := range group {
		if r.sync {
			waiters = append(waiters, r)
		} else if r.done != nil {
			r.done <- nil
		}
	}
	if len(waiters) > 0 {
		l.handToSyncer(syncBatch{waiters: waiters, upTo: l.written})
	} else if !l.timerArmed {
		if l.timer == nil {
			l.timer = l.opts.Clock.NewTimer(l.opts.AsyncSyncInterval)
		} else {
			l.timer.Reset(l.opts.AsyncSyncInterval)
		}
		l.timerArmed = true
	}
	if l.written >= l.opts.MaxFileSize {
		l.roll()
	} else {
		l.maybeRollDegraded()
	}
}

// maybeRollDegraded rolls the log if the syncer found the live file short
// of replicas, at most once per LowReplicationRollInterval: a new file
// gets a full pipeline if enough chunkservers are live, and the dfs
// re-replicates the closed one.
func (l *Log) maybeRollDegraded() {
	if !l.degraded.Load() || l.f == nil || l.failed.Load() != nil {
		return
	}
	now := l.opts.Clock.Now()
	if !l.lastLowRoll.IsZero() && now.Sub(l.lastLowRoll) < l.opts.LowReplicationRollInterval {
		return // the replication check timer tries again
	}
	l.logger.Warn("wal: rolling: the log file has fewer replicas than its target", "file", l.curName())
	l.lastLowRoll = now
	l.stats.lowReplicationRolls.Add(1)
	l.roll()
}

// checkReplication runs on the replication check timer: a log that went
// idle after its file lost replicas (or whose roll waited out the
// interval) still rolls, so no commit log stays short of replicas.
func (l *Log) checkReplication() {
	if l.f == nil || l.failed.Load() != nil {
		return
	}
	l.noteDegraded()
	l.maybeRollDegraded()
}

// noteDegraded marks the log for a roll if the live file has fewer
// replicas than its target (dfs.Degradable).
func (l *Log) noteDegraded() {
	if d, ok := l.f.(dfs.Degradable); ok && d.Degraded() {
		l.degraded.Store(true)
	}
}

// flush writes the pending framed records to the live file with one Write.
// A failure poisons the log and is returned.
func (l *Log) flush() error {
	if len(l.pend) == 0 {
		return nil
	}
	if _, err := l.f.Write(l.pend); err != nil {
		l.pend = l.pend[:0]
		return l.poison(fmt.Errorf("write %s: %w", l.curName(), err))
	}
	l.stats.bytes.Add(int64(len(l.pend)))
	l.stats.writes.Add(1)
	if cap(l.pend) <= 2*max(l.opts.MaxGroupBytes, l.opts.AsyncBufferSize) {
		l.pend = l.pend[:0]
	} else {
		l.pend = nil // do not keep a buffer grown by one huge entry
	}
	l.written = l.f.Size()
	l.mu.Lock()
	l.mu.cur.Size = l.written
	l.mu.Unlock()
	return nil
}

// syncBatch asks the syncer to make the live file durable through upTo
// bytes and then to wake waiters.
type syncBatch struct {
	waiters []*request
	upTo    int64
}

func (l *Log) handToSyncer(b syncBatch) {
	l.syncPending.Add(1)
	l.syncq <- b
}

// runSyncer is the syncer goroutine. It takes every batch handed over so
// far (all written before this moment), does one Sync for all of them and
// wakes their waiters, while the writer goes on writing the next groups.
// The writer waits for it to be idle (syncPending) before it seals, closes
// or replaces the live file, so the syncer never uses a file being closed.
func (l *Log) runSyncer() {
	defer l.wg.Done()
	var batches []syncBatch
	for b := range l.syncq {
		batches = append(batches[:0], b)
		for drained := false; !drained; {
			select {
			case b, ok := <-l.syncq:
				if ok {
					batches = append(batches, b)
				} else {
					drained = true
				}
			default:
				drained = true
			}
		}
		var err error
		if p := l.failed.Load(); p != nil {
			err = *p
		} else if serr := l.f.Sync(context.Background()); serr != nil {
			err = l.poison(fmt.Errorf("sync %s: %w", l.curName(), serr))
		} else {
			l.syncedTo.Store(batches[len(batches)-1].upTo)
			l.stats.syncs.Add(1)
			l.noteDegraded()
		}
		for i := range batches {
			l.fail(batches[i].waiters, err)
			l.syncPending.Done()
		}
		clear(batches)
	}
}

func (l *Log) curName() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.cur.Name
}

// seal waits for the syncer to be idle, writes the end-of-file marker and
// closes (so syncs) the live file.
func (l *Log) seal() error {
	if err := l.flush(); err != nil {
		l.syncPending.Wait()
		l.f.Close()
		return err
	}
	l.syncPending.Wait()
	name := l.curName()
	if _, err := l.f.Write(l.fr.appendEOF(l.buf[:0])); err != nil {
		l.f.Close()
		return fmt.Errorf("seal %s: %w", name, err)
	}
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", name, err)
	}
	l.mu.Lock()
	l.mu.cur.Size = l.f.Size()
	l.mu.Unlock()
	return nil
}

// roll seals the live file and starts the next one.
func (l *Log) roll() {
	err := l.seal()
	// The syncer is idle now: what it said of the old file is moot.
	l.degraded.Store(false)
	if err == nil {
		var next FileInfo
		if next, err = l.createFile(context.Background(), l.num+1); err == nil {
			l.mu.Lock()
			l.mu.rolled = append(l.mu.rolled, l.mu.cur)
			l.mu.cur = next
			l.mu.Unlock()
			l.logger.Debug("wal: rolled", "file", next.Name)
			return
		}
	}
	l.f = nil // sealed or closed: there is no live file now
	l.poison(err)
}

// finish runs on Close in the writer goroutine after the queue is drained:
// it seals the live file, or after a failure just closes it.
func (l *Log) finish() {
	defer close(l.syncq) // stops the syncer once it is idle
	if l.timer != nil {
		l.timer.Stop()
	}
	switch {
	case l.f == nil: // a failed roll left no live file
	case l.failed.Load() == nil:
		if err := l.seal(); err != nil {
			l.poison(err)
		}
	default:
		l.syncPending.Wait()
		l.f.Close() // lost for writing; its error adds nothing to the poison
	}
	if p := l.failed.Load(); p != nil {
		l.closeErr = *p
	}
}

// Stats counts the work of a Log since Open.
type Stats struct {
	Entries int64 // entries written
	Bytes   int64 // bytes written, framing included
	Writes  int64 // Writes to log files (one per commit group)
	Syncs   int64 // successful Syncs of log files, roll and Close excluded
	// LowReplicationRolls counts rolls because the live file lost replicas
	// while open (dfs.Degradable).
	LowReplicationRolls int64
}

// Stats returns the counters; safe for concurrent use.
func (l *Log) Stats() Stats {
	return Stats{
		Entries: l.stats.entries.Load(),
		Bytes:   l.stats.bytes.Load(),
		Writes:  l.stats.writes.Load(),
		Syncs:   l.stats.syncs.Load(),

		LowReplicationRolls: l.stats.lowReplicationRolls.Load(),
	}
}

// Files describes every log file this Log knows of, oldest first: the
// older files found by Open, the files rolled since, and the live file
// (last). The returned values belong to the caller.
func (l *Log) Files() []FileInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]FileInfo, 0, len(l.mu.rolled)+1)
	for _, fi := range l.mu.rolled {
		out = append(out, fi.clone())
	}
	return append(out, l.mu.cur.clone())
}

// Release deletes the sealed (not live) log files for which obsolete
// returns true, typically those whose MaxSeq of every tablet is covered by
// a flushed SSTable, and returns their names. obsolete is called without
// any lock held. On a Remove failure it returns the names removed so far
// and the error; the file stays listed in Files.
func (l *Log) Release(obsolete func(f FileInfo) bool) ([]string, error) {
	l.releaseMu.Lock()
	defer l.releaseMu.Unlock()
	l.mu.Lock()
	cands := make([]FileInfo, len(l.mu.rolled))
	for i, fi := range l.mu.rolled {
		cands[i] = fi.clone()
	}
	l.mu.Unlock()
	var removed []string
	for _, fi := range cands {
		if !obsolete(fi) {
			continue
		}
		if err := l.fs.Remove(context.Background(), fi.Name); err != nil && !errors.Is(err, dfs.ErrNotFound) {
			return removed, fmt.Errorf("cellar/wal: release %s: %w", fi.Name, err)
		}
		removed = append(removed, fi.Name)
		l.mu.Lock()
		for i := range l.mu.rolled {
			if l.mu.rolled[i].Num == fi.Num {
				l.mu.rolled = append(l.mu.rolled[:i], l.mu.rolled[i+1:]...)
				break
			}
		}
		l.mu.Unlock()
	}
	return removed, nil
}

// Close stops accepting appends, writes and syncs what is queued, seals the
// live file and stops the log's goroutines. It may be called concurrently
// with Append (those not yet handed over get ErrClosed). It returns nil if
// the log ended cleanly, else the error that poisoned it (wrapping
// ErrLogFailed); a second Close returns ErrClosed. Close blocks until the
// queued appends are written and synced; it has no timeout of its own, so a
// file system whose Sync hangs hangs Close.
func (l *Log) Close() error {
	l.sendMu.Lock()
	if l.closed {
		l.sendMu.Unlock()
		return ErrClosed
	}
	l.closed = true
	l.sendMu.Unlock()
	close(l.stop)
	l.wg.Wait()
	l.logger.Info("wal: closed")
	return l.closeErr
}
