// Package standalone runs every Cellar role in one process on one gRPC
// port: a single-replica lock service, a master and one tablet server,
// storing data with dfs/local in one directory. It is what `cellar
// standalone` runs; tests can start it in-process too.
//
// # One port
//
// One grpc.Server serves the Lock, Master and TabletServer services on the
// listener, and every role advertises that one address, so a client given
// that address (the lock service's) finds the master and the tablet server
// through the lock service at the same port. The lock service's raft needs
// no port: with one replica it never sends a message, so it runs on an
// in-memory raft transport with a fixed address ("standalone").
//
// The in-process master and tablet server reach the lock service through a
// second, in-memory gRPC server (bufconn) that serves only the Lock
// service: the tablet server needs a lock session before it exists, and a
// grpc.Server accepts no service registered after it started serving, so
// the shared server cannot start before the tablet server is built. The
// master reaches the tablet server at its advertised address, dialled at
// the bound one (the advertised name need not resolve on this machine).
//
// # Restarts
//
// Start takes an exclusive file lock on Dir/LOCK, so at most one process
// uses a directory. After a crash (SIGKILL) the lock service's state still
// holds the previous incarnation's sessions, which a new leader would keep
// for a full lease (Chubby's grace period), and with them the master lock
// and the dead tablet server's lock. Since the file lock proves that
// incarnation is gone, Start ends those sessions at once
// (lock.Server.ExpireAllSessions); the master then recovers the dead
// server's commit log and assigns its tablets to the new tablet server.
//
// # Layout of Dir
//
//	LOCK   the file lock
//	lock/  the lock service's raft log, stable store and snapshots
//	fs/    the file system (dfs/local): commit logs, tablets' files
package standalone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/test/bufconn"

	"cellar/dfs/local"
	"cellar/internal/metaclient"
	"cellar/internal/rpclimit"
	"cellar/lock"
	"cellar/master"
	lockpb "cellar/proto/cellar/lock/v1"
	masterpb "cellar/proto/cellar/master/v1"
	tabletpb "cellar/proto/cellar/tablet/v1"
	"cellar/sstable"
	"cellar/tabletserver"
)

// Defaults for zero Options fields.
const (
	DefaultListen    = "127.0.0.1:7070"
	DefaultCacheSize = 256 << 20
	raftAddr         = "standalone" // the in-memory raft transport's address
	lockID           = "standalone" // the lock replica's raft ID
)

// ErrDirInUse: another process holds the data directory's file lock.
var ErrDirInUse = errors.New("cellar/standalone: data directory in use by another process")

