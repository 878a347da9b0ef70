package lock

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// maxQueuedEvents bounds each session's event queue; older events are
// dropped and the client is told with an EventEventsLost.
const maxQueuedEvents = 1024

type fsmNode struct {
	content      []byte
	version      uint64
	owner        uint64
	ctime, mtime int64
	mode         Mode
	gen          uint64
	holders      []uint64 // sorted
}

type fsmSession struct {
	id         uint64
	leaseNS    int64
	created    int64
	nextSeq    uint64           // seq of the next event
	events     []Event          // the most recent events, seq ascending
	watches    map[string]uint8 // path -> flagWatch*
	held       map[string]Mode  // derived: locks held
	ephemerals map[string]bool  // derived: ephemeral nodes owned
	notify     chan struct{}    // not replicated: closed when events arrive or the session ends
}

// fsm is the replicated state machine. Apply is deterministic: it reads no
// clock (time comes in command.now) and iterates maps only in sorted order.
// Safe for concurrent use: Apply/Restore take mu for writing, readers for
// reading.
type fsm struct {
	mu       sync.RWMutex
	applied  uint64
	nodes    map[string]*fsmNode
	children map[string]map[string]bool // parent path -> child names (derived)
	sess     map[uint64]*fsmSession
	watchers map[string]map[uint64]uint8 // path -> session -> flags (derived)
	members  map[string]Member
	// appliedCh is not replicated: closed (and replaced) after every Apply.
	appliedCh chan struct{}
	// freed is not replicated: per path, a channel closed at the next
	// release of its lock (or the node's deletion); blocked acquirers wait on it.
	freed map[string]chan struct{}
}

func newFSM() *fsm {
	f := &fsm{}
	f.reset()
	return f
}

func (f *fsm) reset() {
	f.applied = 0
	f.nodes = map[string]*fsmNode{}
	f.children = map[string]map[string]bool{}
	f.sess = map[uint64]*fsmSession{}
	f.watchers = map[string]map[uint64]uint8{}
	f.members = map[string]Member{}
	if f.freed == nil {
		f.freed = map[string]chan struct{}{}
	}
	if f.appliedCh == nil {
		f.appliedCh = make(chan struct{})
	}
}

// applyResult is what Apply returns through raft's ApplyFuture.
type applyResult struct {
	err     error
	session uint64
	leaseNS int64
	version uint64
	seq     Sequencer
}

// Apply implements raft.FSM.
func (f *fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return &applyResult{}
	}
	c, err := decodeCommand(l.Data)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = l.Index
	close(f.appliedCh)
	f.appliedCh = make(chan struct{})
	if err != nil {
		return &applyResult{err: err}
	}
	return f.applyLocked(l.Index, c)
}

func (f *fsm) applyLocked(index uint64, c *command) *applyResult {
	switch c.op {
	case opOpenSession:
		if c.leaseNS == 0 || c.leaseNS > uint64(24*time.Hour) {
			return &applyResult{err: fmt.Errorf("%w: lease %v", ErrInvalidArgument, time.Duration(c.leaseNS))}
		}
		s := &fsmSession{id: index, leaseNS: int64(c.leaseNS), created: c.now, nextSeq: 1}
		s.init()
		f.sess[s.id] = s
		return &applyResult{session: s.id, leaseNS: s.leaseNS}
	case opCloseSession, opExpire:
		if f.sess[c.session] == nil {
			return &applyResult{err: fmt.Errorf("%w: session %d", ErrSessionExpired, c.session)}
		}
		f.endSessionLocked(c.session)
		return &applyResult{}
	case opExpiring:
		if s := f.sess[c.session]; s != nil {
			f.pushLocked(s, Event{Type: EventSessionExpiring})
		}
		return &applyResult{}
	case opMember:
		if c.flags&flagEphemeral != 0 {
			delete(f.members, c.path)
		} else {
			f.members[c.path] = Member{ID: c.path, RaftAddr: c.a, GRPCAddr: c.b}
		}
		return &applyResult{}
	}
	// Node operations.
	var s *fsmSession
	if c.session != 0 {
		if s = f.sess[c.session]; s == nil {
			return &applyResult{err: fmt.Errorf("%w: session %d", ErrSessionExpired, c.session)}
		}
	}
	if c.op == opWatch {
		if err := ValidatePath(c.path); err != nil {
			return &applyResult{err: err}
		}
		if s == nil {
			return &applyResult{err: fmt.Errorf("%w: watch needs a session", ErrInvalidArgument)}
		}
		f.setWatchLocked(s, c.path, c.flags&(flagWatchContent|flagWatchChildren))
		return &applyResult{}
	}
	if err := validateNodePath(c.path); err != nil {
		return &applyResult{err: err}
	}
	n := f.nodes[c.path]
	switch c.op {
	case opSet:
		return f.setLocked(s, c, n)
	case opDelete:
		if n == nil {
			return &applyResult{err: fmt.Errorf("%w: %s", ErrNotFound, c.path)}
		}
		if c.flags&flagHasExpected != 0 && c.expected != n.version {
			return &applyResult{err: fmt.Errorf("%w: %s is at version %d, not %d", ErrVersionMismatch, c.path, n.version, c.expected)}
		}
		for _, h := range n.holders {
			if h != c.session {
				return &applyResult{err: fmt.Errorf("%w: %s is locked by session %d", ErrLockBusy, c.path, h)}
			}
		}
		f.deleteNodeLocked(c.path)
		return &applyResult{}
	case opAcquire:
		return f.acquireLocked(index, s, c, n)
	case opRelease:
		if s == nil {
			return &applyResult{err: fmt.Errorf("%w: release needs a session", ErrInvalidArgument)}
		}
		if _, ok := s.held[c.path]; !ok {
			return &applyResult{err: fmt.Errorf("%w: %s by session %d", ErrNotHeld, c.path, s.id)}
		}
		f.releaseLocked(s, c.path)
		return &applyResult{}
	}
	return &applyResult{err: fmt.Errorf("%w: op %d", ErrCorrupt, c.op)}
}

