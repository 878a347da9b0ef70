package cellarbeam_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/transforms/stats"

	"cellar/client"
	"cellar/internal/testcluster"
	cellarbeam "cellar/mapreduce/beam"
)

func TestMain(m *testing.M) {
	beam.Init() // after the test flags are parsed; workers run in-process (loopback)
	os.Exit(m.Run())
}

func init() {
	register.Function2x0(splitWords)
	register.Function2x1(toRow)
	register.Emitter1[string]()
}

// splitWords emits every word of every cell value of a row.
func splitWords(r cellarbeam.Row, emit func(string)) {
	for _, c := range r.Cells {
		for _, w := range strings.Fields(string(c.Value)) {
			emit(w)
		}
	}
}

// toRow makes a word's count a row of the output table: c:n = the count
// in decimal, at the pipeline's write timestamp.
func toRow(word string, n int) cellarbeam.Row {
	return cellarbeam.Row{Key: []byte(word), Cells: []cellarbeam.Cell{{Family: "c", Qualifier: []byte("n"), Timestamp: -1, Value: []byte(strconv.Itoa(n))}}}
}

// TestWordCountPipeline runs a word count from one table into another on
// Beam's prism runner, in-process, against a mini-cluster with a
// pre-split input table, and checks every count.
func TestWordCountPipeline(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir()) // prism's loopback worker leaves a file there
	c := testcluster.Start(t, testcluster.Options{MemFS: true, Servers: 2, Masters: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, c.LockAddrs())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	t.Cleanup(cellarbeam.CloseClients)
	admin := cl.Admin()
	if err := admin.CreateTable(ctx, "docs", map[string]client.GCPolicy{"t": client.MaxVersionsPolicy(1)}, "d100", "d200", "d300"); err != nil {
		t.Fatal(err)
	}
	if err := admin.CreateTable(ctx, "counts", map[string]client.GCPolicy{"c": client.NoGcPolicy()}, "m"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitAllAssigned(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{}
	var rows []string
	var muts []*client.Mutation
	for i := range 400 {
		words := []string{"all", fmt.Sprintf("mod%d", i%5), fmt.Sprintf("mod%d", i%13)}
		if i%2 == 0 {
			words = append(words, "even")
		}
		for _, w := range words {
			want[w]++
		}
		m := client.NewMutation()
		m.Set("t", "body", 1, []byte(strings.Join(words, " ")))
		rows, muts = append(rows, fmt.Sprintf("d%03d", i)), append(muts, m)
	}
	if errs, err := cl.Open("docs").ApplyBulk(ctx, rows, muts); err != nil || errs != nil {
		t.Fatal(err, errs)
	}

	p, s := beam.NewPipelineWithRoot()
	docs := cellarbeam.Read(s, cellarbeam.ReadConfig{Cluster: c.LockAddrs(), Table: "docs"})
	words := beam.ParDo(s, splitWords, docs)
	counted := stats.Count(s, words)
	cellarbeam.Write(s, cellarbeam.WriteConfig{Cluster: c.LockAddrs(), Table: "counts", Families: []string{"c"}, Timestamp: 42, BatchRows: 7}, beam.ParDo(s, toRow, counted))
	res, err := beam.Run(ctx, "prism", p)
	if err != nil {
		t.Fatalf("pipeline: %v", err)
	}
	// One restriction per tablet (4), more if the runner split some.
	var restrictions int64
	for _, m := range res.Metrics().AllMetrics().Counters() {
		if m.Key.Name == "restrictions_read" {
			restrictions += m.Committed
		}
	}
	if restrictions < 4 {
		t.Errorf("the source read %d restrictions, want at least 4 (one per tablet)", restrictions)
	}
	t.Logf("restrictions read: %d", restrictions)

	got := map[string]int{}
	err = cl.Open("counts").ReadRows(ctx, client.InfiniteRange(""), func(r client.Row) bool {
		items := r["c"]
		if len(items) != 1 || items[0].Timestamp != 42 {
			t.Errorf("row %q: %v, want one version at ts 42", r.Key(), items)
		}
		n, _ := strconv.Atoi(string(items[0].Value))
		got[r.Key()] = n
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("counts = %v, want %v", got, want)
	}
}
