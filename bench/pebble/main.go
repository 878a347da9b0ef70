// Command pebble runs the storage-engine benchmark of issue 2 on Cellar and
// on Pebble (github.com/cockroachdb/pebble/v2), one after the other in one
// process with the same harness (cellar/bench/enginebench), and prints each
// engine's table and then both side by side with Cellar/Pebble ratios.
//
// It lives in its own module so that the core module never depends on
// Pebble:
//
//	cd bench/pebble && go run . --dir /tmp/enginebench --rows 1000000
//
// Both engines get the same memtable size; Pebble's block cache is the
// Cellar cache plus two memtables, because Pebble's cache also holds its
// memtables. The settings of both are printed with the figures.
//
// Memory: both engines' peak RSS can exceed their budget for reasons outside
// the engines' accounting. Cellar's budget lives in the Go heap, which
// GOGC=100 lets grow to about twice its live data (GOMEMLIMIT=700MiB kept a
// 1M-row Cellar run at a 695 MiB peak against its 448 MiB budget). Pebble's
// cache lives in C memory when cgo is on, and glibc's per-thread malloc
// arenas kept ~960 MiB resident against its 384 MiB budget during a 1M-row
// readrandom (461 MiB with MALLOC_ARENA_MAX=2). Set those in the
// environment when the memory figures matter.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"

	"cellar/bench/enginebench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "bench/pebble: "+err.Error())
		}
		os.Exit(2)
	}
}

// config is the parsed command line.
type config struct {
	opts       enginebench.Options
	cellar     enginebench.CellarOptions
	pebble     pebbleConfig
	engines    []string
	target     float64 // ratio marked when below, 0 = none
	cpuProfile string  // file for a CPU profile of the whole run, "" = none
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("bench/pebble", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &config{}
	fs.StringVar(&c.opts.Dir, "dir", "", "directory for the databases (required; each run removes what it creates)")
	fs.IntVar(&c.opts.Rows, "rows", 1_000_000, "rows per fill")
	fs.IntVar(&c.opts.ValueSize, "value-size", 1000, "value size in bytes")
	fs.IntVar(&c.opts.Reads, "reads", 0, "point reads per read workload (default: rows)")
	fs.IntVar(&c.opts.Concurrency, "concurrency", 1, "goroutines issuing writes and reads")
	fs.IntVar(&c.opts.SyncBatch, "sync-batch", 100, "rows per synced write in fillsync")
	fs.Uint64Var(&c.opts.Seed, "seed", 1, "seed of the key order, read keys and values")
	workloads := fs.String("workloads", strings.Join(enginebench.Workloads, ","), "comma-separated workloads")
	memtable := fs.String("memtable", "64MiB", "memtable size of both engines")
	cache := fs.String("cache", "256MiB", "Cellar block cache; Pebble gets this + 2 × memtable")
	overhead := fs.String("cellar-memory-overhead", "auto", "memory Cellar may use beyond cache + memtables, applied as the Go memory limit during its run (auto: a quarter of that budget + 64MiB; none: no limit)")
	engines := fs.String("engines", "cellar,pebble", "engines to run, in order: cellar, pebble")
	get := fs.String("pebble-get", string(getPrefixIter), "Pebble point read: prefix-iter (SeekPrefixGE with UseL6Filters) or get (DB.Get)")
	fs.Float64Var(&c.target, "target", 0.7, "mark Cellar/Pebble ratios below this (0 = none)")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%w: unexpected arguments %q", enginebench.ErrInvalidOptions, fs.Args())
	}
	c.opts.Workloads = strings.Split(*workloads, ",")
	mt, err := enginebench.ParseSize(*memtable)
	if err != nil {
		return nil, fmt.Errorf("--memtable: %w", err)
	}
	cs, err := enginebench.ParseSize(*cache)
	if err != nil {
		return nil, fmt.Errorf("--cache: %w", err)
	}
	if mt <= 0 || cs <= 0 {
		return nil, fmt.Errorf("%w: --memtable and --cache must be positive", enginebench.ErrInvalidOptions)
	}
	over, err := enginebench.ParseOverhead(*overhead)
	if err != nil {
		return nil, fmt.Errorf("--cellar-memory-overhead: %w", err)
	}
	c.cellar = enginebench.CellarOptions{MemtableSize: mt, CacheSize: cs, MemoryOverhead: over}
	c.pebble = pebbleConfig{MemtableSize: mt, CacheSize: cs, BlockSize: 64 << 10, BitsPerKey: 10, Get: getMode(*get)}
	c.engines = strings.Split(*engines, ",")
	for _, e := range c.engines {
		if e != "cellar" && e != "pebble" {
			return nil, fmt.Errorf("%w: unknown engine %q (want cellar, pebble)", enginebench.ErrInvalidOptions, e)
		}
	}
	return c, c.opts.Validate()
}

// runEngines runs the harness on each configured engine in turn, printing
// each report as it completes.
func runEngines(ctx context.Context, c *config, stdout io.Writer) ([]*enginebench.Report, error) {
	var reports []*enginebench.Report
	for _, name := range c.engines {
		op := enginebench.CellarOpener(&c.cellar)
		if name == "pebble" {
			var err error
			if op, err = pebbleOpener(c.pebble); err != nil {
				return nil, err
			}
		}
		rep, err := enginebench.Run(ctx, op, &c.opts)
		if err != nil {
			return nil, err
		}
		if err := rep.Print(stdout); err != nil {
			return nil, err
		}
		fmt.Fprintln(stdout)
		reports = append(reports, rep)
	}
	return reports, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Fprintf(stdout, "machine: %d CPUs, GOMAXPROCS %d, %s/%s, %s; figures from a shared machine are noisy\n\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH, runtime.Version())
	reports, err := runEngines(ctx, c, stdout)
	if err != nil {
		return err
	}
	ci, pi := slices.Index(c.engines, "cellar"), slices.Index(c.engines, "pebble")
	if ci < 0 || pi < 0 {
		return nil
	}
	fmt.Fprintln(stdout, "== side by side")
	return enginebench.PrintComparison(stdout, reports[ci], reports[pi], c.target)
}