func (s *fsmSession) init() {
	s.watches = map[string]uint8{}
	s.held = map[string]Mode{}
	s.ephemerals = map[string]bool{}
	s.notify = make(chan struct{})
}

func (f *fsm) setLocked(s *fsmSession, c *command, n *fsmNode) *applyResult {
	eph := c.flags&flagEphemeral != 0
	if eph && s == nil {
		return &applyResult{err: fmt.Errorf("%w: an ephemeral node needs a session", ErrInvalidArgument)}
	}
	var cur uint64
	if n != nil {
		cur = n.version
	}
	if c.flags&flagHasExpected != 0 && c.expected != cur {
		return &applyResult{err: fmt.Errorf("%w: %s is at version %d, not %d", ErrVersionMismatch, c.path, cur, c.expected)}
	}
	if n != nil && eph && n.owner != c.session {
		return &applyResult{err: fmt.Errorf("%w: %s exists and is not an ephemeral node of session %d", ErrAlreadyExists, c.path, c.session)}
	}
	if n == nil {
		n = &fsmNode{ctime: c.now}
		if eph {
			n.owner = s.id
			s.ephemerals[c.path] = true
		}
		f.nodes[c.path] = n
		parent, name := split(c.path)
		if f.children[parent] == nil {
			f.children[parent] = map[string]bool{}
		}
		f.children[parent][name] = true
		f.notifyLocked(parent, flagWatchChildren, Event{Type: EventChildAdded, Path: parent, Child: name})
	}
	n.version++
	n.mtime = c.now
	n.content = c.content
	f.notifyLocked(c.path, flagWatchContent, Event{Type: EventContentChanged, Path: c.path, Version: n.version})
	return &applyResult{version: n.version}
}

func (f *fsm) acquireLocked(index uint64, s *fsmSession, c *command, n *fsmNode) *applyResult {
	if s == nil {
		return &applyResult{err: fmt.Errorf("%w: acquire needs a session", ErrInvalidArgument)}
	}
	if c.mode != ModeExclusive && c.mode != ModeShared {
		return &applyResult{err: fmt.Errorf("%w: lock mode %v", ErrInvalidArgument, c.mode)}
	}
	if n == nil {
		return &applyResult{err: fmt.Errorf("%w: %s", ErrNotFound, c.path)}
	}
	if m, ok := s.held[c.path]; ok {
		if m == c.mode { // idempotent: a retried acquire gets the same sequencer
			return &applyResult{seq: Sequencer{Path: c.path, Mode: m, Generation: n.gen}}
		}
		return &applyResult{err: fmt.Errorf("%w: session %d holds %s in %v mode", ErrLockBusy, s.id, c.path, m)}
	}
	switch {
	case n.mode == ModeNone:
		n.mode, n.gen = c.mode, index
	case n.mode == ModeShared && c.mode == ModeShared:
	default:
		return &applyResult{err: fmt.Errorf("%w: %s is held %v", ErrLockBusy, c.path, n.mode)}
	}
	i, _ := slices.BinarySearch(n.holders, s.id)
	n.holders = slices.Insert(n.holders, i, s.id)
	s.held[c.path] = c.mode
	f.notifyLocked(c.path, flagWatchContent, Event{Type: EventLockAcquired, Path: c.path, Generation: n.gen})
	return &applyResult{seq: Sequencer{Path: c.path, Mode: n.mode, Generation: n.gen}}
}

