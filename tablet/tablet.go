package tablet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"cellar/dfs"
	"cellar/internal/keys"
	"cellar/memtable"
	"cellar/wal"
)

// Tablet is the LSM store of one tablet. It is safe for concurrent use.
type Tablet struct {
	opts    Options // with defaults
	logger  *slog.Logger
	lim     limits
	fam     map[string]*FamilyOptions
	log     *wal.Log
	ownLog  bool
	commits commitQueue
	memPool *memtable.Pool

	// nextFile numbers new SSTables; the manifest records it.
	nextFile   atomic.Uint64
	splitFloor uint64 // from the manifest at Open; see Tablet.owns
	flushedSeq atomic.Uint64

	// epoch is this opening's claim on Dir: its manifests are
	// MANIFEST-<epoch>. fenced is set once a higher epoch was seen: the
	// tablet then writes no manifest and deletes no file.
	epoch  uint64
	fenced atomic.Bool

	// installMu serializes manifest writes and file-set changes (flush and
	// compaction installs). Held across I/O; never taken under mu.
	installMu sync.Mutex
	// compactMu lets one compaction run at a time.
	compactMu sync.Mutex

	// mu guards the write path's state. Never held across I/O or callbacks.
	mu struct {
		sync.Mutex
		closed   bool // no new Apply (Close or Split began)
		bgErr    error
		mem      *memTable
		imm      []*memTable // oldest first, waiting for their flush
		rs       *readState
		man      *manifest // the durable manifest
		nextSeq  keys.SeqNum
		lastTS   int64
		rotated  uint64        // memtables made immutable so far
		flushed  uint64        // of those, flushed
		changed  chan struct{} // closed and replaced on every flush, error and close
		inflight sync.WaitGroup
	}

	stats struct {
		flushes, compactions, stalls atomic.Uint64
	}

	allPlanOnce sync.Once
	allPlan     *readPlan // the plan of the zero ReadOptions

	flushSignal, compactSignal chan struct{}
	bgCtx                      context.Context
	bgCancel                   context.CancelFunc
	bg                         sync.WaitGroup
	closeOnce                  sync.Once
	closeErr                   error
}

