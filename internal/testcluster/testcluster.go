// Package testcluster runs a whole Cellar cluster in one process for tests
// and benchmarks: a lock service, a file system (the replicated dfs with
// three chunkservers, or memory), masters and tablet servers on loopback
// ports, each with its own lock-service session and connections, so that a
// test can kill, pause and restart any of them (etcd's integration cluster,
// HBase's MiniHBaseCluster).
//
// Killing a tablet server is abrupt: its session is cut off (so it expires
// on the lock service instead of being closed), its gRPC server stops, and
// it stops serving without flushing anything; its commit log is left for
// the master to recover, exactly as after a SIGKILL. Pausing cuts its
// session and its clients' connections but leaves it running, as a network
// partition or a long GC pause would.
package testcluster

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"

	"cellar/dfs"
	"cellar/dfs/dfscluster"
	"cellar/dfs/memfs"
	"cellar/internal/metaclient"
	"cellar/internal/rpclimit"
	"cellar/lock"
	"cellar/lock/locktest"
	"cellar/master"
	masterpb "cellar/proto/cellar/master/v1"
	tabletpb "cellar/proto/cellar/tablet/v1"
	"cellar/tabletserver"
)

// Options configure a Cluster; zero values mean the defaults.
type Options struct {
	// Servers is the number of tablet servers; default 3.
	Servers int
	// Masters is the number of masters; default 2.
	Masters int
	// Dir, if set, holds the cluster's files (default tb.TempDir()).
	Dir string
	// MemFS keeps files in memory instead of the replicated dfs (faster;
	// no leases, so a paused server's writes are not fenced by the FS).
	MemFS bool
	// SplitSize of the tablet servers; default theirs.
	SplitSize int64
	// MetaSplitSize of the tablet servers (METADATA's META tablets);
	// default theirs.
	MetaSplitSize int64
	// MemtableSize of the tablets; default 4 MiB.
	MemtableSize int64
	// MasterHooks are given to every master.
	MasterHooks master.Hooks
	// ServerHooks are given to every tablet server.
	ServerHooks tabletserver.Hooks
	// Logger for every component; default: discard, or stderr at debug
	// level when CELLAR_TEST_LOG is set.
	Logger *slog.Logger
}

// TB is what a Cluster needs of its caller: *testing.T and *testing.B
// satisfy it, and benchmarks outside tests implement it (see Standalone).
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
	TempDir() string
}

// Cluster is a running mini-cluster. Its methods are for the test
// goroutine.
type Cluster struct {
	tb   TB
	opts Options
	log  *slog.Logger

	Lock *locktest.Cluster
	dfsc *dfscluster.Cluster
	mem  *memfs.FS

	mu      sync.Mutex
	Masters []*Master
	Servers []*Server
}

// Master is one master process.
type Master struct {
	M      *master.Master
	Addr   string
	gs     *grpc.Server
	part   *locktest.Partition
	cancel context.CancelFunc
	done   chan struct{}
	fsc    *dfs.Client
	killed bool
}

// Server is one tablet-server process.
type Server struct {
	TS     *tabletserver.Server
	Addr   string
	gs     *grpc.Server
	lis    net.Listener
	lc     *lock.Client
	part   *locktest.Partition
	fs     dfs.FS
	fsc    *dfs.Client
	meta   *metaclient.Client
	killed bool
}