func (f *fsm) releaseLocked(s *fsmSession, path string) {
	delete(s.held, path)
	n := f.nodes[path]
	if n == nil {
		return
	}
	if i, ok := slices.BinarySearch(n.holders, s.id); ok {
		n.holders = slices.Delete(n.holders, i, i+1)
	}
	if len(n.holders) == 0 {
		n.mode = ModeNone
		f.wakeLocked(path)
		f.notifyLocked(path, flagWatchContent, Event{Type: EventLockReleased, Path: path, Generation: n.gen})
	}
}

func (f *fsm) deleteNodeLocked(path string) {
	n := f.nodes[path]
	for _, h := range n.holders {
		if hs := f.sess[h]; hs != nil {
			delete(hs.held, path)
		}
	}
	if n.owner != 0 {
		if os := f.sess[n.owner]; os != nil {
			delete(os.ephemerals, path)
		}
	}
	delete(f.nodes, path)
	parent, name := split(path)
	delete(f.children[parent], name)
	if len(f.children[parent]) == 0 {
		delete(f.children, parent)
	}
	f.wakeLocked(path)
	f.notifyLocked(path, flagWatchContent, Event{Type: EventNodeDeleted, Path: path, Version: n.version})
	f.notifyLocked(parent, flagWatchChildren, Event{Type: EventChildRemoved, Path: parent, Child: name})
}

// endSessionLocked releases the session's locks, deletes its ephemeral nodes
// and drops its watches, each in sorted order.
func (f *fsm) endSessionLocked(id uint64) {
	s := f.sess[id]
	for _, p := range sortedKeys(s.held) {
		f.releaseLocked(s, p)
	}
	for _, p := range sortedKeys(s.ephemerals) {
		if f.nodes[p] != nil {
			f.deleteNodeLocked(p)
		}
	}
	for _, p := range sortedKeys(s.watches) {
		f.setWatchLocked(s, p, 0)
	}
	delete(f.sess, id)
	close(s.notify)
}

func (f *fsm) setWatchLocked(s *fsmSession, path string, flags uint8) {
	if flags == 0 {
		delete(s.watches, path)
		delete(f.watchers[path], s.id)
		if len(f.watchers[path]) == 0 {
			delete(f.watchers, path)
		}
		return
	}
	s.watches[path] = flags
	if f.watchers[path] == nil {
		f.watchers[path] = map[uint64]uint8{}
	}
	f.watchers[path][s.id] = flags
}

// notifyLocked queues ev on every session watching path with flag.
func (f *fsm) notifyLocked(path string, flag uint8, ev Event) {
	w := f.watchers[path]
	if len(w) == 0 {
		return
	}
	for _, id := range sortedKeys(w) {
		if w[id]&flag != 0 {
			f.pushLocked(f.sess[id], ev)
		}
	}
}

func (f *fsm) pushLocked(s *fsmSession, ev Event) {
	ev.Seq = s.nextSeq
	s.nextSeq++
	s.events = append(s.events, ev)
	if len(s.events) > maxQueuedEvents {
		s.events = slices.Delete(s.events, 0, len(s.events)-maxQueuedEvents)
	}
	close(s.notify)
	s.notify = make(chan struct{})
}

func (f *fsm) wakeLocked(path string) {
	if ch, ok := f.freed[path]; ok {
		close(ch)
		delete(f.freed, path)
	}
}

func sortedKeys[K uint64 | string, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// --- reads (any goroutine) ---

// appliedChan is closed at the next Apply.
func (f *fsm) appliedChan() <-chan struct{} {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.appliedCh
}

// freedCh returns a channel closed at the next release of path's lock.
func (f *fsm) freedCh(path string) <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch, ok := f.freed[path]
	if !ok {
		ch = make(chan struct{})
		f.freed[path] = ch
	}
	return ch
}

func (f *fsm) get(path string) (Node, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n := f.nodes[path]
	if n == nil {
		return Node{}, false
	}
	return Node{
		Path: path, Content: n.content, Version: n.version, EphemeralOwner: n.owner,
		Ctime: time.Unix(0, n.ctime), Mtime: time.Unix(0, n.mtime),
		LockMode: n.mode, LockGeneration: n.gen, LockHolders: slices.Clone(n.holders),
	}, true
}

func (f *fsm) list(path string) []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return sortedKeys(f.children[path])
}

