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
	dfsMasters string
	localDir   string
}

func (f *fsFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.dfsMasters, "dfs", envDefault("DFS", ""), "dfs master addresses, comma-separated (CELLAR_DFS); the replicated file system")
	cmd.Flags().StringVar(&f.localDir, "local-fs", envDefault("LOCAL_FS", ""), "a local directory as the file system instead of the dfs (CELLAR_LOCAL_FS); one machine only")
}

// open returns the file system and a close function.
func (f *fsFlags) open(ctx context.Context, name string) (dfs.FS, func() error, error) {
	switch {
	case f.dfsMasters != "" && f.localDir != "":
		return nil, nil, errors.New("--dfs and --local-fs are exclusive")
	case f.dfsMasters != "":
		c, err := dfs.Dial(ctx, splitList(f.dfsMasters), &dfs.ClientOptions{Name: name})
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
	var fsf fsFlags
	cmd := &cobra.Command{
		Use:   "master",
		Short: "Run a Cellar master (one is active; the others stand by)",
		Args:  cobra.NoArgs,
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
			m, err := master.New(master.Options{Addr: addr, LockAddrs: splitList(cluster), FS: fs, Logger: slog.Default()})
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
	f.StringVar(&listen, "listen", envDefault("MASTER_LISTEN", "127.0.0.1:7300"), "gRPC listen address (CELLAR_MASTER_LISTEN)")
	f.StringVar(&advertise, "advertise", envDefault("MASTER_ADVERTISE", ""), "address others dial (CELLAR_MASTER_ADVERTISE; default the bound address)")
	f.StringVar(&cluster, "cluster", envDefault("CLUSTER", "127.0.0.1:7070"), "lock-service addresses, comma-separated (CELLAR_CLUSTER)")
	fsf.register(cmd)
	return cmd
}

// tabletServerCmd runs a tablet server.
func tabletServerCmd() *cobra.Command {
	var listen, advertise, cluster string
	var splitSize, cacheSize int64
	var fsf fsFlags
	cmd := &cobra.Command{
		Use:   "tabletserver",
		Short: "Run a Cellar tablet server",
		Args:  cobra.NoArgs,
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
			lc, err := lock.Dial(dctx, lock.ClientOptions{Addrs: splitList(cluster), Logger: slog.Default()})
			cancel()
			if err != nil {
				return fmt.Errorf("lock service at %s: %w", cluster, err)
			}
			defer lc.Close()
			mc := metaclient.New(lc)
			defer mc.Close()
			ts, err := tabletserver.New(ctx, tabletserver.Options{Addr: addr, FS: fs, Lock: lc, Meta: mc, Master: mc,
				SplitSize: splitSize, Cache: sstable.NewCache(cacheSize), Logger: slog.Default()})
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
	f.StringVar(&listen, "listen", envDefault("TABLETSERVER_LISTEN", "127.0.0.1:7200"), "gRPC listen address (CELLAR_TABLETSERVER_LISTEN)")
	f.StringVar(&advertise, "advertise", envDefault("TABLETSERVER_ADVERTISE", ""), "address clients dial (CELLAR_TABLETSERVER_ADVERTISE; default the bound address)")
	f.StringVar(&cluster, "cluster", envDefault("CLUSTER", "127.0.0.1:7070"), "lock-service addresses, comma-separated (CELLAR_CLUSTER)")
	f.Int64Var(&splitSize, "split-size", envInt("SPLIT_SIZE", tabletserver.DefaultSplitSize), "split a tablet past this many bytes (CELLAR_SPLIT_SIZE)")
	f.Int64Var(&cacheSize, "cache-size", envInt("CACHE_SIZE", 256<<20), "block cache bytes (CELLAR_CACHE_SIZE)")
	fsf.register(cmd)
	return cmd
}
