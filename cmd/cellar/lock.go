package main

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"cellar/lock"
)

// lockCmd is `cellar lock`: it serves one lock-service replica, and groups
// the lock admin commands (lock_admin.go).
func lockCmd() *cobra.Command {
	var (
		o                         lock.Options
		bootstrap, lease, maxCont string
	)
	cmd := &cobra.Command{
		Use:   "lock",
		Short: "Serve a lock-service replica (subcommands: admin calls)",
		Long: `Serve one replica of the Chubby-style lock service.

A new cluster: start every replica with the same --bootstrap list
(id=raftaddr=grpcaddr,...). A restarted replica rejoins from --data. A new
replica starts with an empty --data and no --bootstrap, then
"cellar lock add-voter" adds it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			peers, err := parseBootstrap(bootstrap)
			if err != nil {
				return err
			}
			o.Bootstrap = peers
			if o.DefaultLease, err = time.ParseDuration(lease); err != nil {
				return fmt.Errorf("--default-lease: %w", err)
			}
			if o.MaxContent, err = strconv.Atoi(maxCont); err != nil {
				return fmt.Errorf("--max-content: %w", err)
			}
			o.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
			s, err := lock.Start(o)
			if err != nil {
				return err
			}
			o.Logger.Info("lock replica serving", "id", o.ID, "grpc", s.Addr(), "raft", s.RaftAddr())
			<-cmd.Context().Done()
			o.Logger.Info("shutting down", "id", o.ID)
			return s.Shutdown()
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.ID, "id", envDefault("LOCK_ID", ""), "replica ID (env CELLAR_LOCK_ID)")
	f.StringVar(&o.Listen, "listen", envDefault("LOCK_LISTEN", "127.0.0.1:7300"), "gRPC listen address (env CELLAR_LOCK_LISTEN)")
	f.StringVar(&o.GRPCAdvertise, "advertise", envDefault("LOCK_ADVERTISE", ""), "gRPC address clients reach (default the listen address; env CELLAR_LOCK_ADVERTISE)")
	f.StringVar(&o.RaftBind, "raft-addr", envDefault("LOCK_RAFT_ADDR", "127.0.0.1:7301"), "raft listen address (env CELLAR_LOCK_RAFT_ADDR)")
	f.StringVar(&o.RaftAdvertise, "raft-advertise", envDefault("LOCK_RAFT_ADVERTISE", ""), "raft address peers reach (env CELLAR_LOCK_RAFT_ADVERTISE)")
	f.StringVar(&o.Dir, "data", envDefault("LOCK_DATA", ""), "data directory (env CELLAR_LOCK_DATA)")
	f.StringVar(&bootstrap, "bootstrap", envDefault("LOCK_BOOTSTRAP", ""), "initial voters of a new cluster: id=raftaddr=grpcaddr,... (env CELLAR_LOCK_BOOTSTRAP)")
	f.StringVar(&lease, "default-lease", envDefault("LOCK_DEFAULT_LEASE", "12s"), "lease granted when a client asks for none (env CELLAR_LOCK_DEFAULT_LEASE)")
	f.StringVar(&maxCont, "max-content", envDefault("LOCK_MAX_CONTENT", "262144"), "largest node content in bytes (env CELLAR_LOCK_MAX_CONTENT)")
	cmd.AddCommand(lockAdminCommands()...)
	return cmd
}

// parseBootstrap parses "id=raftaddr=grpcaddr,...".
func parseBootstrap(s string) ([]lock.Peer, error) {
	if s == "" {
		return nil, nil
	}
	var peers []lock.Peer
	for _, item := range strings.Split(s, ",") {
		parts := strings.Split(strings.TrimSpace(item), "=")
		if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
			return nil, fmt.Errorf("--bootstrap: %q is not id=raftaddr=grpcaddr", item)
		}
		peers = append(peers, lock.Peer{ID: parts[0], RaftAddr: parts[1], GRPCAddr: parts[2]})
	}
	return peers, nil
}
