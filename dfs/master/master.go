package master

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"

	"cellar/dfs"
	"cellar/dfs/internal/wire"
	"cellar/internal/clock"
	"cellar/internal/raftutil"
	dfspb "cellar/proto/cellar/dfs/v1"
)

// Options configures a master replica. Zero values mean defaults.
type Options struct {
	// Dir holds the raft log, stable store and snapshots. Required.
	Dir string
	// Listen is the gRPC listen address; default "127.0.0.1:0". Ignored
	// when Listener is set.
	Listen string
	// Listener, if set, is used for gRPC instead of listening on Listen.
	Listener net.Listener
	// Advertise is the gRPC address clients and chunkservers dial; default
	// the bound address. It is also this replica's raft ID.
	Advertise string
	// RaftBind is the raft transport's listen address; default
	// "127.0.0.1:0". RaftAdvertise is the address peers dial; default the
	// bound one.
	RaftBind, RaftAdvertise string
	// Peers are the initial raft voters, this replica included: ID is each
	// replica's gRPC advertise address, Address its raft address. Empty
	// means a single-replica master. Used only on first start.
	Peers []raftutil.Peer
	// DefaultReplication is the replica count of files created without one;
	// default 3.
	DefaultReplication uint32
	// ChunkSize is the chunk size in bytes for new files; default 64 MiB.
	ChunkSize int64
	// HeartbeatInterval is the chunkservers' heartbeat cadence; default 1s.
	// A chunkserver silent for DeadAfter (default 10 heartbeats) is dead.
	HeartbeatInterval, DeadAfter time.Duration
	// ReplicationInterval is how often the leader checks replica counts;
	// default HeartbeatInterval.
	ReplicationInterval time.Duration
	// MaxConcurrentReplications bounds replica copies in flight over the
	// cluster (default 8); MaxCopiesPerServer per target server (default 2).
	MaxConcurrentReplications, MaxCopiesPerServer int
	// CopyTimeout is how long a scheduled copy may take before it is
	// scheduled again elsewhere; default 30s (a 64 MiB copy takes seconds;
	// a copy stuck on a dead connection must not hold its target's
	// MaxCopiesPerServer slots for long).
	CopyTimeout time.Duration
	// LeaseHardLimit is how long a writer may go without renewing its lease
	// before the leader recovers the file itself; default 10 minutes.
	LeaseHardLimit time.Duration
	// RaftHeartbeatTimeout and RaftElectionTimeout tune raft (tests shorten
	// them); defaults as internal/raftutil.
	RaftHeartbeatTimeout, RaftElectionTimeout time.Duration
	// Seed seeds placement randomness; 0 means random.
	Seed uint64
	// Clock is the time source for liveness and leases; default clock.Real().
	Clock clock.Clock
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

func (o *Options) withDefaults() Options {
	c := *o
	if c.Listen == "" {
		c.Listen = "127.0.0.1:0"
	}
	if c.RaftBind == "" {
		c.RaftBind = "127.0.0.1:0"
	}
	if c.DefaultReplication == 0 {
		c.DefaultReplication = 3
	}
	if c.ChunkSize == 0 {
		c.ChunkSize = 64 << 20
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = time.Second
	}
	if c.DeadAfter == 0 {
		c.DeadAfter = 10 * c.HeartbeatInterval
	}
	if c.ReplicationInterval == 0 {
		c.ReplicationInterval = c.HeartbeatInterval
	}
	if c.MaxConcurrentReplications == 0 {
		c.MaxConcurrentReplications = 8
	}
	if c.MaxCopiesPerServer == 0 {
		c.MaxCopiesPerServer = 2
	}
	if c.CopyTimeout == 0 {
		c.CopyTimeout = 30 * time.Second
	}
	if c.LeaseHardLimit == 0 {
		c.LeaseHardLimit = 10 * time.Minute
	}
	if c.Seed == 0 {
		c.Seed = rand.Uint64()
	}
	if c.Clock == nil {
		c.Clock = clock.Real()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports missing or inconsistent options.
func (o *Options) Validate() error {
	switch {
	case o.Dir == "":
		return errors.New("cellar/dfs/master: Options.Dir is required")
	case o.ChunkSize < 0 || o.ChunkSize > 1<<40:
		return fmt.Errorf("cellar/dfs/master: Options.ChunkSize %d out of range", o.ChunkSize)
	case o.DefaultReplication > 16:
		return fmt.Errorf("cellar/dfs/master: Options.DefaultReplication %d above 16", o.DefaultReplication)
	case o.HeartbeatInterval < 0 || o.DeadAfter < 0 || o.ReplicationInterval < 0 || o.LeaseHardLimit < 0:
		return errors.New("cellar/dfs/master: negative interval")
	case o.MaxConcurrentReplications < 0 || o.MaxCopiesPerServer < 0:
		return errors.New("cellar/dfs/master: negative replication bound")
	}
	return nil
}

// serverState is the leader's soft view of one chunkserver.
type serverState struct {
	id, addr, rack string
	healthy        bool
	reason         string
	lastSeen       time.Time
	capacity, used uint64
	chunks         map[uint64]replica
}

type replica struct {
	version, length, synced uint64
}

type copyTask struct {
	target   string
	deadline time.Time
}

// Server is one master replica. Its methods are safe for concurrent use.
type Server struct {
	dfspb.UnimplementedMasterServer
	opts Options
	addr string
	log  *slog.Logger
	fsm  *fsm
	node *raftutil.Node
	grpc *grpc.Server
	lis  net.Listener
	// trans is the raft transport (closed by node.Close; its pooled
	// streams by Close).
	trans *raft.NetworkTransport

	// mu guards the soft state below (never held across I/O).
	mu             sync.Mutex
	servers        map[string]*serverState
	expected       map[uint64][]string // pipeline of each chunk under construction
	inflight       map[uint64]copyTask
	pendingCopies  map[string][]*dfspb.ReplicateCommand
	pendingDeletes map[string][]*dfspb.DeleteCommand
	leaderSince    time.Time // zero when not leader
	lastRenew      map[string]time.Time
	underRepl      uint64
	missing        uint64
	rng            *rand.Rand

	recoverMu sync.Mutex // one lease recovery at a time

	conns wire.Conns // chunkservers

	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool
}

// Start opens (or bootstraps) the raft replica under opts.Dir, serves gRPC
// and starts the leader's background loop; Close stops them.
func Start(ctx context.Context, opts *Options) (*Server, error) {
	if opts == nil {
		opts = &Options{}
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	o := opts.withDefaults()
	var err error
	lis := o.Listener
	if lis == nil {
		if lis, err = net.Listen("tcp", o.Listen); err != nil {
			return nil, fmt.Errorf("cellar/dfs/master: listen %s: %w", o.Listen, err)
		}
	}
	addr := o.Advertise
	if addr == "" {
		addr = lis.Addr().String()
	}
	s := &Server{
		opts: o, addr: addr, lis: lis, fsm: newFSM(),
		log:            o.Logger.With("component", "dfs-master", "addr", addr),
		servers:        map[string]*serverState{},
		expected:       map[uint64][]string{},
		inflight:       map[uint64]copyTask{},
		pendingCopies:  map[string][]*dfspb.ReplicateCommand{},
		pendingDeletes: map[string][]*dfspb.DeleteCommand{},
		lastRenew:      map[string]time.Time{},
		rng:            rand.New(rand.NewPCG(o.Seed, 0x5eed)),
	}
	peers := o.Peers
	if len(peers) == 0 {
		peers = []raftutil.Peer{{ID: addr}}
	}
	// The master makes its own raft transport (rather than letting raftutil
	// make one) so that Close can also close the pooled outbound
	// connections: raft's NetworkTransport.Close leaves them open, and the
	// peers' connection handlers would outlive this replica.
	var adv net.Addr
	if o.RaftAdvertise != "" {
		if adv, err = net.ResolveTCPAddr("tcp", o.RaftAdvertise); err != nil {
			lis.Close()
			return nil, fmt.Errorf("cellar/dfs/master: raft advertise address: %w", err)
		}
	}
	trans, err := raft.NewTCPTransport(o.RaftBind, adv, 3, 10*time.Second, io.Discard)
	if err != nil {
		lis.Close()
		return nil, fmt.Errorf("cellar/dfs/master: raft listen %s: %w", o.RaftBind, err)
	}
	s.trans = trans
	node, err := raftutil.Open(raftutil.Options{
		ID: addr, Dir: o.Dir, Transport: trans, Bootstrap: peers,
		HeartbeatTimeout: o.RaftHeartbeatTimeout, ElectionTimeout: o.RaftElectionTimeout,
		Logger: o.Logger,
	}, s.fsm)
	if err != nil {
		trans.Close()
		lis.Close()
		return nil, err
	}
	s.node = node
	s.grpc = grpc.NewServer(wire.ServerOptions()...)
	dfspb.RegisterMasterServer(s.grpc, s)
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.grpc.Serve(lis) }()
	go func() { defer s.wg.Done(); s.backgroundLoop(bg) }()
	return s, nil
}

// Addr is the gRPC address of this replica (also its raft ID).
func (s *Server) Addr() string { return s.addr }

// RaftAddr is the raft transport address of this replica.
func (s *Server) RaftAddr() string { return s.node.Addr() }

// IsLeader reports whether this replica is the raft leader.
func (s *Server) IsLeader() bool { return s.node.IsLeader() }

// Close stops serving and shuts raft down.
func (s *Server) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	s.cancel()
	s.grpc.Stop()
	s.wg.Wait()
	err := s.node.Close()
	s.trans.CloseStreams()
	s.conns.Close()
	return err
}

func (s *Server) leaderErr() error {
	if s.node.IsLeader() {
		return nil
	}
	_, id := s.node.Leader()
	return fmt.Errorf("cellar/dfs/master: %s is not the leader (leader %q): %w", s.addr, id, wire.ErrNotLeader)
}

func (s *Server) apply(ctx context.Context, c command) (result, error) {
	if err := s.leaderErr(); err != nil {
		return result{}, err
	}
	c.Now = s.opts.Clock.Now().UnixNano()
	b, err := json.Marshal(c)
	if err != nil {
		return result{}, err
	}
	r, err := s.node.Apply(ctx, b)
	if err != nil {
		return result{}, err
	}
	res, ok := r.(result)
	if !ok {
		return result{}, fmt.Errorf("cellar/dfs/master: unexpected apply result %T", r)
	}
	return res, res.err
}

func toStatus(err error) error { return dfs.WireErrors.ToStatus(err) }

func (s *Server) liveLocked(srv *serverState, now time.Time) bool {
	return now.Sub(srv.lastSeen) < s.opts.DeadAfter
}

// candidatesLocked lists live, healthy servers with room for a chunk.
func (s *Server) candidatesLocked(now time.Time) []node {
	var out []node
	for _, srv := range s.servers {
		if !s.liveLocked(srv, now) || !srv.healthy {
			continue
		}
		if srv.capacity > 0 && srv.used+uint64(s.opts.ChunkSize) > srv.capacity {
			continue
		}
		out = append(out, node{id: srv.id, addr: srv.addr, rack: srv.rack})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

func (s *Server) location(id string) *dfspb.ChunkLocation {
	srv := s.servers[id]
	return &dfspb.ChunkLocation{ServerId: srv.id, Address: srv.addr, Rack: srv.rack}
}

// goodLocked returns the live servers holding a current replica of ch.
func (s *Server) goodLocked(ch chunkMeta, uc bool, now time.Time) []string {
	var out []string
	seen := map[string]bool{}
	for _, srv := range s.servers {
		r, ok := srv.chunks[ch.Handle]
		if !ok || !s.liveLocked(srv, now) || r.version < ch.Version || (!uc && r.length < ch.Length) {
			continue
		}
		out = append(out, srv.id)
		seen[srv.id] = true
	}
	if uc {
		for _, id := range s.expected[ch.Handle] {
			if srv, ok := s.servers[id]; ok && !seen[id] && s.liveLocked(srv, now) {
				out = append(out, id)
			}
		}
	}
	sort.Strings(out)
	return out
}

func (s *Server) locatedLocked(ch chunkMeta, uc bool, now time.Time) *dfspb.LocatedChunk {
	lc := &dfspb.LocatedChunk{Handle: ch.Handle, Version: ch.Version, Length: ch.Length, Complete: ch.Complete}
	for _, id := range s.goodLocked(ch, uc, now) {
		lc.Locations = append(lc.Locations, s.location(id))
	}
	return lc
}

func fileStat(path string, f *fileMeta) *dfspb.FileStat {
	return &dfspb.FileStat{Path: path, Length: f.length(), MtimeUnixNanos: f.MTime, UnderConstruction: f.UC,
		Replication: f.Replication, LeaseHolder: f.Holder}
}

// ------------------------------------------------------------- namespace

// Create implements dfspb.MasterServer.
func (s *Server) Create(ctx context.Context, req *dfspb.CreateRequest) (*dfspb.CreateResponse, error) {
	if err := dfs.CheckPath(req.Path, false); err != nil {
		return nil, toStatus(err)
	}
	if req.ClientId == "" {
		return nil, toStatus(fmt.Errorf("cellar/dfs/master: create %s without a client id: %w", req.Path, wire.ErrBadRequest))
	}
	rf := req.Replication
	if rf == 0 {
		rf = s.opts.DefaultReplication
	}
	if rf > 16 {
		return nil, toStatus(fmt.Errorf("cellar/dfs/master: replication %d above 16: %w", rf, dfs.ErrInvalidArgument))
	}
	if _, err := s.apply(ctx, command{Op: opCreate, Path: req.Path, Holder: req.ClientId, Replication: rf}); err != nil {
		return nil, toStatus(err)
	}
	s.renew(req.ClientId)
	return &dfspb.CreateResponse{Replication: rf, ChunkSize: uint64(s.opts.ChunkSize)}, nil
}

func (s *Server) renew(holder string) {
	s.mu.Lock()
	s.lastRenew[holder] = s.opts.Clock.Now()
	s.mu.Unlock()
}

// GetBlockLocations implements dfspb.MasterServer.
func (s *Server) GetBlockLocations(ctx context.Context, req *dfspb.GetBlockLocationsRequest) (*dfspb.GetBlockLocationsResponse, error) {
	if err := dfs.CheckPath(req.Path, false); err != nil {
		return nil, toStatus(err)
	}
	if err := s.leaderErr(); err != nil {
		return nil, toStatus(err)
	}
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	f, ok := s.fsm.files[req.Path]
	if !ok {
		if s.fsm.isDirLocked(req.Path) {
			return nil, toStatus(fmt.Errorf("cellar/dfs/master: open %s: %w", req.Path, dfs.ErrIsDir))
		}
		return nil, toStatus(fmt.Errorf("cellar/dfs/master: open %s: %w", req.Path, dfs.ErrNotFound))
	}
	resp := &dfspb.GetBlockLocationsResponse{Stat: fileStat(req.Path, f)}
	now := s.opts.Clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, ch := range f.Chunks {
		resp.Chunks = append(resp.Chunks, s.locatedLocked(ch, f.UC && i == len(f.Chunks)-1, now))
	}
	return resp, nil
}

// AllocateChunk implements dfspb.MasterServer.
// withoutExcluded drops from cands the servers a writer asked to avoid
// (it saw them fail in a pipeline), unless that leaves none: a writer
// that excluded every live server gets them all back rather than nothing.
func withoutExcluded(cands []node, excluded []string) []node {
	if len(excluded) == 0 {
		return cands
	}
	skip := make(map[string]bool, len(excluded))
	for _, id := range excluded {
		skip[id] = true
	}
	var kept []node
	for _, n := range cands {
		if !skip[n.id] {
			kept = append(kept, n)
		}
	}
	if len(kept) == 0 {
		return cands
	}
	return kept
}

func (s *Server) AllocateChunk(ctx context.Context, req *dfspb.AllocateChunkRequest) (*dfspb.AllocateChunkResponse, error) {
	if err := s.leaderErr(); err != nil {
		return nil, toStatus(err)
	}
	s.fsm.mu.RLock()
	f, ok := s.fsm.files[req.Path]
	var rf uint32
	if ok {
		rf = f.Replication
	}
	s.fsm.mu.RUnlock()
	if !ok {
		return nil, toStatus(fmt.Errorf("cellar/dfs/master: allocate in %s: %w", req.Path, dfs.ErrNotFound))
	}
	now := s.opts.Clock.Now()
	s.mu.Lock()
	cands := s.candidatesLocked(now)
	warm := s.graceOverLocked(now)
	s.mu.Unlock()
	cands = withoutExcluded(cands, req.Excluded)
	if !warm && len(cands) < int(rf) {
		// A new leader may not have heard from every chunkserver yet: have
		// the client retry rather than place fewer replicas than asked.
		return nil, toStatus(fmt.Errorf("cellar/dfs/master: allocate in %s: %w", req.Path, wire.ErrWarmingUp))
	}
	if len(cands) == 0 {
		return nil, toStatus(fmt.Errorf("cellar/dfs/master: allocate in %s: no live chunkserver with room: %w", req.Path, dfs.ErrNoSpace))
	}
	res, err := s.apply(ctx, command{Op: opAllocate, Path: req.Path, Holder: req.ClientId, Index: req.Index, Length: req.PrevLength})
	if err != nil {
		return nil, toStatus(err)
	}
	if req.Index > 0 {
		s.sealed(req.Path, int(req.Index)-1)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastRenew[req.ClientId] = now
	if _, retried := s.expected[res.chunk.Handle]; !retried {
		var ids []string
		for _, n := range place(cands, int(rf), req.ClientHost, s.rng) {
			ids = append(ids, n.id)
		}
		s.expected[res.chunk.Handle] = ids
	}
	lc := &dfspb.LocatedChunk{Handle: res.chunk.Handle, Version: res.chunk.Version}
	for _, id := range s.expected[res.chunk.Handle] {
		lc.Locations = append(lc.Locations, s.location(id))
	}
	return &dfspb.AllocateChunkResponse{Chunk: lc}, nil
}

// BumpVersion implements dfspb.MasterServer.
func (s *Server) BumpVersion(ctx context.Context, req *dfspb.BumpVersionRequest) (*dfspb.BumpVersionResponse, error) {
	res, err := s.apply(ctx, command{Op: opBump, Path: req.Path, Holder: req.ClientId, Handle: req.Handle})
	if err != nil {
		return nil, toStatus(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	lc := &dfspb.LocatedChunk{Handle: res.chunk.Handle, Version: res.chunk.Version}
	for _, id := range req.Survivors {
		if _, ok := s.servers[id]; ok {
			ids = append(ids, id)
			lc.Locations = append(lc.Locations, s.location(id))
		}
	}
	s.expected[req.Handle] = ids
	return &dfspb.BumpVersionResponse{Chunk: lc}, nil
}

// Complete implements dfspb.MasterServer.
func (s *Server) Complete(ctx context.Context, req *dfspb.CompleteRequest) (*dfspb.CompleteResponse, error) {
	if _, err := s.apply(ctx, command{Op: opComplete, Path: req.Path, Holder: req.ClientId, Length: req.LastLength, Chunks: req.Chunks}); err != nil {
		return nil, toStatus(err)
	}
	if req.Chunks > 0 {
		s.sealed(req.Path, int(req.Chunks)-1)
	}
	return &dfspb.CompleteResponse{}, nil
}

// sealed records that the writer's pipeline replicas of chunk index of
// path hold it complete (the writer drained the pipeline before sealing),
// as HDFS's "block received" does, so the chunk is readable before the
// next block reports arrive; those reports then correct this view.
func (s *Server) sealed(path string, index int) {
	s.fsm.mu.RLock()
	f, ok := s.fsm.files[path]
	if !ok || index >= len(f.Chunks) || !f.Chunks[index].Complete {
		s.fsm.mu.RUnlock()
		return
	}
	ch := f.Chunks[index]
	s.fsm.mu.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range s.expected[ch.Handle] {
		if srv, ok := s.servers[id]; ok {
			if r, has := srv.chunks[ch.Handle]; !has || r.version <= ch.Version {
				srv.chunks[ch.Handle] = replica{version: ch.Version, length: ch.Length, synced: ch.Length}
			}
		}
	}
	delete(s.expected, ch.Handle)
}

// Rename implements dfspb.MasterServer.
func (s *Server) Rename(ctx context.Context, req *dfspb.RenameRequest) (*dfspb.RenameResponse, error) {
	if err := dfs.CheckPath(req.OldPath, false); err != nil {
		return nil, toStatus(err)
	}
	if err := dfs.CheckPath(req.NewPath, false); err != nil {
		return nil, toStatus(err)
	}
	if _, err := s.apply(ctx, command{Op: opRename, Path: req.OldPath, NewPath: req.NewPath}); err != nil {
		return nil, toStatus(err)
	}
	return &dfspb.RenameResponse{}, nil
}

// Delete implements dfspb.MasterServer. The chunks are freed lazily: the
// chunkservers learn from heartbeat replies that nobody references them.
func (s *Server) Delete(ctx context.Context, req *dfspb.DeleteRequest) (*dfspb.DeleteResponse, error) {
	if err := dfs.CheckPath(req.Path, false); err != nil {
		return nil, toStatus(err)
	}
	if _, err := s.apply(ctx, command{Op: opDelete, Path: req.Path}); err != nil {
		return nil, toStatus(err)
	}
	return &dfspb.DeleteResponse{}, nil
}

// List implements dfspb.MasterServer.
func (s *Server) List(ctx context.Context, req *dfspb.ListRequest) (*dfspb.ListResponse, error) {
	if err := dfs.CheckPath(req.Dir, true); err != nil {
		return nil, toStatus(err)
	}
	if err := s.leaderErr(); err != nil {
		return nil, toStatus(err)
	}
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	if _, ok := s.fsm.files[req.Dir]; ok {
		return nil, toStatus(fmt.Errorf("cellar/dfs/master: list %s: not a directory: %w", req.Dir, dfs.ErrInvalidPath))
	}
	resp := &dfspb.ListResponse{}
	for _, e := range s.fsm.listLocked(req.Dir) {
		if e.isDir {
			resp.Entries = append(resp.Entries, &dfspb.FileStat{Path: e.name, IsDir: true})
		} else {
			resp.Entries = append(resp.Entries, fileStat(e.name, e.file))
		}
	}
	return resp, nil
}

// Stat implements dfspb.MasterServer.
func (s *Server) Stat(ctx context.Context, req *dfspb.StatRequest) (*dfspb.StatResponse, error) {
	if err := dfs.CheckPath(req.Path, true); err != nil {
		return nil, toStatus(err)
	}
	if err := s.leaderErr(); err != nil {
		return nil, toStatus(err)
	}
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	if f, ok := s.fsm.files[req.Path]; ok {
		return &dfspb.StatResponse{Stat: fileStat(req.Path, f)}, nil
	}
	if req.Path == "" || s.fsm.isDirLocked(req.Path) {
		return &dfspb.StatResponse{Stat: &dfspb.FileStat{Path: req.Path, IsDir: true}}, nil
	}
	return nil, toStatus(fmt.Errorf("cellar/dfs/master: stat %s: %w", req.Path, dfs.ErrNotFound))
}

// RenewLease implements dfspb.MasterServer.
func (s *Server) RenewLease(ctx context.Context, req *dfspb.RenewLeaseRequest) (*dfspb.RenewLeaseResponse, error) {
	if err := s.leaderErr(); err != nil {
		return nil, toStatus(err)
	}
	s.renew(req.ClientId)
	return &dfspb.RenewLeaseResponse{}, nil
}

// RecoverLease implements dfspb.MasterServer.
func (s *Server) RecoverLease(ctx context.Context, req *dfspb.RecoverLeaseRequest) (*dfspb.RecoverLeaseResponse, error) {
	if err := dfs.CheckPath(req.Path, false); err != nil {
		return nil, toStatus(err)
	}
	n, err := s.recoverLease(ctx, req.Path)
	if err != nil {
		return nil, toStatus(err)
	}
	return &dfspb.RecoverLeaseResponse{Length: n}, nil
}

// recoverLease fences the writer of path and seals the file (GFS §3.1's
// lease expiry plus HDFS's block recovery): the last chunk's version is
// bumped in the namespace first, so every replica that agrees to the new
// version refuses the old writer from then on; the file's length is the
// smallest synced length among the replicas that were current; each is cut
// to it, and the file is sealed.
func (s *Server) recoverLease(ctx context.Context, path string) (uint64, error) {
	s.recoverMu.Lock()
	defer s.recoverMu.Unlock()
	res, err := s.apply(ctx, command{Op: opRecoverBegin, Path: path})
	if err != nil {
		return 0, err
	}
	if res.empty {
		return s.fileLength(path), nil
	}
	h := res.chunk.Handle
	now := s.opts.Clock.Now()
	s.mu.Lock()
	var addrs []string
	seen := map[string]bool{}
	// unreachable: a server that may hold a replica is not live, so a
	// chunk no live replica has may still hold synced bytes elsewhere.
	unreachable := false
	for _, srv := range s.servers {
		if _, ok := srv.chunks[h]; ok {
			if s.liveLocked(srv, now) {
				addrs, seen[srv.id] = append(addrs, srv.addr), true
			} else {
				unreachable = true
			}
		}
	}
	for _, id := range s.expected[h] {
		srv, ok := s.servers[id]
		switch {
		case !ok || !s.liveLocked(srv, now):
			unreachable = true
		case !seen[id]:
			addrs = append(addrs, srv.addr)
		}
	}
	s.mu.Unlock()
	length := uint64(math.MaxUint64)
	var ok []string
	var lastErr error
	noChunk := 0 // replicas that answered they never had the chunk
	for _, a := range addrs {
		cl, err := s.chunkserver(a)
		if err != nil {
			lastErr = err
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		r, err := cl.RecoverChunk(cctx, &dfspb.RecoverChunkRequest{Handle: h, OldVersion: res.old, NewVersion: res.chunk.Version})
		cancel()
		if err != nil {
			lastErr = dfs.WireErrors.FromStatus(err)
			if errors.Is(lastErr, wire.ErrNoChunk) {
				noChunk++
			}
			continue
		}
		ok = append(ok, a)
		length = min(length, r.SyncedLength)
	}
	switch {
	case len(ok) == 0 && !unreachable && noChunk == len(addrs):
		// Allocated but created on no replica (the writer died between
		// AllocateChunk and its first packet): a Sync needs every replica
		// of the pipeline, so no byte of it was ever acknowledged.
		length = 0
	case len(ok) == 0:
		return 0, fmt.Errorf("cellar/dfs/master: recover %s: no replica of chunk %x answered (last error: %v): %w", path, h, lastErr, wire.ErrRecoveryPending)
	}
	for _, a := range ok {
		if cl, err := s.chunkserver(a); err == nil {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := cl.FinalizeChunk(cctx, &dfspb.FinalizeChunkRequest{Handle: h, Version: res.chunk.Version, Length: length})
			cancel()
			if err != nil {
				s.log.Warn("finalize after lease recovery failed", "file", path, "server", a, "err", err)
			}
		}
	}
	if _, err := s.apply(ctx, command{Op: opRecoverEnd, Path: path, Handle: h, Length: length}); err != nil {
		return 0, err
	}
	s.mu.Lock()
	delete(s.expected, h)
	s.mu.Unlock()
	s.log.Info("lease recovered", "file", path, "chunk", fmt.Sprintf("%x", h), "last_chunk_length", length, "replicas", len(ok))
	return s.fileLength(path), nil
}

func (s *Server) fileLength(path string) uint64 {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	if f, ok := s.fsm.files[path]; ok {
		return f.length()
	}
	return 0
}

func (s *Server) chunkserver(addr string) (dfspb.ChunkserverClient, error) {
	c, err := s.conns.Get(addr)
	if err != nil {
		return nil, err
	}
	return dfspb.NewChunkserverClient(c), nil
}

// ------------------------------------------------------------ chunkservers

// Heartbeat implements dfspb.MasterServer. Every replica records the
// report (so a new leader knows the replicas at once); only the leader
// answers with commands, and only after a grace period of DeadAfter since
// it took over, so that it has heard from every live chunkserver before
// deleting or copying anything.
func (s *Server) Heartbeat(ctx context.Context, req *dfspb.HeartbeatRequest) (*dfspb.HeartbeatResponse, error) {
	if req.ServerId == "" || req.Address == "" {
		return nil, toStatus(fmt.Errorf("cellar/dfs/master: heartbeat without server id or address: %w", wire.ErrBadRequest))
	}
	now := s.opts.Clock.Now()
	chunks := make(map[uint64]replica, len(req.Chunks))
	for _, c := range req.Chunks {
		chunks[c.Handle] = replica{version: c.Version, length: c.Length, synced: c.SyncedLength}
	}
	leader := s.node.IsLeader()
	s.mu.Lock()
	srv, ok := s.servers[req.ServerId]
	if !ok {
		srv = &serverState{id: req.ServerId}
		s.servers[req.ServerId] = srv
		s.log.Info("chunkserver registered", "server", req.ServerId, "server_addr", req.Address, "rack", req.Rack)
	}
	for h, r := range chunks {
		// A report built before a write finished may arrive after the
		// master learnt the longer length (sealed): within one version a
		// replica only grows, so keep the longer view.
		if prev, ok := srv.chunks[h]; ok && prev.version == r.version && prev.length > r.length {
			chunks[h] = prev
		}
	}
	srv.addr, srv.rack, srv.healthy, srv.reason = req.Address, req.Rack, req.Healthy, req.UnhealthyReason
	srv.capacity, srv.used, srv.lastSeen, srv.chunks = req.CapacityBytes, req.UsedBytes, now, chunks
	for h := range chunks {
		if t, ok := s.inflight[h]; ok && t.target == srv.id {
			delete(s.inflight, h)
		}
	}
	resp := &dfspb.HeartbeatResponse{Leader: leader}
	act := leader && s.graceOverLocked(now)
	if act {
		resp.Replicate = s.pendingCopies[srv.id]
		resp.Delete = s.pendingDeletes[srv.id]
		delete(s.pendingCopies, srv.id)
		delete(s.pendingDeletes, srv.id)
	}
	s.mu.Unlock()
	if leader && len(req.Corrupt) > 0 {
		s.log.Warn("chunkserver reported corrupt replicas", "server", req.ServerId, "chunks", len(req.Corrupt))
	}
	if act {
		resp.Delete = append(resp.Delete, s.garbage(req.Chunks)...)
	}
	return resp, nil
}

func (s *Server) graceOverLocked(now time.Time) bool {
	return !s.leaderSince.IsZero() && now.Sub(s.leaderSince) >= s.opts.DeadAfter
}

// garbage lists the reported replicas nobody needs: chunks no file
// references (deleted files, abandoned allocations), stale versions of
// chunks whose length is settled, and copies of such a chunk at its
// version but shorter than its length (a replica whose newest commit slot
// was damaged falls back to the older commit). A short copy is dropped
// only while a full one is live: it is all that is left otherwise, and
// fsck reports the chunk. Dropping it lets a full copy be placed on its
// server again.
func (s *Server) garbage(report []*dfspb.ChunkReport) []*dfspb.DeleteCommand {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Clock.Now()
	var out []*dfspb.DeleteCommand
	for _, c := range report {
		ref, ok := s.fsm.index[c.Handle]
		if !ok {
			if c.Handle < s.fsm.nextHandle {
				out = append(out, &dfspb.DeleteCommand{Handle: c.Handle, BelowVersion: math.MaxUint64})
			}
			continue
		}
		ch := s.fsm.files[ref.path].Chunks[ref.index]
		switch {
		case !ch.Complete:
		case c.Version < ch.Version:
			out = append(out, &dfspb.DeleteCommand{Handle: c.Handle, BelowVersion: ch.Version})
		case c.Version == ch.Version && c.Length < ch.Length && len(s.goodLocked(ch, false, now)) > 0:
			s.log.Warn("dropping a short replica of a complete chunk", "chunk", fmt.Sprintf("%x", c.Handle),
				"length", c.Length, "want", ch.Length)
			out = append(out, &dfspb.DeleteCommand{Handle: c.Handle, BelowVersion: ch.Version + 1, BelowLength: ch.Length})
		}
	}
	return out
}

// backgroundLoop runs on every replica; it acts only while leader.
func (s *Server) backgroundLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.opts.Clock.After(s.opts.ReplicationInterval):
		}
		now := s.opts.Clock.Now()
		leader := s.node.IsLeader()
		s.mu.Lock()
		switch {
		case !leader:
			s.leaderSince = time.Time{}
		case s.leaderSince.IsZero():
			s.leaderSince = now
			s.lastRenew = map[string]time.Time{}
			s.inflight = map[uint64]copyTask{}
			s.pendingCopies = map[string][]*dfspb.ReplicateCommand{}
			s.pendingDeletes = map[string][]*dfspb.DeleteCommand{}
			s.log.Info("became leader")
		}
		grace := s.graceOverLocked(now)
		s.mu.Unlock()
		if !leader || !grace {
			continue
		}
		s.planReplication(now)
		for _, p := range s.expiredLeases(now) {
			if _, err := s.recoverLease(ctx, p); err != nil && ctx.Err() == nil {
				s.log.Warn("recovery of an expired lease failed", "file", p, "err", err)
			}
		}
	}
}

// expiredLeases lists files whose writer has not renewed its lease for
// LeaseHardLimit (counted from when this replica became leader at worst).
func (s *Server) expiredLeases(now time.Time) []string {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for p, f := range s.fsm.files {
		if !f.UC {
			continue
		}
		last, ok := s.lastRenew[f.Holder]
		if !ok || last.Before(s.leaderSince) {
			last = s.leaderSince
		}
		if now.Sub(last) > s.opts.LeaseHardLimit {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

type need struct {
	ch     chunkMeta
	good   []string
	target int
}

// planReplication queues replica copies for under-replicated chunks,
// fewest live replicas first, within the concurrency bounds, and deletions
// of surplus replicas. Commands go out with the next heartbeat replies.
func (s *Server) planReplication(now time.Time) {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	for h, t := range s.inflight {
		if srv, ok := s.servers[t.target]; now.After(t.deadline) || !ok || !s.liveLocked(srv, now) {
			delete(s.inflight, h) // timed out, or the target died: schedule again
		}
	}
	for h := range s.expected {
		if _, ok := s.fsm.index[h]; !ok {
			delete(s.expected, h) // the file was deleted while being written
		}
	}
	var needs []need
	var under, missing uint64
	for _, f := range s.fsm.files {
		for i, ch := range f.Chunks {
			if !ch.Complete {
				continue
			}
			good := s.goodLocked(ch, f.UC && i == len(f.Chunks)-1, now)
			target := int(f.Replication)
			switch {
			case len(good) == 0:
				missing++
				under++
			case len(good) < target:
				under++
				needs = append(needs, need{ch, good, target})
			case len(good) > target:
				if _, busy := s.inflight[ch.Handle]; !busy {
					for _, id := range good[target:] {
						s.pendingDeletes[id] = append(s.pendingDeletes[id], &dfspb.DeleteCommand{Handle: ch.Handle, BelowVersion: math.MaxUint64})
					}
				}
			}
		}
	}
	s.underRepl, s.missing = under, missing
	sort.SliceStable(needs, func(i, j int) bool { return len(needs[i].good) < len(needs[j].good) })
	perServer := map[string]int{}
	for _, t := range s.inflight {
		perServer[t.target]++
	}
	cands := s.candidatesLocked(now)
	for _, n := range needs {
		if len(s.inflight) >= s.opts.MaxConcurrentReplications {
			break
		}
		if _, busy := s.inflight[n.ch.Handle]; busy {
			continue
		}
		var pool, holders []node
		for _, c := range cands {
			_, has := s.servers[c.id].chunks[n.ch.Handle]
			switch {
			case has:
				holders = append(holders, c)
			case perServer[c.id] < s.opts.MaxCopiesPerServer:
				pool = append(pool, c)
			}
		}
		t, ok := placeExtra(pool, holders, s.rng)
		if !ok {
			continue
		}
		src := s.servers[n.good[s.rng.IntN(len(n.good))]]
		s.pendingCopies[t.id] = append(s.pendingCopies[t.id], &dfspb.ReplicateCommand{
			Handle: n.ch.Handle, Version: n.ch.Version, Length: n.ch.Length, SourceAddress: src.addr})
		s.inflight[n.ch.Handle] = copyTask{target: t.id, deadline: now.Add(s.opts.CopyTimeout)}
		perServer[t.id]++
	}
}

// Status implements dfspb.MasterServer.
func (s *Server) Status(ctx context.Context, _ *dfspb.MasterStatusRequest) (*dfspb.MasterStatusResponse, error) {
	now := s.opts.Clock.Now()
	_, leaderID := s.node.Leader()
	s.fsm.mu.RLock()
	files, chunks := len(s.fsm.files), len(s.fsm.index)
	s.fsm.mu.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := &dfspb.MasterStatusResponse{Leader: s.node.IsLeader(), LeaderId: leaderID, Files: uint64(files), Chunks: uint64(chunks),
		UnderReplicated: s.underRepl, Missing: s.missing, ReplicationsInFlight: uint64(len(s.inflight))}
	for _, srv := range s.servers {
		resp.Servers = append(resp.Servers, &dfspb.ServerStatus{ServerId: srv.id, Address: srv.addr, Rack: srv.rack,
			Live: s.liveLocked(srv, now), Healthy: srv.healthy, UnhealthyReason: srv.reason, Chunks: uint64(len(srv.chunks)),
			CapacityBytes: srv.capacity, UsedBytes: srv.used, LastHeartbeatUnixNanos: srv.lastSeen.UnixNano()})
	}
	sort.Slice(resp.Servers, func(i, j int) bool { return resp.Servers[i].ServerId < resp.Servers[j].ServerId })
	return resp, nil
}

// Fsck implements dfspb.MasterServer.
func (s *Server) Fsck(ctx context.Context, req *dfspb.FsckRequest) (*dfspb.FsckResponse, error) {
	if err := s.leaderErr(); err != nil {
		return nil, toStatus(err)
	}
	now := s.opts.Clock.Now()
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := &dfspb.FsckResponse{}
	paths := make([]string, 0, len(s.fsm.files))
	for p := range s.fsm.files {
		if req.Prefix == "" || p == req.Prefix || strings.HasPrefix(p, req.Prefix+"/") {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	for _, p := range paths {
		f := s.fsm.files[p]
		resp.Files++
		for i, ch := range f.Chunks {
			resp.Chunks++
			uc := f.UC && i == len(f.Chunks)-1
			good := s.goodLocked(ch, uc, now)
			if len(good) < int(f.Replication) {
				resp.Problems = append(resp.Problems, &dfspb.FsckProblem{Path: p, ChunkIndex: uint32(i), Handle: ch.Handle,
					LiveReplicas: uint32(len(good)), Target: f.Replication, Missing: len(good) == 0})
			}
		}
	}
	return resp, nil
}
