package master

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path"
	"sort"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"cellar/dfs"
	"cellar/internal/metadata"
	"cellar/internal/serr"
	"cellar/lock"
	datapb "cellar/proto/cellar/data/v1"
	tabletpb "cellar/proto/cellar/tablet/v1"
)

// serverInfo is a live tablet server as the active master sees it.
type serverInfo struct {
	id, addr string
	status   *tabletpb.ServerStatusResponse // last answer, nil before the first
	inFlight int                            // loads targeting it
}

// tabletInfo is one tablet and its assignment.
type tabletInfo struct {
	desc   *datapb.TabletDescriptor // range and directory; server fields unused
	server string                   // assigned server id; "" = unassigned
	busy   bool                     // a load, unload or move is in flight
	// needsLoc: METADATA may not name server as the location yet (a
	// failed write, or an assignment adopted from a server's report).
	needsLoc bool
	// held: a split or merge intent in METADATA names the tablet and is
	// not resolved yet; it is not assigned or moved until it is.
	held bool
	// since is the term's assignment generation when server was last set
	// by the master: a status answer requested before it says nothing
	// about the assignment (refreshStatuses).
	since uint64
	// foundInScan: the tablet was first seen in METADATA scan number
	// foundInScan (term.scans) and no complete status round asked after
	// that scan has told whether a server serves it; 0 once one has. A
	// split's daughter whose row is committed (and intent cleared) between
	// a pass's status round and a later scan in that pass would otherwise
	// look unassigned and be loaded on a second server.
	foundInScan uint64
}

// term is one tenure as the active master. Its fields are guarded by mu,
// except those set at creation.
type term struct {
	m    *Master
	lc   *lock.Client
	seq  lock.Sequencer
	wg   sync.WaitGroup
	kick chan struct{}
	done <-chan struct{} // closed when the term ends
	stop func()          // ends the term (serverErr)

	mu          sync.Mutex
	servers     map[string]*serverInfo
	tablets     map[uint64]*tabletInfo
	schemas     map[uint64]*datapb.TableSchema // by table id; 0 is METADATA
	names       map[string]uint64
	schemasRead bool
	metaDirty   bool   // METADATA must be (re)scanned
	rootLoc     string // what /cellar/root says, as written by this term
	// metaLocs: what the root tablet says of each META tablet's
	// location (info:loc), from the last root scan and this term's writes.
	metaLocs    map[uint64]string
	rootScanned bool // the root tablet's rows were read this term
	rootRows    int  // rows the last root scan found (0: METADATA is new)
	lastBalance time.Time
	orphans     map[string]time.Time // table directories no schema names, first seen
	ended       bool                 // the term is over: no new goroutines (wg)
	gen         uint64               // assignment generation (tabletInfo.since)
	merging     map[uint64]bool      // merged tablet ids of merges this term runs
	// gone holds the ids of tablets merged away: a status answer or a
	// METADATA scan older than the merge must not bring them back.
	gone map[uint64]bool
	// Intents found by the last METADATA scan, resolved by resolveIntents.
	mergeIntents     []*mergeIntent
	splitIntents     []*splitIntent
	statusesComplete bool   // every live server answered in the last refreshStatuses
	scans            uint64 // METADATA scans merged into the state (tabletInfo.foundInScan)
	gc               gcState
}

func newTerm(m *Master, lc *lock.Client, seq lock.Sequencer, done <-chan struct{}, stop func()) *term {
	return &term{m: m, lc: lc, seq: seq, kick: make(chan struct{}, 1), done: done, stop: stop, merging: map[uint64]bool{}, gone: map[uint64]bool{},
		servers: map[string]*serverInfo{}, tablets: map[uint64]*tabletInfo{},
		schemas: map[uint64]*datapb.TableSchema{metadata.TableID: metadata.Schema()}, names: map[string]uint64{},
		metaLocs: map[uint64]string{}, metaDirty: true, lastBalance: time.Now(), orphans: map[string]time.Time{}}
}

// nextGenLocked returns a new assignment generation.
func (t *term) nextGenLocked() uint64 {
	t.gen++
	return t.gen
}

