package chunkserver

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"go.uber.org/goleak"

	"cellar/dfs"
	"cellar/dfs/internal/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func appendSync(t *testing.T, s *store, c *chunk, version uint64, p []byte, sync bool) {
	t.Helper()
	c.ioMu.Lock()
	defer c.ioMu.Unlock()
	if err := c.appendLocked(s, version, c.state().length, p); err != nil {
		t.Fatalf("append: %v", err)
	}
	if sync {
		if err := c.syncLocked(s); err != nil {
			t.Fatalf("sync: %v", err)
		}
	}
}

// TestStoreReloadKeepsSyncedBytesOnly: after a "crash" (reopening the
// directory without closing), a chunk holds exactly its synced bytes, which
// verify against their checksums.
func TestStoreReloadKeepsSyncedBytesOnly(t *testing.T) {
	dir := t.TempDir()
	s, _, err := openStore(dir, 0, Faults{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.openForWrite(7, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	synced := bytes.Repeat([]byte("abcdefgh"), 20000) // 160000 bytes: 3 blocks
	appendSync(t, s, c, 1, synced, true)
	appendSync(t, s, c, 1, []byte("never synced"), false)
	c.closeFiles()

	s2, corrupt, err := openStore(dir, 0, Faults{})
	if err != nil || len(corrupt) != 0 {
		t.Fatalf("reopen: %v, corrupt %v", err, corrupt)
	}
	c2, ok := s2.get(7)
	if !ok {
		t.Fatal("chunk 7 lost")
	}
	if st := c2.state(); st.length != int64(len(synced)) || st.version != 1 {
		t.Fatalf("reloaded chunk state %+v, want length %d version 1", st, len(synced))
	}
	got := make([]byte, len(synced))
	if n, err := s2.readAt(7, 1, got, 0); err != nil || n != len(synced) || !bytes.Equal(got, synced) {
		t.Fatalf("readAt = %d, %v (equal %v)", n, err, bytes.Equal(got, synced))
	}
}

func TestStoreDetectsFlippedByte(t *testing.T) {
	s, _, err := openStore(t.TempDir(), 0, Faults{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.openForWrite(1, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	appendSync(t, s, c, 1, bytes.Repeat([]byte{1, 2, 3}, 50000), true)
	c.closeFiles()
	b, _ := os.ReadFile(s.dataPath(1))
	b[BlockSize+5] ^= 0x80
	os.WriteFile(s.dataPath(1), b, 0o644)
	buf := make([]byte, 10)
	if _, err := s.readAt(1, 1, buf, 0); err != nil {
		t.Fatalf("read of an intact block: %v", err)
	}
	if _, err := s.readAt(1, 1, buf, BlockSize); !errors.Is(err, dfs.ErrCorrupt) {
		t.Fatalf("read of the damaged block = %v, want ErrCorrupt", err)
	}
	if err := s.verify(1); !errors.Is(err, dfs.ErrCorrupt) {
		t.Fatalf("verify = %v, want ErrCorrupt", err)
	}
}

func TestStoreVersionsFenceWriters(t *testing.T) {
	dir := t.TempDir()
	s, _, err := openStore(dir, 0, Faults{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.openForWrite(3, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	appendSync(t, s, c, 1, []byte("synced"), true)
	appendSync(t, s, c, 1, []byte("-tail"), false)
	n, err := s.recoverChunk(3, 1, 2)
	if err != nil || n != 6 {
		t.Fatalf("recoverChunk = %d, %v; want 6", n, err)
	}
	c.ioMu.Lock()
	err = c.appendLocked(s, 1, 6, []byte("zombie"))
	c.ioMu.Unlock()
	if !errors.Is(err, dfs.ErrLeaseLost) || !errors.Is(err, wire.ErrStaleVersion) {
		t.Fatalf("append by the fenced writer = %v, want ErrLeaseLost", err)
	}
	if _, err := s.openForWrite(3, 1, 6); !errors.Is(err, dfs.ErrLeaseLost) {
		t.Fatalf("reopen at the old version = %v, want ErrLeaseLost", err)
	}
	if _, err := s.readAt(3, 3, make([]byte, 1), 0); !errors.Is(err, wire.ErrStaleVersion) {
		t.Fatalf("read wanting a newer version = %v, want ErrStaleVersion", err)
	}
	if err := s.finalize(3, 2, 4); err != nil {
		t.Fatal(err)
	}
	if st := c.state(); st.length != 4 || st.synced != 4 {
		t.Fatalf("after finalize state %+v, want length 4", st)
	}
	// The shrunk sidecar reloads cleanly with the new version.
	appendSync(t, s, c, 2, bytes.Repeat([]byte("y"), 3*BlockSize), true)
	if _, err := s.recoverChunk(3, 2, 3); err != nil {
		t.Fatal(err)
	}
	if err := s.finalize(3, 3, 10); err != nil {
		t.Fatal(err)
	}
	s2, corrupt, err := openStore(dir, 0, Faults{})
	if err != nil || len(corrupt) != 0 {
		t.Fatalf("reopen after shrinking: %v, corrupt %v", err, corrupt)
	}
	if c2, ok := s2.get(3); !ok || c2.state().length != 10 || c2.state().version != 3 {
		t.Fatalf("reloaded chunk 3: %v", ok)
	}
}

func TestStoreRefusesWhenFull(t *testing.T) {
	s, _, err := openStore(t.TempDir(), 100, Faults{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.openForWrite(1, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	c.ioMu.Lock()
	err = c.appendLocked(s, 1, 0, make([]byte, 101))
	c.ioMu.Unlock()
	if !errors.Is(err, dfs.ErrNoSpace) {
		t.Fatalf("append beyond capacity = %v, want ErrNoSpace", err)
	}
	appendSync(t, s, c, 1, make([]byte, 100), true)
	if h := s.health(); h == "" {
		t.Fatal("a full store reports healthy")
	}
}

func TestStoreFailedSyncIsSticky(t *testing.T) {
	fail := errors.New("injected EIO")
	s, _, err := openStore(t.TempDir(), 0, Faults{Sync: func(dfs.ChunkHandle) error { return fail }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.openForWrite(1, 1, 0); !errors.Is(err, wire.ErrDiskFailed) {
		t.Fatalf("openForWrite with failing fsync = %v, want ErrDiskFailed", err)
	}
	if _, err := s.openForWrite(2, 1, 0); !errors.Is(err, wire.ErrDiskFailed) {
		t.Fatalf("second openForWrite = %v, want ErrDiskFailed (sticky)", err)
	}
	if s.health() == "" {
		t.Fatal("store with a failed fsync reports healthy")
	}
}

func TestStoreDropsCorruptSidecarOnOpen(t *testing.T) {
	dir := t.TempDir()
	s, _, err := openStore(dir, 0, Faults{})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := s.openForWrite(9, 1, 0)
	appendSync(t, s, c, 1, []byte("x"), true)
	c.closeFiles()
	os.WriteFile(s.metaPath(9), []byte("garbage"), 0o644)
	s2, corrupt, err := openStore(dir, 0, Faults{})
	if err != nil {
		t.Fatal(err)
	}
	if len(corrupt) != 1 || corrupt[0] != 9 {
		t.Fatalf("corrupt on open = %v, want [9]", corrupt)
	}
	if _, ok := s2.get(9); ok {
		t.Fatal("corrupt chunk still served")
	}
}
