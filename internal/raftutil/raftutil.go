// Package raftutil is the hashicorp/raft wiring shared by the lock service
// and the dfs master: raft-boltdb/v2 for the log and stable store, a file
// snapshot store, a TCP transport (or an injected one for tests), bootstrap
// from a peer list, and ctx-taking wrappers over raft's timeout-taking calls.
//
// The leader writes its log in parallel with replication (leaderlog.go):
// while a node leads, its log store queues new entries and a writer
// goroutine commits them to bbolt, so a commit waits for the slower of the
// leader's and a follower's disk instead of both in turn. Since raft counts
// the leader's queued copy towards a quorum, raftutil makes sure nothing
// acts on an entry before it is on the leader's disk: the caller's FSM is
// wrapped so that it applies (and a client is answered) only then, the
// commit index sent to followers is clamped below the first queued entry,
// and AddVoter/RemoveServer wait for the leader's disk. Followers write
// synchronously, as before. A failed queued write shuts raft down; the
// clients of entries it held get an error that means outcome unknown
// (raft.ErrRaftShutdown or raft.ErrLeadershipLost in the chain). Reads are
// unchanged. The FSM wrapper passes through Apply, Snapshot and Restore
// only (raft's optional BatchingFSM and ConfigurationStore are not offered).
//
// It owns no state machine: the caller passes a raft.FSM. A Node is safe for
// concurrent use. Lifecycle: Open, then Close (which shuts raft down, writes
// what the leader still had queued, and closes the stores and the transport
// it made).
package raftutil

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// Sentinel errors.
var (
	// ErrNotLeader: a write or linearizable read reached a non-leader.
	ErrNotLeader = errors.New("cellar/raftutil: not the leader")
	// ErrShutdown: the node is closed.
	ErrShutdown = errors.New("cellar/raftutil: raft is shut down")
)

// Peer is one voter of the initial configuration.
type Peer struct {
	ID      string // stable node ID
	Address string // raft transport address host:port
}

// Options configures a Node. Zero values mean defaults.
type Options struct {
	// ID is this node's stable ID. Required.
	ID string
	// Dir holds raft.db (log + stable store) and snapshots/. Required.
	Dir string
	// Bind is the TCP address the raft transport listens on; ":0" style
	// ports are allowed (Addr reports the chosen one). Ignored if Transport
	// is set.
	Bind string
	// Advertise is the address peers reach this node at; default the bound
	// address.
	Advertise string
	// Transport overrides the TCP transport (tests: raft.InmemTransport or a
	// partitionable wrapper). The Node closes it if it implements io.Closer.
	Transport raft.Transport
	// Bootstrap lists the initial voters (this node included). Used only when
	// Dir holds no raft state; ignored on restart.
	Bootstrap []Peer
	// HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout: raft's timers;
	// defaults 1s, 1s, 500ms (raft.DefaultConfig).
	HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout time.Duration
	// SnapshotThreshold is how many log entries since the last snapshot
	// trigger a new one (default 8192); SnapshotInterval how often that is
	// checked (default 30s). TrailingLogs are kept after a snapshot (default
	// 10240).
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64
	// Logger receives raft's logs at Warn and above (Info with Verbose);
	// nil means slog.Default().
	Logger  *slog.Logger
	Verbose bool

	// wrapDisk, if set, wraps the bbolt log store under the leader's queue
	// (tests: slow or failing disks).
	wrapDisk func(raft.LogStore) raft.LogStore
}

