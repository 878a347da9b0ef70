package raftutil

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// The leader writes its log in parallel with replication.
//
// hashicorp/raft's leader stores a batch (two bbolt fdatasyncs) before it
// lets its replication goroutines send it, so a commit waits for the
// leader's disk and then a follower's. Here, while the node leads, logStore
// only queues new entries and returns; raft sees them at once (GetLog,
// LastIndex) and starts replicating, and a writer goroutine commits the
// queue to bbolt a batch at a time, in parallel.
//
// raft counts the leader's own copy towards a quorum as soon as StoreLogs
// returns, so its commit index may cover an entry that is not yet on the
// leader's disk. Nothing acts on such an entry:
//
//   - gatedFSM applies an entry (and so answers its client) only once it is
//     durable here, and Node.AddVoter/RemoveServer wait for the same;
//   - clampTransport lowers the LeaderCommitIndex the leader sends (plain and
//     pipelined AppendEntries) below the first entry still queued, so no
//     follower applies one either;
//   - a node that is not the leader never answers for an entry it holds only
//     in memory: StoreLogs writes synchronously after the queue, and GetLog
//     of a queued entry (how raft's appendEntries checks entries it already
//     has before it answers Success) waits for it first.
//
// So every entry any replica applies is on the disks of a quorum. A failed
// queued write is sticky: the node stops (raft is shut down) and held
// entries are answered with an error wrapping ErrShutdown and
// raft.ErrRaftShutdown, never applied here (followers may hold them, so, as
// for any entry in flight when a leader dies, the outcome is unknown).

// errCrashed is the sticky error of a store abandoned by crash (tests).
var errCrashed = errors.New("cellar/raftutil: log store crashed")

// logStore is the raft LogStore: a queue in front of disk while leading.
type logStore struct {
	disk    raft.LogStore
	leading func() bool // whether raft leads now (nil: never, as in tests)
	onFail  func(error) // called by the writer on a failed write (may be nil)

	mu      sync.Mutex
	queue   []*raft.Log   // accepted, not yet durable; contiguous indexes
	err     error         // sticky: a queued write failed (or crash)
	changed chan struct{} // closed and replaced when queue shrinks or err is set
	stopped bool

	kick chan struct{} // cap 1: the queue grew
	stop chan struct{} // closed by close/crash
	done chan struct{} // closed when the writer has exited
}

func newLogStore(disk raft.LogStore, leading func() bool, onFail func(error)) *logStore {
	s := &logStore{
		disk:    disk,
		leading: leading,
		onFail:  onFail,
		changed: make(chan struct{}),
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go s.run()
	return s
}

func (s *logStore) isLeading() bool { return s.leading != nil && s.leading() }

// broadcastLocked wakes every waiter; s.mu is held.
func (s *logStore) broadcastLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// run is the writer: it commits the queue to disk, oldest first, everything
// queued at the time in one disk write.
func (s *logStore) run() {
	defer close(s.done)
	for {
		select {
		case <-s.kick:
		case <-s.stop:
			// close: finish what is queued (crash set err, so nothing more
			// is written).
			s.drain()
			return
		}
		s.drain()
	}
}

func (s *logStore) drain() {
	for {
		s.mu.Lock()
		if s.err != nil || len(s.queue) == 0 {
			s.mu.Unlock()
			return
		}
		batch := s.queue[:len(s.queue):len(s.queue)]
		s.mu.Unlock()
		err := s.disk.StoreLogs(batch)
		s.mu.Lock()
		if s.err != nil { // crashed meanwhile: whatever was written stays, nothing more is
			s.mu.Unlock()
			return
		}
		if err != nil {
			s.err = fmt.Errorf("cellar/raftutil: leader log write: %w", err)
			s.broadcastLocked()
			err = s.err
			s.mu.Unlock()
			if s.onFail != nil {
				s.onFail(err)
			}
			return
		}
		if len(s.queue) == len(batch) {
			s.queue = nil
		} else {
			s.queue = s.queue[len(batch):]
		}
		s.broadcastLocked()
		s.mu.Unlock()
	}
}

// waitDurable waits until every entry up to idx that this store accepted is
// on disk (at once if none is queued), or the store failed.
func (s *logStore) waitDurable(idx uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.err == nil && len(s.queue) > 0 && s.queue[0].Index <= idx {
		ch := s.changed
		s.mu.Unlock()
		<-ch
		s.mu.Lock()
	}
	return s.err
}

// flush waits until everything queued now is on disk (not what is queued
// meanwhile: a busy leader's queue need never be empty).
func (s *logStore) flush() error {
	s.mu.Lock()
	n := len(s.queue)
	if n == 0 || s.err != nil {
		err := s.err
		s.mu.Unlock()
		return err
	}
	last := s.queue[n-1].Index
	s.mu.Unlock()
	return s.waitDurable(last)
}

// durableBelow is the highest index up to which everything accepted is on
// disk, as far as the queue is concerned (^0 when nothing is queued), and
// whether the store failed.
func (s *logStore) durableBelow() (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) > 0 {
		return s.queue[0].Index - 1, s.err != nil
	}
	return ^uint64(0), s.err != nil
}

