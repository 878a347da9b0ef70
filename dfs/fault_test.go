package dfs_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"cellar/dfs"
	"cellar/dfs/chunkserver"
	"cellar/dfs/dfscluster"
)

func write(t *testing.T, f dfs.File, p []byte) {
	t.Helper()
	if _, err := f.Write(p); err != nil {
		t.Fatalf("Write: %v", err)
	}
}

func syncFile(t *testing.T, f dfs.File) {
	t.Helper()
	if err := f.Sync(context.Background()); err != nil {
		t.Fatalf("Sync: %v", err)
	}
}

// waitFullyReplicated polls fsck until no chunk is below its target.
func waitFullyReplicated(t *testing.T, c *dfscluster.Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var last string
	err := c.Poll(ctx, func() (bool, error) {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		r, err := c.Fsck(fctx)
		cancel()
		if err != nil {
			return false, nil
		}
		last = fmt.Sprint(r.Problems)
		return len(r.Problems) == 0 && r.Chunks > 0, nil
	})
	if err != nil {
		t.Fatalf("chunks still under-replicated: %v (last fsck: %s)", err, last)
	}
}

// holders returns the chunkservers (indexes) holding the newest chunk.
func newestChunkHolders(c *dfscluster.Cluster) (dfs.ChunkHandle, []int) {
	var newest dfs.ChunkHandle
	for _, n := range c.Chunkservers {
		if s := n.Running(); s != nil {
			for _, h := range s.Chunks() {
				newest = max(newest, h)
			}
		}
	}
	var out []int
	for i, n := range c.Chunkservers {
		if s := n.Running(); s != nil {
			for _, h := range s.Chunks() {
				if h == newest {
					out = append(out, i)
				}
			}
		}
	}
	return newest, out
}

// TestKillChunkserverMidWrite: a pipeline replica dies in the middle of a
// write; the writer carries on with the others, every byte synced before
// and after is readable, and re-replication restores three replicas.
func TestKillChunkserverMidWrite(t *testing.T) { bothModes(t, testKillChunkserverMidWrite) }

func testKillChunkserverMidWrite(t *testing.T, mode writeMode) {
	c := startCluster(t, nil)
	cl := dial(t, c, nil)
	ctx := context.Background()
	want := randBytes(2, 4<<20+777)
	f, err := mode.create(ctx, cl, "wal/log")
	if err != nil {
		t.Fatal(err)
	}
	half := 3 << 19 // 1.5 MiB: into the second chunk
	write(t, f, want[:half])
	syncFile(t, f)
	_, holders := newestChunkHolders(c)
	if len(holders) != 3 {
		t.Fatalf("newest chunk on %d servers, want 3", len(holders))
	}
	victim := holders[1]
	if err := c.Chunkservers[victim].Stop(); err != nil {
		t.Fatal(err)
	}
	for off := half; off < len(want); off += 100_000 {
		write(t, f, want[off:min(off+100_000, len(want))])
		syncFile(t, f)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("Close after losing a replica: %v", err)
	}
	if got := readAll(t, cl, "wal/log"); !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, differing from the %d written", len(got), len(want))
	}
	waitFullyReplicated(t, c)
	// The restarted victim's stale replicas are deleted, not served.
	if err := c.Chunkservers[victim].Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, cl, "wal/log"); !bytes.Equal(got, want) {
		t.Fatal("read after the victim came back differs")
	}
	// Its stale replica (older version) is garbage-collected and surplus
	// current ones trimmed: every chunk settles at exactly three replicas.
	var counts map[dfs.ChunkHandle]int
	err = c.Poll(ctx, func() (bool, error) {
		counts = map[dfs.ChunkHandle]int{}
		for _, n := range c.Chunkservers {
			for _, h := range n.Running().Chunks() {
				counts[h]++
			}
		}
		for _, n := range counts {
			if n != 3 {
				return false, nil
			}
		}
		return len(counts) == 5, nil
	})
	if err != nil {
		t.Fatalf("replica counts never settled at 3: %v", counts)
	}
}

