// Package dfscluster runs a whole replicated dfs in one process: master
// replicas and chunkservers on 127.0.0.1 ports, with per-node Stop and
// Restart, for tests and for `cellar bench dfs`. It is the dfs part of the
// mini-cluster the integration tests use (etcd's integration cluster,
// hashicorp/raft's MakeCluster).
//
// A Cluster is safe for concurrent use by one test; nodes are stopped and
// restarted by the test goroutine.
package dfscluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"

	"cellar/dfs"
	"cellar/dfs/chunkserver"
	"cellar/dfs/internal/wire"
	"cellar/dfs/master"
	"cellar/internal/raftutil"
	dfspb "cellar/proto/cellar/dfs/v1"
)

// Options configures a cluster. Zero values mean defaults.
type Options struct {
	// Dir holds every node's state. Required.
	Dir string
	// Masters is the number of master replicas, 1 (default) or 3.
	Masters int
	// Chunkservers is the number of chunkservers; default 4.
	Chunkservers int
	// ChunkSize in bytes; default 1 MiB (small, so tests cross chunks).
	ChunkSize int64
	// Replication is the default replica count; default 3.
	Replication uint32
	// HeartbeatInterval of the chunkservers; default 50ms. Chunkservers are
	// declared dead after DeadAfter; default 20 heartbeats.
	HeartbeatInterval, DeadAfter time.Duration
	// Racks, if set, gives chunkserver i the rack Racks[i%len(Racks)].
	Racks []string
	// CapacityBytes bounds each chunkserver's storage; 0 is unlimited.
	CapacityBytes int64
	// Faults, if set, gives chunkserver i its injected storage faults.
	Faults func(i int) chunkserver.Faults
	// PipelineAckTimeout of the chunkservers (per replica below); default theirs (15s).
	PipelineAckTimeout time.Duration
	// LeaseHardLimit of the master; default the master's (10 minutes).
	LeaseHardLimit time.Duration
	// ScrubInterval of the chunkservers; default disabled (tests call Scrub).
	ScrubInterval time.Duration
	// Logger; default discards everything.
	Logger *slog.Logger
}