func (s *logStore) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// FirstIndex waits for the queue (it is rare: log compaction).
func (s *logStore) FirstIndex() (uint64, error) {
	if err := s.flush(); err != nil {
		return 0, err
	}
	return s.disk.FirstIndex()
}

// LastIndex counts queued entries.
func (s *logStore) LastIndex() (uint64, error) {
	s.mu.Lock()
	if n := len(s.queue); n > 0 {
		idx := s.queue[n-1].Index
		s.mu.Unlock()
		return idx, nil
	}
	s.mu.Unlock()
	return s.disk.LastIndex()
}

// GetLog serves queued entries from memory while leading. Otherwise it
// first waits for a queued entry to reach the disk: a follower that finds an
// entry it already has answers Success for it, which promises it is durable.
func (s *logStore) GetLog(idx uint64, log *raft.Log) error {
	s.mu.Lock()
	if n := len(s.queue); n > 0 && idx >= s.queue[0].Index && idx <= s.queue[n-1].Index {
		if s.isLeading() {
			*log = *s.queue[idx-s.queue[0].Index]
			s.mu.Unlock()
			return nil
		}
		s.mu.Unlock()
		if err := s.waitDurable(idx); err != nil {
			return err
		}
		return s.disk.GetLog(idx, log)
	}
	s.mu.Unlock()
	// Not queued, or written and dequeued since: it is on disk if anywhere.
	return s.disk.GetLog(idx, log)
}

func (s *logStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs queues logs while leading; otherwise (follower, bootstrap) it
// writes them synchronously, after anything still queued.
func (s *logStore) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	if s.isLeading() {
		s.mu.Lock()
		if s.err != nil {
			err := s.err
			s.mu.Unlock()
			return err
		}
		n := len(s.queue)
		if s.stopped || (n > 0 && logs[0].Index != s.queue[n-1].Index+1) {
			s.mu.Unlock() // not contiguous (raft never does this): write in order
		} else {
			s.queue = append(s.queue, logs...)
			s.mu.Unlock()
			select {
			case s.kick <- struct{}{}:
			default:
			}
			return nil
		}
	}
	if err := s.flush(); err != nil {
		return err
	}
	return s.disk.StoreLogs(logs)
}

// DeleteRange waits for the queue, then deletes.
func (s *logStore) DeleteRange(min, max uint64) error {
	if err := s.flush(); err != nil {
		return err
	}
	return s.disk.DeleteRange(min, max)
}

// close writes what is still queued and stops the writer (after raft has
// shut down: nothing is queued any more).
func (s *logStore) close() error {
	s.mu.Lock()
	if !s.stopped {
		s.stopped = true
		close(s.stop)
	}
	s.mu.Unlock()
	<-s.done
	return s.failed()
}