func (o Options) withDefaults() Options {
	def := raft.DefaultConfig()
	if o.HeartbeatTimeout == 0 {
		o.HeartbeatTimeout = def.HeartbeatTimeout
	}
	if o.ElectionTimeout == 0 {
		o.ElectionTimeout = def.ElectionTimeout
	}
	if o.LeaderLeaseTimeout == 0 {
		o.LeaderLeaseTimeout = min(def.LeaderLeaseTimeout, o.HeartbeatTimeout)
	}
	if o.SnapshotThreshold == 0 {
		o.SnapshotThreshold = def.SnapshotThreshold
	}
	if o.SnapshotInterval == 0 {
		o.SnapshotInterval = def.SnapshotInterval
	}
	if o.TrailingLogs == 0 {
		o.TrailingLogs = def.TrailingLogs
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Validate reports missing or inconsistent options.
func (o Options) Validate() error {
	if o.ID == "" {
		return errors.New("cellar/raftutil: Options.ID is required")
	}
	if o.Dir == "" {
		return errors.New("cellar/raftutil: Options.Dir is required")
	}
	if o.Transport == nil && o.Bind == "" {
		return errors.New("cellar/raftutil: Options.Bind or Options.Transport is required")
	}
	return nil
}

// Node is one raft replica.
type Node struct {
	Raft      *raft.Raft
	store     *raftboltdb.BoltStore // stable store, and the log's disk
	logs      *logStore             // the LogStore raft uses (leaderlog.go)
	transport raft.Transport
	ownsTrans bool
	log       *slog.Logger

	raftPtr  atomic.Pointer[raft.Raft] // for logs, which exists before raft
	failOnce sync.Once
	failDone chan struct{} // closed once a failed log write has shut raft down
}

// Open starts a raft replica with fsm, bootstrapping a new cluster from
// opts.Bootstrap when Dir has no state.
func Open(opts Options, fsm raft.FSM) (*Node, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	log := opts.Logger.With("component", "raft", "node", opts.ID)
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("cellar/raftutil: %w", err)
	}
	hl := hclog.New(&hclog.LoggerOptions{
		Name:   "raft",
		Level:  map[bool]hclog.Level{false: hclog.Warn, true: hclog.Info}[opts.Verbose],
		Output: slogWriter(log),
	})
	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(opts.ID)
	conf.HeartbeatTimeout = opts.HeartbeatTimeout
	conf.ElectionTimeout = opts.ElectionTimeout
	conf.LeaderLeaseTimeout = opts.LeaderLeaseTimeout
	conf.SnapshotThreshold = opts.SnapshotThreshold
	conf.SnapshotInterval = opts.SnapshotInterval
	conf.TrailingLogs = opts.TrailingLogs
	conf.Logger = hl
	conf.BatchApplyCh = true // group concurrent Applys into one log write
	if err := raft.ValidateConfig(conf); err != nil {
		return nil, fmt.Errorf("cellar/raftutil: %w", err)
	}
	// NoFreelistSync: bbolt rebuilds its freelist on open instead of writing
	// it on every commit, which halves the pages each log append syncs.
	store, err := raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(opts.Dir, "raft.db"),
		BoltOptions: &bbolt.Options{Timeout: 5 * time.Second, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType},
	})
	if err != nil {
		return nil, fmt.Errorf("cellar/raftutil: open log store: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(opts.Dir, 2, hl)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("cellar/raftutil: open snapshot store: %w", err)
	}
	var disk raft.LogStore = store
	if opts.wrapDisk != nil {
		disk = opts.wrapDisk(store)
	}
	n := &Node{store: store, transport: opts.Transport, log: log, failDone: make(chan struct{})}
	n.logs = newLogStore(disk, n.leading, n.fail)
	if n.transport == nil {
		var adv net.Addr
		if opts.Advertise != "" {
			if adv, err = net.ResolveTCPAddr("tcp", opts.Advertise); err != nil {
				n.logs.close()
				store.Close()
				return nil, fmt.Errorf("cellar/raftutil: advertise address: %w", err)
			}
		}
		t, err := raft.NewTCPTransportWithLogger(opts.Bind, adv, 3, 10*time.Second, hl)
		if err != nil {
			n.logs.close()
			store.Close()
			return nil, fmt.Errorf("cellar/raftutil: listen %s: %w", opts.Bind, err)
		}
		n.transport, n.ownsTrans = t, true
	}
	existing, err := raft.HasExistingState(n.logs, store, snaps)
	if err != nil {
		n.closeStores()
		return nil, fmt.Errorf("cellar/raftutil: %w", err)
	}
	if !existing && len(opts.Bootstrap) > 0 {
		var cfg raft.Configuration
		for _, p := range opts.Bootstrap {
			addr := raft.ServerAddress(p.Address)
			if p.ID == opts.ID {
				addr = n.transport.LocalAddr()
			}
			cfg.Servers = append(cfg.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: addr})
		}
		if err := raft.BootstrapCluster(conf, n.logs, store, snaps, n.transport, cfg); err != nil {
			n.closeStores()
			return nil, fmt.Errorf("cellar/raftutil: bootstrap: %w", err)
		}
	}
	// The leader's log is written in parallel with replication; the FSM
	// and transport wrappers keep anything from acting on an entry before
	// it is on the leader's disk (leaderlog.go).
	r, err := raft.NewRaft(conf, &gatedFSM{fsm: fsm, logs: n.logs}, n.logs, store, snaps, wrapTransport(n.transport, n.logs))
	if err != nil {
		n.closeStores()
		return nil, fmt.Errorf("cellar/raftutil: %w", err)
	}
	n.Raft = r
	n.raftPtr.Store(r)
	log.Info("raft started", "addr", string(n.transport.LocalAddr()), "existing_state", existing)
	return n, nil
}

