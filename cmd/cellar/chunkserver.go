package main

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"cellar/dfs/chunkserver"
)

// chunkserverCmd runs a chunkserver: checksummed chunk replicas on a local
// directory, serving pipelined writes and reads.
func chunkserverCmd() *cobra.Command {
	var (
		listen, advertise, dir, masters, rack string
		capacity                              int64
		heartbeat, scrub, ackTimeout          time.Duration
	)
	cmd := &cobra.Command{
		Use:   "chunkserver",
		Short: "Run a dfs chunkserver",
		Long: `Run a chunkserver of the replicated file system: it stores chunk replicas
(CRC32C per 64 KiB) in --data, registers with the dfs masters and serves
pipelined writes and reads.

Every flag falls back to the environment variable named in its help.`,
		Args:    cobra.NoArgs,
		PreRunE: applyEnv,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ms := splitList(masters)
			if len(ms) == 0 {
				return errors.New("--masters (CELLAR_DFS_MASTERS) is empty")
			}
			ctx := cmd.Context()
			s, err := chunkserver.Start(ctx, &chunkserver.Options{
				Dir: dir, Masters: ms, Listen: listen, Advertise: advertise, Rack: rack,
				CapacityBytes: capacity, HeartbeatInterval: heartbeat, ScrubInterval: scrub, PipelineAckTimeout: ackTimeout, Logger: slog.Default(),
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "chunkserver %s serving on %s\n", s.ID(), s.Addr())
			<-ctx.Done()
			return s.Close()
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:7410", "gRPC listen address")
	f.StringVar(&advertise, "advertise", "", "address the master, clients and other chunkservers dial (default the bound address)")
	f.StringVar(&dir, "data", "cellar-data/chunkserver", "data directory: chunk replicas and their checksums")
	f.StringVar(&masters, "masters", "127.0.0.1:7400", "dfs master replicas' gRPC addresses, comma-separated")
	f.StringVar(&rack, "rack", "", "rack name; replicas of a chunk are placed on different racks when possible")
	f.Int64Var(&capacity, "capacity", 0, "bytes of chunks to store at most; 0 = unlimited")
	f.DurationVar(&heartbeat, "heartbeat", time.Second, "heartbeat interval")
	f.DurationVar(&scrub, "scrub-interval", time.Hour, "pause between checksum scrubs of every chunk; negative disables")
	f.DurationVar(&ackTimeout, "pipeline-ack-timeout", 0, "per replica below it in the pipeline, how long a replica waits for its downstream's ack before reporting it hung to the writer (the replica next to a hung one gives up first, so the blame is right); 0 = 15s")
	envFlags(f, map[string]string{"pipeline-ack-timeout": "CHUNKSERVER_PIPELINE_ACK_TIMEOUT", "listen": "CHUNKSERVER_LISTEN", "advertise": "CHUNKSERVER_ADVERTISE", "data": "CHUNKSERVER_DATA",
		"masters": "DFS_MASTERS", "rack": "CHUNKSERVER_RACK", "capacity": "CHUNKSERVER_CAPACITY", "heartbeat": "DFS_HEARTBEAT",
		"scrub-interval": "CHUNKSERVER_SCRUB_INTERVAL"})
	return cmd
}
