package tablet

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"cellar/dfs/dfscluster"
)

// The storage engine's model and crash tests, run on the replicated dfs
// (a master and four chunkservers in-process, 3 replicas, 1 MiB chunks)
// instead of dfs/local: the engine must not depend on anything a local
// file system gives and the dfs does not (issue 3).

func startDFS(t *testing.T) *dfscluster.Cluster {
	t.Helper()
	ctx := context.Background()
	c, err := dfscluster.Start(ctx, &dfscluster.Options{Dir: t.TempDir(), DeadAfter: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestModelDFS is a small run of the model-based test on the dfs.
func TestModelDFS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dfs cluster; skipped with -short")
	}
	c := startDFS(t)
	for i, seed := range modelSeeds(t, 3) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			fs, err := c.Client(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer fs.Close()
			// Each seed in its own directory of the one cluster.
			runModelIn(t, seed, fs, fmt.Sprintf("seed%d", i), 200)
		})
	}
}

// TestCrashDFS kills a child writing Sync rows to a tablet on the dfs 20
// times; after each kill the parent recovers the leases of the child's
// files (as the master does for a dead tablet server) and checks that
// every acknowledged row is there and no row is torn.
func TestCrashDFS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes and a dfs cluster; skipped with -short")
	}
	c := startDFS(t)
	fs, err := c.Client(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	runCrashTest(t, "dfs:"+strings.Join(c.MasterAddrs(), ","), fs, 20)
}
