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
		heartbeat, scrub                      time.Duration
	)
	cmd := &cobra.Command{
		Use:   "chunkserver",
		Short: "Run a dfs chunkserver",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ms := splitList(masters)
			if len(ms) == 0 {
				return errors.New("--masters (CELLAR_DFS_MASTERS) is required")
			}
			ctx := cmd.Context()
			s, err := chunkserver.Start(ctx, &chunkserver.Options{
				Dir: dir, Masters: ms, Listen: listen, Advertise: advertise, Rack: rack,
				CapacityBytes: capacity, HeartbeatInterval: heartbeat, ScrubInterval: scrub, Logger: slog.Default(),
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
	f.StringVar(&listen, "listen", envDefault("CHUNKSERVER_LISTEN", "127.0.0.1:7410"), "gRPC listen address (CELLAR_CHUNKSERVER_LISTEN)")
	f.StringVar(&advertise, "advertise", envDefault("CHUNKSERVER_ADVERTISE", ""), "address clients dial (CELLAR_CHUNKSERVER_ADVERTISE; default the bound address)")
	f.StringVar(&dir, "dir", envDefault("CHUNKSERVER_DIR", "cellar-data/chunkserver"), "chunk directory (CELLAR_CHUNKSERVER_DIR)")
	f.StringVar(&masters, "masters", envDefault("DFS_MASTERS", "127.0.0.1:7400"), "dfs master replicas' gRPC addresses, comma-separated (CELLAR_DFS_MASTERS)")
	f.StringVar(&rack, "rack", envDefault("CHUNKSERVER_RACK", ""), "rack name for placement (CELLAR_CHUNKSERVER_RACK)")
	f.Int64Var(&capacity, "capacity", envInt("CHUNKSERVER_CAPACITY", 0), "bytes of chunks to store at most; 0 = unlimited (CELLAR_CHUNKSERVER_CAPACITY)")
	f.DurationVar(&heartbeat, "heartbeat", envDuration("DFS_HEARTBEAT", time.Second), "heartbeat interval (CELLAR_DFS_HEARTBEAT)")
	f.DurationVar(&scrub, "scrub-interval", envDuration("CHUNKSERVER_SCRUB_INTERVAL", time.Hour), "pause between checksum scrubs; negative disables (CELLAR_CHUNKSERVER_SCRUB_INTERVAL)")
	return cmd
}
