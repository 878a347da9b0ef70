package wal_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cellar/dfs"
	"cellar/dfs/dfscluster"
	"cellar/internal/keys"
	"cellar/wal"
)

// BenchmarkAppendDFS measures sync appends of 1100-byte entries (a YCSB
// row) on a 3-replica dfs cluster on loopback, the commit log's setting in
// a tablet server, from 1 and 16 concurrent appenders: records/s, syncs/s,
// records per sync and the mean latency of one Append. "fanout" is the
// log's default on dfs (dfs.LogCreator); "chain" hides it.
func BenchmarkAppendDFS(b *testing.B) {
	for _, mode := range []string{"fanout", "chain"} {
		for _, appenders := range []int{1, 16} {
			benchmarkAppendDFS(b, mode, appenders)
		}
	}
}

// chainFS is a dfs.FS without CreateLog.
type chainFS struct{ dfs.FS }

func benchmarkAppendDFS(b *testing.B, mode string, appenders int) {
	b.Run(fmt.Sprintf("%s/appenders=%d", mode, appenders), func(b *testing.B) {
		ctx := context.Background()
		c, err := dfscluster.Start(ctx, &dfscluster.Options{Dir: b.TempDir(), Chunkservers: 3, ChunkSize: 64 << 20})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		fs, err := c.Client(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer fs.Close()
		var lfs dfs.FS = fs
		if mode == "chain" {
			lfs = chainFS{fs}
		}
		l, err := wal.Open(ctx, lfs, &wal.Options{Dir: "log", Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		payload := make([]byte, 1100)
		var next atomic.Int64
		var seq atomic.Uint64
		var lat atomic.Int64
		b.ResetTimer()
		var wg sync.WaitGroup
		for g := range appenders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= int64(b.N) {
					e := wal.Entry{Tablet: uint64(g), Seq: keys.SeqNum(seq.Add(1)), Data: payload}
					t := time.Now()
					if err := l.Append(ctx, e, true); err != nil {
						b.Error(err)
						return
					}
					lat.Add(int64(time.Since(t)))
				}
			}()
		}
		wg.Wait()
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		st := l.Stats()
		b.ReportMetric(float64(st.Syncs)/b.Elapsed().Seconds(), "syncs/s")
		b.ReportMetric(float64(st.Entries)/float64(max(st.Syncs, 1)), "records/sync")
		b.ReportMetric(float64(lat.Load())/float64(b.N)/1e3, "us/append")
		l.Close()
	})
}
