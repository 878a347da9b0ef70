// Package master is Cellar's master (Bigtable §5.2): it assigns tablets to
// tablet servers, detects lost servers and recovers their tablets, balances
// load, and administers tables and their schemas.
//
// # Election and state
//
// Any number of masters run; the one holding the lock on /cellar/master is
// active and the others wait in Elect. The active master's sequencer rides
// on every request it sends to a tablet server, which refuses a stale one,
// so a deposed master cannot load, unload or write METADATA (the check and
// the write are not atomic: see docs/serving.md, "Master fencing"), and a
// term refused that way steps down. The master keeps no
// durable state of its own: on election it rebuilds everything from the
// lock service (live servers, schemas, the root tablet's location), from
// the tablet servers (what each one serves, via ServerStatus) and from
// METADATA (every tablet and its last location).
//
// # The reconcile loop
//
// One goroutine per term runs an idempotent pass every ReconcileInterval
// (and at once when something changes):
//
//  1. list the servers' log directories in the file system, then the live
//     servers in the lock service (in that order: a server registers before
//     it creates its log, so a directory seen before the listing whose
//     server is not live belongs to a dead server);
//  2. ask every live server what it serves; a tablet the master believed
//     assigned to a server that does not report it becomes unassigned;
//  3. recover every dead server's commit log: end its writers' leases,
//     split its entries by tablet into recovered-edits directories (in
//     parallel, one writer per tablet), then delete the log;
//  4. assign the root tablet; read its rows, which name every META tablet
//     (METADATA's tablets holding the user tablets' rows; on a new
//     cluster, create the first); assign the META tablets and record
//     their locations in the root; then scan the META tablets in row
//     order for user tablets, and assign every unassigned one to the
//     server with the fewest tablets, passing its recovered-edits
//     directories (user tablets wait until every META tablet is read);
//  5. every BalanceInterval, move tablets from the most to the least loaded
//     servers, at most MaxConcurrentMoves at a time;
//  6. delete the files of dropped tables after GCGracePeriod, and, every
//     GCInterval, the SSTables no live tablet references and the
//     directories of tablets that no longer exist (gc.go).
//
// Split and merge intents found in METADATA are resolved between 4's
// scan and the assignment: a tablet an intent names is not assigned until
// then (intents.go, merge.go).
//
// Recovery is thus restartable at any point: a standby that takes over
// mid-recovery finds the dead server's log still there and splits it again
// (recovered directories are rewritten from scratch), and a tablet's
// replay skips entries at or below its flushed sequence number.
package master

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"cellar/dfs"
	"cellar/internal/serr"
	"cellar/lock"
	datapb "cellar/proto/cellar/data/v1"
	masterpb "cellar/proto/cellar/master/v1"
	tabletpb "cellar/proto/cellar/tablet/v1"
)

// Lock-service nodes (docs/serving.md).
const (
	MasterPath  = "/cellar/master"
	ServersDir  = "/cellar/servers"
	RootPath    = "/cellar/root"
	TablesDir   = "/cellar/tables"
	serversRoot = "servers" // file-system directory of the servers' logs
)

// Options configure a Master.
type Options struct {
	// Addr is the master's advertised gRPC address. Required.
	Addr string
	// LockAddrs are the lock service's replicas. Required.
	LockAddrs []string
	// FS is the cluster's file system. Required.
	FS dfs.FS
	// LockLease is the session lease to ask for (0: the service's default).
	LockLease time.Duration
	// LockDialer, if set, makes the lock client's connections (tests).
	LockDialer func(ctx context.Context, addr string) (net.Conn, error)
	// ReconcileInterval is the period of the reconcile pass; default 500ms.
	ReconcileInterval time.Duration
	// BalanceInterval is the period of load balancing; default 10s.
	BalanceInterval time.Duration
	// MaxConcurrentMoves bounds the tablets moved at once; default 4.
	MaxConcurrentMoves int
	// GCGracePeriod is how long a dropped table's files, an SSTable no
	// live tablet references and the directory of a tablet that no longer
	// exists stay before they are deleted; default 10m. It must exceed
	// the longest read of a tablet (a scan may still read a file its
	// tablet has compacted away).
	GCGracePeriod time.Duration
	// GCInterval is the period of the SSTable garbage collector's rounds;
	// default the smaller of 1m and GCGracePeriod/4.
	GCInterval time.Duration
	// RPCTimeout bounds each request to a tablet server; default 30s.
	RPCTimeout time.Duration
	// DialOptions are added to every connection to a tablet server.
	DialOptions []grpc.DialOption
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Hooks are for tests: they let a test act at a precise point.
	Hooks Hooks
}

// Hooks are called at fixed points of the master's work (tests).
type Hooks struct {
	// AfterLeaseRecovery runs during the recovery of a dead server, after
	// its log's leases were recovered and before the log is split. ctx
	// ends when the master's term does.
	AfterLeaseRecovery func(ctx context.Context, server string)
	// MergeStep runs after each step of a merge (MergeStep* constants);
	// ctx ends when the master's term or the merge request does, and the
	// merge then stops there as if the master had died.
	MergeStep func(ctx context.Context, step string)
}

