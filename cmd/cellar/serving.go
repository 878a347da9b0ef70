package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"cellar/dfs"
	"cellar/dfs/local"
	"cellar/internal/metaclient"
	"cellar/internal/rpclimit"
	"cellar/lock"
	"cellar/master"
	masterpb "cellar/proto/cellar/master/v1"
	tabletpb "cellar/proto/cellar/tablet/v1"
	"cellar/sstable"
	"cellar/tabletserver"
)

// fsFlags choose the file system a serving role stores data in.
type fsFlags struct {
	dfsMasters      string
	localDir        string
	pipelineTimeout time.Duration
}

func (f *fsFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.dfsMasters, "dfs", "", "dfs master replicas' gRPC addresses, comma-separated: the replicated file system")
	cmd.Flags().StringVar(&f.localDir, "local-fs", "", "a local directory as the file system instead of the dfs (one machine only; every master and tablet server must name the same one)")
	cmd.Flags().DurationVar(&f.pipelineTimeout, "dfs-pipeline-timeout", 0, "how long a dfs write waits for any ack before dropping a hung replica from its pipeline (a commit-log sync stalls that long when a chunkserver is cut off); 0 = the dfs client's default (1m)")
	envFlags(cmd.Flags(), map[string]string{"dfs": "DFS", "local-fs": "LOCAL_FS", "dfs-pipeline-timeout": "DFS_PIPELINE_TIMEOUT"})
}

// open returns the file system and a close function.
func (f *fsFlags) open(ctx context.Context, name string) (dfs.FS, func() error, error) {
	switch {
	case f.dfsMasters != "" && f.localDir != "":
		return nil, nil, errors.New("--dfs and --local-fs are exclusive")
	case f.dfsMasters != "":
		c, err := dfs.Dial(ctx, splitList(f.dfsMasters), &dfs.ClientOptions{Name: name, PipelineTimeout: f.pipelineTimeout})
		if err != nil {
			return nil, nil, fmt.Errorf("dfs at %s: %w", f.dfsMasters, err)
		}
		return c, c.Close, nil
	case f.localDir != "":
		fs, err := local.Open(f.localDir)
		if err != nil {
			return nil, nil, err
		}
		return fs, func() error { return nil }, nil
	}
	return nil, nil, errors.New("no file system: give --dfs ADDRS or --local-fs DIR")
}

// listenFlags are a server's listen and advertised addresses.
func listenAndAdvertise(listen, advertise string) (net.Listener, string, error) {
	lis, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, "", fmt.Errorf("listen on %s: %w", listen, err)
	}
	if advertise == "" {
		advertise = lis.Addr().String()
	}
	return lis, advertise, nil
}