// Options configures a Node; zero fields mean the defaults on each.
type Options struct {
	// Dir is the data directory (created if missing). Required.
	Dir string
	// Listen is the gRPC listen address; default DefaultListen. Ignored
	// when Listener is set.
	Listen   string
	Listener net.Listener
	// Advertise is the address every role publishes in the lock service
	// (what clients dial); default the bound address. Required when the
	// bound host is unspecified (0.0.0.0 or ::).
	Advertise string
	// SplitSize (bytes) of the tablet server; default the server's.
	SplitSize int64
	// MemtableSize (bytes) of every tablet; default the tablet's.
	MemtableSize int64
	// CacheSize is the block cache in bytes; default DefaultCacheSize.
	CacheSize int64
	// Lease is the lock-service session lease of the master and tablet
	// server; default the lock service's default (12s).
	Lease time.Duration
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Node is a running standalone Cellar. Its methods are safe for concurrent
// use; Close and Kill may be called once (later calls return nil).
type Node struct {
	opts      Options
	log       *slog.Logger
	addr      string // advertised
	dialAddr  string // where this process dials itself
	flock     *os.File
	gs        *grpc.Server // the public one: lock, master, tablet server
	gsInt     *grpc.Server // in-memory, lock only, for this process's roles
	intLis    *bufconn.Listener
	intDone   chan struct{}
	lockSrv   *lock.Server
	mst       *master.Master
	mCancel   context.CancelFunc
	mDone     chan struct{}
	tsLock    *lock.Client
	meta      *metaclient.Client
	ts        *tabletserver.Server
	serveDone chan struct{}
	expired   int
	closeOnce sync.Once
	closeErr  error
}

// Start opens Dir and starts every role. It returns once the tablet server
// is registered and the master is campaigning; Ready waits until every
// tablet is served.
func Start(ctx context.Context, opts Options) (n *Node, err error) {
	if opts.Dir == "" {
		return nil, errors.New("cellar/standalone: Options.Dir is required")
	}
	if opts.Listen == "" {
		opts.Listen = DefaultListen
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = DefaultCacheSize
	}
	if opts.SplitSize < 0 || opts.MemtableSize < 0 || opts.CacheSize < 0 || opts.Lease < 0 {
		return nil, errors.New("cellar/standalone: negative size or lease")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	n = &Node{opts: opts, log: opts.Logger.With("component", "standalone")}
	var cleanups []func()
	defer func() {
		if err != nil {
			for i := len(cleanups) - 1; i >= 0; i-- {
				cleanups[i]()
			}
		}
	}()

	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("cellar/standalone: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(opts.Dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cellar/standalone: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrDirInUse, opts.Dir)
		}
		return nil, fmt.Errorf("cellar/standalone: lock %s: %w", opts.Dir, err)
	}
	n.flock = f
	cleanups = append(cleanups, func() { f.Close() }) // closing drops the flock

	lis := opts.Listener
	if lis == nil {
		if lis, err = net.Listen("tcp", opts.Listen); err != nil {
			return nil, fmt.Errorf("cellar/standalone: listen on %s: %w", opts.Listen, err)
		}
	}
	cleanups = append(cleanups, func() { lis.Close() })
	bound := lis.Addr().(*net.TCPAddr)
	n.dialAddr = bound.String()
	if bound.IP.IsUnspecified() {
		n.dialAddr = net.JoinHostPort("127.0.0.1", fmt.Sprint(bound.Port))
		if opts.Advertise == "" {
			return nil, fmt.Errorf("cellar/standalone: listening on %s (every interface): give the address clients should dial (--advertise)", bound)
		}
	}
	n.addr = opts.Advertise
	if n.addr == "" {
		n.addr = bound.String()
	}

	// The lock service, on both gRPC servers.
	// The one public server carries tablet traffic too: cells up to the
	// value limit need rpclimit's message size.
	n.gs = grpc.NewServer(append(rpclimit.ServerOptions(), grpc.WaitForHandlers(true))...)
	n.gsInt = grpc.NewServer(grpc.WaitForHandlers(true))
	n.intLis = bufconn.Listen(1 << 20)
	_, trans := raft.NewInmemTransport(raftAddr)
	n.lockSrv, err = lock.Start(lock.Options{
		ID: lockID, Dir: filepath.Join(opts.Dir, "lock"), GRPCServer: n.gs, GRPCAdvertise: n.addr,
		RaftTransport: trans, Bootstrap: []lock.Peer{{ID: lockID, RaftAddr: raftAddr, GRPCAddr: n.addr}},
		// One replica: no network between replicas, so short timers cost
		// nothing and make a restart lead sooner.
		HeartbeatTimeout: 100 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond,
		LeaderLeaseTimeout: 50 * time.Millisecond, Logger: opts.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("cellar/standalone: lock service: %w", err)
	}
	cleanups = append(cleanups, func() { n.gs.Stop(); n.gsInt.Stop(); n.lockSrv.Close() })
	lockpb.RegisterLockServer(n.gsInt, n.lockSrv)
	n.intDone = make(chan struct{})
	go func() { defer close(n.intDone); n.gsInt.Serve(n.intLis) }()
	cleanups = append(cleanups, func() { n.gsInt.Stop(); <-n.intDone })

	// Sessions left by a previous incarnation (it is dead: we hold the
	// file lock) would keep the master and server locks for a lease.
	if n.expired, err = n.lockSrv.ExpireAllSessions(ctx); err != nil {
		return nil, fmt.Errorf("cellar/standalone: end the previous run's lock sessions: %w", err)
	}
	if n.expired > 0 {
		n.log.Info("ended the previous run's lock-service sessions", "sessions", n.expired)
	}

	fs, err := local.Open(filepath.Join(opts.Dir, "fs"))
	if err != nil {
		return nil, fmt.Errorf("cellar/standalone: file system: %w", err)
	}
	lockDialer := func(ctx context.Context, _ string) (net.Conn, error) { return n.intLis.DialContext(ctx) }
	selfDialer := func(ctx context.Context, addr string) (net.Conn, error) {
		if addr == n.addr {
			addr = n.dialAddr
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}

	n.mst, err = master.New(master.Options{Addr: n.addr, LockAddrs: []string{n.addr}, FS: fs, LockLease: opts.Lease,
		LockDialer: lockDialer, DialOptions: []grpc.DialOption{grpc.WithContextDialer(selfDialer)}, Logger: opts.Logger})
	if err != nil {
		return nil, fmt.Errorf("cellar/standalone: master: %w", err)
	}
	cleanups = append(cleanups, func() { n.mst.Close() })
	masterpb.RegisterMasterServer(n.gs, n.mst)

	if n.tsLock, err = lock.Dial(ctx, lock.ClientOptions{Addrs: []string{n.addr}, Lease: opts.Lease, Dialer: lockDialer, Logger: opts.Logger}); err != nil {
		return nil, fmt.Errorf("cellar/standalone: tablet server's lock session: %w", err)
	}
	cleanups = append(cleanups, func() { n.tsLock.Close() })
	n.meta = metaclient.New(n.tsLock)
	cleanups = append(cleanups, func() { n.meta.Close() })
	n.ts, err = tabletserver.New(ctx, tabletserver.Options{Addr: n.addr, FS: fs, Lock: n.tsLock, Meta: n.meta, Master: n.meta,
		SplitSize: opts.SplitSize, MemtableSize: opts.MemtableSize, Cache: sstable.NewCache(opts.CacheSize), Logger: opts.Logger})
	if err != nil {
		return nil, fmt.Errorf("cellar/standalone: tablet server: %w", err)
	}
	tabletpb.RegisterTabletServerServer(n.gs, n.ts)

	n.serveDone = make(chan struct{})
	go func() {
		defer close(n.serveDone)
		if err := n.gs.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			n.log.Error("grpc serve", "err", err)
		}
	}()
	cleanups = append(cleanups, func() { n.gs.Stop(); <-n.serveDone })
	if err := n.ts.Start(ctx); err != nil {
		n.ts.Kill()
		return nil, fmt.Errorf("cellar/standalone: start tablet server: %w", err)
	}
	mctx, cancel := context.WithCancel(context.Background())
	n.mCancel, n.mDone = cancel, make(chan struct{})
	go func() { defer close(n.mDone); n.mst.Run(mctx) }()
	return n, nil
}

// Addr is the advertised address: the one clients dial.
func (n *Node) Addr() string { return n.addr }

// Dir is the data directory.
func (n *Node) Dir() string { return n.opts.Dir }

// ExpiredSessions is how many sessions of a previous run Start ended (more
// than zero after a crash).
func (n *Node) ExpiredSessions() int { return n.expired }

// Lost is closed when the tablet server's lock session is lost; the
// server has then stopped serving and the process should exit (Kill).
func (n *Node) Lost() <-chan struct{} { return n.tsLock.Lost() }

// Ready waits until the master is active and every tablet it knows of is
// served: the root and META tablets and at least one tablet of every table
// in the schema. It returns how many tablets are served.
func (n *Node) Ready(ctx context.Context) (int, error) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	var last error
	for {
		tablets, err := n.ready(ctx)
		if err == nil {
			return tablets, nil
		}
		last = err
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("cellar/standalone: not ready (%v): %w", last, ctx.Err())
		case <-t.C:
		}
	}
}

