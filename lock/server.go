package lock

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"

	"cellar/internal/raftutil"
	lockpb "cellar/proto/cellar/lock/v1"
)

// Peer is one voter of a new cluster's initial configuration.
type Peer struct {
	ID       string
	RaftAddr string
	GRPCAddr string
}

// Options configures a Server. Zero values mean defaults.
type Options struct {
	// ID is this replica's stable ID. Required.
	ID string
	// Dir holds the raft log, stable store and snapshots. Required.
	Dir string
	// Listener serves gRPC; if nil the server listens on Listen (default
	// "127.0.0.1:0"). GRPCAdvertise is the address clients reach it at
	// (default the listener's address).
	Listener      net.Listener
	Listen        string
	GRPCAdvertise string
	// GRPCServer, if set, is a gRPC server owned by the caller (a process
	// serving several services on one port, as `cellar standalone` does):
	// Start registers the Lock service on it instead of listening itself
	// (Listener and Listen are ignored; GRPCAdvertise is required). The
	// caller serves it and stops it (Stop, which ends blocked handlers)
	// before Close or Shutdown; make it with grpc.WaitForHandlers(true) so
	// that Stop waits for the handlers to return.
	GRPCServer *grpc.Server
	// RaftBind is the raft transport's listen address (default
	// "127.0.0.1:0"); RaftAdvertise what peers dial (default the bound one).
	RaftBind, RaftAdvertise string
	// RaftTransport, if set, replaces the TCP raft transport (RaftBind and
	// RaftAdvertise are ignored). A single replica that will never have
	// peers needs no network: raft.NewInmemTransport with a fixed address.
	// The server closes it.
	RaftTransport raft.Transport
	// Bootstrap lists the initial voters (this replica included) of a new
	// cluster; ignored when Dir already holds raft state.
	Bootstrap []Peer
	// DefaultLease is granted when a client asks for none (default 12s);
	// requests outside [MinLease, MaxLease] are rejected (defaults 100ms, 5m).
	DefaultLease, MinLease, MaxLease time.Duration
	// MaxContent is the largest node content in bytes (default 256 KiB).
	MaxContent int
	// HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout are raft's timers
	// (defaults 500ms, 500ms, 250ms: a failed leader is replaced in about a
	// second).
	HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout time.Duration
	// SnapshotThreshold, SnapshotInterval, TrailingLogs tune automatic
	// snapshots and log truncation (raft's defaults 8192, 30s, 10240).
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	if o.RaftBind == "" {
		o.RaftBind = "127.0.0.1:0"
	}
	if o.DefaultLease == 0 {
		o.DefaultLease = 12 * time.Second
	}
	if o.MinLease == 0 {
		o.MinLease = 100 * time.Millisecond
	}
	if o.MaxLease == 0 {
		o.MaxLease = 5 * time.Minute
	}
	if o.MaxContent == 0 {
		o.MaxContent = 256 << 10
	}
	if o.HeartbeatTimeout == 0 {
		o.HeartbeatTimeout = 500 * time.Millisecond
	}
	if o.ElectionTimeout == 0 {
		o.ElectionTimeout = 500 * time.Millisecond
	}
	if o.LeaderLeaseTimeout == 0 {
		o.LeaderLeaseTimeout = min(250*time.Millisecond, o.HeartbeatTimeout)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Validate reports missing or inconsistent options.
func (o Options) Validate() error {
	switch {
	case o.ID == "":
		return errors.New("cellar/lock: Options.ID is required")
	case o.Dir == "":
		return errors.New("cellar/lock: Options.Dir is required")
	case o.GRPCServer != nil && o.GRPCAdvertise == "":
		return errors.New("cellar/lock: Options.GRPCAdvertise is required with Options.GRPCServer")
	case o.MaxContent < 0 || o.MaxContent > maxContentDecode:
		return fmt.Errorf("cellar/lock: Options.MaxContent %d out of range [0, %d]", o.MaxContent, maxContentDecode)
	}
	w := o.withDefaults()
	if w.MinLease > w.MaxLease || w.DefaultLease < w.MinLease || w.DefaultLease > w.MaxLease {
		return fmt.Errorf("cellar/lock: leases: need MinLease <= DefaultLease <= MaxLease")
	}
	return nil
}

// Server is one replica of the lock service. Safe for concurrent use.
type Server struct {
	lockpb.UnimplementedLockServer
	opts     Options
	log      *slog.Logger
	fsm      *fsm
	node     *raftutil.Node
	grpc     *grpc.Server
	lis      net.Listener // nil with an external gRPC server
	ownGRPC  bool         // the server made s.grpc (and serves lis)
	grpcAddr string
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	mu struct {
		sync.Mutex
		// leader is non-nil while this replica leads; it holds the leases.
		leader *leaderState
	}
}

// leaderState lives for one term of leadership: the in-memory lease
// deadlines (not replicated; a new leader starts every session with a full
// lease: Chubby's grace period).
type leaderState struct {
	gone chan struct{} // closed when leadership ends
	// term is the raft term in which this leader has committed a barrier
	// (0 while it has not): reads and keep-alives are served only while the
	// current term equals it, so a lost-and-regained leadership that raft's
	// notifications folded into one is still noticed.
	term   atomic.Uint64
	mu     sync.Mutex
	leases map[uint64]*lease
}

type lease struct {
	deadline time.Time
	warned   bool
}

// Start opens (or creates) the replica's raft state and serves gRPC.
func Start(opts Options) (*Server, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	s := &Server{opts: opts, fsm: newFSM(), log: opts.Logger.With("component", "lock", "server", opts.ID)}
	s.grpcAddr = opts.GRPCAdvertise
	if opts.GRPCServer == nil {
		lis := opts.Listener
		if lis == nil {
			var err error
			if lis, err = net.Listen("tcp", opts.Listen); err != nil {
				return nil, fmt.Errorf("cellar/lock: listen: %w", err)
			}
		}
		s.lis = lis
		if s.grpcAddr == "" {
			s.grpcAddr = lis.Addr().String()
		}
	}
	closeLis := func() {
		if s.lis != nil {
			s.lis.Close()
		}
	}
	var boot []raftutil.Peer
	for _, p := range opts.Bootstrap {
		boot = append(boot, raftutil.Peer{ID: p.ID, Address: p.RaftAddr})
	}
	node, err := raftutil.Open(raftutil.Options{
		ID: opts.ID, Dir: opts.Dir, Bind: opts.RaftBind, Advertise: opts.RaftAdvertise, Transport: opts.RaftTransport, Bootstrap: boot,
		HeartbeatTimeout: opts.HeartbeatTimeout, ElectionTimeout: opts.ElectionTimeout,
		LeaderLeaseTimeout: opts.LeaderLeaseTimeout, SnapshotThreshold: opts.SnapshotThreshold,
		SnapshotInterval: opts.SnapshotInterval, TrailingLogs: opts.TrailingLogs, Logger: opts.Logger,
	}, s.fsm)
	if err != nil {
		closeLis()
		return nil, err
	}
	s.node = node
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if opts.GRPCServer != nil {
		s.grpc = opts.GRPCServer
		lockpb.RegisterLockServer(s.grpc, s)
	} else {
		s.grpc = grpc.NewServer(grpc.WaitForHandlers(true)) // Close waits for handlers (they add to s.wg)
		s.ownGRPC = true
		lockpb.RegisterLockServer(s.grpc, s)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.grpc.Serve(s.lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				s.log.Error("grpc serve", "err", err)
			}
		}()
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.watchLeadership() }()
	return s, nil
}

// Addr is the gRPC address clients use.
func (s *Server) Addr() string { return s.grpcAddr }

// RaftAddr is the raft transport address.
func (s *Server) RaftAddr() string { return s.node.Addr() }

// ID is the replica's ID.
func (s *Server) ID() string { return s.opts.ID }

// IsLeader reports whether this replica currently leads.
func (s *Server) IsLeader() bool { return s.node.IsLeader() }

// TransferLeadership hands leadership to another voter (maintenance: the
// replica stays up). Only the leader can.
func (s *Server) TransferLeadership() error {
	if err := s.node.Raft.LeadershipTransfer().Error(); err != nil {
		return fmt.Errorf("%w: %w", ErrNotLeader, err)
	}
	return nil
}

// ExpireAllSessions ends every session now, releasing its locks and
// deleting its ephemeral nodes, instead of granting each the full grace
// lease a new leader gives it. It is for a replica that knows every client
// of its previous incarnation is gone: `cellar standalone` calls it when it
// restarts (it holds its data directory's file lock, so no process that
// opened those sessions can be alive, yet the tablet server's and master's
// locks would otherwise stay held for a lease). It waits, within ctx, until
// this replica leads, and returns how many sessions it ended.
func (s *Server) ExpireAllSessions(ctx context.Context) (int, error) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if _, err := s.leader(); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("cellar/lock: waiting to lead: %w", ctx.Err())
		case <-s.ctx.Done():
			return 0, ErrClosed
		case <-t.C:
		}
	}
	ids := sortedKeys(s.fsm.sessionLeases())
	n := 0
	for _, id := range ids {
		_, err := s.apply(ctx, &command{op: opExpire, session: id})
		switch {
		case err == nil:
			n++
			s.log.Info("session expired on request", "session", id)
		case errors.Is(err, ErrSessionExpired): // ended meanwhile
		default:
			return n, err
		}
	}
	return n, nil
}