// crash abandons the queue as a process crash would: nothing queued is
// written, waiters get errCrashed, the writer exits once its current disk
// write (if any) returns; release, if set, makes a test's held disk return.
// For tests.
func (s *logStore) crash(release func()) {
	s.mu.Lock()
	if s.err == nil {
		s.err = errCrashed
		s.broadcastLocked()
	}
	if !s.stopped {
		s.stopped = true
		close(s.stop)
	}
	s.mu.Unlock()
	if release != nil {
		release() // a disk write in progress fails instead of writing
	}
	<-s.done
}

// heldError is the FSM response for an entry that was not applied because
// the leader's log write failed; Node.Apply returns it as an error.
type heldError struct{ err error }

func heldErr(cause error) heldError {
	return heldError{fmt.Errorf("%w: entry not applied, outcome unknown: %w: %w", ErrShutdown, raft.ErrRaftShutdown, cause)}
}

// gatedFSM applies an entry only once it is on this node's disk. After a
// failed write it applies nothing more (the node is stopping; its state is
// rebuilt from disk on restart) and refuses snapshots.
type gatedFSM struct {
	fsm  raft.FSM
	logs *logStore
	dead atomic.Bool
}

func (g *gatedFSM) Apply(l *raft.Log) any {
	if !g.dead.Load() {
		if err := g.logs.waitDurable(l.Index); err != nil {
			g.dead.Store(true)
			return heldErr(err)
		}
		return g.fsm.Apply(l)
	}
	return heldErr(g.logs.failed())
}

// Snapshot waits for the queue: raft labels the snapshot with the last index
// it handed the FSM, which may be a barrier or configuration entry the gate
// did not see.
func (g *gatedFSM) Snapshot() (raft.FSMSnapshot, error) {
	if err := g.logs.flush(); err != nil {
		g.dead.Store(true)
		return nil, err
	}
	if g.dead.Load() {
		return nil, ErrShutdown
	}
	return g.fsm.Snapshot()
}

func (g *gatedFSM) Restore(r io.ReadCloser) error { return g.fsm.Restore(r) }

// clampTransport keeps the commit index the leader sends below the first
// entry not yet on its disk, and sends no more appends once its log write
// failed.
type clampTransport struct {
	raft.Transport
	logs *logStore
}

// preVoteTransport is clampTransport for a transport with pre-vote (raft
// enables pre-vote only if the transport offers it).
type preVoteTransport struct {
	*clampTransport
	pv raft.WithPreVote
}

func (t *preVoteTransport) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	return t.pv.RequestPreVote(id, target, args, resp)
}

func wrapTransport(t raft.Transport, logs *logStore) raft.Transport {
	ct := &clampTransport{Transport: t, logs: logs}
	if pv, ok := t.(raft.WithPreVote); ok {
		return &preVoteTransport{ct, pv}
	}
	return ct
}

// Close closes the wrapped transport (raft calls it at shutdown).
func (t *clampTransport) Close() error {
	if c, ok := t.Transport.(raft.WithClose); ok {
		return c.Close()
	}
	return nil
}

func (t *clampTransport) clamp(args *raft.AppendEntriesRequest) error {
	durable, failed := t.logs.durableBelow()
	if failed {
		return t.logs.failed()
	}
	if args.LeaderCommitIndex > durable {
		args.LeaderCommitIndex = durable
	}
	return nil
}

func (t *clampTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	if err := t.clamp(args); err != nil {
		return err
	}
	return t.Transport.AppendEntries(id, target, args, resp)
}

func (t *clampTransport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	p, err := t.Transport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	return clampPipeline{p, t}, nil
}

type clampPipeline struct {
	raft.AppendPipeline
	t *clampTransport
}

func (p clampPipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	if err := p.t.clamp(args); err != nil {
		return nil, err
	}
	return p.AppendPipeline.AppendEntries(args, resp)
}