// Start starts a cluster and registers its shutdown with tb.Cleanup.
func Start(tb TB, opts Options) *Cluster {
	tb.Helper()
	if opts.Servers == 0 {
		opts.Servers = 3
	}
	if opts.Masters == 0 {
		opts.Masters = 2
	}
	if opts.MemtableSize == 0 {
		opts.MemtableSize = 4 << 20
	}
	if opts.Logger == nil {
		if os.Getenv("CELLAR_TEST_LOG") != "" {
			opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		} else {
			opts.Logger = slog.New(slog.DiscardHandler)
		}
	}
	// The directory first: cleanups run last-registered first, so the
	// cluster stops before its files are removed (the other way round,
	// RemoveAll raced with chunkservers still writing and failed with
	// "directory not empty").
	dir := opts.Dir
	if dir == "" {
		dir = tb.TempDir()
	}
	c := &Cluster{tb: tb, opts: opts, log: opts.Logger}
	tb.Cleanup(c.Close)
	lopts := locktest.FastOptions()
	lopts.Logger = opts.Logger
	lc, err := locktest.Start(1, dir+"/lock", lopts)
	if err != nil {
		tb.Fatalf("start lock service: %v", err)
	}
	c.Lock = lc
	if opts.MemFS {
		c.mem = memfs.New()
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		dc, err := dfscluster.Start(ctx, &dfscluster.Options{Dir: dir + "/dfs", Chunkservers: 3, ChunkSize: 4 << 20, Logger: opts.Logger})
		if err != nil {
			tb.Fatalf("start dfs: %v", err)
		}
		c.dfsc = dc
		if err := dc.WaitLive(ctx, 3); err != nil {
			tb.Fatalf("dfs chunkservers: %v", err)
		}
	}
	for range opts.Masters {
		c.AddMaster()
	}
	for range opts.Servers {
		c.AddServer()
	}
	return c
}

// LockAddrs are the lock service's addresses (what clients dial).
func (c *Cluster) LockAddrs() []string { return c.Lock.Addrs() }