func (f *fsm) checkSequencer(s Sequencer) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n := f.nodes[s.Path]
	if n == nil || n.mode == ModeNone || n.mode != s.Mode || n.gen != s.Generation {
		return fmt.Errorf("%w: %v", ErrStaleSequencer, s)
	}
	return nil
}

// sessionInfo returns a session's lease and whether it exists.
func (f *fsm) sessionLease(id uint64) (time.Duration, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	s := f.sess[id]
	if s == nil {
		return 0, false
	}
	return time.Duration(s.leaseNS), true
}

// sessionLeases returns every live session's lease, by ID.
func (f *fsm) sessionLeases() map[uint64]time.Duration {
	f.mu.RLock()
	defer f.mu.RUnlock()
	m := make(map[uint64]time.Duration, len(f.sess))
	for id, s := range f.sess {
		m[id] = time.Duration(s.leaseNS)
	}
	return m
}

// eventsAfter returns the session's events with seq > from (with an
// EventEventsLost first if some were dropped), a channel closed when more
// arrive, and whether the session exists.
func (f *fsm) eventsAfter(id, from uint64) ([]Event, <-chan struct{}, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	s := f.sess[id]
	if s == nil {
		return nil, nil, false
	}
	var out []Event
	if len(s.events) > 0 && s.events[0].Seq > from+1 {
		out = append(out, Event{Seq: s.events[0].Seq - 1, Type: EventEventsLost})
	}
	i := sort.Search(len(s.events), func(i int) bool { return s.events[i].Seq > from })
	out = append(out, s.events[i:]...)
	return out, s.notify, true
}

func (f *fsm) memberList() []Member {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]Member, 0, len(f.members))
	for _, id := range sortedKeys(f.members) {
		out = append(out, f.members[id])
	}
	return out
}

func (f *fsm) member(id string) (Member, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	m, ok := f.members[id]
	return m, ok
}

func (f *fsm) counts() (applied uint64, sessions, nodes int) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.applied, len(f.sess), len(f.nodes)
}

// --- snapshots ---

// Snapshot format (part of the format; never change, add a version):
//
//	"CLKS" | version u8 = 1 | applied uvarint
//	| nodes uvarint | per node: path, content (uvarint len + bytes), version,
//	  owner (uvarint), ctime, mtime (varint), mode u8, gen uvarint,
//	  holders (uvarint count + uvarints)
//	| sessions uvarint | per session: id, lease_ns, created (varint), next_seq,
//	  events (count + per event: seq, type u8, path, child, version, gen),
//	  watches (count + per watch: path, flags u8)
//	| members uvarint | per member: id, raft addr, grpc addr
//	| crc32c LE of everything before it (4 bytes)
//
// Derived indexes (children, watchers, held locks, ephemerals) are rebuilt.
const snapMagic = "CLKS"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Snapshot implements raft.FSM. It encodes the state at once (raft calls it
// between Applys), so Persist only writes bytes.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return fsmSnapshot(f.encodeLocked()), nil
}

func (f *fsm) encodeLocked() []byte {
	b := append([]byte(snapMagic), 1)
	b = binary.AppendUvarint(b, f.applied)
	b = binary.AppendUvarint(b, uint64(len(f.nodes)))
	for _, p := range sortedKeys(f.nodes) {
		n := f.nodes[p]
		b = appendBytes(b, []byte(p))
		b = appendBytes(b, n.content)
		b = binary.AppendUvarint(b, n.version)
		b = binary.AppendUvarint(b, n.owner)
		b = binary.AppendVarint(b, n.ctime)
		b = binary.AppendVarint(b, n.mtime)
		b = append(b, byte(n.mode))
		b = binary.AppendUvarint(b, n.gen)
		b = binary.AppendUvarint(b, uint64(len(n.holders)))
		for _, h := range n.holders {
			b = binary.AppendUvarint(b, h)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(f.sess)))
	for _, id := range sortedKeys(f.sess) {
		s := f.sess[id]
		b = binary.AppendUvarint(b, s.id)
		b = binary.AppendUvarint(b, uint64(s.leaseNS))
		b = binary.AppendVarint(b, s.created)
		b = binary.AppendUvarint(b, s.nextSeq)
		b = binary.AppendUvarint(b, uint64(len(s.events)))
		for _, e := range s.events {
			b = binary.AppendUvarint(b, e.Seq)
			b = append(b, byte(e.Type))
			b = appendBytes(b, []byte(e.Path))
			b = appendBytes(b, []byte(e.Child))
			b = binary.AppendUvarint(b, e.Version)
			b = binary.AppendUvarint(b, e.Generation)
		}
		b = binary.AppendUvarint(b, uint64(len(s.watches)))
		for _, p := range sortedKeys(s.watches) {
			b = appendBytes(b, []byte(p))
			b = append(b, s.watches[p])
		}
	}
	b = binary.AppendUvarint(b, uint64(len(f.members)))
	for _, id := range sortedKeys(f.members) {
		m := f.members[id]
		b = appendBytes(b, []byte(m.ID))
		b = appendBytes(b, []byte(m.RaftAddr))
		b = appendBytes(b, []byte(m.GRPCAddr))
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

type fsmSnapshot []byte

func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return fmt.Errorf("cellar/lock: write snapshot: %w", err)
	}
	return sink.Close()
}