// Open opens (or creates) the tablet in opts.Dir: it claims a new epoch of
// the directory (which fences any Tablet that opened it before: see
// ErrFenced), reads the manifest of the highest epoch below its own and
// writes it again under its own, deletes SSTables the manifest does not
// list (left by a crash mid-flush or mid-compaction) and older epochs'
// files, opens the live tables, replays its own commit log past the
// flushed sequence number, and starts the background flusher and compactor.
func Open(ctx context.Context, opts *Options) (*Tablet, error) {
	if opts == nil {
		return nil, fmt.Errorf("%w: nil options", ErrInvalidOptions)
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	t := &Tablet{opts: opts.withDefaults()}
	t.memPool = t.opts.MemtablePool
	if t.memPool == nil {
		t.memPool = memtable.NewPool(1)
	}
	t.logger = t.opts.Logger.With("component", "tablet", "tablet", uint64(t.opts.ID))
	t.fam = map[string]*FamilyOptions{}
	for i := range t.opts.Families {
		f := &t.opts.Families[i]
		t.fam[f.Name] = f
		t.lim.families = append(t.lim.families, f.Name)
	}
	t.lim.maxValue, t.lim.maxCells = t.opts.MaxValueSize, t.opts.MaxCellsPerMutation
	t.lim.memtableSize = t.opts.MemtableSize - memtable.ArenaSizeFor(0, 0)
	t.flushSignal = make(chan struct{}, 1)
	t.compactSignal = make(chan struct{}, 1)
	t.mu.changed = make(chan struct{})

	// An advisory look first: an Open bound to fail (a split parent, a
	// stale row range) should not take an epoch, which would fence the
	// tablet's real server. The manifest that counts is read after the
	// claim.
	if pre, err := readManifest(ctx, t.opts.FS, t.opts.Dir); err != nil {
		return nil, err
	} else if err := t.checkManifest(pre); err != nil {
		return nil, err
	}
	epoch, err := claimEpoch(ctx, t.opts.FS, t.opts.Dir)
	if err != nil {
		return nil, err
	}
	t.epoch = epoch
	// Only now is the manifest read: a previous server that commits a
	// manifest after this read sees the claim when it checks, so it
	// deletes nothing this Tablet may list (see install).
	man, _, err := readManifestBelow(ctx, t.opts.FS, t.opts.Dir, epoch)
	if err != nil {
		return nil, err
	}
	if err := t.checkManifest(man); err != nil {
		return nil, err
	}
	if man == nil {
		man = &manifest{id: t.opts.ID, startRow: t.opts.StartRow, endRow: t.opts.EndRow, nextFileNum: 1, families: map[string][]fileMeta{}}
	}
	// The manifest goes under this epoch at once, so that readers (the
	// next opener, the master) see this Tablet's state, and so that the
	// older epochs' files can go.
	if err := writeManifest(ctx, t.opts.FS, t.opts.Dir, epoch, man); err != nil {
		return nil, t.fencedOr(ctx, err)
	}
	if err := t.checkFence(ctx); err != nil {
		return nil, err
	}
	t.mu.man = man
	t.nextFile.Store(man.nextFileNum)
	t.splitFloor = man.splitFloor
	t.flushedSeq.Store(uint64(man.flushedSeq))
	if err := t.deleteOrphans(ctx, man); err != nil {
		return nil, err
	}
	tables := map[string][]*table{}
	closeAll := func() {
		for _, ts := range tables {
			for _, tb := range ts {
				tb.r.Close()
			}
		}
	}
	for fam, files := range man.families {
		for _, fm := range files {
			tb, err := t.openTable(ctx, fam, fm)
			if err != nil {
				closeAll()
				return nil, err
			}
			tables[fam] = append(tables[fam], tb)
		}
	}
	t.mu.mem = t.newMemTable()
	t.mu.rs = newReadState([]*memTable{t.mu.mem}, tables)
	t.mu.nextSeq = man.flushedSeq + 1
	t.commits.init(man.flushedSeq)

	if err := t.replayLogs(ctx); err != nil {
		t.mu.rs.unref()
		return nil, err
	}
	t.mu.lastTS = t.timestampFloor()
	if t.opts.Log == nil {
		l, err := wal.Open(ctx, t.opts.FS, &wal.Options{Dir: t.logDir(), Logger: t.opts.Logger, Clock: t.opts.Clock})
		if err != nil {
			t.mu.rs.unref()
			return nil, fmt.Errorf("cellar/tablet: open log: %w", err)
		}
		t.log, t.ownLog = l, true
		if _, err := t.releaseLog(); err != nil {
			t.mu.rs.unref()
			l.Close()
			return nil, err
		}
	} else {
		t.log = t.opts.Log
	}

	t.bgCtx, t.bgCancel = context.WithCancel(context.Background())
	t.bg.Add(2)
	go t.flushLoop()
	go t.compactLoop()
	t.signal(t.compactSignal)
	t.logger.Info("tablet opened", "dir", t.opts.Dir, "epoch", epoch, "seq", uint64(t.mu.nextSeq-1), "flushed_seq", uint64(man.flushedSeq))
	return t, nil
}

// MaxServerTimestampLead bounds how far ahead of this server's clock the
// newest timestamp in a tablet's files may be and still be taken as the
// floor of its server timestamps (see timestampFloor).
const MaxServerTimestampLead = time.Minute

// timestampFloor is the newest cell timestamp in the tablet's files (after
// replay, everything is in them), ignoring any more than
// MaxServerTimestampLead ahead of the clock. Server timestamps continue
// from it, so that a tablet that moves to a server whose clock is behind
// the last one's still gives a later write a later timestamp (else the
// write would sort below, and be hidden by, the one it overwrote). An
// explicit timestamp within the lead raises the floor too; one further
// ahead is the writer's business and does not drag server time along.
func (t *Tablet) timestampFloor() int64 {
	limit := t.opts.Clock.Now().Add(MaxServerTimestampLead).UnixMicro()
	floor := int64(0)
	for _, tbs := range t.mu.rs.tables {
		for _, tb := range tbs {
			if ts := tb.r.Properties().MaxTimestamp; ts > floor && ts <= limit {
				floor = ts
			}
		}
	}
	return floor
}

func (t *Tablet) logDir() string { return dfs.Join(t.opts.Dir, "log") }

func (t *Tablet) newMemTable() *memTable {
	m := &memTable{m: t.memPool.Get(&memtable.Options{ArenaSize: t.opts.MemtableSize}), pool: t.memPool}
	m.refs.Store(1)
	return m
}

func (t *Tablet) signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// checkManifest refuses a manifest Open must not serve from: a split
// parent's, or one whose row range differs from the options'. nil (a new
// tablet) passes.
func (t *Tablet) checkManifest(man *manifest) error {
	if man == nil {
		return nil
	}
	if man.split {
		return fmt.Errorf("cellar/tablet: open %s: %w", t.opts.Dir, ErrSplit)
	}
	if string(man.startRow) != string(t.opts.StartRow) || string(man.endRow) != string(t.opts.EndRow) ||
		(man.startRow == nil) != (t.opts.StartRow == nil) || (man.endRow == nil) != (t.opts.EndRow == nil) {
		return fmt.Errorf("%w: row range [%q, %q) differs from the manifest's [%q, %q)",
			ErrInvalidOptions, t.opts.StartRow, t.opts.EndRow, man.startRow, man.endRow)
	}
	return nil
}

// checkFence runs after every manifest commit and before any deletion:
// it fails, wrapping ErrFenced, if an epoch above the tablet's has been
// claimed in Dir. If none has, whoever claims one later reads a manifest
// at least as new as the one just committed, which lists none of the
// files the commit made obsolete; if one has, its owner may have read an
// older manifest that still lists them, so nothing may be deleted, and
// this tablet's manifests no longer count (readers take the highest
// epoch's). A failed listing leaves the question open: the error then
// wraps errManifestOutcomeUnknown, which also keeps every file.
func (t *Tablet) checkFence(ctx context.Context) error {
	if t.fenced.Load() {
		return t.fencedError(0)
	}
	e, err := higherEpoch(ctx, t.opts.FS, t.opts.Dir, t.epoch)
	if err != nil {
		return fmt.Errorf("%w: fence check: %w", errManifestOutcomeUnknown, err)
	}
	if e == 0 {
		return nil
	}
	if !t.fenced.Swap(true) {
		t.logger.Error("fenced: another server opened the tablet; this one writes no more manifests and deletes no files",
			"dir", t.opts.Dir, "epoch", t.epoch, "newer_epoch", e)
	}
	return t.fencedError(e)
}

// fencedOr returns err, a failed manifest write, wrapping ErrFenced too
// if the tablet turns out fenced: a newer opener's cleanup removes the
// temporary manifests of older epochs, which is why such a write fails.
func (t *Tablet) fencedOr(ctx context.Context, err error) error {
	if ferr := t.checkFence(ctx); errors.Is(ferr, ErrFenced) {
		return fmt.Errorf("%w: %w", ferr, err)
	}
	return err
}

func (t *Tablet) fencedError(newer uint64) error {
	if newer == 0 {
		return fmt.Errorf("cellar/tablet: %s: %w (epoch %d)", t.opts.Dir, ErrFenced, t.epoch)
	}
	return fmt.Errorf("cellar/tablet: %s: %w (epoch %d, found epoch %d)", t.opts.Dir, ErrFenced, t.epoch, newer)
}

// deleteOrphans runs once MANIFEST-<epoch> is durable and no higher epoch
// was seen. It removes the tables of Dir/sst the manifest does not list
// (left by a crash mid-flush or mid-compaction, or written by a previous
// server after it lost the tablet), except those that may be shared with a
// split sibling (numbered below the split floor), and the manifests,
// claims and temporaries of lower epochs, which no reader takes any more.
// Higher epochs are never touched. It also moves the next table number
// past every table file present: a previous server may still create
// tables numbered from the manifest it had.
func (t *Tablet) deleteOrphans(ctx context.Context, man *manifest) error {
	live := map[string]bool{}
	for _, files := range man.families {
		for _, fm := range files {
			live[fm.path] = true
		}
	}
	ents, err := t.opts.FS.List(ctx, t.sstDir())
	if err != nil {
		return fmt.Errorf("cellar/tablet: list %s: %w", t.sstDir(), err)
	}
	for _, e := range ents {
		if num, ok := parseTableName(e.Name); ok && !e.IsDir && num >= t.nextFile.Load() && num < math.MaxUint64 {
			t.nextFile.Store(num + 1)
		}
		p := dfs.Join(t.sstDir(), e.Name)
		if e.IsDir || live[p] || !t.owns(p, man.splitFloor) {
			continue
		}
		if err := t.opts.FS.Remove(ctx, p); err != nil && !errors.Is(err, dfs.ErrNotFound) {
			return fmt.Errorf("cellar/tablet: delete orphan %s: %w", p, err)
		}
		t.logger.Info("deleted orphan table", "file", p)
	}
	d, err := listEpochs(ctx, t.opts.FS, t.opts.Dir)
	if err != nil {
		return err
	}
	for name, ef := range d.names {
		if ef.epoch >= t.epoch {
			continue
		}
		p := dfs.Join(t.opts.Dir, name)
		if err := t.opts.FS.Remove(ctx, p); err != nil && !errors.Is(err, dfs.ErrNotFound) {
			return fmt.Errorf("cellar/tablet: delete old epoch's %s: %w", p, err)
		}
	}
	return nil
}

// replayLogs inserts the entries of this tablet with sequence numbers past
// the flushed one found in RecoverLogDirs, RecoverEntries and the tablet's
// own log, then flushes
// them, so that the logs hold nothing the tables lack and can be released.
// Entries of one log are not in sequence order (concurrent Applies append
// in any order), so no replayed memtable but the last may advance
// FlushedSeq: only once all are flushed is every sequence number up to the
// largest replayed one durable in tables. Runs before the background
// goroutines start.
func (t *Tablet) replayLogs(ctx context.Context) error {
	flushed := keys.SeqNum(t.flushedSeq.Load())
	maxSeq := flushed
	mem := t.newMemTable()
	nflushed := 0
	// A seq seen twice (a log directory listed twice, or a split log that
	// overlaps the shared one) is inserted once.
	seen := map[keys.SeqNum]bool{}
	replay := func(e wal.Entry) error {
		if e.Tablet != uint64(t.opts.ID) || e.Seq <= flushed || seen[e.Seq] {
			return nil
		}
		seen[e.Seq] = true
		b, err := decodeBatch(e.Data, e.Seq)
		if err != nil {
			return fmt.Errorf("log entry %v: %w", e.Seq, err)
		}
		var need int64
		for i := range b.keys {
			need += memtable.ArenaSizeFor(len(b.keys[i]), len(b.values[i]))
		}
		if mem.m.Size()+need > t.opts.MemtableSize && !mem.m.Empty() {
			// Flushed at once, without advancing FlushedSeq: memory stays
			// bounded however long the log. A crash before the end replays
			// these entries again; the duplicates are harmless (reads and
			// compactions skip a key equal to the one before).
			mem.flushSeq = flushed
			if err := t.flushReplayed(ctx, mem); err != nil {
				return err
			}
			nflushed++
			mem = t.newMemTable()
		}
		if err := insertBatch(mem.m, b); err != nil {
			return err
		}
		maxSeq = max(maxSeq, e.Seq+keys.SeqNum(len(b.keys))-1)
		return nil
	}
	// Order does not matter: inserts commute, and seen drops repeats.
	dirs := append([]string(nil), t.opts.RecoverLogDirs...)
	if t.opts.RecoverEntries != nil {
		if err := t.opts.RecoverEntries(ctx, replay); err != nil {
			return fmt.Errorf("cellar/tablet: recover entries: %w", err)
		}
	}
	if t.opts.Log == nil {
		dirs = append(dirs, t.logDir())
	}
	for _, dir := range dirs {
		if _, err := wal.Replay(ctx, t.opts.FS, dir, nil, replay); err != nil {
			return fmt.Errorf("cellar/tablet: replay %s: %w", dir, err)
		}
	}
	t.mu.nextSeq = maxSeq + 1
	t.commits.init(maxSeq)
	if !mem.m.Empty() {
		// The last one carries maxSeq: only now is everything replayed in
		// tables.
		mem.flushSeq = maxSeq
		if err := t.flushReplayed(ctx, mem); err != nil {
			return err
		}
		nflushed++
	}
	if nflushed > 0 {
		t.logger.Info("replayed commit log", "seq", uint64(maxSeq), "memtables", nflushed)
	}
	return nil
}

// flushReplayed flushes a memtable filled by replay (during Open).
func (t *Tablet) flushReplayed(ctx context.Context, mem *memTable) error {
	t.mu.imm = append(t.mu.imm, mem)
	t.mu.rotated++
	t.installReadStateLocked()
	return t.flushOldest(ctx)
}

func insertBatch(m *memtable.Memtable, b batch) error {
	// A batch is one row's cells. Inserted in key order, each insert
	// starts from where the previous one linked (memtable.Inserter), which
	// costs less than the sort when the mutations came in another order.
	var ins memtable.Inserter
	var buf [32]int
	order := keyOrder(b.keys, buf[:0])
	for _, i := range order {
		if err := m.AddWith(&ins, b.keys[i], b.values[i]); err != nil {
			return fmt.Errorf("cellar/tablet: memtable insert: %w", err)
		}
	}
	return nil
}

// keyOrder appends to order the indexes of keys in ascending key order
// and returns it.
func keyOrder(ks [][]byte, order []int) []int {
	for i := range ks {
		order = append(order, i)
	}
	byKey := func(a, b int) int { return bytes.Compare(ks[a], ks[b]) }
	if !slices.IsSortedFunc(order, byKey) {
		slices.SortFunc(order, byKey)
	}
	return order
}

// installReadStateLocked publishes a read state for the current memtables
// and the tables of the current one.
func (t *Tablet) installReadStateLocked() {
	tables := t.mu.rs.tables
	t.replaceReadStateLocked(tables)
}

// replaceReadStateLocked publishes a read state with the current memtables
// and the given tables, and drops the tablet's reference to the old one.
func (t *Tablet) replaceReadStateLocked(tables map[string][]*table) {
	mems := make([]*memTable, 0, 1+len(t.mu.imm))
	mems = append(mems, t.mu.mem)
	for i := len(t.mu.imm) - 1; i >= 0; i-- {
		mems = append(mems, t.mu.imm[i])
	}
	old := t.mu.rs
	t.mu.rs = newReadState(mems, tables)
	if err := old.unref(); err != nil {
		t.logger.Warn("release tables", "err", err)
	}
}

// acquire returns the current read state with a reference and the
// snapshot to read at.
func (t *Tablet) acquire() (*readState, keys.SeqNum, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mu.rs == nil {
		return nil, 0, ErrClosed
	}
	rs := t.mu.rs
	rs.refs.Add(1)
	return rs, t.commits.visibleSeq(), nil
}

func (t *Tablet) notifyLocked() {
	close(t.mu.changed)
	t.mu.changed = make(chan struct{})
}

// Durability says when Apply returns.
type Durability uint8

const (
	// Sync: after the commit-log entry is durable (synced). The default.
	Sync Durability = iota
	// Async: after the entry is written to the log; it is synced within the
	// log's AsyncSyncInterval. A crash may lose it.
	Async
	// SkipLog: no log entry; the write is durable only once flushed. A
	// crash or Close before the next flush loses it.
	SkipLog
)

// WriteOptions are per-Apply settings; nil means Sync.
type WriteOptions struct {
	Durability Durability
}

// Apply applies muts to row atomically: a reader sees all of them or none.
// Each mutation gets its own sequence number, later ones higher, so a later
// mutation in the list wins over an earlier one. On a validation error
// (wrapping keys.ErrLimit, keys.ErrInvalid, ErrUnknownFamily or
// ErrRowOutOfRange) nothing is applied. If ctx ends while Apply waits for a
// write stall nothing is applied; if it ends while the log append is under
// way the outcome is unknown (the entry may be replayed after a restart).
// When Apply returns nil the row is readable, together with every row
// applied before.
func (t *Tablet) Apply(ctx context.Context, row []byte, muts []Mutation, wo *WriteOptions) error {
	dur := Sync
	if wo != nil {
		dur = wo.Durability
	}
	if dur > SkipLog {
		return fmt.Errorf("%w: durability %d", keys.ErrInvalid, dur)
	}
	if err := t.checkRow(row); err != nil {
		return err
	}
	n, need, err := checkMutations(row, muts, &t.lim)
	if err != nil {
		return err
	}
	return t.applyPart(ctx, []RowMutation{{Row: row, Mutations: muts}}, []int{n}, n, need, dur)
}

func (t *Tablet) checkRow(row []byte) error {
	if (t.opts.StartRow != nil && string(row) < string(t.opts.StartRow)) ||
		(t.opts.EndRow != nil && string(row) >= string(t.opts.EndRow)) {
		return fmt.Errorf("%w: %q not in [%q, %q)", ErrRowOutOfRange, row, t.opts.StartRow, t.opts.EndRow)
	}
	return nil
}

// admit waits for room (a write stall when MaxImmutableMemtables flushes
// are pending), then takes n sequence numbers, a server timestamp and a
// place in the commit queue, and registers the writer with its memtable.
func (t *Tablet) admit(ctx context.Context, n int, need int64) (*memTable, keys.SeqNum, int64, *commitReq, error) {
	stalled := false
	var spare *memTable
	defer func() {
		if spare != nil {
			spare.unref() // not needed after all: back to the pool
		}
		if stalled && t.opts.Events.WriteStallEnd != nil {
			t.opts.Events.WriteStallEnd()
		}
	}()
	t.mu.Lock()
	for {
		if t.mu.closed {
			t.mu.Unlock()
			return nil, 0, 0, nil, ErrClosed
		}
		if t.mu.bgErr != nil {
			err := t.mu.bgErr
			t.mu.Unlock()
			return nil, 0, 0, nil, err
		}
		if t.fenced.Load() {
			// Another server opened the tablet: what this one would
			// acknowledge now could never reach its state.
			t.mu.Unlock()
			return nil, 0, 0, nil, t.fencedError(0)
		}
		mem := t.mu.mem
		if mem.m.Size()+mem.inflight.Load()+need <= t.opts.MemtableSize {
			break
		}
		if len(t.mu.imm) < t.opts.MaxImmutableMemtables {
			if spare == nil {
				// Get the next memtable (from the pool, or a new one
				// with the first chunk of its arena) without the lock.
				t.mu.Unlock()
				spare = t.newMemTable()
				t.mu.Lock()
				continue
			}
			t.rotateLocked(spare)
			spare = nil
			continue
		}
		ch := t.mu.changed
		t.mu.Unlock()
		if !stalled {
			stalled = true
			t.stats.stalls.Add(1)
			if t.opts.Events.WriteStallBegin != nil {
				t.opts.Events.WriteStallBegin()
			}
		}
		select {
		case <-ctx.Done():
			return nil, 0, 0, nil, ctx.Err()
		case <-ch:
		}
		t.mu.Lock()
	}
	defer t.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, 0, 0, nil, err
	}
	first := t.mu.nextSeq
	last := first + keys.SeqNum(n) - 1
	if last > keys.MaxSeq {
		return nil, 0, 0, nil, fmt.Errorf("%w: sequence numbers exhausted", keys.ErrLimit)
	}
	t.mu.nextSeq = last + 1
	ts := t.opts.Clock.Now().UnixMicro()
	if ts < t.mu.lastTS {
		ts = t.mu.lastTS
	}
	t.mu.lastTS = ts
	mem := t.mu.mem
	mem.writers.Add(1)
	mem.inflight.Add(need)
	t.mu.inflight.Add(1)
	return mem, first, ts, t.commits.enqueue(last), nil
}

