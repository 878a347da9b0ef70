package wal_test

import (
	"context"
	"fmt"
	"testing"

	"cellar/dfs"
	"cellar/dfs/dfscluster"
)

// BenchmarkAppendDFS measures sync appends of 1100-byte entries (a YCSB
// row) on a 3-replica dfs cluster on loopback, the commit log's setting in
// a tablet server, from 1 and 16 concurrent appenders. "fanout" is the
// log's default on dfs (dfs.LogCreator); "chain" hides it, so the log's
// files go down the replica chain.
func BenchmarkAppendDFS(b *testing.B) {
	for _, mode := range []string{"fanout", "chain"} {
		open := func(b *testing.B) dfs.FS {
			ctx := context.Background()
			c, err := dfscluster.Start(ctx, &dfscluster.Options{Dir: b.TempDir(), Chunkservers: 3, ChunkSize: 64 << 20})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { c.Close() })
			fs, err := c.Client(ctx, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { fs.Close() })
			if mode == "chain" {
				return chainFS{fs}
			}
			return fs
		}
		for _, appenders := range []int{1, 16} {
			benchmarkAppend(b, fmt.Sprintf("%s/appenders=%d", mode, appenders), open, true, appenders, 1100)
		}
	}
}

// chainFS is a dfs.FS without CreateLog.
type chainFS struct{ dfs.FS }