func (n *Node) ready(ctx context.Context) (int, error) {
	if !n.mst.IsActive() {
		return 0, errors.New("master not active yet")
	}
	st, err := n.mst.ClusterStatus(ctx, &masterpb.ClusterStatusRequest{})
	if err != nil {
		return 0, err
	}
	if st.UnassignedTablets > 0 || len(st.Servers) != 1 {
		return 0, fmt.Errorf("%d tablets unassigned, %d servers", st.UnassignedTablets, len(st.Servers))
	}
	tables, err := n.tsLock.List(ctx, master.TablesDir)
	if err != nil {
		return 0, err
	}
	// Before the master has scanned METADATA it knows only root and META:
	// every table has at least one tablet more.
	served := int(st.Servers[0].Tablets)
	if served < 2+len(tables) {
		return 0, fmt.Errorf("%d tablets served, want at least %d", served, 2+len(tables))
	}
	return served, nil
}

// Close stops cleanly: the master stops (ending its session), the gRPC
// server drains (5s at most), the tablet server unloads every tablet
// (flushing it) and deregisters, and the lock service's raft shuts down.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		var errs []error
		n.mCancel()
		<-n.mDone
		errs = append(errs, n.mst.Close())
		drained := make(chan struct{})
		go func() { n.gs.GracefulStop(); close(drained) }()
		t := time.NewTimer(5 * time.Second)
		select {
		case <-drained:
		case <-t.C:
			n.gs.Stop()
			<-drained
		}
		t.Stop()
		<-n.serveDone
		if err := n.ts.Close(); err != nil {
			errs = append(errs, fmt.Errorf("tablet server: %w", err))
		}
		n.meta.Close()
		n.tsLock.Close()
		n.gsInt.Stop()
		<-n.intDone
		errs = append(errs, n.lockSrv.Close())
		errs = append(errs, n.flock.Close())
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// Kill stops at once without flushing or deregistering, as a crash would
// but for closing files: the next Start recovers from the commit log. Used
// when the tablet server's session is lost.
func (n *Node) Kill() {
	n.closeOnce.Do(func() {
		n.gs.Stop()
		<-n.serveDone
		n.ts.Kill()
		n.mCancel()
		<-n.mDone
		n.mst.Close()
		n.meta.Close()
		n.tsLock.Close()
		n.gsInt.Stop()
		<-n.intDone
		n.lockSrv.Close()
		n.flock.Close()
	})
}
