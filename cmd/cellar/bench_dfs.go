package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"cellar/dfs"
	"cellar/dfs/dfscluster"
	"cellar/dfs/local"
)

// benchDFSCmd measures append+Sync throughput and sequential reads on a
// 3-replica dfs on loopback, beside the same workload on dfs/local in the
// same run. Every replica shares this machine's disk, so the bound for
// replicated writes is about a third of the local figure (LIMITS.md); the
// table prints the ratio to that bound.
func benchDFSCmd() *cobra.Command {
	var (
		dir      string
		dur      time.Duration
		readSize int64
		slices   int
	)
	cmd := &cobra.Command{
		Use:   "dfs",
		Short: "Append+Sync and sequential-read throughput of a 3-replica dfs vs the local file system",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			base, err := os.MkdirTemp(dir, "cellar-bench-dfs-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(base)
			lfs, err := local.Open(base + "/local")
			if err != nil {
				return err
			}
			cl, err := dfscluster.Start(ctx, &dfscluster.Options{Dir: base + "/cluster", Chunkservers: 3, ChunkSize: 64 << 20,
				HeartbeatInterval: time.Second})
			if err != nil {
				return err
			}
			defer cl.Close()
			client, err := cl.Client(ctx, nil)
			if err != nil {
				return err
			}
			defer client.Close()
			out := cmd.OutOrStdout()
			if slices < 1 {
				return fmt.Errorf("--slices %d: want at least 1: %w", slices, errUsage)
			}
			fmt.Fprintf(out, "dfs: 1 master, 3 chunkservers on loopback, replication 3, 64 MiB chunks; local: %s; %v per write workload and system, in %d alternating turns\n\n", base, dur, slices)
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "workload\tdfs MB/s\tdfs syncs/s\tlocal MB/s\tlocal syncs/s\tdfs/(local/3)\t")
			for _, rec := range []int{4 << 10, 64 << 10} {
				for _, writers := range []int{1, 8} {
					name := fmt.Sprintf("append+sync %dKiB x%d", rec>>10, writers)
					// The two systems take turns (slices of the duration
					// each), so that a change in the machine's load
					// during the run weighs on both alike.
					var d, l result
					for turn := range slices {
						prefix := fmt.Sprintf("bench/%d-%d-%d", rec, writers, turn)
						r, err := appendSync(ctx, client, prefix, rec, writers, dur/time.Duration(slices))
						if err != nil {
							return fmt.Errorf("%s on dfs: %w", name, err)
						}
						d = d.add(r)
						if r, err = appendSync(ctx, lfs, prefix, rec, writers, dur/time.Duration(slices)); err != nil {
							return fmt.Errorf("%s on local: %w", name, err)
						}
						l = l.add(r)
					}
					fmt.Fprintf(tw, "%s\t%.1f\t%.0f\t%.1f\t%.0f\t%.2f\t\n", name, d.mbps(), d.syncsps(), l.mbps(), l.syncsps(), d.mbps()/(l.mbps()/3))
				}
			}
			d, err := seqRead(ctx, client, "bench/read", readSize)
			if err != nil {
				return fmt.Errorf("sequential read on dfs: %w", err)
			}
			l, err := seqRead(ctx, lfs, "bench/read", readSize)
			if err != nil {
				return fmt.Errorf("sequential read on local: %w", err)
			}
			fmt.Fprintf(tw, "sequential read %d MiB\t%.1f\t-\t%.1f\t-\t%.2f (dfs/local)\t\n", readSize>>20, d.mbps(), l.mbps(), d.mbps()/l.mbps())
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", envDefault("BENCH_DIR", ""), "parent of the scratch directory (CELLAR_BENCH_DIR; default $TMPDIR)")
	f.DurationVar(&dur, "duration", envDuration("BENCH_DURATION", 3*time.Second), "time per write workload (CELLAR_BENCH_DURATION)")
	f.IntVar(&slices, "slices", 3, "turns each system takes per write workload (alternating evens out the machine's load)")
	f.Int64Var(&readSize, "read-size", envInt("BENCH_READ_SIZE", 256<<20), "bytes of the sequential-read file (CELLAR_BENCH_READ_SIZE)")
	return cmd
}

type result struct {
	bytes, syncs int64
	elapsed      time.Duration
}

func (r result) add(o result) result {
	return result{r.bytes + o.bytes, r.syncs + o.syncs, r.elapsed + o.elapsed}
}

func (r result) mbps() float64    { return float64(r.bytes) / 1e6 / r.elapsed.Seconds() }
func (r result) syncsps() float64 { return float64(r.syncs) / r.elapsed.Seconds() }

// appendSync runs writers goroutines, each appending rec-byte records to
// its own file and syncing after every one, for dur.
func appendSync(ctx context.Context, fs dfs.FS, prefix string, rec, writers int, dur time.Duration) (result, error) {
	files := make([]dfs.File, writers)
	for i := range files {
		f, err := fs.Create(ctx, fmt.Sprintf("%s/w%d", prefix, i))
		if err != nil {
			return result{}, err
		}
		files[i] = f
	}
	buf := make([]byte, rec)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	var (
		mu    sync.Mutex
		total result
		first error
		wg    sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(dur)
	for _, f := range files {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var n, s int64
			var err error
			for time.Now().Before(deadline) && err == nil {
				if _, err = f.Write(buf); err == nil {
					err = f.Sync(ctx)
				}
				n += int64(rec)
				s++
			}
			mu.Lock()
			defer mu.Unlock()
			total.bytes += n
			total.syncs += s
			if err != nil && first == nil {
				first = err
			}
		}()
	}
	wg.Wait()
	total.elapsed = time.Since(start)
	for _, f := range files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	return total, first
}

// seqRead writes a size-byte file (untimed) and times reading it back in
// 1 MiB ReadAt calls.
func seqRead(ctx context.Context, fs dfs.FS, name string, size int64) (result, error) {
	f, err := fs.Create(ctx, name)
	if err != nil {
		return result{}, err
	}
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i * 13)
	}
	for off := int64(0); off < size; off += int64(len(buf)) {
		if _, err := f.Write(buf[:min(int64(len(buf)), size-off)]); err != nil {
			f.Close()
			return result{}, err
		}
	}
	if err := f.Close(); err != nil {
		return result{}, err
	}
	r, err := fs.Open(ctx, name)
	if err != nil {
		return result{}, err
	}
	defer r.Close()
	start := time.Now()
	var n int64
	for off := int64(0); off < r.Size(); off += int64(len(buf)) {
		k, err := r.ReadAt(buf, off)
		n += int64(k)
		if err != nil && err != io.EOF {
			return result{}, err
		}
	}
	return result{bytes: n, elapsed: time.Since(start)}, nil
}
