package dfs_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cellar/dfs"
	"cellar/dfs/chunkserver"
	"cellar/dfs/dfscluster"
)

// TestHungReplicaIsTheOneDropped: whichever replica of a pipeline hangs
// (first, middle or last), the writer's Sync goes on with the other two,
// so exactly one replica is dropped. Each replica waits for its downstream
// PipelineAckTimeout per replica below it, so the replica next to the hung
// one reports it first; with equal waits the first replica could time out
// with the middle one and drop the healthy middle replica as well. The
// file then reports itself Degraded, which makes a commit log roll, and
// the client's next file avoids the dropped server.
func TestHungReplicaIsTheOneDropped(t *testing.T) {
	var hung atomic.Int32 // index of the chunkserver whose syncs hang; -1 = none
	hung.Store(-1)
	release := make(chan struct{})
	var releaseOnce sync.Once
	c := startCluster(t, &dfscluster.Options{
		Chunkservers:       3,
		PipelineAckTimeout: time.Second,
		Faults: func(i int) chunkserver.Faults {
			return chunkserver.Faults{Sync: func(dfs.ChunkHandle) error {
				if hung.Load() == int32(i) {
					<-release
				}
				return nil
			}}
		},
	})
	// Runs before the cluster's Close (cleanups run last first), so no
	// handler stays blocked in a hung sync.
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	ctx := context.Background()
	var files []dfs.File
	for i := range 3 {
		// A client per round: each remembers the servers it dropped.
		cl := dial(t, c, &dfs.ClientOptions{PipelineTimeout: 5 * time.Second, ExcludeFor: time.Hour})
		name := fmt.Sprintf("logs/hung%d", i)
		f, err := cl.Create(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
		write(t, f, randBytes(uint64(i), 1000))
		syncFile(t, f)
		if f.(dfs.Degradable).Degraded() {
			t.Fatalf("file %d degraded before any fault", i)
		}
		hung.Store(int32(i))
		write(t, f, randBytes(uint64(10+i), 1000))
		syncFile(t, f) // repaired around the hung replica
		hung.Store(-1)
		if !f.(dfs.Degradable).Degraded() {
			t.Errorf("chunkserver %d hung: the file does not report its lost replica", i)
		}
		rep, err := cl.Fsck(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Problems) != 1 || rep.Problems[0].LiveReplicas != 2 {
			t.Errorf("chunkserver %d hung: fsck %+v, want one chunk with 2 live replicas", i, rep)
		}
		// A new file of this client avoids the dropped server for a while
		// (ExcludeFor), so it gets the two others.
		next, err := cl.Create(ctx, name+".next")
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, next)
		write(t, next, randBytes(uint64(20+i), 1000))
		syncFile(t, next)
		if rep, err := cl.Fsck(ctx, name+".next"); err != nil {
			t.Fatal(err)
		} else if len(rep.Problems) != 1 || rep.Problems[0].LiveReplicas != 2 {
			t.Errorf("after chunkserver %d was dropped: new file fsck %+v, want one chunk on the 2 other servers", i, rep)
		}
		// Closed, the short file is re-replicated (onto the server it
		// avoided, which is healthy again).
		if err := next.Close(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			rep, err := cl.Fsck(ctx, name+".next")
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Problems) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("closed short file not re-replicated: fsck %+v", rep)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	releaseOnce.Do(func() { close(release) })
	for _, f := range files {
		f.Close()
	}
}