// bind returns a context that also ends when the term does.
func (t *term) bind(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-t.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// serverErr converts err, a tablet server's answer to a request that
// carried the term's sequencer, from the wire (serr.Wire) and returns it.
// If it is ErrStaleSequencer, it first ends the term: the lock service no
// longer holds the sequencer, so another master may be active and
// everything the term sends from now on is refused. The master stops
// acting rather than retry (Run campaigns again).
func (t *term) serverErr(err error) error {
	err = serr.Wire.FromStatus(err)
	if !errors.Is(err, serr.ErrStaleSequencer) {
		return err
	}
	select {
	case <-t.done:
	default:
		t.m.log.Warn("a tablet server refused this master's sequencer: deposed, stepping down", "sequencer", t.seq.String(), "err", err)
		t.stop()
	}
	return err
}

// poke asks the loop for a pass now.
func (t *term) poke() {
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// watch turns lock-service membership events into passes.
func (t *term) watch(ctx context.Context) {
	defer t.wg.Done()
	if _, err := t.lc.WatchChildren(ctx, ServersDir); err != nil && ctx.Err() == nil {
		t.m.log.Warn("watch tablet servers", "err", err)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.lc.Events():
			t.poke()
		}
	}
}

func (t *term) loop(ctx context.Context) {
	tick := time.NewTicker(t.m.opts.ReconcileInterval)
	defer tick.Stop()
	for {
		if err := t.pass(ctx); err != nil && ctx.Err() == nil {
			t.m.log.Warn("reconcile pass incomplete; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-t.kick:
		}
	}
}

// pass is one reconcile pass (see the package doc).
func (t *term) pass(ctx context.Context) error {
	if err := t.readSchemas(ctx); err != nil {
		return err
	}
	logDirs, err := t.serverLogDirs(ctx)
	if err != nil {
		return fmt.Errorf("list server logs: %w", err)
	}
	live, err := t.refreshServers(ctx)
	if err != nil {
		return fmt.Errorf("list tablet servers: %w", err)
	}
	// METADATA before statuses: a split a server commits after the scan is
	// reported by that server in the status that follows.
	if err := t.scanMetaIfDirty(ctx); err != nil {
		t.m.log.Warn("scan METADATA", "err", err)
	}
	t.refreshStatuses(ctx)
	for _, id := range logDirs {
		if !live[id] {
			if err := t.recoverServer(ctx, id); err != nil {
				return fmt.Errorf("recover server %s: %w", id, err)
			}
		}
	}
	if err := t.ensureRoot(ctx); err != nil {
		return fmt.Errorf("root tablet: %w", err)
	}
	// The root's rows name every META tablet: read them (and, if every
	// META tablet is served, the user tablets' rows) now that the root is
	// served, assign the META tablets, then read what is left.
	if err := t.scanMetaIfDirty(ctx); err != nil {
		t.m.log.Debug("scan METADATA before assigning META tablets", "err", err)
	}
	if err := t.ensureMetas(ctx); err != nil {
		t.m.log.Warn("META tablets", "err", err)
	}
	scanErr := t.scanMetaIfDirty(ctx)
	// Intents are resolved even when a META tablet could not be read: a
	// META tablet held by its split's intent is read only once the intent
	// (in the root) is resolved.
	if t.resolveIntents(ctx) {
		if err := t.scanMetaIfDirty(ctx); scanErr == nil {
			scanErr = err
		}
	}
	if scanErr != nil {
		return fmt.Errorf("scan METADATA: %w", scanErr)
	}
	t.assignAll(ctx)
	t.recordLocations(ctx)
	if time.Since(t.lastBalance) >= t.m.opts.BalanceInterval {
		t.lastBalance = time.Now()
		t.balance(ctx)
	}
	t.collectGarbage(ctx)
	t.collectFiles(ctx)
	return nil
}

func (t *term) readSchemas(ctx context.Context) error {
	t.mu.Lock()
	done := t.schemasRead
	t.mu.Unlock()
	if done {
		return nil
	}
	names, err := t.lc.List(ctx, TablesDir)
	if err != nil {
		return fmt.Errorf("list tables: %w", err)
	}
	schemas := map[uint64]*datapb.TableSchema{}
	for _, name := range names {
		n, found, err := t.lc.Get(ctx, path.Join(TablesDir, name))
		if err != nil {
			return fmt.Errorf("read schema of %q: %w", name, err)
		}
		if !found {
			continue
		}
		s := new(datapb.TableSchema)
		if err := proto.Unmarshal(n.Content, s); err != nil {
			t.m.log.Error("corrupt table schema in the lock service; table ignored", "table", name, "err", err)
			continue
		}
		schemas[s.TableId] = s
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, s := range schemas {
		t.schemas[id] = s
		t.names[s.Name] = id
	}
	t.schemasRead = true
	return nil
}

// serverLogDirs lists the ids of servers with a commit-log directory.
func (t *term) serverLogDirs(ctx context.Context) ([]string, error) {
	ents, err := t.m.opts.FS.List(ctx, serversRoot)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range ents {
		if e.IsDir {
			ids = append(ids, path.Base(e.Name))
		}
	}
	return ids, nil
}

// refreshServers lists live servers; servers gone since the last pass are
// dropped and their tablets unassigned.
func (t *term) refreshServers(ctx context.Context) (map[string]bool, error) {
	ids, err := t.lc.List(ctx, ServersDir)
	if err != nil {
		return nil, err
	}
	live := map[string]bool{}
	for _, id := range ids {
		live[id] = true
	}
	t.mu.Lock()
	var unknown []string
	for _, id := range ids {
		if _, ok := t.servers[id]; !ok {
			unknown = append(unknown, id)
		}
	}
	for id := range t.servers {
		if !live[id] {
			delete(t.servers, id)
			n := 0
			for _, ti := range t.tablets {
				if ti.server == id {
					ti.server = ""
					n++
				}
			}
			t.metaDirty = true
			t.m.log.Warn("tablet server lost", "server", id, "tablets", n)
		}
	}
	t.mu.Unlock()
	for _, id := range unknown {
		n, found, err := t.lc.Get(ctx, path.Join(ServersDir, id))
		if err != nil {
			return nil, err
		}
		if !found {
			delete(live, id)
			continue
		}
		t.mu.Lock()
		t.servers[id] = &serverInfo{id: id, addr: string(n.Content)}
		t.mu.Unlock()
		t.m.log.Info("tablet server joined", "server", id, "addr", string(n.Content))
	}
	return live, nil
}

// refreshStatuses asks every live server what it serves and reconciles the
// assignments with the answers.
func (t *term) refreshStatuses(ctx context.Context) {
	t.mu.Lock()
	servers := make([]*serverInfo, 0, len(t.servers))
	for _, s := range t.servers {
		servers = append(servers, s)
	}
	asked := t.gen // assignments made after this are newer than the answers
	askedScan := t.scans
	t.mu.Unlock()
	type answer struct {
		s  *serverInfo
		st *tabletpb.ServerStatusResponse
	}
	answers := make(chan answer, len(servers))
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := t.m.conns.server(s.addr)
			if err != nil {
				return
			}
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			st, err := cl.ServerStatus(rctx, &tabletpb.ServerStatusRequest{})
			if err != nil {
				t.m.log.Debug("server status", "server", s.id, "err", err)
				return
			}
			answers <- answer{s, st}
		}()
	}
	wg.Wait()
	close(answers)
	t.mu.Lock()
	defer t.mu.Unlock()
	// A server whose answer is not from the incarnation asked counts as
	// not answered.
	t.statusesComplete = len(answers) == len(servers)
	for a := range answers {
		if t.servers[a.s.id] != a.s {
			continue // lost meanwhile
		}
		if a.st.ServerId != a.s.id {
			// Another incarnation answers on the address of one whose
			// session has not expired yet: not that server's state.
			t.m.log.Debug("status from another incarnation", "server", a.s.id, "answered", a.st.ServerId)
			t.statusesComplete = false
			continue
		}
		a.s.status = a.st
		reported := map[uint64]bool{}
		for _, ts := range a.st.Tablets {
			d := ts.Tablet
			if d == nil {
				continue
			}
			if t.gone[d.TabletId] {
				t.m.log.Error("server reports a tablet that was merged away; unloading it", "tablet", d.TabletId, "server", a.s.id)
				go t.unload(context.WithoutCancel(ctx), a.s.addr, d.TabletId)
				continue
			}
			reported[d.TabletId] = true
			ti, ok := t.tablets[d.TabletId]
			if !ok {
				ti = &tabletInfo{desc: stripServer(d)}
				t.tablets[d.TabletId] = ti
			} else if !ti.busy && ti.since <= asked {
				ti.desc = stripServer(d)
			}
			switch {
			case ti.server == "" && !ti.busy:
				ti.server = a.s.id
				ti.needsLoc = true
			case ti.server != a.s.id && ti.server != "":
				if other := t.servers[ti.server]; other != nil && other.status != nil && reports(other.status, d.TabletId) {
					t.m.log.Error("tablet served by two servers; unloading the second", "tablet", d.TabletId,
						"kept", ti.server, "unloading", a.s.id)
					go t.unload(context.WithoutCancel(ctx), a.s.addr, d.TabletId)
				} else if !ti.busy {
					ti.server = a.s.id
					ti.needsLoc = true
				}
			}
		}
		for id, ti := range t.tablets {
			if ti.server == a.s.id && !ti.busy && !reported[id] && ti.since <= asked {
				t.m.log.Warn("tablet not served by its assigned server; unassigning", "tablet", id, "server", a.s.id)
				ti.server = ""
				if ti.held {
					t.metaDirty = true // its intent is for resolveIntents now
				}
			}
		}
	}
	if t.statusesComplete {
		t.releaseScannedLocked(askedScan)
	}
}

// releaseScannedLocked marks the tablets found by METADATA scans up to
// number scan as told about by a complete status round asked after that
// scan: every live server was asked, and one serving such a tablet listed
// it, so those still unassigned are free to assign.
func (t *term) releaseScannedLocked(scan uint64) {
	for _, ti := range t.tablets {
		if ti.foundInScan != 0 && ti.foundInScan <= scan {
			ti.foundInScan = 0
		}
	}
}

// assignableLocked reports whether assignAll may load ti: a user tablet
// of a known table, unassigned, not being loaded or moved, not held by an
// intent, and not newly found by a scan no status round has followed.
func (t *term) assignableLocked(ti *tabletInfo) bool {
	return ti.server == "" && !ti.busy && !ti.held && ti.foundInScan == 0 &&
		ti.desc.TableId != metadata.TableID && t.schemas[ti.desc.TableId] != nil
}

func reports(st *tabletpb.ServerStatusResponse, id uint64) bool {
	for _, ts := range st.Tablets {
		if ts.Tablet != nil && ts.Tablet.TabletId == id {
			return true
		}
	}
	return false
}

func stripServer(d *datapb.TabletDescriptor) *datapb.TabletDescriptor {
	c := cloneDesc(d)
	c.ServerId, c.ServerAddress = "", ""
	return c
}

func (t *term) unload(ctx context.Context, addr string, id uint64) {
	cl, err := t.m.conns.server(addr)
	if err != nil {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, t.m.opts.RPCTimeout)
	defer cancel()
	if _, err := cl.UnloadTablet(rctx, &tabletpb.UnloadTabletRequest{Master: seqProto(t.seq), TabletId: id}); err != nil {
		t.m.log.Warn("unload tablet", "tablet", id, "server", addr, "err", t.serverErr(err))
	}
}

// ensureRoot makes sure the root tablet is served and /cellar/root names
// its server.
func (t *term) ensureRoot(ctx context.Context) error {
	t.mu.Lock()
	ti := t.tablets[metadata.RootTabletID]
	if ti == nil {
		ti = &tabletInfo{desc: metadata.RootTablet()}
		t.tablets[metadata.RootTabletID] = ti
	}
	t.mu.Unlock()
	s, err := t.ensureAssigned(ctx, ti)
	if err != nil {
		return err
	}
	loc := string(metadata.EncodeLocation(s.id, s.addr))
	t.mu.Lock()
	same := t.rootLoc == loc
	t.mu.Unlock()
	if same {
		return nil
	}
	if _, err := t.lc.Set(ctx, RootPath, []byte(loc)); err != nil {
		return fmt.Errorf("publish root location: %w", err)
	}
	t.mu.Lock()
	t.rootLoc = loc
	t.mu.Unlock()
	t.m.log.Info("root tablet location published", "server", s.id, "addr", s.addr)
	return nil
}

// ensureMetas makes sure every META tablet the root tablet names is
// served, in row order, and that the root's row of each names its server.
// On a new METADATA (the root has no rows) it creates the first META
// tablet, which covers every user tablet's row. Tablets held by a split
// intent or just found by a scan are left to resolveIntents and the next
// status round.
func (t *term) ensureMetas(ctx context.Context) error {
	t.mu.Lock()
	if !t.rootScanned {
		t.mu.Unlock()
		return fmt.Errorf("%w: the root tablet has not been read yet", serr.ErrUnavailable)
	}
	metas := t.metaTabletsLocked()
	create := t.rootRows == 0
	if len(metas) == 0 {
		if !create {
			t.mu.Unlock()
			return fmt.Errorf("the root tablet has %d rows but no readable META tablet", t.rootRows)
		}
		ti := &tabletInfo{desc: metadata.MetaTablet()}
		t.tablets[metadata.MetaTabletID] = ti
		metas = []*tabletInfo{ti}
	}
	t.mu.Unlock()
	var errs []error
	for _, ti := range metas {
		t.mu.Lock()
		free := ti.server == "" && !ti.busy && !ti.held && ti.foundInScan == 0
		t.mu.Unlock()
		if free {
			s := t.pickServer("")
			if s == nil {
				return errors.Join(append(errs, errors.New("no live tablet server"))...)
			}
			if err := t.load(ctx, ti, s, false); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		t.mu.Lock()
		s := t.servers[ti.server]
		skip := ti.busy || ti.held
		desc := cloneDesc(ti.desc)
		recorded := t.metaLocs[desc.TabletId]
		t.mu.Unlock()
		if s == nil {
			if !skip {
				errs = append(errs, fmt.Errorf("%w: META tablet %d is not served yet", serr.ErrUnavailable, desc.TabletId))
			}
			continue
		}
		loc := string(metadata.EncodeLocation(s.id, s.addr))
		if skip || recorded == loc {
			continue
		}
		// The descriptor is written only when creating METADATA's first
		// row: later rows are written by the splits that make them, and
		// the master's copy of a range may lag behind a split. The row
		// key does not: a split keeps the right daughter's end row (and
		// id), so the row is right even when the range is stale.
		first := create && desc.TabletId == metadata.MetaTabletID
		if err := t.writeMeta(ctx, []metaRow{{desc: desc, serverID: s.id, addr: s.addr, create: first}}); err != nil {
			errs = append(errs, fmt.Errorf("record META tablet %d's location: %w", desc.TabletId, err))
			continue
		}
		t.mu.Lock()
		t.metaLocs[desc.TabletId] = loc
		if first {
			t.rootRows = max(t.rootRows, 1)
		}
		t.mu.Unlock()
	}
	return errors.Join(errs...)
}

// ensureAssigned loads an unassigned tablet and returns its server.
func (t *term) ensureAssigned(ctx context.Context, ti *tabletInfo) (*serverInfo, error) {
	t.mu.Lock()
	if s := t.servers[ti.server]; s != nil {
		t.mu.Unlock()
		return s, nil
	}
	t.mu.Unlock()
	s := t.pickServer("")
	if s == nil {
		return nil, errors.New("no live tablet server")
	}
	if err := t.load(ctx, ti, s, false); err != nil {
		return nil, err
	}
	return s, nil
}

// pickServer returns the live server with the fewest tablets (plus loads
// in flight), other than except; nil if there is none.
func (t *term) pickServer(except string) *serverInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	counts := t.countsLocked()
	var best *serverInfo
	bestN := 0
	ids := make([]string, 0, len(t.servers))
	for id := range t.servers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	rand.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	for _, id := range ids {
		s := t.servers[id]
		if id == except {
			continue
		}
		n := counts[id] + s.inFlight
		if best == nil || n < bestN {
			best, bestN = s, n
		}
	}
	if best != nil {
		best.inFlight++
	}
	return best
}

func (t *term) countsLocked() map[string]int {
	counts := map[string]int{}
	for _, ti := range t.tablets {
		if ti.server != "" {
			counts[ti.server]++
		}
	}
	return counts
}

// load sends LoadTablet to s for ti (with its recovered edits), records
// the assignment in METADATA (user tablets; the root and META tablets are
// recorded by ensureRoot and ensureMetas) and deletes the replayed edits. s.inFlight was raised by
// pickServer; load lowers it.
func (t *term) load(ctx context.Context, ti *tabletInfo, s *serverInfo, recordMeta bool) error {
	t.mu.Lock()
	s.inFlight--
	if ti.busy || ti.server != "" {
		t.mu.Unlock()
		return nil
	}
	ti.busy = true
	desc := cloneDesc(ti.desc)
	schema := t.schemas[desc.TableId]
	t.mu.Unlock()
	done := func(server string) {
		t.mu.Lock()
		ti.busy = false
		ti.server = server
		ti.since = t.nextGenLocked()
		t.mu.Unlock()
	}
	if schema == nil {
		done("")
		return fmt.Errorf("tablet %d: no schema for table %d", desc.TabletId, desc.TableId)
	}
	edits, err := t.recoveredEdits(ctx, desc.TabletId)
	if err != nil {
		done("")
		return err
	}
	cl, err := t.m.conns.server(s.addr)
	if err != nil {
		done("")
		return err
	}
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, t.m.opts.RPCTimeout)
	req := &tabletpb.LoadTabletRequest{Master: seqProto(t.seq), Tablet: cloneDesc(desc), Schema: schema, RecoveredEdits: edits}
	req.Tablet.ServerId, req.Tablet.ServerAddress = s.id, s.addr // refused by any other incarnation on that address
	_, err = cl.LoadTablet(rctx, req)
	cancel()
	if err != nil {
		done("")
		return fmt.Errorf("load tablet %d on %s: %w", desc.TabletId, s.id, t.serverErr(err))
	}
	done(s.id)
	t.m.log.Info("tablet loaded", "table", desc.TableId, "tablet", desc.TabletId, "server", s.id,
		"recovered_edits", len(edits), "took", time.Since(start).Round(time.Millisecond))
	if recordMeta {
		if err := t.writeMeta(ctx, []metaRow{{desc: desc, serverID: s.id, addr: s.addr}}); err != nil {
			// The tablet is served; clients that find no location retry
			// until a later pass records it.
			t.m.log.Warn("record tablet location; retrying in the next pass", "tablet", desc.TabletId, "err", err)
			t.mu.Lock()
			ti.needsLoc = true
			t.mu.Unlock()
		}
	}
	for _, d := range edits {
		if err := removeTree(ctx, t.m.opts.FS, d); err != nil {
			t.m.log.Warn("remove replayed edits", "dir", d, "err", err)
		}
	}
	return nil
}

