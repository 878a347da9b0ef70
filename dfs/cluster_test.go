package dfs_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"go.uber.org/goleak"

	"cellar/dfs"
	"cellar/dfs/dfscluster"
	"cellar/dfs/dfstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func startCluster(t *testing.T, opts *dfscluster.Options) *dfscluster.Cluster {
	t.Helper()
	if opts == nil {
		opts = &dfscluster.Options{}
	}
	opts.Dir = t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := dfscluster.Start(ctx, opts)
	if err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func dial(t *testing.T, c *dfscluster.Cluster, opts *dfs.ClientOptions) *dfs.Client {
	t.Helper()
	cl, err := c.Client(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 99))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func readAll(t *testing.T, fs dfs.FS, name string) []byte {
	t.Helper()
	r, err := fs.Open(context.Background(), name)
	if err != nil {
		t.Fatalf("Open(%s): %v", name, err)
	}
	defer r.Close()
	b := make([]byte, r.Size())
	if n, err := r.ReadAt(b, 0); n != len(b) || (err != nil && err != io.EOF) {
		t.Fatalf("ReadAt(%s) = %d, %v; want %d bytes", name, n, err, len(b))
	}
	return b
}

// writeMode is how a test creates the files it writes: down the replica
// chain (Create) or fanned out to every replica (CreateLog).
type writeMode struct {
	name   string
	fanOut bool
}

func (m writeMode) create(ctx context.Context, cl *dfs.Client, name string) (dfs.File, error) {
	if m.fanOut {
		return cl.CreateLog(ctx, name)
	}
	return cl.Create(ctx, name)
}

// bothModes runs test once per write mode.
func bothModes(t *testing.T, test func(*testing.T, writeMode)) {
	for _, m := range []writeMode{{"chain", false}, {"fanout", true}} {
		t.Run(m.name, func(t *testing.T) { test(t, m) })
	}
}

// logFS creates every file with CreateLog (fan-out), for the conformance
// suite.
type logFS struct{ *dfs.Client }

func (f logFS) Create(ctx context.Context, name string) (dfs.File, error) {
	return f.CreateLog(ctx, name)
}

func TestConformance(t *testing.T) { bothModes(t, testConformance) }

func testConformance(t *testing.T, mode writeMode) {
	c := startCluster(t, nil)
	dfstest.RunConformance(t, func(t *testing.T) dfs.FS {
		cl := dial(t, c, nil)
		// Each subtest gets a fresh namespace: a private directory would
		// change the names the suite checks, so clear the root instead.
		ctx := context.Background()
		var clear func(dir string)
		clear = func(dir string) {
			ents, err := cl.List(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				p := dfs.Join(dir, e.Name)
				if e.IsDir {
					clear(p)
				} else if err := cl.Remove(ctx, p); err != nil {
					t.Fatal(err)
				}
			}
		}
		clear("")
		if mode.fanOut {
			return logFS{cl}
		}
		return cl
	})
}

// TestWriteReadAcrossChunks writes a file of several 1 MiB chunks in odd
// sized writes and reads it back at every chunk boundary.
func TestWriteReadAcrossChunks(t *testing.T) { bothModes(t, testWriteReadAcrossChunks) }

func testWriteReadAcrossChunks(t *testing.T, mode writeMode) {
	c := startCluster(t, nil)
	cl := dial(t, c, nil)
	ctx := context.Background()
	const seed = 1
	want := randBytes(seed, 3<<20+12345)
	f, err := mode.create(ctx, cl, "big/file")
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(want); {
		n := min(len(want)-off, 1+int(rand.New(rand.NewPCG(seed, uint64(off))).IntN(300_000)))
		if _, err := f.Write(want[off : off+n]); err != nil {
			t.Fatalf("Write at %d: %v", off, err)
		}
		off += n
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, cl, "big/file")
	if !bytes.Equal(got, want) {
		t.Fatalf("read back %d bytes differing from the %d written (seed %d)", len(got), len(want), seed)
	}
	r, err := cl.Open(ctx, "big/file")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, b := range []int64{1 << 20, 2 << 20, 3 << 20} {
		buf := make([]byte, 100)
		if _, err := r.ReadAt(buf, b-50); err != nil {
			t.Fatalf("ReadAt across boundary %d: %v", b, err)
		}
		if !bytes.Equal(buf, want[b-50:b+50]) {
			t.Fatalf("ReadAt across boundary %d returned other bytes", b)
		}
	}
	if _, err := r.ReadAt(make([]byte, 1), int64(len(want))); err != io.EOF {
		t.Fatalf("ReadAt at the end = %v, want io.EOF", err)
	}
	if fi, err := cl.Stat(ctx, "big/file"); err != nil || fi.Size != int64(len(want)) {
		t.Fatalf("Stat = %+v, %v; want size %d", fi, err, len(want))
	}
}

