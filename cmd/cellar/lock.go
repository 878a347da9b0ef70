package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"cellar/lock"
)

// lockCmd is `cellar lock`: it serves one lock-service replica, and groups
// the lock admin commands (lock_admin.go).
func lockCmd() *cobra.Command {
	var (
		o         lock.Options
		bootstrap string
	)
	cmd := &cobra.Command{
		Use:   "lock",
		Short: "Serve a lock-service replica (subcommands: admin calls)",
		Long: `Serve one replica of the Chubby-style lock service (one replica, or three
or five for a fault-tolerant cluster). Clients and the other roles need only
the replicas' gRPC addresses (--cluster / CELLAR_CLUSTER elsewhere).

A new cluster: start every replica with the same --bootstrap list
(id=raftaddr=grpcaddr,...). A restarted replica rejoins from --data. A new
replica starts with an empty --data and no --bootstrap, then
"cellar lock add-voter" adds it.

Every flag falls back to the environment variable named in its help.`,
		Args:    cobra.NoArgs,
		PreRunE: applyEnv,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.ID == "" {
				return errors.New("--id (CELLAR_LOCK_ID) is required: this replica's name in --bootstrap")
			}
			peers, err := parseBootstrap(bootstrap)
			if err != nil {
				return err
			}
			o.Bootstrap = peers
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
	f.StringVar(&o.ID, "id", "", "this replica's ID, as named in --bootstrap (required)")
	f.StringVar(&o.Listen, "listen", "127.0.0.1:7070", "gRPC listen address")
	f.StringVar(&o.GRPCAdvertise, "advertise", "", "gRPC address clients and peers reach this replica at (default the listen address)")
	f.StringVar(&o.RaftBind, "raft-addr", "127.0.0.1:7071", "raft listen address")
	f.StringVar(&o.RaftAdvertise, "raft-advertise", "", "raft address peers reach this replica at (default the bound raft address)")
	f.StringVar(&o.Dir, "data", "cellar-data/lock", "data directory: raft log, stable store and snapshots")
	f.StringVar(&bootstrap, "bootstrap", "", "initial voters of a new cluster, this one included: id=raftaddr=grpcaddr,... (ignored once --data holds state)")
	f.DurationVar(&o.DefaultLease, "default-lease", 12*time.Second, "session lease granted when a client asks for none")
	f.IntVar(&o.MaxContent, "max-content", 256<<10, "largest node content in bytes")
	envFlags(f, map[string]string{"id": "LOCK_ID", "listen": "LOCK_LISTEN", "advertise": "LOCK_ADVERTISE",
		"raft-addr": "LOCK_RAFT_ADDR", "raft-advertise": "LOCK_RAFT_ADVERTISE", "data": "LOCK_DATA",
		"bootstrap": "LOCK_BOOTSTRAP", "default-lease": "LOCK_DEFAULT_LEASE", "max-content": "LOCK_MAX_CONTENT"})
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