func (n *Node) closeStores() {
	if n.ownsTrans {
		if c, ok := n.transport.(io.Closer); ok {
			c.Close()
		}
	}
	n.logs.close()
	n.store.Close()
}

// leading reports whether raft is the leader now. raft calls StoreLogs
// from its main goroutine, which also makes every state change but
// Shutdown, so the answer holds for the call that asks.
func (n *Node) leading() bool {
	r := n.raftPtr.Load()
	return r != nil && r.State() == raft.Leader
}

// fail stops the node after a failed leader log write (called once, by the
// log writer): held entries are answered with an error by gatedFSM.
func (n *Node) fail(err error) {
	n.failOnce.Do(func() {
		r := n.raftPtr.Load()
		if r == nil {
			close(n.failDone)
			return
		}
		n.log.Error("leader log write failed; shutting raft down", "err", err)
		go func() {
			defer close(n.failDone)
			r.Shutdown().Error()
		}()
	})
}

// waitFailed waits for fail's shutdown, if a failed write started one.
func (n *Node) waitFailed() {
	if n.logs.failed() != nil && !errors.Is(n.logs.failed(), errCrashed) {
		n.fail(n.logs.failed()) // no-op if it ran; closes failDone otherwise
		<-n.failDone
	}
}

// Addr is the raft transport address of this node.
func (n *Node) Addr() string { return string(n.transport.LocalAddr()) }

// Close shuts raft down and releases the stores and the transport.
func (n *Node) Close() error {
	err := n.Raft.Shutdown().Error()
	n.waitFailed()
	if c, ok := n.transport.(io.Closer); ok {
		c.Close()
	}
	// Close pooled outgoing connections too, so that peers' connection
	// handlers (and ours) see EOF instead of waiting forever.
	if cs, ok := n.transport.(interface{ CloseStreams() }); ok {
		cs.CloseStreams()
	}
	if lerr := n.logs.close(); err == nil {
		err = lerr
	}
	if cerr := n.store.Close(); err == nil {
		err = cerr
	}
	return err
}

// crash stops the node as a process crash would, as far as its disk is
// concerned: nothing still queued by the leader is written. For tests.
func (n *Node) crash(releaseDisk func()) {
	n.logs.crash(releaseDisk)
	n.Raft.Shutdown().Error()
	if c, ok := n.transport.(io.Closer); ok {
		c.Close()
	}
	if cs, ok := n.transport.(interface{ CloseStreams() }); ok {
		cs.CloseStreams()
	}
	n.store.Close()
}

func timeout(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Millisecond)
	}
	return 0 // raft: no timeout
}

// MapErr converts raft's errors to this package's sentinels (raft's own
// error stays in the chain).
func MapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: %w", ErrNotLeader, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%w: %w", ErrShutdown, err)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("cellar/raftutil: %w: %w", context.DeadlineExceeded, err)
	}
	return err
}

// Apply replicates cmd and returns the FSM's response. The ctx deadline
// bounds how long the command may wait to be enqueued; once enqueued, the
// outcome is awaited (or ctx gives up waiting, leaving it unknown).
func (n *Node) Apply(ctx context.Context, cmd []byte) (any, error) {
	f := n.Raft.Apply(cmd, timeout(ctx))
	if err := awaitFuture(ctx, f); err != nil {
		return nil, err
	}
	if h, ok := f.Response().(heldError); ok {
		return nil, h.err
	}
	return f.Response(), nil
}

