package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"cellar/client"
)

// The durability check: `cellar check write` writes rows with sync
// durability and appends every acknowledged row key to a log; `cellar
// check verify` reads every logged key back. The cluster test
// (deploy/cluster-test.sh) runs the writer while it kills servers.

const (
	checkFamily    = "f"
	checkQualifier = "v"
	checkTimestamp = client.Timestamp(1) // explicit, so a retry is idempotent
)

// checkSplits pre-split the check table across the key space (keys start
// with a hex digit).
var checkSplits = []string{"2", "4", "6", "8", "a", "c", "e"}

// checkKey is writer w's n-th row key; its first byte spreads keys over
// the table's tablets.
func checkKey(w, n int) string {
	h := fnv.New32a()
	fmt.Fprintf(h, "%d/%d", w, n)
	return fmt.Sprintf("%08x-w%03d-%09d", h.Sum32(), w, n)
}

// checkValue is the value written at key.
func checkValue(key string) []byte { return []byte("value of " + key) }

func checkCmd() *cobra.Command {
	var cluster, table string
	root := &cobra.Command{
		Use:   "check",
		Short: "Durability checks: write rows and log the acknowledged ones; verify them later",
	}
	root.PersistentFlags().StringVar(&cluster, "cluster", envDefault("CLUSTER", "127.0.0.1:7070"), "lock-service addresses, comma-separated (env CELLAR_CLUSTER)")
	root.PersistentFlags().StringVar(&table, "table", envDefault("CHECK_TABLE", "cellar_check"), "table to write and verify (env CELLAR_CHECK_TABLE)")
	dial := func(ctx context.Context) (*client.Client, error) {
		addrs := splitList(cluster)
		if len(addrs) == 0 {
			return nil, errors.New("--cluster is empty")
		}
		return client.Dial(ctx, addrs, client.WithDialTimeout(10*time.Second),
			client.WithLogger(slog.New(slog.DiscardHandler)))
	}

	var (
		logPath, statusPath string
		writers             int
		duration, callTO    time.Duration
		rows                int64
	)
	write := &cobra.Command{
		Use:   "write",
		Short: "Write rows with sync durability until stopped; append each acknowledged row key to --log",
		Long: `Write rows with sync durability (the default) from --writers concurrent
writers, until SIGINT/SIGTERM, --duration or --rows. Each acknowledged row's
key is appended to --log (one per line) only after the write returned
success. The table is created if missing, pre-split into 8 tablets.

Every 200ms a one-line status is written to --status (if given):
  acked=N errors=N oldest_ack_ms=UNIX_MS stalled=N stall_end_ms=UNIX_MS
oldest_ack_ms is the oldest among the writers' latest acknowledgements;
stalled counts writes in flight for longer than 500ms; stall_end_ms is when
the latest write that took longer than 500ms ended. A fault's recovery time
is thus stall_end_ms minus the fault's time, read once stalled is 0 again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if logPath == "" {
				return errors.New("--log is required")
			}
			if writers < 1 {
				return fmt.Errorf("--writers %d: want at least 1", writers)
			}
			// --duration cancels (rather than times out) the writers, so
			// that a write cut short is told apart from a failed one.
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			if duration > 0 {
				t := time.AfterFunc(duration, cancel)
				defer t.Stop()
			}
			c, err := dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			if err := ensureCheckTable(ctx, c, table); err != nil {
				return err
			}
			lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				return err
			}
			defer lf.Close()
			return runCheckWriters(ctx, c.Open(table), lf, statusPath, writers, rows, callTO, cmd.ErrOrStderr(), cmd.OutOrStdout())
		},
	}
	wf := write.Flags()
	wf.StringVar(&logPath, "log", "", "file to append acknowledged row keys to (required)")
	wf.StringVar(&statusPath, "status", "", "file to rewrite with a status line every 200ms")
	wf.IntVar(&writers, "writers", 8, "concurrent writers")
	wf.DurationVar(&duration, "duration", 0, "stop after this long; 0 = until a signal")
	wf.Int64Var(&rows, "rows", 0, "stop after this many acknowledged rows; 0 = no limit")
	wf.DurationVar(&callTO, "call-timeout", 30*time.Second, "deadline of each write (the client retries inside it)")

	var verifyLog string
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Read back every row key in --log; fail if any is missing or wrong",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if verifyLog == "" {
				return errors.New("--log is required")
			}
			f, err := os.Open(verifyLog)
			if err != nil {
				return err
			}
			defer f.Close()
			c, err := dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			return verifyCheckLog(cmd.Context(), c.Open(table), f, cmd.OutOrStdout())
		},
	}
	verify.Flags().StringVar(&verifyLog, "log", "", "file of acknowledged row keys, one per line (required)")
	servers := &cobra.Command{
		Use:   "servers",
		Short: "Print the servers of the table's tablets, most tablets first: ADDRESS COUNT",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			info, err := c.Admin().TableInfo(cmd.Context(), table)
			if err != nil {
				return err
			}
			counts := map[string]int{}
			for _, t := range info.Tablets {
				addr := t.ServerAddr
				if addr == "" {
					addr = "(unassigned)"
				}
				counts[addr]++
			}
			addrs := make([]string, 0, len(counts))
			for a := range counts {
				addrs = append(addrs, a)
			}
			sort.Slice(addrs, func(i, j int) bool {
				if counts[addrs[i]] != counts[addrs[j]] {
					return counts[addrs[i]] > counts[addrs[j]]
				}
				return addrs[i] < addrs[j]
			})
			for _, a := range addrs {
				fmt.Fprintf(cmd.OutOrStdout(), "%s %d\n", a, counts[a])
			}
			return nil
		},
	}
	root.AddCommand(write, verify, servers)
	return root
}

// ensureCheckTable creates the check table unless it exists, retrying
// while the cluster is not ready (no active master yet).
func ensureCheckTable(ctx context.Context, c *client.Client, table string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		err := c.Admin().CreateTable(ctx, table, map[string]client.GCPolicy{checkFamily: client.MaxVersionsPolicy(1)}, checkSplits...)
		if err == nil || errors.Is(err, client.ErrTableExists) {
			return nil
		}
		if !errors.Is(err, client.ErrUnavailable) || ctx.Err() != nil {
			return fmt.Errorf("create table %s: %w", table, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("create table %s: %w", table, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func runCheckWriters(ctx context.Context, t *client.Table, log io.Writer, statusPath string, writers int, limit int64,
	callTO time.Duration, stderr, stdout io.Writer) error {
	var (
		acked, failed atomic.Int64
		logMu         sync.Mutex
		logErr        error
		lastAck       = make([]atomic.Int64, writers) // unix ms
		inflight      = make([]atomic.Int64, writers) // unix ms the current write began; 0: none
		stallEnd      atomic.Int64                    // unix ms the latest slow write ended
		wg            sync.WaitGroup
	)
	const slow = 500 // ms
	start := time.Now()
	for i := range lastAck {
		lastAck[i].Store(start.UnixMilli())
	}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lastErr string
			for n := 0; wctx.Err() == nil; n++ {
				key := checkKey(w, n)
				m := client.NewMutation()
				m.Set(checkFamily, checkQualifier, checkTimestamp, checkValue(key))
				cctx, cancel := context.WithTimeout(wctx, callTO)
				began := time.Now().UnixMilli()
				inflight[w].Store(began)
				err := t.Apply(cctx, key, m)
				cancel()
				ended := time.Now().UnixMilli()
				inflight[w].Store(0)
				if ended-began > slow {
					for {
						old := stallEnd.Load()
						if old >= ended || stallEnd.CompareAndSwap(old, ended) {
							break
						}
					}
				}
				if err != nil {
					if wctx.Err() != nil {
						return // stopping: the outcome of this one is not logged
					}
					failed.Add(1)
					if s := err.Error(); s != lastErr {
						fmt.Fprintf(stderr, "writer %d: %s: %v\n", w, key, err)
						lastErr = s
					}
					continue
				}
				lastErr = ""
				logMu.Lock()
				if logErr == nil {
					_, logErr = io.WriteString(log, key+"\n")
				}
				logMu.Unlock()
				lastAck[w].Store(time.Now().UnixMilli())
				if a := acked.Add(1); limit > 0 && a >= limit {
					stop()
				}
			}
		}()
	}
	writeStatus := func() {
		if statusPath == "" {
			return
		}
		oldest, stalled, now := int64(0), 0, time.Now().UnixMilli()
		for i := range lastAck {
			if v := lastAck[i].Load(); oldest == 0 || v < oldest {
				oldest = v
			}
			if b := inflight[i].Load(); b != 0 && now-b > slow {
				stalled++
			}
		}
		line := fmt.Sprintf("acked=%d errors=%d oldest_ack_ms=%d stalled=%d stall_end_ms=%d\n",
			acked.Load(), failed.Load(), oldest, stalled, stallEnd.Load())
		tmp := statusPath + ".tmp"
		if err := os.WriteFile(tmp, []byte(line), 0o644); err == nil {
			os.Rename(tmp, statusPath)
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-tick.C:
		}
		writeStatus()
	}
	fmt.Fprintf(stdout, "acknowledged %d rows (%d failed attempts) in %.1fs\n", acked.Load(), failed.Load(), time.Since(start).Seconds())
	if logErr != nil {
		return fmt.Errorf("write --log: %w", logErr)
	}
	return nil
}

// verifyCheckLog reads every key listed in log, in batches, and checks its
// value.
func verifyCheckLog(ctx context.Context, t *client.Table, log io.Reader, out io.Writer) error {
	sc := bufio.NewScanner(log)
	var (
		total, missing, wrong int
		batch                 []string
	)
	var first []string // the first few bad keys, for the message
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		got := map[string][]byte{}
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		err := t.ReadRows(cctx, client.RowList(batch), func(r client.Row) bool {
			for _, it := range r[checkFamily] {
				if it.Column == checkFamily+":"+checkQualifier {
					got[it.Row] = it.Value
				}
			}
			return true
		})
		if err != nil {
			return fmt.Errorf("read rows: %w", err)
		}
		for _, k := range batch {
			v, ok := got[k]
			switch {
			case !ok:
				missing++
			case string(v) != string(checkValue(k)):
				wrong++
			default:
				continue
			}
			if len(first) < 5 {
				first = append(first, k)
			}
		}
		batch = batch[:0]
		return nil
	}
	for sc.Scan() {
		k := strings.TrimSpace(sc.Text())
		if k == "" {
			continue
		}
		total++
		batch = append(batch, k)
		if len(batch) == 500 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if err := flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "verified %d acknowledged rows: %d missing, %d wrong\n", total, missing, wrong)
	if missing+wrong > 0 {
		return fmt.Errorf("%d of %d acknowledged rows missing or wrong (first: %s)", missing+wrong, total, strings.Join(first, ", "))
	}
	return nil
}
