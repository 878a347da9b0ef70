package main

import (
	"errors"
	"os"
	"runtime/pprof"
	"time"

	"github.com/spf13/cobra"

	"cellar/bench/ycsb"
	"cellar/client"
)

// benchYCSBCmd is `cellar bench ycsb`: the YCSB core workloads A-F against
// a running cluster (--cluster) or an in-process one. The side-by-side run
// with the Cloud Bigtable emulator is the nested module bench/bigtable
// (cd bench/bigtable && go run .).
func benchYCSBCmd() *cobra.Command {
	var cfg ycsb.Config
	var cluster, cpuProfile, durability string
	cmd := &cobra.Command{
		Use:   "ycsb",
		Short: "YCSB core workloads A-F: ops/s and p50/p99/p999 latency per operation",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			if err := cfg.Validate(); err != nil {
				return err
			}
			d, err := client.ParseDurability(durability)
			if err != nil {
				return err
			}
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			sys := ycsb.NewCellarSystem(splitList(cluster), d)
			defer func() { err = errors.Join(err, sys.Close()) }()
			rs, err := ycsb.RunAll(cmd.Context(), []ycsb.System{sys}, cfg, cmd.OutOrStdout())
			if err != nil {
				return err
			}
			ycsb.PrintRatios(cmd.OutOrStdout(), rs...)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cluster, "cluster", envDefault("CLUSTER", ""), "lock-service addresses of a running cluster (CELLAR_CLUSTER); empty: an in-process cluster with one tablet server")
	f.Int64Var(&cfg.RecordCount, "records", 100000, "records loaded before the workloads")
	f.DurationVar(&cfg.Duration, "duration", 10*time.Second, "length of each workload")
	f.Int64Var(&cfg.OpCount, "ops", 0, "operations per workload (0: run for --duration)")
	f.IntVar(&cfg.Threads, "threads", 16, "client goroutines")
	f.StringVar(&cfg.Workloads, "workloads", "A,B,C,D,E,F", "workloads to run, in order")
	f.StringVar(&durability, "durability", "sync", "durability of the writes: sync (acknowledged once the commit log is synced on every replica), async or skiplog")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run (client and in-process cluster) to this file")
	f.Int64Var(&cfg.Seed, "seed", 0, "random seed (0: from the clock; printed)")
	return cmd
}