// TestCorruptReplicaReplaced flips a byte in two of a chunk's three
// replicas: reads still return the right bytes (from the good replica), the
// bad replicas are dropped on detection, and re-replication replaces them.
func TestCorruptReplicaReplaced(t *testing.T) {
	c := startCluster(t, nil)
	cl := dial(t, c, nil)
	ctx := context.Background()
	want := randBytes(3, 1<<19)
	f, err := cl.Create(ctx, "sst/1")
	if err != nil {
		t.Fatal(err)
	}
	write(t, f, want)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	h, holders := newestChunkHolders(c)
	if len(holders) != 3 {
		t.Fatalf("chunk on %d servers, want 3", len(holders))
	}
	for _, i := range holders[:2] {
		p := c.Chunkservers[i].Running().ChunkFile(h)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[chunkserver.DataFileOffset(12345)] ^= 0x01
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := readAll(t, cl, "sst/1"); !bytes.Equal(got, want) {
		t.Fatal("read with two corrupt replicas returned wrong bytes")
	}
	found := 0
	for _, i := range holders[:2] {
		found += c.Chunkservers[i].Running().Scrub(ctx)
	}
	for _, i := range holders[:2] {
		for _, x := range c.Chunkservers[i].Running().Chunks() {
			if x == h {
				t.Fatalf("server %d still holds corrupt chunk %v after read and scrub (scrub found %d)", i, h, found)
			}
		}
	}
	waitFullyReplicated(t, c)
	// Every replica now verifies, and the data is intact.
	for _, n := range c.Chunkservers {
		if got := n.Running().Scrub(ctx); got != 0 {
			t.Fatalf("scrub after repair found %d corrupt replicas", got)
		}
	}
	if got := readAll(t, cl, "sst/1"); !bytes.Equal(got, want) {
		t.Fatal("read after repair differs")
	}
}

// TestMasterLeaderKilled: with three master replicas, killing the leader
// loses neither the namespace nor the leases, and clients carry on.
func TestMasterLeaderKilled(t *testing.T) {
	c := startCluster(t, &dfscluster.Options{Masters: 3})
	cl := dial(t, c, nil)
	ctx := context.Background()
	done := randBytes(4, 200_000)
	g, err := cl.Create(ctx, "meta/done")
	if err != nil {
		t.Fatal(err)
	}
	write(t, g, done)
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	want := randBytes(5, 3<<20)
	f, err := cl.Create(ctx, "meta/open")
	if err != nil {
		t.Fatal(err)
	}
	write(t, f, want[:1<<20+5000])
	syncFile(t, f)
	old := c.Leader()
	if old == nil {
		t.Fatal("no leader")
	}
	if err := old.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := c.Poll(ctx, func() (bool, error) { return c.Leader() != nil, nil }); err != nil {
		t.Fatal(err)
	}
	write(t, f, want[1<<20+5000:])
	if err := f.Close(); err != nil {
		t.Fatalf("Close after leader change: %v", err)
	}
	other := dial(t, c, nil)
	if _, err := other.Create(ctx, "meta/done"); !errors.Is(err, dfs.ErrExist) {
		t.Fatalf("Create of an existing file after failover = %v, want ErrExist", err)
	}
	if got := readAll(t, other, "meta/done"); !bytes.Equal(got, done) {
		t.Fatal("file closed before failover differs")
	}
	if got := readAll(t, other, "meta/open"); !bytes.Equal(got, want) {
		t.Fatal("file written across failover differs")
	}
	// A lease taken before the failover still holds on the new leader.
	h, err := cl.Create(ctx, "meta/leased")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := old.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Leader().Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Create(ctx, "meta/leased"); !errors.Is(err, dfs.ErrExist) {
		t.Fatalf("Create of a leased file after a second failover = %v, want ErrExist", err)
	}
	write(t, h, []byte("still mine"))
	if err := h.Close(); err != nil {
		t.Fatalf("lease holder's Close after failover: %v", err)
	}
}

// TestRecoverLeaseFencesPausedWriter: RecoverLease ends a paused writer's
// lease; when it resumes, its writes fail with ErrLeaseLost and the file
// holds exactly what was synced before the recovery.
func TestRecoverLeaseFencesPausedWriter(t *testing.T) {
	bothModes(t, testRecoverLeaseFencesPausedWriter)
}

func testRecoverLeaseFencesPausedWriter(t *testing.T, mode writeMode) {
	c := startCluster(t, &dfscluster.Options{ChunkSize: 4 << 20})
	zombie := dial(t, c, nil)
	master := dial(t, c, nil)
	ctx := context.Background()
	synced := randBytes(6, 3<<19)
	f, err := mode.create(ctx, zombie, "logs/server1")
	if err != nil {
		t.Fatal(err)
	}
	write(t, f, synced)
	syncFile(t, f)
	write(t, f, randBytes(7, 3<<19)) // sent down the pipeline, never synced
	// The writer "pauses" here; the master fences it.
	if err := master.RecoverLease(ctx, "logs/server1"); err != nil {
		t.Fatalf("RecoverLease: %v", err)
	}
	if got := readAll(t, master, "logs/server1"); !bytes.Equal(got, synced) {
		t.Fatalf("recovered file holds %d bytes, want exactly the %d synced", len(got), len(synced))
	}
	// The zombie resumes.
	_, werr := f.Write(randBytes(8, 10))
	serr := f.Sync(ctx)
	if !errors.Is(werr, dfs.ErrLeaseLost) && !errors.Is(serr, dfs.ErrLeaseLost) {
		t.Fatalf("zombie Write = %v, Sync = %v; want ErrLeaseLost", werr, serr)
	}
	if err := f.Close(); err == nil {
		t.Fatal("zombie Close succeeded after its lease was recovered")
	}
	if got := readAll(t, master, "logs/server1"); !bytes.Equal(got, synced) {
		t.Fatalf("after the zombie resumed the file holds %d bytes, want %d", len(got), len(synced))
	}
	// Recovery of a file with no writer is a no-op.
	if err := master.RecoverLease(ctx, "logs/server1"); err != nil {
		t.Fatalf("second RecoverLease: %v", err)
	}
}

// TestFailingDisksRoutedAround: one chunkserver's fsync fails and another's
// disk is full; writes route around both, which report themselves unhealthy
// and get no new replicas.
func TestFailingDisksRoutedAround(t *testing.T) { bothModes(t, testFailingDisksRoutedAround) }

func testFailingDisksRoutedAround(t *testing.T, mode writeMode) {
	c := startCluster(t, &dfscluster.Options{Chunkservers: 5, Faults: func(i int) chunkserver.Faults {
		switch i {
		case 0:
			return chunkserver.Faults{Sync: func(dfs.ChunkHandle) error { return syscall.EIO }}
		case 1:
			return chunkserver.Faults{Write: func(dfs.ChunkHandle) error { return syscall.ENOSPC }}
		}
		return chunkserver.Faults{}
	}})
	cl := dial(t, c, nil)
	ctx := context.Background()
	for n := 0; n < 4; n++ {
		want := randBytes(uint64(10+n), 1<<20+1000)
		name := fmt.Sprintf("f%d", n)
		f, err := mode.create(ctx, cl, name)
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off < len(want); off += 300_000 {
			write(t, f, want[off:min(off+300_000, len(want))])
			syncFile(t, f)
		}
		if err := f.Close(); err != nil {
			t.Fatalf("Close of %s: %v", name, err)
		}
		if got := readAll(t, cl, name); !bytes.Equal(got, want) {
			t.Fatalf("%s read back differs", name)
		}
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string]bool{c.Chunkservers[0].Running().ID(): true, c.Chunkservers[1].Running().ID(): true}
	for _, s := range st.Servers {
		if bad[s.ServerId] && s.Healthy && s.Chunks > 0 {
			t.Errorf("faulty server %s reports healthy with %d chunks", s.ServerId, s.Chunks)
		}
	}
	waitFullyReplicated(t, c)
}

// TestLeaseHardLimit: a writer that stops renewing (its client is gone)
// loses the lease after the hard limit and the master seals the file at
// its synced length; a writer that keeps renewing keeps its lease.
func TestLeaseHardLimit(t *testing.T) {
	c := startCluster(t, &dfscluster.Options{LeaseHardLimit: 500 * time.Millisecond})
	ctx := context.Background()
	gone, err := c.Client(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	alive := dial(t, c, &dfs.ClientOptions{LeaseRenewInterval: 50 * time.Millisecond})
	synced := randBytes(11, 300_000)
	f, err := gone.Create(ctx, "dead-writer")
	if err != nil {
		t.Fatal(err)
	}
	write(t, f, synced)
	syncFile(t, f)
	write(t, f, []byte("unsynced"))
	g, err := alive.Create(ctx, "live-writer")
	if err != nil {
		t.Fatal(err)
	}
	write(t, g, []byte("hello"))
	gone.Close() // the writer's process dies: no Close of the file, no renewals
	err = c.Poll(ctx, func() (bool, error) {
		st, err := c.FileStat(ctx, "dead-writer")
		return err == nil && !st.UnderConstruction, nil
	})
	if err != nil {
		t.Fatalf("dead writer's lease never expired: %v", err)
	}
	if got := readAll(t, alive, "dead-writer"); !bytes.Equal(got, synced) {
		t.Fatalf("expired file holds %d bytes, want the %d synced", len(got), len(synced))
	}
	if st, err := c.FileStat(ctx, "live-writer"); err != nil || !st.UnderConstruction {
		t.Fatalf("renewing writer's file = %+v, %v; want still under construction", st, err)
	}
	write(t, g, []byte(" world"))
	if err := g.Close(); err != nil {
		t.Fatalf("renewing writer's Close: %v", err)
	}
	if got := readAll(t, alive, "live-writer"); string(got) != "hello world" {
		t.Fatalf("live-writer holds %q", got)
	}
}

// TestHungReplicaRoutedAround: a pipeline replica that stops answering (a
// paused process, a stuck disk) is reported by its upstream after the
// chunkservers' ack timeout; the writer drops it and carries on.
func TestHungReplicaRoutedAround(t *testing.T) { bothModes(t, testHungReplicaRoutedAround) }

func testHungReplicaRoutedAround(t *testing.T, mode writeMode) {
	var hang, blocked atomic.Int32
	hang.Store(-1)
	release := make(chan struct{})
	c := startCluster(t, &dfscluster.Options{PipelineAckTimeout: time.Second,
		Faults: func(i int) chunkserver.Faults {
			return chunkserver.Faults{Write: func(dfs.ChunkHandle) error {
				if hang.Load() == int32(i) {
					blocked.Add(1)
					<-release
				}
				return nil
			}}
		}})
	t.Cleanup(func() { close(release) }) // runs before the cluster's Close
	cl := dial(t, c, &dfs.ClientOptions{PipelineTimeout: 4 * time.Second})
	ctx := context.Background()
	want := randBytes(13, 600_000)
	f, err := mode.create(ctx, cl, "hung")
	if err != nil {
		t.Fatal(err)
	}
	write(t, f, want[:200_000])
	syncFile(t, f)
	_, holders := newestChunkHolders(c)
	if len(holders) != 3 {
		t.Fatalf("chunk on %d servers, want 3", len(holders))
	}
	hang.Store(int32(holders[2])) // some pipeline position; ordering is the master's
	write(t, f, want[200_000:])
	syncFile(t, f)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if blocked.Load() == 0 {
		t.Fatal("the hung replica never received a write: the test did not exercise a hang")
	}
	if got := readAll(t, cl, "hung"); !bytes.Equal(got, want) {
		t.Fatal("file written around a hung replica differs")
	}
}

// TestAllReplicasCorrupt: when every replica fails its checksums the read
// fails with ErrCorrupt (never wrong bytes), and fsck reports the chunk
// missing.
func TestAllReplicasCorrupt(t *testing.T) {
	c := startCluster(t, nil)
	cl := dial(t, c, nil)
	ctx := context.Background()
	f, err := cl.Create(ctx, "doomed")
	if err != nil {
		t.Fatal(err)
	}
	write(t, f, randBytes(14, 100_000))
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	h, holders := newestChunkHolders(c)
	for _, i := range holders {
		p := c.Chunkservers[i].Running().ChunkFile(h)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[chunkserver.DataFileOffset(99)] ^= 0xff
		os.WriteFile(p, b, 0o644)
	}
	r, err := cl.Open(ctx, "doomed")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.ReadAt(make([]byte, 1000), 0); !errors.Is(err, dfs.ErrCorrupt) {
		t.Fatalf("ReadAt with every replica corrupt = %v, want ErrCorrupt", err)
	}
	err = c.Poll(ctx, func() (bool, error) {
		r, err := c.Fsck(ctx)
		return err == nil && len(r.Problems) == 1 && r.Problems[0].Missing, nil
	})
	if err != nil {
		t.Fatalf("fsck never reported the chunk missing: %v", err)
	}
}

// TestMasterRestartRebuildsLocations: a single master restarted from its
// raft state knows the namespace at once and learns the replica locations
// (never persisted) from the chunkservers' next block reports.
func TestMasterRestartRebuildsLocations(t *testing.T) {
	c := startCluster(t, nil)
	cl := dial(t, c, nil)
	ctx := context.Background()
	want := randBytes(16, 1<<20+500)
	f, err := cl.Create(ctx, "persist/me")
	if err != nil {
		t.Fatal(err)
	}
	write(t, f, want)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	m := c.Masters[0]
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := m.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if fi, err := cl.Stat(ctx, "persist/me"); err != nil || fi.Size != int64(len(want)) {
		t.Fatalf("Stat after restart = %+v, %v", fi, err)
	}
	if got := readAll(t, cl, "persist/me"); !bytes.Equal(got, want) {
		t.Fatal("read after master restart differs")
	}
}

// TestShortReplicaReplaced: a replica of a complete chunk whose newest
// commit slot is damaged falls back to its older commit on restart and so
// holds fewer bytes than the chunk. The master drops that short copy and
// copies a full one back; with three chunkservers, its server is the only
// place the third replica can go, so the short copy must not linger.
func TestShortReplicaReplaced(t *testing.T) {
	c := startCluster(t, &dfscluster.Options{Chunkservers: 3})
	cl := dial(t, c, nil)
	ctx := context.Background()
	first, second := randBytes(5, 200_000), randBytes(6, 100_000)
	f, err := cl.Create(ctx, "log/1")
	if err != nil {
		t.Fatal(err)
	}
	write(t, f, first)
	syncFile(t, f)
	write(t, f, second)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	want := append(bytes.Clone(first), second...)
	h, holders := newestChunkHolders(c)
	if len(holders) != 3 {
		t.Fatalf("chunk on %d servers, want 3", len(holders))
	}
	victim := c.Chunkservers[holders[0]]
	p := victim.Running().ChunkFile(h)
	if err := victim.Stop(); err != nil {
		t.Fatal(err)
	}
	// Damage the newest commit slot (the one with the higher seq, at
	// offset 8 of each 64-byte slot; slots are at 0 and 4096).
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	newest := 0
	if binary.LittleEndian.Uint64(b[4096+8:]) > binary.LittleEndian.Uint64(b[8:]) {
		newest = 4096
	}
	b[newest+33] ^= 0x40 // in the length field: the slot's CRC fails
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := victim.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	// Every server comes to hold the whole chunk again.
	full := chunkserver.DataFileOffset(int64(len(want)))
	pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var sizes []int64
	err = c.Poll(pctx, func() (bool, error) {
		sizes = sizes[:0]
		for _, n := range c.Chunkservers {
			fi, err := os.Stat(n.Running().ChunkFile(h))
			if err != nil {
				sizes = append(sizes, -1)
				continue
			}
			sizes = append(sizes, fi.Size())
		}
		return slices.Equal(sizes, []int64{full, full, full}), nil
	})
	if err != nil {
		t.Fatalf("replica file sizes %v, want %d each: %v", sizes, full, err)
	}
	waitFullyReplicated(t, c)
	for i, n := range c.Chunkservers {
		if got := n.Running().Scrub(ctx); got != 0 {
			t.Fatalf("server %d: scrub found %d corrupt replicas", i, got)
		}
	}
	if got := readAll(t, cl, "log/1"); !bytes.Equal(got, want) {
		t.Fatal("read after repair differs")
	}
}
