// Command etcd-bench runs the lock-service workloads (cellar/lock/lockbench)
// on Cellar's lock service and on etcd (3 embedded members, client/v3 and
// its concurrency package), side by side in one process, and prints the
// ratios Cellar/etcd. Run: cd bench/etcd && go run .
//
// It is a nested module so that etcd stays out of Cellar's go.mod.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"cellar/lock/lockbench"
)

func main() {
	var cfg lockbench.Config
	flag.DurationVar(&cfg.Duration, "duration", 3*time.Second, "length of each throughput workload")
	flag.IntVar(&cfg.Slices, "slices", 6, "turns each system takes per workload (finer interleaving evens out the machine's load)")
	flag.IntVar(&cfg.Clients, "clients", 32, "clients of the multi-client workloads")
	flag.IntVar(&cfg.FailoverRuns, "failover-runs", 3, "leader kills to time")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "etcd-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg lockbench.Config) error {
	cs, err := lockbench.NewCellarSystem(ctx)
	if err != nil {
		return err
	}
	defer cs.Close()
	es, err := newEtcdSystem(ctx)
	if err != nil {
		return err
	}
	defer es.Close()
	// Interleaved, workload by workload, so both see the same machine load.
	rs, err := lockbench.RunAll(ctx, []lockbench.System{cs, es}, cfg, os.Stdout)
	if err != nil {
		return err
	}
	lockbench.PrintRatios(os.Stdout, rs[0], rs[1])
	return nil
}
