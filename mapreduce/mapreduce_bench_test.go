package mapreduce_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"cellar/dfs/memfs"
	"cellar/mapreduce"
)

// outSeq names a fresh output directory per benchmark run.
var outSeq atomic.Int64

// BenchmarkWordCount runs word count over generated text in memory (memfs)
// with and without a combiner, and with a 256 KiB memory budget that forces
// the shuffle to spill and merge runs through local temp files. It reports
// map input records (lines) and map output records (words) per second;
// SetBytes is the input size, so MB/s is input throughput.
func BenchmarkWordCount(b *testing.B) {
	const files, lines, vocab = 8, 25000, 5000
	fs := memfs.New()
	c := genCorpus(b, rand.New(rand.NewPCG(1, 2)), fs, "in", files, lines, vocab)
	var inBytes int64
	for _, f := range c.files {
		st, err := fs.Stat(context.Background(), f)
		if err != nil {
			b.Fatal(err)
		}
		inBytes += st.Size
	}
	for _, bc := range []struct {
		name    string
		combine bool
		budget  int64
	}{
		{"combiner=false", false, 0},
		{"combiner=true", true, 0},
		{"combiner=false/spill-heavy", false, 256 << 10},
		{"combiner=true/spill-heavy", true, 256 << 10},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(inBytes)
			var last mapreduce.Result
			n := 0
			for b.Loop() {
				n++
				j := wordCount(fs, "in", fmt.Sprintf("out-%d", outSeq.Add(1)), 4, bc.combine)
				j.Input = mapreduce.FileInput{FS: fs, Paths: []string{"in"}} // one split per file
				res, err := mapreduce.Run(context.Background(), j, &mapreduce.RunOptions{
					MemoryBudget: bc.budget, TempDir: b.TempDir(), Logger: discardLogger,
				})
				if err != nil {
					b.Fatal(err)
				}
				if res.OutputRecords != int64(len(c.count)) {
					b.Fatalf("%d output records, want %d", res.OutputRecords, len(c.count))
				}
				last = res
			}
			secs := b.Elapsed().Seconds() / float64(n)
			b.ReportMetric(float64(c.lines)/secs, "records/s")
			b.ReportMetric(float64(c.words)/secs, "words/s")
			b.ReportMetric(float64(last.Spills), "spills/op")
			b.ReportMetric(float64(last.ShuffleBytes), "shuffleB/op")
		})
	}
}
