package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"cellar/internal/standalone"
)

// standaloneCmd is `cellar standalone`: every role in one process on one
// port (package internal/standalone).
func standaloneCmd() *cobra.Command {
	var (
		o         standalone.Options
		logLevel  string
		readyWait time.Duration
	)
	cmd := &cobra.Command{
		Use:   "standalone",
		Short: "Run all of Cellar in one process on one port (lock service, master, tablet server, local file system)",
		Long: `Run all of Cellar in one process: a one-replica lock service, a master and
one tablet server, storing everything in one local directory, serving every
service on one gRPC port. Every cellar command reaches it with no flags when
it listens on the default address (127.0.0.1:7070).

It stops cleanly on SIGINT or SIGTERM (tablets flushed, the lock service
closed); restarted on the same --data directory, it serves all its data
again, also after a crash (SIGKILL).

Every flag falls back to the environment variable named in its help.`,
		Args:    cobra.NoArgs,
		PreRunE: applyEnv,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level %q: want debug, info, warn or error", logLevel)
			}
			o.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: lvl}))
			if abs, err := filepath.Abs(o.Dir); err == nil {
				o.Dir = abs
			}
			ctx := cmd.Context()
			start := time.Now()
			n, err := standalone.Start(ctx, o)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "cellar standalone listening on %s, data in %s\n", n.Addr(), n.Dir())
			rctx, cancel := context.WithTimeout(ctx, readyWait)
			tablets, err := n.Ready(rctx)
			cancel()
			switch {
			case err == nil:
				how := "started"
				if n.ExpiredSessions() > 0 {
					how = "recovered from an unclean stop"
				}
				fmt.Fprintf(out, "ready: %s, serving %d tablets, %.2fs after start\n", how, tablets, time.Since(start).Seconds())
			case ctx.Err() == nil:
				// Keep serving: the master goes on trying; say so.
				fmt.Fprintf(out, "not ready after %v (%v); still trying\n", readyWait, err)
			}
			select {
			case <-ctx.Done():
				fmt.Fprintln(out, "stopping: flushing tablets")
				if err := n.Close(); err != nil {
					return fmt.Errorf("stop: %w", err)
				}
				fmt.Fprintln(out, "stopped")
				return nil
			case <-n.Lost():
				n.Kill()
				return errors.New("the tablet server lost its lock-service session; stopped without flushing (a restart recovers from the commit log)")
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Dir, "data", "cellar-data", "data directory; one process at a time")
	f.StringVar(&o.Listen, "listen", standalone.DefaultListen, "gRPC listen address: the one port of every service")
	f.StringVar(&o.Advertise, "advertise", "", "address clients dial, published in the lock service; default the listen address, required when listening on 0.0.0.0")
	f.Int64Var(&o.SplitSize, "split-size", 0, "split a tablet past this many bytes; 0 = 256 MiB")
	f.Int64Var(&o.CacheSize, "cache-size", standalone.DefaultCacheSize, "block cache bytes")
	f.StringVar(&logLevel, "log-level", "error", "least level of the log on stderr: debug, info, warn, error")
	f.DurationVar(&readyWait, "ready-timeout", time.Minute, "how long to wait for every tablet to be served before saying it is not")
	envFlags(f, map[string]string{"data": "STANDALONE_DATA", "listen": "STANDALONE_LISTEN", "advertise": "STANDALONE_ADVERTISE",
		"split-size": "SPLIT_SIZE", "cache-size": "CACHE_SIZE", "log-level": "LOG_LEVEL", "ready-timeout": "STANDALONE_READY_TIMEOUT"})
	return cmd
}