func (s fsmSnapshot) Release() {}

// Restore implements raft.FSM.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("cellar/lock: read snapshot: %w", err)
	}
	nf := newFSM()
	if err := nf.decodeLocked(data); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.sess { // sessions not in the snapshot are gone: wake their streams
		if ns := nf.sess[s.id]; ns != nil {
			ns.notify = s.notify // keep waking the same stream handlers
		} else {
			close(s.notify)
		}
	}
	for p, ch := range f.freed { // lock state changed wholesale: let waiters re-check
		close(ch)
		delete(f.freed, p)
	}
	f.applied, f.nodes, f.children, f.sess, f.watchers, f.members = nf.applied, nf.nodes, nf.children, nf.sess, nf.watchers, nf.members
	return nil
}

// decodeLocked fills an empty fsm from a snapshot.
func (f *fsm) decodeLocked(data []byte) error {
	if len(data) < len(snapMagic)+5 || !bytes.HasPrefix(data, []byte(snapMagic)) {
		return fmt.Errorf("%w: not a lock snapshot", ErrCorrupt)
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return fmt.Errorf("%w: snapshot checksum mismatch", ErrCorrupt)
	}
	d := &decoder{b: body[len(snapMagic):]}
	if v := d.u8("snapshot version"); v != 1 {
		return fmt.Errorf("%w: snapshot version %d", ErrCorrupt, v)
	}
	f.applied = d.uvarint("applied")
	for range d.count("nodes", 10) {
		p := string(d.bytes("path", maxPathLen))
		n := &fsmNode{content: bytes.Clone(d.bytes("content", maxContentDecode))}
		n.version = d.uvarint("version")
		n.owner = d.uvarint("owner")
		n.ctime = d.varint("ctime")
		n.mtime = d.varint("mtime")
		n.mode = Mode(d.u8("mode"))
		n.gen = d.uvarint("gen")
		for range d.count("holders", 1) {
			n.holders = append(n.holders, d.uvarint("holder"))
		}
		if d.err != nil {
			return d.err
		}
		f.nodes[p] = n
		parent, name := split(p)
		if f.children[parent] == nil {
			f.children[parent] = map[string]bool{}
		}
		f.children[parent][name] = true
	}
	for range d.count("sessions", 6) {
		s := &fsmSession{}
		s.init()
		s.id = d.uvarint("session")
		s.leaseNS = int64(d.uvarint("lease"))
		s.created = d.varint("created")
		s.nextSeq = d.uvarint("next seq")
		for range d.count("events", 6) {
			e := Event{Seq: d.uvarint("seq"), Type: EventType(d.u8("type"))}
			e.Path = string(d.bytes("path", maxPathLen))
			e.Child = string(d.bytes("child", maxPathLen))
			e.Version = d.uvarint("version")
			e.Generation = d.uvarint("gen")
			s.events = append(s.events, e)
		}
		for range d.count("watches", 2) {
			p := string(d.bytes("path", maxPathLen))
			flags := d.u8("flags")
			if d.err == nil {
				f.setWatchLocked(s, p, flags)
			}
		}
		if d.err != nil {
			return d.err
		}
		f.sess[s.id] = s
	}
	for range d.count("members", 3) {
		m := Member{ID: string(d.bytes("id", maxAddrLen)), RaftAddr: string(d.bytes("addr", maxAddrLen)), GRPCAddr: string(d.bytes("addr", maxAddrLen))}
		f.members[m.ID] = m
	}
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%w: trailing bytes in snapshot", ErrCorrupt)
	}
	// Rebuild the per-session derived indexes.
	for p, n := range f.nodes {
		if s := f.sess[n.owner]; n.owner != 0 && s != nil {
			s.ephemerals[p] = true
		}
		for _, h := range n.holders {
			if s := f.sess[h]; s != nil {
				s.held[p] = n.mode
			}
		}
	}
	return nil
}
