package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"cellar/lock/lockbench"
)

// benchLockCmd is `cellar bench lock`: the lock-service workloads on an
// in-process 3-replica cluster on loopback (the etcd comparison lives in the
// nested module bench/etcd: cd bench/etcd && go run .).
func benchLockCmd() *cobra.Command {
	var cfg lockbench.Config
	cmd := &cobra.Command{
		Use:   "lock",
		Short: "Lock service: lock pairs/s, CAS writes/s, linearizable reads/s, keep-alives/s, failover time",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			sys, err := lockbench.NewCellarSystem(ctx)
			if err != nil {
				return err
			}
			defer sys.Close()
			res, err := lockbench.Run(ctx, sys, cfg, cmd.OutOrStdout())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "failover median %v (samples %v)\n", res.FailoverMedian.Round(time.Millisecond), res.FailoverSamples)
			return nil
		},
	}
	cmd.Flags().DurationVar(&cfg.Duration, "duration", 3*time.Second, "length of each throughput workload")
	cmd.Flags().IntVar(&cfg.Clients, "clients", 32, "clients of the multi-client workloads")
	cmd.Flags().IntVar(&cfg.FailoverRuns, "failover-runs", 3, "leader kills to time")
	return cmd
}
