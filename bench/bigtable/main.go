// Command bigtable-ycsb runs the YCSB core workloads (cellar/bench/ycsb) on
// the Cloud Bigtable emulator (cloud.google.com/go/bigtable/bttest, in a
// child process, through the official client) and, given --cellar-addr, on
// a running Cellar cluster, interleaved workload by workload, and prints the
// ratios Cellar/emulator. Run: cd bench/bigtable && go run . --records 10000 --duration 2s
//
// It is a nested module so that the Bigtable client stays out of Cellar's
// go.mod.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"cellar/bench/ycsb"
)

func main() {
	// The hidden mode: this binary re-executed as the emulator's process.
	if len(os.Args) == 3 && os.Args[1] == serveEmulatorFlag {
		if err := serveEmulator(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "bigtable-ycsb emulator:", err)
			os.Exit(1)
		}
		return
	}
	var cfg ycsb.Config
	var cellarAddr string
	flag.Int64Var(&cfg.RecordCount, "records", 100_000, "records to load")
	flag.DurationVar(&cfg.Duration, "duration", 10*time.Second, "length of each workload")
	flag.Int64Var(&cfg.OpCount, "ops", 0, "at most this many operations per workload (0: no bound)")
	flag.IntVar(&cfg.Threads, "threads", 16, "client goroutines")
	flag.StringVar(&cfg.Workloads, "workloads", "A,B,C,D,E,F", "core workloads to run, in order")
	flag.Int64Var(&cfg.Seed, "seed", 0, "seed of every random draw (0: from the clock; printed)")
	flag.StringVar(&cellarAddr, "cellar-addr", "", "comma-separated lock-service addresses of a running Cellar cluster (empty: emulator only)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, cellarAddr); err != nil {
		fmt.Fprintln(os.Stderr, "bigtable-ycsb:", err)
		stop()
		os.Exit(1) // deferred Closes in run have already stopped the emulator
	}
}

func run(ctx context.Context, cfg ycsb.Config, cellarAddr string) (err error) {
	// Cellar first, so the ratios read Cellar / emulator.
	var systems []ycsb.System
	defer func() {
		for _, s := range systems {
			err = errors.Join(err, s.Close())
		}
	}()
	if addrs := splitAddrs(cellarAddr); len(addrs) > 0 {
		systems = append(systems, ycsb.NewCellarSystem(addrs))
	} else {
		fmt.Println("note: --cellar-addr is empty: the Cellar side is skipped, only the emulator runs")
	}
	emu, err := startEmulator(ctx)
	if err != nil {
		return err
	}
	systems = append(systems, emu)
	rs, err := ycsb.RunAll(ctx, systems, cfg, os.Stdout)
	if err != nil {
		return err
	}
	ycsb.PrintRatios(os.Stdout, rs...)
	return nil
}

func splitAddrs(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}
