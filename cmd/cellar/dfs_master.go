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
		Long: `Run one replica of the dfs master: the file system's namespace, chunk
leases and replica placement, replicated with raft when --peers lists three
(or five). Chunkservers and clients need the replicas' gRPC addresses
(--masters / CELLAR_DFS_MASTERS; --dfs / CELLAR_DFS for the serving roles).

Every flag falls back to the environment variable named in its help.`,
		Args:    cobra.NoArgs,
		PreRunE: applyEnv,
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
	f.StringVar(&listen, "listen", "127.0.0.1:7400", "gRPC listen address")
	f.StringVar(&advertise, "advertise", "", "gRPC address others dial; also this replica's raft ID, so it must match its entry in --peers (default the bound address)")
	f.StringVar(&dir, "data", "cellar-data/dfs-master", "data directory: raft log and snapshots of the namespace")
	f.StringVar(&raftBind, "raft-bind", "127.0.0.1:7401", "raft listen address")
	f.StringVar(&raftAdvertise, "raft-advertise", "", "raft address peers dial (default the bound raft address)")
	f.StringVar(&peers, "peers", "", "initial replicas as grpcAddr=raftAddr,... including this one; empty for a single replica")
	f.Int64Var(&replication, "replication", 3, "default replicas per file")
	f.Int64Var(&chunkSize, "chunk-size", 64<<20, "chunk size in bytes")
	f.DurationVar(&heartbeat, "heartbeat", time.Second, "chunkserver heartbeat interval the master expects")
	f.DurationVar(&deadAfter, "dead-after", 0, "silence after which a chunkserver is dead and its chunks re-replicated; 0 = 10 heartbeats")
	envFlags(f, map[string]string{"listen": "DFS_MASTER_LISTEN", "advertise": "DFS_MASTER_ADVERTISE", "data": "DFS_MASTER_DATA",
		"raft-bind": "DFS_MASTER_RAFT_BIND", "raft-advertise": "DFS_MASTER_RAFT_ADVERTISE", "peers": "DFS_MASTER_PEERS",
		"replication": "DFS_REPLICATION", "chunk-size": "DFS_CHUNK_SIZE", "heartbeat": "DFS_HEARTBEAT", "dead-after": "DFS_DEAD_AFTER"})
	return cmd
}