// Shutdown is a graceful Close: a leader first hands leadership to another
// voter (so clients move without waiting for an election timeout; raft
// bounds the hand-over by its election timeout), then the replica closes.
func (s *Server) Shutdown() error {
	if s.node.IsLeader() {
		if err := s.node.Raft.LeadershipTransfer().Error(); err != nil {
			s.log.Warn("leadership hand-over before shutdown failed", "err", err)
		}
	}
	return s.close(true)
}

// Close stops serving and shuts raft down; it waits for every goroutine the
// server started. Clients see their streams break and move to a new leader.
func (s *Server) Close() error { return s.close(false) }

// close ends the server; graceful lets clients learn (GOAWAY) that new
// requests must go elsewhere, so none is caught half-sent.
func (s *Server) close(graceful bool) error {
	s.cancel() // blocked Acquires and keep-alive streams return
	// A caller-owned gRPC server is the caller's to stop (before Close).
	switch {
	case s.ownGRPC && graceful:
		done := make(chan struct{})
		go func() { s.grpc.GracefulStop(); close(done) }()
		t := time.NewTimer(5 * time.Second)
		select {
		case <-done:
		case <-t.C:
			s.grpc.Stop()
			<-done
		}
		t.Stop()
	case s.ownGRPC:
		s.grpc.Stop()
	}
	s.wg.Wait()
	return s.node.Close()
}

