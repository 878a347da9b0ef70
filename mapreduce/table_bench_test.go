package mapreduce_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cellar/client"
	"cellar/internal/testcluster"
	"cellar/mapreduce"
)

var (
	benchRows    = flag.Int("mr.rows", 20000, "rows of the table benchmarks' table")
	benchValue   = flag.Int("mr.value", 1000, "value bytes per row of BenchmarkTableScan")
	benchWorkers = flag.Int("mr.workers", 4, "parallel scans / map workers of the table benchmarks")
)

// benchTablets is how many tablets the benchmark table is pre-split into.
const benchTablets = 8

// loadBenchTable creates table name with benchRows rows r%08d, pre-split
// into benchTablets tablets, each row holding one cell f:v of value(i).
func loadBenchTable(b *testing.B, cl *client.Client, c *testcluster.Cluster, name string, value func(r *rand.Rand, i int) []byte) {
	b.Helper()
	ctx := context.Background()
	n := *benchRows
	var splits []string
	for i := 1; i < benchTablets; i++ {
		splits = append(splits, fmt.Sprintf("r%08d", i*n/benchTablets))
	}
	if err := cl.Admin().CreateTable(ctx, name, map[string]client.GCPolicy{"f": client.MaxVersionsPolicy(1)}, splits...); err != nil {
		b.Fatal(err)
	}
	if err := c.WaitAllAssigned(ctx); err != nil {
		b.Fatal(err)
	}
	tbl := cl.Open(name)
	g := newGroup(4)
	const batch = 1000 // ~1 MB of 1000-byte rows: under gRPC's 4 MiB limit
	for lo := 0; lo < n; lo += batch {
		g.Go(func() error {
			r := rand.New(rand.NewPCG(uint64(lo), 7))
			var rows []string
			var muts []*client.Mutation
			for i := lo; i < min(lo+batch, n); i++ {
				m := client.NewMutation()
				m.Set("f", "v", 1, value(r, i))
				rows, muts = append(rows, fmt.Sprintf("r%08d", i)), append(muts, m)
			}
			errs, err := tbl.ApplyBulk(ctx, rows, muts)
			if err == nil && errs != nil {
				for _, e := range errs {
					if e != nil {
						return e
					}
				}
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	if err := cl.Admin().FlushTable(ctx, name); err != nil {
		b.Fatal(err)
	}
}

func startBenchCluster(b *testing.B) (*testcluster.Cluster, *client.Client) {
	b.Helper()
	c := testcluster.Start(b, testcluster.Options{MemFS: true, MemtableSize: 64 << 20})
	cl, err := client.Dial(context.Background(), c.LockAddrs())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cl.Close() })
	return c, cl
}

// BenchmarkTableScan compares the rowcount job (table input, map, a
// combiner, one reduce) with a plain parallel client scan of the same
// table in the same run: one ReadRows per tablet, mr.workers at a time.
// It reports both in rows/s and their ratio (the target: rowcount
// at least 0.9 of the plain scan); ns/op and MB/s cover one of each. Run:
//
//	go test -run '^$' -bench TableScan -benchtime 3x ./mapreduce/ -args -mr.rows=100000
func BenchmarkTableScan(b *testing.B) {
	c, cl := startBenchCluster(b)
	val := *benchValue
	loadBenchTable(b, cl, c, "scan", func(r *rand.Rand, i int) []byte {
		v := make([]byte, val)
		for j := range v {
			v[j] = byte(r.Uint32())
		}
		return v
	})
	n := *benchRows
	ctx := context.Background()
	info, err := cl.Admin().TableInfo(ctx, "scan")
	if err != nil {
		b.Fatal(err)
	}
	tbl := cl.Open("scan")
	plain := func() {
		var rows atomic.Int64
		g := newGroup(*benchWorkers)
		for _, t := range info.Tablets {
			g.Go(func() error {
				var k int64
				err := tbl.ReadRows(ctx, client.NewRange(t.StartKey, t.EndKey), func(client.Row) bool { k++; return true })
				rows.Add(k)
				return err
			})
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
		if rows.Load() != int64(n) {
			b.Fatalf("scanned %d rows, want %d", rows.Load(), n)
		}
	}
	tmp := b.TempDir()
	rowcount := func() {
		job, counts := mapreduce.RowCountJob(mapreduce.TableInput{Client: cl, Table: "scan"}, false)
		if _, err := mapreduce.Run(ctx, job, &mapreduce.RunOptions{Workers: *benchWorkers, TempDir: tmp, Logger: discardLogger}); err != nil {
			b.Fatal(err)
		}
		if c, err := counts(); err != nil || c.Rows != int64(n) {
			b.Fatalf("rowcount = %d, %v; want %d", c.Rows, err, n)
		}
	}
	plain() // warm the servers' caches and the connections for both
	// Each iteration times one plain scan and one rowcount job, alternating
	// which goes first, so both see the same machine load.
	var took [2]time.Duration
	b.SetBytes(int64(n * val))
	b.ResetTimer()
	for i := range b.N {
		fns := [2]func(){plain, rowcount}
		for k := range 2 {
			w := (i + k) % 2
			t0 := time.Now()
			fns[w]()
			took[w] += time.Since(t0)
		}
	}
	b.StopTimer()
	plainRate := float64(n) * float64(b.N) / took[0].Seconds()
	jobRate := float64(n) * float64(b.N) / took[1].Seconds()
	b.ReportMetric(plainRate, "plain-rows/s")
	b.ReportMetric(jobRate, "rowcount-rows/s")
	b.ReportMetric(jobRate/plainRate, "rowcount/plain")
	b.Logf("%d rows of %d bytes, %d tablets, %d workers, %d rounds: plain scan %.0f rows/s, rowcount job %.0f rows/s, ratio %.2f",
		n, val, benchTablets, *benchWorkers, b.N, plainRate, jobRate, jobRate/plainRate)
}

// BenchmarkTableWordCount runs word count over a table's values (10 words
// per row from a 1,000-word vocabulary) into a MemOutput, with and
// without a combiner, reporting input rows/s and words (map output
// records)/s.
func BenchmarkTableWordCount(b *testing.B) {
	c, cl := startBenchCluster(b)
	vocab := make([]string, 1000)
	for i := range vocab {
		vocab[i] = fmt.Sprintf("word%03d", i)
	}
	loadBenchTable(b, cl, c, "text", func(r *rand.Rand, i int) []byte {
		var sb strings.Builder
		for j := range 10 {
			if j > 0 {
				sb.WriteByte(' ')
			}
			sb.WriteString(vocab[r.IntN(len(vocab))])
		}
		return []byte(sb.String())
	})
	n := *benchRows
	ctx := context.Background()
	for _, combine := range []bool{false, true} {
		b.Run(fmt.Sprintf("combiner=%v", combine), func(b *testing.B) {
			tmp := b.TempDir()
			var words, shuffled int64
			b.ResetTimer()
			for range b.N {
				job := wordCountJob(mapreduce.TableInput{Client: cl, Table: "text"}, nil, combine)
				job.NumReducers = 4
				res, err := mapreduce.Run(ctx, job, &mapreduce.RunOptions{Workers: *benchWorkers, TempDir: tmp, Logger: discardLogger})
				if err != nil {
					b.Fatal(err)
				}
				if res.MapInputRecords != int64(n) {
					b.Fatalf("read %d rows, want %d", res.MapInputRecords, n)
				}
				words += res.MapOutputRecords
				shuffled = res.ShuffleBytes
			}
			secs := b.Elapsed().Seconds()
			b.ReportMetric(float64(n)*float64(b.N)/secs, "rows/s")
			b.ReportMetric(float64(words)/secs, "words/s")
			b.ReportMetric(float64(shuffled), "shuffle-bytes")
		})
	}
}

// group runs functions on at most n goroutines at once and keeps the
// first error (errgroup's shape, without the dependency).
type group struct {
	wg  sync.WaitGroup
	sem chan struct{}
	mu  sync.Mutex
	err error
}

func newGroup(n int) *group { return &group{sem: make(chan struct{}, n)} }

func (g *group) Go(f func() error) {
	g.sem <- struct{}{}
	g.wg.Add(1)
	go func() {
		defer func() { <-g.sem; g.wg.Done() }()
		if err := f(); err != nil {
			g.mu.Lock()
			if g.err == nil {
				g.err = err
			}
			g.mu.Unlock()
		}
	}()
}

func (g *group) Wait() error {
	g.wg.Wait()
	return g.err
}