// recoveredEdits lists the recovered-edits directories of a tablet.
func (t *term) recoveredEdits(ctx context.Context, tablet uint64) ([]string, error) {
	dir := recoveredRoot(tablet)
	ents, err := t.m.opts.FS.List(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("list recovered edits of tablet %d: %w", tablet, err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir {
			out = append(out, dfs.Join(dir, e.Name))
		}
	}
	return out, nil
}

// assignAll loads every unassigned user tablet, a few at a time.
func (t *term) assignAll(ctx context.Context) {
	t.mu.Lock()
	var todo []*tabletInfo
	for _, ti := range t.tablets {
		if t.assignableLocked(ti) {
			todo = append(todo, ti)
		}
	}
	// Sorted under the lock: a split rewrites ti.desc.
	sort.Slice(todo, func(i, j int) bool { return todo[i].desc.TabletId < todo[j].desc.TabletId })
	t.mu.Unlock()
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, ti := range todo {
		s := t.pickServer("")
		if s == nil {
			return
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := t.load(ctx, ti, s, true); err != nil && ctx.Err() == nil {
				t.m.log.Warn("assign tablet", "err", err)
			}
		}()
	}
	wg.Wait()
}

// balance moves tablets from the most to the least loaded servers until
// their counts differ by at most one, MaxConcurrentMoves at a time. META
// tablets move like user tablets (their new location is recorded in the
// root tablet); the root tablet stays where it is.
func (t *term) balance(ctx context.Context) {
	t.mu.Lock()
	if len(t.servers) < 2 {
		t.mu.Unlock()
		return
	}
	counts := t.countsLocked()
	type move struct {
		ti       *tabletInfo
		id       uint64 // ti's id when picked: ti.desc changes under t.mu (splits)
		from, to *serverInfo
	}
	var moves []move
	picked := map[uint64]bool{}
	for len(moves) < t.m.opts.MaxConcurrentMoves {
		var hi, lo *serverInfo
		for id, s := range t.servers {
			if hi == nil || counts[id] > counts[hi.id] || counts[id] == counts[hi.id] && id < hi.id {
				hi = s
			}
			if lo == nil || counts[id] < counts[lo.id] || counts[id] == counts[lo.id] && id < lo.id {
				lo = s
			}
		}
		if counts[hi.id]-counts[lo.id] < 2 {
			break
		}
		var cand *tabletInfo
		for id, ti := range t.tablets {
			if ti.server == hi.id && !ti.busy && !ti.held && !picked[id] && id != metadata.RootTabletID {
				if cand == nil || id < cand.desc.TabletId {
					cand = ti
				}
			}
		}
		if cand == nil {
			break
		}
		picked[cand.desc.TabletId] = true
		counts[hi.id]--
		counts[lo.id]++
		moves = append(moves, move{cand, cand.desc.TabletId, hi, lo})
	}
	t.mu.Unlock()
	var wg sync.WaitGroup
	for _, mv := range moves {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := t.move(ctx, mv.ti, mv.from, mv.to); err != nil && ctx.Err() == nil {
				t.m.log.Warn("move tablet", "tablet", mv.id, "err", err)
			}
		}()
	}
	wg.Wait()
}