// watchLeadership starts and stops the leader's work as raft reports
// leadership changes.
func (s *Server) watchLeadership() {
	var stop context.CancelFunc
	var done chan struct{}
	end := func() {
		if stop != nil {
			stop()
			<-done
			stop = nil
		}
	}
	defer end()
	ch := s.node.Raft.LeaderCh()
	for {
		select {
		case <-s.ctx.Done():
			return
		case isLeader := <-ch:
			end()
			if isLeader {
				ctx, cancel := context.WithCancel(s.ctx)
				stop, done = cancel, make(chan struct{})
				go func() { defer close(done); s.lead(ctx) }()
			}
		}
	}
}

// lead runs for one term of leadership: it registers the replica's address,
// grants every session a full lease, and expires sessions whose lease ran out.
func (s *Server) lead(ctx context.Context) {
	ls := &leaderState{gone: make(chan struct{}), leases: map[uint64]*lease{}}
	defer func() {
		s.mu.Lock()
		if s.mu.leader == ls {
			s.mu.leader = nil
		}
		s.mu.Unlock()
		close(ls.gone)
	}()
	if !s.barrier(ls) {
		return
	}
	s.mu.Lock()
	s.mu.leader = ls
	s.mu.Unlock()
	s.log.Info("leading", "term", ls.term.Load())
	s.registerMembers(ctx)
	tick := min(50*time.Millisecond, s.opts.MinLease/4)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !s.node.IsLeader() {
			continue // LeaderCh will tell us
		}
		if s.node.Raft.CurrentTerm() != ls.term.Load() {
			// Leadership was lost and regained: start over with a barrier
			// of this term and a fresh grace period for every session.
			ls.term.Store(0)
			ls.mu.Lock()
			ls.leases = map[uint64]*lease{}
			ls.mu.Unlock()
			if !s.barrier(ls) {
				continue
			}
		}
		now := time.Now()
		var expire, warn []uint64
		ls.mu.Lock()
		live := s.fsm.sessionLeases()
		for id := range ls.leases {
			if _, ok := live[id]; !ok {
				delete(ls.leases, id)
			}
		}
		for id, d := range live {
			l := ls.leases[id]
			if l == nil { // grace: a full lease from when this leader saw it
				ls.leases[id] = &lease{deadline: now.Add(d)}
				continue
			}
			switch left := l.deadline.Sub(now); {
			case left <= 0:
				expire = append(expire, id)
			case left < d/4 && !l.warned:
				l.warned = true
				warn = append(warn, id)
			}
		}
		ls.mu.Unlock()
		for _, id := range warn {
			s.apply(ctx, &command{op: opExpiring, session: id})
		}
		for _, id := range expire {
			if _, err := s.apply(ctx, &command{op: opExpire, session: id}); err == nil {
				s.log.Info("session expired", "session", id)
			}
		}
	}
}

