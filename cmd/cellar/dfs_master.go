package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"cellar/dfs/master"
)

// dfsMasterCmd runs one replica of the dfs master (namespace, leases,
// replica placement), replicated with raft when --peers lists three.
func dfsMasterCmd() *cobra.Command {
	var (
		listen, advertise, dir, raftBind, raftAdvertise, peers string
		replication, chunkSize                                 int64
		heartbeat, deadAfter                                   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "dfs-master",
		Short: "Run a dfs master replica (GFS-style namespace and chunk placement)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ps, err := parsePeers(peers)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			s, err := master.Start(ctx, &master.Options{
				Dir: dir, Listen: listen, Advertise: advertise, RaftBind: raftBind, RaftAdvertise: raftAdvertise,
				Peers: ps, DefaultReplication: uint32(replication), ChunkSize: chunkSize,
				HeartbeatInterval: heartbeat, DeadAfter: deadAfter, Logger: slog.Default(),
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "dfs-master serving on %s (raft %s)\n", s.Addr(), s.RaftAddr())
			<-ctx.Done()
			return s.Close()
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", envDefault("DFS_MASTER_LISTEN", "127.0.0.1:7400"), "gRPC listen address (CELLAR_DFS_MASTER_LISTEN)")
	f.StringVar(&advertise, "advertise", envDefault("DFS_MASTER_ADVERTISE", ""), "gRPC address others dial; also the raft ID (CELLAR_DFS_MASTER_ADVERTISE; default the bound address)")
	f.StringVar(&dir, "dir", envDefault("DFS_MASTER_DIR", "cellar-data/dfs-master"), "raft state directory (CELLAR_DFS_MASTER_DIR)")
	f.StringVar(&raftBind, "raft-bind", envDefault("DFS_MASTER_RAFT_BIND", "127.0.0.1:7401"), "raft listen address (CELLAR_DFS_MASTER_RAFT_BIND)")
	f.StringVar(&raftAdvertise, "raft-advertise", envDefault("DFS_MASTER_RAFT_ADVERTISE", ""), "raft address peers dial (CELLAR_DFS_MASTER_RAFT_ADVERTISE)")
	f.StringVar(&peers, "peers", envDefault("DFS_MASTER_PEERS", ""), "initial replicas as grpcAddr=raftAddr,... including this one; empty for a single replica (CELLAR_DFS_MASTER_PEERS)")
	f.Int64Var(&replication, "replication", envInt("DFS_REPLICATION", 3), "default replicas per file (CELLAR_DFS_REPLICATION)")
	f.Int64Var(&chunkSize, "chunk-size", envInt("DFS_CHUNK_SIZE", 64<<20), "chunk size in bytes (CELLAR_DFS_CHUNK_SIZE)")
	f.DurationVar(&heartbeat, "heartbeat", envDuration("DFS_HEARTBEAT", time.Second), "chunkserver heartbeat interval (CELLAR_DFS_HEARTBEAT)")
	f.DurationVar(&deadAfter, "dead-after", envDuration("DFS_DEAD_AFTER", 0), "silence after which a chunkserver is dead; 0 = 10 heartbeats (CELLAR_DFS_DEAD_AFTER)")
	return cmd
}