func TestErrorsAcrossTheWire(t *testing.T) {
	c := startCluster(t, nil)
	cl := dial(t, c, nil)
	other := dial(t, c, nil)
	ctx := context.Background()
	f, err := cl.Create(ctx, "leased")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Create(ctx, "leased"); !errors.Is(err, dfs.ErrExist) {
		t.Fatalf("Create of a leased file by another client = %v, want ErrExist", err)
	}
	if _, err := cl.Create(ctx, "leased/child"); !errors.Is(err, dfs.ErrExist) {
		t.Fatalf("Create under a file = %v, want ErrExist", err)
	}
	if err := cl.Remove(ctx, "nope/x"); !errors.Is(err, dfs.ErrNotFound) {
		t.Fatalf("Remove(missing) = %v, want ErrNotFound", err)
	}
	f.Write([]byte("abc"))
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(ctx); !errors.Is(err, dfs.ErrClosed) {
		t.Fatalf("Sync after Close = %v, want ErrClosed", err)
	}
	g, _ := cl.Create(ctx, "d/x")
	g.Close()
	if _, err := cl.Open(ctx, "d"); !errors.Is(err, dfs.ErrIsDir) {
		t.Fatalf("Open(dir) = %v, want ErrIsDir", err)
	}
	if err := cl.Remove(ctx, "d"); !errors.Is(err, dfs.ErrIsDir) {
		t.Fatalf("Remove(non-empty dir) = %v, want ErrIsDir", err)
	}
}

// TestRackAwarePlacement: with two racks, every chunk's three replicas
// span both racks and sit on three distinct servers.
func TestRackAwarePlacement(t *testing.T) {
	c := startCluster(t, &dfscluster.Options{Chunkservers: 4, Racks: []string{"r1", "r2"}})
	cl := dial(t, c, nil)
	ctx := context.Background()
	f, err := cl.Create(ctx, "placed")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(randBytes(9, 5<<20)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	racks := map[dfs.ChunkHandle]map[string]bool{}
	servers := map[dfs.ChunkHandle]int{}
	for i, n := range c.Chunkservers {
		rack := []string{"r1", "r2"}[i%2]
		for _, h := range n.Running().Chunks() {
			if racks[h] == nil {
				racks[h] = map[string]bool{}
			}
			racks[h][rack] = true
			servers[h]++
		}
	}
	if len(racks) != 5 {
		t.Fatalf("%d chunks stored, want 5", len(racks))
	}
	for h, rs := range racks {
		if len(rs) != 2 || servers[h] != 3 {
			t.Errorf("chunk %v: %d replicas on racks %v, want 3 over both racks", h, servers[h], rs)
		}
	}
}

// TestSyncConcurrentWithWrite: one goroutine appends while another syncs
// (a commit log's group commit); every byte arrives in order and a Sync
// returns with everything written before it durable.
func TestSyncConcurrentWithWrite(t *testing.T) { bothModes(t, testSyncConcurrentWithWrite) }

func testSyncConcurrentWithWrite(t *testing.T, mode writeMode) {
	c := startCluster(t, nil)
	cl := dial(t, c, nil)
	ctx := context.Background()
	f, err := mode.create(ctx, cl, "wal")
	if err != nil {
		t.Fatal(err)
	}
	want := randBytes(12, 2<<20+3000)
	done := make(chan error, 1)
	go func() {
		for off := 0; off < len(want); off += 7000 {
			if _, err := f.Write(want[off:min(off+7000, len(want))]); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	syncs := 0
	for writing := true; writing; syncs++ {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Write: %v", err)
			}
			writing = false
		default:
		}
		before := f.Size()
		if err := f.Sync(ctx); err != nil {
			t.Fatalf("Sync: %v", err)
		}
		r, err := cl.Open(ctx, "wal")
		if err != nil {
			t.Fatal(err)
		}
		if r.Size() < before {
			t.Fatalf("after Sync a reader sees %d bytes, %d were written before it", r.Size(), before)
		}
		r.Close()
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, cl, "wal"); !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, differing from the %d written (%d syncs)", len(got), len(want), syncs)
	}
}

// TestPerFileReplication: a file created with two replicas keeps two, and
// fsck holds it to that target, not the default three.
func TestPerFileReplication(t *testing.T) {
	c := startCluster(t, nil)
	cl := dial(t, c, nil)
	ctx := context.Background()
	f, err := cl.CreateReplicated(ctx, "two", 2)
	if err != nil {
		t.Fatal(err)
	}
	want := randBytes(15, 1<<20+10)
	if _, err := f.Write(want); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	counts := map[dfs.ChunkHandle]int{}
	for _, n := range c.Chunkservers {
		for _, h := range n.Running().Chunks() {
			counts[h]++
		}
	}
	if len(counts) != 2 || counts[1] != 2 || counts[2] != 2 {
		t.Fatalf("replicas per chunk %v, want 2 for each of 2 chunks", counts)
	}
	if r, err := cl.Fsck(ctx, ""); err != nil || len(r.Problems) != 0 {
		t.Fatalf("fsck = %+v, %v; want no problems", r, err)
	}
	if _, err := cl.CreateReplicated(ctx, "bad", 17); !errors.Is(err, dfs.ErrInvalidArgument) {
		t.Fatalf("CreateReplicated(17) = %v, want ErrInvalidArgument", err)
	}
	if got := readAll(t, cl, "two"); !bytes.Equal(got, want) {
		t.Fatal("read back differs")
	}
}