func (o *Options) withDefaults() Options {
	c := *o
	if c.Masters == 0 {
		c.Masters = 1
	}
	if c.Chunkservers == 0 {
		c.Chunkservers = 4
	}
	if c.ChunkSize == 0 {
		c.ChunkSize = 1 << 20
	}
	if c.Replication == 0 {
		c.Replication = 3
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = 50 * time.Millisecond
	}
	if c.DeadAfter == 0 {
		c.DeadAfter = 20 * c.HeartbeatInterval
	}
	if c.ScrubInterval == 0 {
		c.ScrubInterval = -1
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Cluster is a running in-process dfs.
type Cluster struct {
	opts         Options
	Masters      []*MasterNode
	Chunkservers []*ChunkserverNode
}

// MasterNode is one master replica; Server is nil while stopped.
type MasterNode struct {
	mu     sync.Mutex
	opts   master.Options
	addr   string
	Server *master.Server
}

// ChunkserverNode is one chunkserver; Server is nil while stopped.
type ChunkserverNode struct {
	mu     sync.Mutex
	opts   chunkserver.Options
	Server *chunkserver.Server
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Start runs the cluster and waits until a master leader knows every
// chunkserver.
func Start(ctx context.Context, opts *Options) (*Cluster, error) {
	if opts == nil || opts.Dir == "" {
		return nil, errors.New("cellar/dfs/dfscluster: Options.Dir is required")
	}
	o := opts.withDefaults()
	if o.Masters != 1 && o.Masters != 3 {
		return nil, fmt.Errorf("cellar/dfs/dfscluster: %d masters; want 1 or 3", o.Masters)
	}
	c := &Cluster{opts: o}
	var peers []raftutil.Peer
	var lis []net.Listener
	for range o.Masters {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ra, err := freeAddr()
		if err != nil {
			return nil, err
		}
		lis = append(lis, l)
		peers = append(peers, raftutil.Peer{ID: l.Addr().String(), Address: ra})
	}
	for i := range o.Masters {
		mo := master.Options{
			Dir: filepath.Join(o.Dir, fmt.Sprintf("master%d", i)), Listener: lis[i], RaftBind: peers[i].Address,
			DefaultReplication: o.Replication, ChunkSize: o.ChunkSize,
			HeartbeatInterval: o.HeartbeatInterval, DeadAfter: o.DeadAfter, ReplicationInterval: o.HeartbeatInterval,
			LeaseHardLimit:       o.LeaseHardLimit,
			RaftHeartbeatTimeout: 300 * time.Millisecond, RaftElectionTimeout: 300 * time.Millisecond,
			Logger: o.Logger,
		}
		if o.Masters > 1 {
			mo.Peers = peers
		}
		m := &MasterNode{opts: mo, addr: peers[i].ID}
		c.Masters = append(c.Masters, m)
		if err := m.start(ctx); err != nil {
			c.Close()
			return nil, err
		}
		m.opts.Listener = nil
		m.opts.Listen = m.addr
	}
	for i := range o.Chunkservers {
		co := chunkserver.Options{
			Dir: filepath.Join(o.Dir, fmt.Sprintf("cs%d", i)), Masters: c.MasterAddrs(),
			CapacityBytes: o.CapacityBytes, HeartbeatInterval: o.HeartbeatInterval, ScrubInterval: o.ScrubInterval,
			PipelineAckTimeout: o.PipelineAckTimeout,
			Logger:             o.Logger,
		}
		if len(o.Racks) > 0 {
			co.Rack = o.Racks[i%len(o.Racks)]
		}
		if o.Faults != nil {
			co.Faults = o.Faults(i)
		}
		n := &ChunkserverNode{opts: co}
		c.Chunkservers = append(c.Chunkservers, n)
		if err := n.Restart(ctx); err != nil {
			c.Close()
			return nil, err
		}
		n.opts.Listen = n.Server.Addr()
	}
	if err := c.WaitLive(ctx, o.Chunkservers); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (m *MasterNode) start(ctx context.Context) error {
	s, err := master.Start(ctx, &m.opts)
	if err != nil {
		return err
	}
	m.Server = s
	return nil
}

// Addr is the master replica's gRPC address.
func (m *MasterNode) Addr() string { return m.addr }

// Stop stops the replica (as a crash would: raft state stays on disk).
func (m *MasterNode) Stop() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Server == nil {
		return nil
	}
	err := m.Server.Close()
	m.Server = nil
	return err
}

// Restart starts a stopped replica on the same addresses and state.
func (m *MasterNode) Restart(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Server != nil {
		return nil
	}
	return m.start(ctx)
}

// Stop stops the chunkserver, cutting its streams as a crash would.
func (n *ChunkserverNode) Stop() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.Server == nil {
		return nil
	}
	err := n.Server.Close()
	n.Server = nil
	return err
}

// Restart starts a stopped chunkserver on the same address and directory.
func (n *ChunkserverNode) Restart(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.Server != nil {
		return nil
	}
	s, err := chunkserver.Start(ctx, &n.opts)
	if err != nil {
		return err
	}
	n.Server = s
	return nil
}

// Running returns the server, or nil while stopped.
func (n *ChunkserverNode) Running() *chunkserver.Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.Server
}

// MasterAddrs lists every master replica's gRPC address.
func (c *Cluster) MasterAddrs() []string {
	var out []string
	for _, m := range c.Masters {
		out = append(out, m.addr)
	}
	return out
}

// Leader returns the master replica that is currently raft leader, or nil.
func (c *Cluster) Leader() *MasterNode {
	for _, m := range c.Masters {
		m.mu.Lock()
		s := m.Server
		m.mu.Unlock()
		if s != nil && s.IsLeader() {
			return m
		}
	}
	return nil
}

// leaderClient dials the current master leader; the caller closes the
// connection.
func (c *Cluster) leaderClient() (dfspb.MasterClient, *grpc.ClientConn, error) {
	l := c.Leader()
	if l == nil {
		return nil, nil, errors.New("cellar/dfs/dfscluster: no master leader")
	}
	cc, err := grpc.NewClient(l.addr, wire.DialOptions()...)
	if err != nil {
		return nil, nil, err
	}
	return dfspb.NewMasterClient(cc), cc, nil
}

// Status asks the current leader for its status.
func (c *Cluster) Status(ctx context.Context) (*dfspb.MasterStatusResponse, error) {
	m, cc, err := c.leaderClient()
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	return m.Status(ctx, &dfspb.MasterStatusRequest{})
}

// FileStat asks the current leader for its raw record of a file (tests
// check lease state with it).
func (c *Cluster) FileStat(ctx context.Context, path string) (*dfspb.FileStat, error) {
	m, cc, err := c.leaderClient()
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	r, err := m.Stat(ctx, &dfspb.StatRequest{Path: path})
	if err != nil {
		return nil, dfs.WireErrors.FromStatus(err)
	}
	return r.Stat, nil
}

// Fsck asks the current leader for files with missing replicas.
func (c *Cluster) Fsck(ctx context.Context) (*dfspb.FsckResponse, error) {
	m, cc, err := c.leaderClient()
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	return m.Fsck(ctx, &dfspb.FsckRequest{})
}

// WaitLive polls until a leader sees n live, healthy chunkservers.
func (c *Cluster) WaitLive(ctx context.Context, n int) error {
	return c.Poll(ctx, func() (bool, error) {
		st, err := c.Status(ctx)
		if err != nil {
			return false, nil
		}
		live := 0
		for _, s := range st.Servers {
			if s.Live && s.Healthy {
				live++
			}
		}
		return live == n, nil
	})
}

// Poll calls cond every 10ms until it is true, fails, or ctx ends.
func (c *Cluster) Poll(ctx context.Context, cond func() (bool, error)) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cellar/dfs/dfscluster: condition not met: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// Client dials the cluster's masters.
func (c *Cluster) Client(ctx context.Context, opts *dfs.ClientOptions) (*dfs.Client, error) {
	if opts == nil {
		opts = &dfs.ClientOptions{}
	}
	o := *opts
	if o.Logger == nil {
		o.Logger = c.opts.Logger
	}
	return dfs.Dial(ctx, c.MasterAddrs(), &o)
}

// Close stops every node.
func (c *Cluster) Close() error {
	var errs []error
	for _, n := range c.Chunkservers {
		errs = append(errs, n.Stop())
	}
	for _, m := range c.Masters {
		errs = append(errs, m.Stop())
	}
	return errors.Join(errs...)
}
