// Command bigtable-ycsb runs the YCSB core workloads (cellar/bench/ycsb) on
// the Cloud Bigtable emulator (cloud.google.com/go/bigtable/bttest, in a
// child process, through the official client) and on Cellar (an in-process
// cluster with one tablet server, or a running one given --cellar-addr),
// interleaved workload by workload, and prints the
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
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"cellar/bench/ycsb"
	"cellar/client"
	"cellar/internal/procs"
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
	flag.StringVar(&cellarAddr, "cellar-addr", "", "comma-separated lock-service addresses of a running Cellar cluster (empty: an in-process cluster with one tablet server)")
	noCellar := flag.Bool("no-cellar", false, "run only the emulator")
	noEmulator := flag.Bool("no-emulator", false, "run only Cellar (no ratios; for profiling Cellar alone)")
	durability := flag.String("durability", "sync", "durability of Cellar's writes: sync (acknowledged once the commit log is synced on every replica; the issue's comparison), async or skiplog")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of this process (the client and an in-process Cellar cluster; not the emulator's child) to this file")
	memProfile := flag.String("memprofile", "", "write a heap profile of this process (allocations since start: go tool pprof -sample_index=alloc_space) to this file at the end")
	flag.Parse()
	dur, err := client.ParseDurability(*durability)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bigtable-ycsb:", err)
		os.Exit(2)
	}
	if *memProfile != "" {
		defer func() {
			if err := writeHeapProfile(*memProfile); err != nil {
				fmt.Fprintln(os.Stderr, "bigtable-ycsb:", err)
			}
		}()
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bigtable-ycsb:", err)
			os.Exit(1)
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *noCellar && *noEmulator {
		fmt.Fprintln(os.Stderr, "bigtable-ycsb: --no-cellar and --no-emulator leave nothing to run")
		os.Exit(2)
	}
	if err := run(ctx, cfg, cellarAddr, dur, *noCellar, *noEmulator); err != nil {
		fmt.Fprintln(os.Stderr, "bigtable-ycsb:", err)
		stop()
		pprof.StopCPUProfile()
		os.Exit(1) // deferred Closes in run have already stopped the emulator
	}
}

func writeHeapProfile(name string) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func run(ctx context.Context, cfg ycsb.Config, cellarAddr string, dur client.Durability, noCellar, noEmulator bool) (err error) {
	// Cellar first, so the ratios read Cellar / emulator.
	var systems []ycsb.System
	defer func() {
		for _, s := range systems {
			err = errors.Join(err, s.Close())
		}
	}()
	if !noCellar {
		addrs := splitAddrs(cellarAddr)
		if len(addrs) == 0 {
			fmt.Printf("cellar: starting an in-process cluster (lock service, dfs with 3 chunkservers on local disk, 1 master, 1 tablet server); writes use %s durability\n", dur)
			// The servers run in this process: during Cellar's phases it
			// has the GOMAXPROCS floor their own processes would have
			// (cellar/internal/procs); during the emulator's, the default.
			n, restore := procs.Raise()
			restore()
			fmt.Printf("GOMAXPROCS: %d during Cellar's phases, %d during the emulator's and in its server's child process\n", n, runtime.GOMAXPROCS(0))
			systems = append(systems, raisedProcs{ycsb.NewCellarSystem(addrs, dur)})
		} else {
			systems = append(systems, ycsb.NewCellarSystem(addrs, dur))
		}
	} else {
		fmt.Println("note: --no-cellar: only the emulator runs")
	}
	if !noEmulator {
		emu, err := startEmulator(ctx)
		if err != nil {
			return err
		}
		systems = append(systems, emu)
	} else {
		fmt.Println("note: --no-emulator: only Cellar runs")
	}
	rs, err := ycsb.RunAll(ctx, systems, cfg, os.Stdout)
	if err != nil {
		return err
	}
	ycsb.PrintRatios(os.Stdout, rs...)
	return nil
}

// raisedProcs runs a System's phases with procs.Raise in effect.
type raisedProcs struct{ ycsb.System }

func (raisedProcs) BeginPhase() (end func()) {
	_, restore := procs.Raise()
	return restore
}

// CPUTime passes on the wrapped System's ycsb.CPUMeter.
func (r raisedProcs) CPUTime() (time.Duration, error) {
	m, ok := r.System.(ycsb.CPUMeter)
	if !ok {
		return 0, fmt.Errorf("%s does not measure its CPU time", r.Name())
	}
	return m.CPUTime()
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