// masterCmd runs a master: it campaigns for mastership through the lock
// service and, while active, assigns and recovers tablets.
func masterCmd() *cobra.Command {
	var listen, advertise, cluster string
	var lease time.Duration
	var fsf fsFlags
	cmd := &cobra.Command{
		Use:   "master",
		Short: "Run a Cellar master (one is active; the others stand by)",
		Long: `Run a master. The one holding the master lock in the lock service is active:
it assigns tablets, recovers a lost tablet server's commit log, balances
load and administers tables; the others stand by and take over when its
session ends. It keeps no state of its own: give it the lock service
(--cluster) and the file system (--dfs or --local-fs).

Every flag falls back to the environment variable named in its help.`,
		Args:    cobra.NoArgs,
		PreRunE: applyEnv,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			lis, addr, err := listenAndAdvertise(listen, advertise)
			if err != nil {
				return err
			}
			fs, closeFS, err := fsf.open(ctx, "master-"+addr)
			if err != nil {
				lis.Close()
				return err
			}
			defer closeFS()
			m, err := master.New(master.Options{Addr: addr, LockAddrs: splitList(cluster), FS: fs, LockLease: lease, Logger: slog.Default()})
			if err != nil {
				lis.Close()
				return err
			}
			defer m.Close()
			gs := grpc.NewServer()
			masterpb.RegisterMasterServer(gs, m)
			go gs.Serve(lis)
			defer gs.GracefulStop()
			fmt.Fprintf(cmd.OutOrStdout(), "master listening on %s (lock service %s)\n", addr, cluster)
			return m.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:7300", "gRPC listen address")
	f.StringVar(&advertise, "advertise", "", "address clients and tablet servers dial, published in the lock service (default the bound address)")
	f.StringVar(&cluster, "cluster", "127.0.0.1:7070", "lock-service replicas' gRPC addresses, comma-separated")
	f.DurationVar(&lease, "lease", 0, "lock-service session lease; a dead active master is replaced about this long after it stopped; 0 = the lock service's default")
	envFlags(f, map[string]string{"listen": "MASTER_LISTEN", "advertise": "MASTER_ADVERTISE", "cluster": "CLUSTER", "lease": "MASTER_LEASE"})
	fsf.register(cmd)
	return cmd
}

// tabletServerCmd runs a tablet server.
func tabletServerCmd() *cobra.Command {
	var listen, advertise, cluster string
	var splitSize, metaSplitSize, cacheSize, memtableSize, memtableBudget int64
	var lease time.Duration
	var fsf fsFlags
	cmd := &cobra.Command{
		Use:   "tabletserver",
		Short: "Run a Cellar tablet server",
		Long: `Run a tablet server: it registers in the lock service and serves the
tablets the active master assigns it, with one commit log in the file
system (--dfs or --local-fs). Its identity is its advertised address and
start time: a restarted server is a new one, and the master recovers the
old one's commit log once its session has expired (--lease).

On SIGTERM it unloads (flushes) its tablets and exits; if it loses its
lock-service session it stops serving at once and exits non-zero, for a
supervisor to restart it.

Every flag falls back to the environment variable named in its help.`,
		Args:    cobra.NoArgs,
		PreRunE: applyEnv,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			lis, addr, err := listenAndAdvertise(listen, advertise)
			if err != nil {
				return err
			}
			defer lis.Close()
			fs, closeFS, err := fsf.open(ctx, "tabletserver-"+addr)
			if err != nil {
				return err
			}
			defer closeFS()
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			lc, err := lock.Dial(dctx, lock.ClientOptions{Addrs: splitList(cluster), Lease: lease, Logger: slog.Default()})
			cancel()
			if err != nil {
				return fmt.Errorf("lock service at %s: %w", cluster, err)
			}
			defer lc.Close()
			mc := metaclient.New(lc)
			defer mc.Close()
			ts, err := tabletserver.New(ctx, tabletserver.Options{Addr: addr, FS: fs, Lock: lc, Meta: mc, Master: mc,
				SplitSize: splitSize, MetaSplitSize: metaSplitSize, MemtableSize: memtableSize, MemtableBudget: memtableBudget, Cache: sstable.NewCache(cacheSize), Logger: slog.Default()})
			if err != nil {
				return err
			}
			gs := grpc.NewServer(rpclimit.ServerOptions()...)
			tabletpb.RegisterTabletServerServer(gs, ts)
			go gs.Serve(lis)
			if err := ts.Start(ctx); err != nil {
				gs.Stop()
				ts.Kill()
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "tablet server %s listening on %s\n", ts.ID(), addr)
			select {
			case <-ctx.Done():
				// SIGTERM: unload every tablet (flushing it), so the master
				// reassigns them without log recovery.
				gs.GracefulStop()
				return ts.Close()
			case <-lc.Lost():
				// Our lock is gone: the master may already have handed our
				// tablets to others. Stop at once, write nothing more.
				gs.Stop()
				ts.Kill()
				return errors.New("lock-service session lost; exiting so that a supervisor restarts a fresh server")
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:7200", "gRPC listen address")
	f.StringVar(&advertise, "advertise", "", "address clients and the master dial, published in the lock service (default the bound address)")
	f.StringVar(&cluster, "cluster", "127.0.0.1:7070", "lock-service replicas' gRPC addresses, comma-separated")
	f.Int64Var(&splitSize, "split-size", tabletserver.DefaultSplitSize, "split a tablet past this many bytes")
	f.Int64Var(&metaSplitSize, "meta-split-size", tabletserver.DefaultMetaSplitSize, "split a METADATA tablet (not the root) past this many bytes")
	f.Int64Var(&memtableSize, "memtable-size", 0, "bytes of a tablet's memtable before it is flushed; 0 = the tablet's default")
	f.Int64Var(&memtableBudget, "memtable-budget", tabletserver.DefaultMemtableBudget, "bytes of all tablets' memtables together: past 90% the largest are flushed, at it user writes wait for the flushes")
	f.Int64Var(&cacheSize, "cache-size", 256<<20, "block cache bytes, shared by every tablet")
	f.DurationVar(&lease, "lease", 0, "lock-service session lease: the server stops serving after half of it without the lock service, and its tablets move about this long after it died; 0 = the lock service's default")
	envFlags(f, map[string]string{"listen": "TABLETSERVER_LISTEN", "advertise": "TABLETSERVER_ADVERTISE", "cluster": "CLUSTER",
		"split-size": "SPLIT_SIZE", "meta-split-size": "META_SPLIT_SIZE", "memtable-size": "MEMTABLE_SIZE", "memtable-budget": "MEMTABLE_BUDGET", "cache-size": "CACHE_SIZE", "lease": "TABLETSERVER_LEASE"})
	fsf.register(cmd)
	return cmd
}