func (o *Options) withDefaults() (Options, error) {
	c := *o
	if c.Addr == "" || len(c.LockAddrs) == 0 || c.FS == nil {
		return c, fmt.Errorf("%w: master needs Addr, LockAddrs and FS", serr.ErrInvalidArgument)
	}
	if c.ReconcileInterval <= 0 {
		c.ReconcileInterval = 500 * time.Millisecond
	}
	if c.BalanceInterval <= 0 {
		c.BalanceInterval = 10 * time.Second
	}
	if c.MaxConcurrentMoves <= 0 {
		c.MaxConcurrentMoves = 4
	}
	if c.GCGracePeriod <= 0 {
		c.GCGracePeriod = 10 * time.Minute
	}
	if c.GCInterval <= 0 {
		c.GCInterval = min(time.Minute, c.GCGracePeriod/4)
	}
	if c.RPCTimeout <= 0 {
		c.RPCTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// Master is one master process; at most one is active at a time.
type Master struct {
	masterpb.UnimplementedMasterServer

	opts  Options
	log   *slog.Logger
	conns *connCache

	mu     sync.Mutex
	active *term // nil while standby

	// Events, for tests and metrics: called without locks held.
	onRecovered func(server string, tablets int, d time.Duration)
}

// New makes a master; Run makes it take part in elections. *Master
// implements masterpb.MasterServer: register it on a gRPC server.
func New(opts Options) (*Master, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Master{opts: o, log: o.Logger.With("role", "master", "addr", o.Addr), conns: newConnCache(o.DialOptions)}, nil
}

// Close releases the master's connections; call after Run returned.
func (m *Master) Close() error { return m.conns.close() }

// IsActive reports whether this master is the active one.
func (m *Master) IsActive() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.active != nil
}

// Run campaigns for mastership and, once elected, runs the master until ctx
// ends or the lock-service session is lost, then campaigns again. It
// returns when ctx ends.
func (m *Master) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		err := m.runTerm(ctx)
		if ctx.Err() != nil {
			break
		}
		m.log.Warn("master term ended; campaigning again", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return nil
}

func (m *Master) runTerm(ctx context.Context) error {
	lc, err := lock.Dial(ctx, lock.ClientOptions{Addrs: m.opts.LockAddrs, Lease: m.opts.LockLease,
		Dialer: m.opts.LockDialer, Logger: m.opts.Logger})
	if err != nil {
		return fmt.Errorf("dial lock service: %w", err)
	}
	defer lc.Close()
	seq, err := lc.Elect(ctx, MasterPath, m.opts.Addr)
	if err != nil {
		return fmt.Errorf("elect: %w", err)
	}
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-lc.Lost():
			m.log.Warn("lock-service session lost: stepping down")
			cancel()
		case <-tctx.Done():
		}
	}()
	t := newTerm(m, lc, seq, tctx.Done(), cancel)
	m.log.Info("elected active master", "sequencer", seq.String())
	m.mu.Lock()
	m.active = t
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.active = nil
		m.mu.Unlock()
		cancel()
		t.mu.Lock()
		t.ended = true
		t.mu.Unlock()
		t.wg.Wait()
	}()
	t.wg.Add(1)
	go t.watch(tctx)
	t.loop(tctx)
	return tctx.Err()
}

// activeTerm returns the current term or ErrNotMaster.
func (m *Master) activeTerm() (*term, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.active == nil {
		return nil, fmt.Errorf("%w: %s is a standby", serr.ErrNotMaster, m.opts.Addr)
	}
	return m.active, nil
}

// connCache keeps one connection per tablet-server address.
type connCache struct {
	opts  []grpc.DialOption
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func newConnCache(opts []grpc.DialOption) *connCache {
	return &connCache{opts: append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...),
		conns: map[string]*grpc.ClientConn{}}
}

func (c *connCache) server(addr string) (tabletpb.TabletServerClient, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc, ok := c.conns[addr]; ok {
		return tabletpb.NewTabletServerClient(cc), nil
	}
	cc, err := grpc.NewClient(addr, c.opts...)
	if err != nil {
		return nil, fmt.Errorf("dial tablet server %s: %w", addr, err)
	}
	c.conns[addr] = cc
	return tabletpb.NewTabletServerClient(cc), nil
}

func (c *connCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for a, cc := range c.conns {
		errs = append(errs, cc.Close())
		delete(c.conns, a)
	}
	return errors.Join(errs...)
}

// seqProto is the wire form of the master's sequencer.
func seqProto(s lock.Sequencer) *tabletpb.Sequencer {
	return &tabletpb.Sequencer{Path: s.Path, Generation: s.Generation, Mode: int32(s.Mode)}
}

func cloneDesc(d *datapb.TabletDescriptor) *datapb.TabletDescriptor {
	return proto.Clone(d).(*datapb.TabletDescriptor)
}
