package main

import (
	"fmt"
	"strings"

	"cellar/bench/enginebench"

	"github.com/spf13/cobra"
)

// benchEngineCmd is `cellar bench engine`: the storage-engine benchmark of
// issue 2 on one Cellar tablet in a local directory. The same workloads on
// Pebble, side by side, run from the nested module bench/pebble.
func benchEngineCmd() *cobra.Command {
	var (
		opts                                 enginebench.Options
		memtable, cache, workloads, overhead string
		immutable                            int
	)
	cmd := &cobra.Command{
		Use:   "engine",
		Short: "Storage-engine benchmark on one tablet in a local directory (ops/s and MB/s per workload)",
		Long: `Runs fillseq, fillrandom (async log), fillsync (synced batches), a full compaction,
readrandom (found), readmissing and a full scan on one tablet (cellar/tablet on
dfs/local, one family, its own commit log) with 16-byte keys, verifying every value
read, and prints ops/s, MB/s and peak RSS per workload against the memory budget.
Each fill writes a fresh database under --dir and removes it afterwards.

For the same workloads on Pebble side by side: cd bench/pebble && go run . --dir D`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			mt, err := enginebench.ParseSize(memtable)
			if err != nil {
				return fmt.Errorf("--memtable: %w", err)
			}
			cs, err := enginebench.ParseSize(cache)
			if err != nil {
				return fmt.Errorf("--cache: %w", err)
			}
			if mt <= 0 || cs <= 0 {
				return fmt.Errorf("%w: --memtable and --cache must be positive", enginebench.ErrInvalidOptions)
			}
			over, err := enginebench.ParseOverhead(overhead)
			if err != nil {
				return fmt.Errorf("--memory-overhead: %w", err)
			}
			opts.Workloads = strings.Split(workloads, ",")
			op := enginebench.CellarOpener(&enginebench.CellarOptions{MemtableSize: mt, CacheSize: cs, MaxImmutableMemtables: immutable, MemoryOverhead: over})
			rep, err := enginebench.Run(cmd.Context(), op, &opts)
			if err != nil {
				return err
			}
			return rep.Print(cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Dir, "dir", envDefault("BENCH_DIR", ""), "directory for the databases (required; env CELLAR_BENCH_DIR)")
	f.IntVar(&opts.Rows, "rows", 1_000_000, "rows per fill")
	f.IntVar(&opts.ValueSize, "value-size", 1000, "value size in bytes")
	f.IntVar(&opts.Reads, "reads", 0, "point reads per read workload (default: rows)")
	f.IntVar(&opts.Concurrency, "concurrency", 1, "goroutines issuing writes and reads")
	f.IntVar(&opts.SyncBatch, "sync-batch", 100, "rows per synced write in fillsync")
	f.Uint64Var(&opts.Seed, "seed", 1, "seed of the key order, read keys and values")
	f.BoolVar(&opts.Keep, "keep", false, "keep the last database in --dir")
	f.StringVar(&workloads, "workloads", strings.Join(enginebench.Workloads, ","), "comma-separated workloads")
	f.StringVar(&memtable, "memtable", "64MiB", "memtable size")
	f.IntVar(&immutable, "max-immutable", 0, "full memtables waiting for flush before writes stall (default: the tablet's)")
	f.StringVar(&cache, "cache", "256MiB", "block cache size")
	f.StringVar(&overhead, "memory-overhead", "auto", "memory allowed beyond cache + memtables, applied as the Go memory limit (auto: a quarter of that budget + 64MiB; none: no limit)")
	return cmd
}
