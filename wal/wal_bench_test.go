package wal_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cellar/dfs"
	"cellar/dfs/local"
	"cellar/internal/keys"
	"cellar/wal"
)

// BenchmarkAppend measures sync=true appends on dfs/local (real fdatasync)
// from 1 and 16 concurrent appenders. Compare records/s with the machine's
// fdatasync rate in LIMITS.md: with one appender every record pays one
// sync; with 16, group commit shares each sync among the waiting appenders.
//
// The async variants (sync=false, synced in the background) show what the
// framing and the writer cost without waiting for the device.
func BenchmarkAppend(b *testing.B) {
	openLocal := func(b *testing.B) dfs.FS {
		fs, err := local.Open(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		return fs
	}
	for _, mode := range []string{"sync", "async"} {
		for _, size := range []int{100, 4096} {
			for _, appenders := range []int{1, 16} {
				name := fmt.Sprintf("%s/appenders=%d/entry=%dB", mode, appenders, size)
				benchmarkAppend(b, name, openLocal, mode == "sync", appenders, size)
			}
		}
	}
}

// benchmarkAppend runs appenders goroutines appending size-byte entries to
// a log on the FS open returns, and reports records/s, syncs/s, records
// per sync and the mean latency of one Append.
func benchmarkAppend(b *testing.B, name string, open func(*testing.B) dfs.FS, syncWrites bool, appenders, size int) {
	b.Run(name, func(b *testing.B) {
		l, err := wal.Open(context.Background(), open(b), &wal.Options{Dir: "log", Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		payload := make([]byte, size)
		var next, lat atomic.Int64
		var seq atomic.Uint64
		b.SetBytes(int64(size))
		b.ReportAllocs()
		b.ResetTimer()
		var wg sync.WaitGroup
		for g := range appenders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= int64(b.N) {
					e := wal.Entry{Tablet: uint64(g), Seq: keys.SeqNum(seq.Add(1)), Data: payload}
					t := time.Now()
					if err := l.Append(context.Background(), e, syncWrites); err != nil {
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
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
	})
}