// rotateLocked makes the active memtable immutable and makes next the
// active one.
func (t *Tablet) rotateLocked(next *memTable) {
	old := t.mu.mem
	old.lastSeq = t.mu.nextSeq - 1
	old.flushSeq = old.lastSeq
	t.mu.imm = append(t.mu.imm, old)
	t.mu.mem = next
	t.mu.rotated++
	t.installReadStateLocked()
	t.signal(t.flushSignal)
}

// FlushedSeq is the sequence number up to which every write is in the
// tablet's SSTables (durable in its manifest): commit-log entries of this
// tablet up to it are no longer needed. The owner of a shared log uses it to
// release log files.
func (t *Tablet) FlushedSeq() keys.SeqNum { return keys.SeqNum(t.flushedSeq.Load()) }

// LastSeq is the largest sequence number assigned so far.
func (t *Tablet) LastSeq() keys.SeqNum {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.mu.nextSeq - 1
}

// Close stops the tablet: new Applies fail with ErrClosed, in-flight ones
// finish, background work stops (a flush under way is abandoned; the log
// still holds its data), and files are closed. Memtables are not flushed:
// Open replays the log. Writes made with SkipLog and not yet flushed are
// lost. Close is idempotent.
func (t *Tablet) Close() error {
	t.closeOnce.Do(func() { t.closeErr = t.close() })
	return t.closeErr
}

func (t *Tablet) close() error {
	t.mu.Lock()
	t.mu.closed = true
	t.notifyLocked()
	t.mu.Unlock()
	t.mu.inflight.Wait()
	t.bgCancel()
	t.bg.Wait()
	var errs []error
	if t.ownLog {
		errs = append(errs, t.log.Close())
	}
	// An explicit Compact (its context ends with bgCtx) or a flush still
	// installing finishes first; installs after this find the tablet
	// closed, so no manifest is written once Close has returned.
	t.compactMu.Lock()
	t.installMu.Lock()
	t.mu.Lock()
	rs := t.mu.rs
	t.mu.rs = nil
	t.mu.Unlock()
	t.installMu.Unlock()
	t.compactMu.Unlock()
	errs = append(errs, rs.unref())
	t.logger.Info("tablet closed", "dir", t.opts.Dir)
	return errors.Join(errs...)
}