// barrier commits a barrier in the current term and records the term; false
// if leadership was lost meanwhile.
func (s *Server) barrier(ls *leaderState) bool {
	for s.node.IsLeader() {
		term := s.node.Raft.CurrentTerm()
		if err := s.node.Raft.Barrier(0).Error(); err != nil {
			return false
		}
		if s.node.Raft.CurrentTerm() == term {
			ls.term.Store(term)
			return true
		}
	}
	return false
}

func (s *Server) registerMembers(ctx context.Context) {
	want := []Peer{{ID: s.opts.ID, RaftAddr: s.node.Addr(), GRPCAddr: s.grpcAddr}}
	for _, p := range s.opts.Bootstrap {
		if p.ID != s.opts.ID && p.GRPCAddr != "" {
			if _, ok := s.fsm.member(p.ID); !ok {
				want = append(want, p)
			}
		}
	}
	for _, p := range want {
		if m, ok := s.fsm.member(p.ID); ok && m.RaftAddr == p.RaftAddr && m.GRPCAddr == p.GRPCAddr {
			continue
		}
		if _, err := s.apply(ctx, &command{op: opMember, path: p.ID, a: p.RaftAddr, b: p.GRPCAddr}); err != nil {
			s.log.Warn("register member", "member", p.ID, "err", err)
		}
	}
}

// leader returns the current leader state or ErrNotLeader.
func (s *Server) leader() (*leaderState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.leader == nil {
		return nil, ErrNotLeader
	}
	return s.mu.leader, nil
}

// apply stamps the leader's time into c and replicates it.
func (s *Server) apply(ctx context.Context, c *command) (*applyResult, error) {
	if !s.node.IsLeader() {
		return nil, ErrNotLeader
	}
	c.now = time.Now().UnixNano()
	resp, err := s.node.Apply(ctx, c.encode())
	if err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
			return nil, fmt.Errorf("%w: %w", ErrNotLeader, err)
		case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrRaftShutdown):
			return nil, fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
		}
		return nil, err
	}
	res, ok := resp.(*applyResult)
	if !ok {
		return nil, fmt.Errorf("cellar/lock: unexpected apply response %T", resp)
	}
	return res, res.err
}

// readBarrier makes a linearizable read safe on this replica (read index:
// confirm leadership with a quorum, then wait until the state machine has
// applied what was committed before), or allows a stale one anywhere.
func (s *Server) readBarrier(ctx context.Context, stale bool) error {
	if stale {
		return nil
	}
	idx, err := s.confirmLeader(ctx)
	if err != nil {
		return err
	}
	return s.waitApplied(ctx, idx)
}

// waitApplied waits until raft has applied index idx. Raft's applied index
// also counts entries the FSM never sees (barriers, no-ops, configuration),
// so besides the FSM's signal it is polled briefly.
func (s *Server) waitApplied(ctx context.Context, idx uint64) error {
	var t *time.Ticker
	for {
		ch := s.fsm.appliedChan()
		if s.node.Raft.AppliedIndex() >= idx {
			if t != nil {
				t.Stop()
			}
			return nil
		}
		if t == nil {
			t = time.NewTicker(time.Millisecond)
			defer t.Stop()
		}
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// confirmLeader checks that this replica leads (and has committed an entry
// of its term) and that a quorum still follows it; it returns the commit
// index noted before asking.
func (s *Server) confirmLeader(ctx context.Context) (uint64, error) {
	ls, err := s.leader()
	if err != nil {
		return 0, err
	}
	term := ls.term.Load()
	if term == 0 || s.node.Raft.CurrentTerm() != term {
		return 0, fmt.Errorf("%w: leadership changed", ErrNotLeader)
	}
	idx, err := s.node.ReadIndex(ctx)
	if err != nil {
		if errors.Is(err, raftutil.ErrNotLeader) {
			return 0, fmt.Errorf("%w: %w", ErrNotLeader, err)
		}
		return 0, err
	}
	// Terms only grow: the same term after the quorum check means no other
	// leader came between, so idx covers every write acknowledged before.
	if s.node.Raft.CurrentTerm() != term {
		return 0, fmt.Errorf("%w: leadership changed", ErrNotLeader)
	}
	return idx, nil
}

// leaderGRPC returns the gRPC address of the leader as this replica knows it.
func (s *Server) leaderGRPC() (id, addr string) {
	_, id = s.node.Leader()
	if m, ok := s.fsm.member(id); ok {
		addr = m.GRPCAddr
	}
	return id, addr
}