// move unloads a tablet (the server flushes it) and loads it elsewhere.
func (t *term) move(ctx context.Context, ti *tabletInfo, from, to *serverInfo) error {
	t.mu.Lock()
	if ti.busy || ti.server != from.id {
		t.mu.Unlock()
		return nil
	}
	ti.busy = true
	id := ti.desc.TabletId
	t.mu.Unlock()
	cl, err := t.m.conns.server(from.addr)
	if err == nil {
		rctx, cancel := context.WithTimeout(ctx, t.m.opts.RPCTimeout)
		_, err = cl.UnloadTablet(rctx, &tabletpb.UnloadTabletRequest{Master: seqProto(t.seq), TabletId: id})
		cancel()
		err = t.serverErr(err)
	}
	t.mu.Lock()
	ti.busy = false
	if err != nil {
		t.mu.Unlock()
		return fmt.Errorf("unload from %s: %w", from.id, err)
	}
	ti.server = ""
	to.inFlight++
	t.mu.Unlock()
	t.m.log.Info("moving tablet", "tablet", id, "from", from.id, "to", to.id)
	return t.load(ctx, ti, to, true)
}

// tabletFor returns the tablet of table holding row.
func (t *term) tabletForLocked(table uint64, row []byte) *tabletInfo {
	for _, ti := range t.tablets {
		d := ti.desc
		if d.TableId == table && metadata.Contains(d.StartRow, d.EndRow, row) {
			return ti
		}
	}
	return nil
}