// newFS returns a file-system client for one process.
func (c *Cluster) newFS(name string) (dfs.FS, *dfs.Client) {
	if c.mem != nil {
		return c.mem, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := c.dfsc.Client(ctx, &dfs.ClientOptions{Name: name, RetryTimeout: 10 * time.Second, PipelineTimeout: 10 * time.Second})
	if err != nil {
		c.tb.Fatalf("dfs client: %v", err)
	}
	return cl, cl
}

// FS returns a file-system client for the test itself.
func (c *Cluster) FS() dfs.FS {
	fs, cl := c.newFS(fmt.Sprintf("test-%d", time.Now().UnixNano()))
	if cl != nil {
		c.tb.Cleanup(func() { cl.Close() })
	}
	return fs
}

func listen(tb TB) net.Listener {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	return lis
}

// AddMaster starts one more master (a standby if one is active).
func (c *Cluster) AddMaster() *Master {
	lis := listen(c.tb)
	fs, fsc := c.newFS("master-" + lis.Addr().String())
	m := &Master{Addr: lis.Addr().String(), part: locktest.NewPartition(), done: make(chan struct{}), fsc: fsc}
	mm, err := master.New(master.Options{Addr: m.Addr, LockAddrs: c.LockAddrs(), FS: fs, LockDialer: m.part.Dial,
		ReconcileInterval: 100 * time.Millisecond, BalanceInterval: time.Second, GCGracePeriod: time.Second, GCInterval: 300 * time.Millisecond,
		RPCTimeout: 20 * time.Second, Hooks: c.opts.MasterHooks, Logger: c.log.With("master", m.Addr)})
	if err != nil {
		c.tb.Fatalf("master: %v", err)
	}
	m.M = mm
	m.gs = grpc.NewServer()
	masterpb.RegisterMasterServer(m.gs, mm)
	go m.gs.Serve(lis)
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() {
		defer close(m.done)
		mm.Run(ctx)
	}()
	c.mu.Lock()
	c.Masters = append(c.Masters, m)
	c.mu.Unlock()
	return m
}

// AddServer starts one more tablet server.
func (c *Cluster) AddServer() *Server {
	lis := listen(c.tb)
	s := &Server{Addr: lis.Addr().String(), lis: lis, part: locktest.NewPartition()}
	s.fs, s.fsc = c.newFS("ts-" + s.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lc, err := lock.Dial(ctx, lock.ClientOptions{Addrs: c.LockAddrs(), Dialer: s.part.Dial, Logger: c.log})
	if err != nil {
		c.tb.Fatalf("tablet server lock client: %v", err)
	}
	s.lc = lc
	s.meta = metaclient.New(lc)
	ts, err := tabletserver.New(ctx, tabletserver.Options{Addr: s.Addr, FS: s.fs, Lock: lc, Meta: s.meta, Master: s.meta,
		SplitSize: c.opts.SplitSize, MetaSplitSize: c.opts.MetaSplitSize, MemtableSize: c.opts.MemtableSize, Hooks: c.opts.ServerHooks, Logger: c.log.With("server", s.Addr)})
	if err != nil {
		c.tb.Fatalf("tablet server: %v", err)
	}
	s.TS = ts
	s.gs = grpc.NewServer(rpclimit.ServerOptions()...)
	tabletpb.RegisterTabletServerServer(s.gs, ts)
	go s.gs.Serve(lis)
	if err := ts.Start(ctx); err != nil {
		c.tb.Fatalf("start tablet server: %v", err)
	}
	c.mu.Lock()
	c.Servers = append(c.Servers, s)
	c.mu.Unlock()
	return s
}

// Killed reports whether the server was killed (or the cluster closed).
func (s *Server) Killed() bool { return s.killed }

// KillServer kills tablet server i abruptly (see the package doc).
func (c *Cluster) KillServer(i int) {
	s := c.Servers[i]
	if s.killed {
		return
	}
	s.killed = true
	s.part.Cut() // the session now expires instead of closing
	s.gs.Stop()
	s.TS.Kill()
	s.lc.Close()
	s.meta.Close()
	if s.fsc != nil {
		s.fsc.Close()
	}
}

// PauseServer cuts tablet server i off the lock service and stops its
// gRPC server from answering (connections refused), leaving the process
// state running: its session expires and the master recovers its tablets.
func (c *Cluster) PauseServer(i int) {
	c.Servers[i].part.Cut()
}

// ResumeServer reconnects a paused server to the lock service.
func (c *Cluster) ResumeServer(i int) {
	c.Servers[i].part.Heal()
}

// KillMaster kills master i abruptly: its session is cut (so it expires)
// and it stops.
func (c *Cluster) KillMaster(i int) {
	m := c.Masters[i]
	if m.killed {
		return
	}
	m.killed = true
	m.part.Cut()
	m.gs.Stop()
	m.cancel()
	<-m.done
	m.M.Close()
	if m.fsc != nil {
		m.fsc.Close()
	}
}

// ActiveMaster returns the index of the active master, or -1.
func (c *Cluster) ActiveMaster() int {
	for i, m := range c.Masters {
		if !m.killed && m.M.IsActive() {
			return i
		}
	}
	return -1
}

// WaitActiveMaster waits for a master to be active and returns its index.
func (c *Cluster) WaitActiveMaster(ctx context.Context) (int, error) {
	for {
		if i := c.ActiveMaster(); i >= 0 {
			return i, nil
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("no active master: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Status asks the active master for the cluster status.
func (c *Cluster) Status(ctx context.Context) (*masterpb.ClusterStatusResponse, error) {
	i, err := c.WaitActiveMaster(ctx)
	if err != nil {
		return nil, err
	}
	return c.Masters[i].M.ClusterStatus(ctx, &masterpb.ClusterStatusRequest{})
}

// WaitAllAssigned waits until no tablet is unassigned.
func (c *Cluster) WaitAllAssigned(ctx context.Context) error {
	for {
		st, err := c.Status(ctx)
		if err == nil && st.UnassignedTablets == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("tablets still unassigned (last status %v, err %v): %w", st, err, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Close stops everything.
func (c *Cluster) Close() {
	for i := range c.Masters {
		c.KillMaster(i)
	}
	for _, s := range c.Servers {
		if s.killed {
			continue
		}
		s.killed = true
		s.TS.Close()
		s.gs.Stop()
		s.lc.Close()
		s.meta.Close()
		if s.fsc != nil {
			s.fsc.Close()
		}
	}
	if c.dfsc != nil {
		c.dfsc.Close()
		c.dfsc = nil
	}
	if c.Lock != nil {
		c.Lock.Close()
		c.Lock = nil
	}
}

// Dump describes what every live server serves, for test failures.
func (c *Cluster) Dump(ctx context.Context) string {
	var b strings.Builder
	for _, s := range c.Servers {
		if s.killed {
			continue
		}
		st, err := s.TS.ServerStatus(ctx, &tabletpb.ServerStatusRequest{})
		if err != nil {
			fmt.Fprintf(&b, "server %s: %v\n", s.Addr, err)
			continue
		}
		fmt.Fprintf(&b, "server %s (serving=%v):\n", s.Addr, st.Serving)
		for _, ts := range st.Tablets {
			d := ts.Tablet
			fmt.Fprintf(&b, "  table %d tablet %d [%q, %q) state %v\n", d.TableId, d.TabletId, d.StartRow, d.EndRow, d.State)
		}
	}
	return b.String()
}

// CheckTablets verifies, from what the live servers report, that the
// tablets of table cover its whole row space exactly once: no tablet
// served twice, no gap, no overlap.
func (c *Cluster) CheckTablets(ctx context.Context, table uint64) error {
	type span struct {
		id         uint64
		start, end string
		server     string
	}
	var spans []span
	seen := map[uint64]string{}
	for _, s := range c.Servers {
		if s.killed {
			continue
		}
		st, err := s.TS.ServerStatus(ctx, &tabletpb.ServerStatusRequest{})
		if err != nil {
			return fmt.Errorf("status of %s: %w", s.Addr, err)
		}
		for _, ts := range st.Tablets {
			d := ts.Tablet
			if d.TableId != table {
				continue
			}
			if other, ok := seen[d.TabletId]; ok {
				return fmt.Errorf("tablet %d served by %s and %s", d.TabletId, other, s.Addr)
			}
			seen[d.TabletId] = s.Addr
			spans = append(spans, span{d.TabletId, string(d.StartRow), string(d.EndRow), s.Addr})
		}
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	want := ""
	for i, sp := range spans {
		if sp.start != want {
			return fmt.Errorf("tablet %d on %s starts at %q, want %q (gap or overlap)", sp.id, sp.server, sp.start, want)
		}
		if sp.end == "" && i != len(spans)-1 {
			return fmt.Errorf("tablet %d is unbounded but not last", sp.id)
		}
		want = sp.end
	}
	if len(spans) == 0 || want != "" {
		return fmt.Errorf("the table's row space is not covered to its end (%d tablets, last end %q)", len(spans), want)
	}
	return nil
}

// Standalone is a TB for using a Cluster outside a test (benchmarks): a
// failure is returned by Err instead of ending a test, Close runs the
// cleanups, and TempDir makes directories under Dir.
type Standalone struct {
	Dir      string
	mu       sync.Mutex
	cleanups []func()
	err      error
}

func (s *Standalone) Helper() {}

// Fatalf records the failure and stops the calling goroutine, as
// testing.T.Fatalf does; Run reports it.
func (s *Standalone) Fatalf(format string, args ...any) {
	s.mu.Lock()
	if s.err == nil {
		s.err = fmt.Errorf(format, args...)
	}
	s.mu.Unlock()
	runtime.Goexit()
}

func (s *Standalone) Cleanup(f func()) {
	s.mu.Lock()
	s.cleanups = append(s.cleanups, f)
	s.mu.Unlock()
}

func (s *Standalone) TempDir() string {
	d, err := os.MkdirTemp(s.Dir, "cluster-")
	if err != nil {
		s.Fatalf("temp dir: %v", err)
	}
	s.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// Close runs the cleanups, last first.
func (s *Standalone) Close() {
	s.mu.Lock()
	cs := s.cleanups
	s.cleanups = nil
	s.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
}

// StartStandalone starts a cluster outside a test. The caller closes st.
func StartStandalone(st *Standalone, opts Options) (*Cluster, error) {
	var c *Cluster
	done := make(chan struct{})
	go func() {
		defer close(done)
		c = Start(st, opts)
	}()
	<-done
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.err != nil {
		return nil, st.err
	}
	return c, nil
}