// VerifyLeader confirms this node is still the leader (a quorum answered),
// as linearizable reads require; then Barrier-free reads of the FSM on this
// node observe every write acknowledged before the call.
func (n *Node) VerifyLeader(ctx context.Context) error {
	if err := n.stopping(); err != nil {
		return err
	}
	if err := awaitFuture(ctx, n.Raft.VerifyLeader()); err != nil {
		return err
	}
	// Make sure everything committed before leadership was confirmed has been
	// applied to the FSM.
	return MapErr(n.Raft.Barrier(timeout(ctx)).Error())
}

// ReadIndex is the read-index step of a linearizable read without a log
// write: it notes the commit index, then confirms with a quorum that this
// node still leads. Once the caller's FSM has applied the returned index,
// reading it observes every write acknowledged before the call. The leader
// must already have committed an entry of its own term (a Barrier when it
// took over), which callers arrange.
func (n *Node) ReadIndex(ctx context.Context) (uint64, error) {
	if err := n.stopping(); err != nil {
		return 0, err
	}
	idx := n.Raft.CommitIndex()
	if err := awaitFuture(ctx, n.Raft.VerifyLeader()); err != nil {
		return 0, err
	}
	if err := n.stopping(); err != nil {
		return 0, err
	}
	return idx, nil
}

// awaitFuture waits for f or ctx. The goroutine waiting on f ends when raft
// answers it (raft v1.7.3 leaves a VerifyLeader future queued at Shutdown
// unanswered, so in that one case it never ends).
func awaitFuture(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return MapErr(err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stopping is ErrShutdown once a failed log write is stopping the node: its
// FSM applies nothing more, so it must serve no more reads.
func (n *Node) stopping() error {
	if err := n.logs.failed(); err != nil {
		return fmt.Errorf("%w: %w", ErrShutdown, err)
	}
	return nil
}

// IsLeader reports whether this node believes it is the leader.
func (n *Node) IsLeader() bool { return n.Raft.State() == raft.Leader }

// Leader returns the current leader's raft address and ID ("" if unknown).
func (n *Node) Leader() (addr, id string) {
	a, i := n.Raft.LeaderWithID()
	return string(a), string(i)
}

// FirstIndex is the first index still in the log store (it grows as
// snapshots truncate the log).
func (n *Node) FirstIndex() (uint64, error) { return n.logs.FirstIndex() }

// AddVoter adds a voter (leader only). Like every acknowledged change, it
// returns once the configuration entry is also on this node's disk.
func (n *Node) AddVoter(ctx context.Context, id, addr string) error {
	return n.awaitConfig(n.Raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, timeout(ctx)))
}

// RemoveServer removes a server from the configuration (leader only), as
// AddVoter.
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	return n.awaitConfig(n.Raft.RemoveServer(raft.ServerID(id), 0, timeout(ctx)))
}

// awaitConfig waits for a configuration change to commit and then for its
// entry to reach this node's disk: raft answers configuration futures
// without the FSM, so gatedFSM does not hold them.
func (n *Node) awaitConfig(f raft.IndexFuture) error {
	if err := f.Error(); err != nil {
		return MapErr(err)
	}
	if err := n.logs.waitDurable(f.Index()); err != nil {
		return fmt.Errorf("%w: %w: %w", ErrShutdown, raft.ErrRaftShutdown, err)
	}
	return nil
}

// Servers returns the current configuration.
func (n *Node) Servers() ([]raft.Server, error) {
	f := n.Raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, MapErr(err)
	}
	return f.Configuration().Servers, nil
}

// WaitLeader blocks until some node is known as leader or ctx ends.
func (n *Node) WaitLeader(ctx context.Context) (addr, id string, err error) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if a, i := n.Leader(); a != "" {
			return a, i, nil
		}
		select {
		case <-ctx.Done():
			return "", "", ctx.Err()
		case <-t.C:
		}
	}
}

// slogWriter turns hclog's text lines into slog records. hclog writes one
// whole line per Write call, so no buffering (and no goroutine) is needed.
func slogWriter(log *slog.Logger) io.Writer { return lineLogger{log} }

type lineLogger struct{ log *slog.Logger }

func (l lineLogger) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\n")
	switch {
	case strings.Contains(line, "[ERROR]"):
		l.log.Error(line)
	case strings.Contains(line, "[WARN]"):
		l.log.Warn(line)
	default:
		l.log.Info(line)
	}
	return len(p), nil
}