// tabletsOfLocked returns a table's tablets in row order.
func (t *term) tabletsOfLocked(table uint64) []*tabletInfo {
	var out []*tabletInfo
	for _, ti := range t.tablets {
		if ti.desc.TableId == table {
			out = append(out, ti)
		}
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].desc.StartRow, out[j].desc.StartRow) < 0 })
	return out
}

// recordLocations writes the METADATA location of every user tablet whose
// row may not name its server.
func (t *term) recordLocations(ctx context.Context) {
	t.mu.Lock()
	var rows []metaRow
	var tis []*tabletInfo
	for _, ti := range t.tablets {
		s := t.servers[ti.server]
		if !ti.needsLoc || ti.busy || s == nil || ti.desc.TableId == metadata.TableID {
			continue
		}
		rows = append(rows, metaRow{desc: cloneDesc(ti.desc), serverID: s.id, addr: s.addr})
		tis = append(tis, ti)
	}
	t.mu.Unlock()
	if len(rows) == 0 {
		return
	}
	if err := t.writeMeta(ctx, rows); err != nil {
		t.m.log.Warn("record tablet locations", "tablets", len(rows), "err", err)
		return
	}
	t.mu.Lock()
	for _, ti := range tis {
		ti.needsLoc = false
	}
	t.mu.Unlock()
}
