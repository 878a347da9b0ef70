package chunkserver

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
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
	dir, s, c := openTestChunk(t, 7, 1)
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
	b[DataFileOffset(BlockSize+5)] ^= 0x80
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
	dir, s, c := openTestChunk(t, 3, 1)
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

func TestStoreDropsCorruptChunkFileOnOpen(t *testing.T) {
	dir := t.TempDir()
	s, _, err := openStore(dir, 0, Faults{})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := s.openForWrite(9, 1, 0)
	appendSync(t, s, c, 1, []byte("x"), true)
	c.closeFiles()
	os.WriteFile(s.dataPath(9), []byte("garbage"), 0o644)
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

// TestStoreRejectsOldLayout: a directory written by format 1 (data file
// plus "<handle>.meta" sidecar) is refused, not misread.
func TestStoreRejectsOldLayout(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "0000000000000007.chunk"), []byte("raw chunk bytes"), 0o644)
	os.WriteFile(filepath.Join(dir, "0000000000000007.meta"), []byte("CCHK\x01"), 0o644)
	if _, _, err := openStore(dir, 0, Faults{}); !errors.Is(err, ErrOldLayout) {
		t.Fatalf("openStore of a format 1 directory = %v, want ErrOldLayout", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "0000000000000007.chunk")); err != nil {
		t.Fatalf("the old replica was touched: %v", err)
	}
}

// crashCopy copies dir as a crash would leave it if everything written
// were durable; tests then damage the copy the way a crash could.
func crashCopy(t *testing.T, dir string) string {
	t.Helper()
	out := t.TempDir()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(out, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func reload(t *testing.T, dir string, h uint64) (*store, *chunk) {
	t.Helper()
	s, corrupt, err := openStore(dir, 0, Faults{})
	if err != nil || len(corrupt) != 0 {
		t.Fatalf("reopen: %v, corrupt %v", err, corrupt)
	}
	c, ok := s.get(h)
	if !ok {
		t.Fatalf("chunk %x lost", h)
	}
	return s, c
}

func checkHolds(t *testing.T, s *store, h uint64, want []byte) {
	t.Helper()
	if st, _ := s.get(h); st.state().length != int64(len(want)) {
		t.Fatalf("chunk holds %d bytes, want %d", st.state().length, len(want))
	}
	got := make([]byte, len(want))
	if n, err := s.readAt(h, 0, got, 0); err != nil || n != len(want) || !bytes.Equal(got, want) {
		t.Fatalf("readAt = %d, %v (equal %v)", n, err, bytes.Equal(got, want))
	}
	if err := s.verify(h); err != nil {
		t.Fatal(err)
	}
}

// TestStoreCrashDuringSyncKeepsSyncedBytes: a crash in the middle of a
// Sync (any part of its data, trailers and commit slot durable, the rest
// not, garbage beyond) never costs the bytes the previous Sync acknowledged,
// and the reloaded chunk accepts appends that reload in turn.
func TestStoreCrashDuringSyncKeepsSyncedBytes(t *testing.T) {
	dir, s, c := openTestChunk(t, 7, 1)
	synced := bytes.Repeat([]byte("synced!"), 30000) // 210000 bytes: 3 blocks + a partial one
	appendSync(t, s, c, 1, synced, true)
	before, _ := os.ReadFile(s.dataPath(7))
	more := bytes.Repeat([]byte("more"), 40000) // completes block 3, ends in block 5
	appendSync(t, s, c, 1, more, true)
	after, _ := os.ReadFile(s.dataPath(7))
	c.closeFiles()
	all := append(bytes.Clone(synced), more...)
	seq := c.seq

	for _, tc := range []struct {
		name   string
		damage func(b []byte) []byte
		want   []byte
	}{
		{"second sync complete", func(b []byte) []byte { return b }, all},
		{"slot torn", func(b []byte) []byte {
			off := slotOffset(seq)
			copy(b[off+20:off+slotSize], before[off+20:])
			return b
		}, synced},
		{"slot durable, data not", func(b []byte) []byte {
			return append(b[:len(before)], make([]byte, len(after)-len(before))...)
		}, synced},
		{"slot durable, data half", func(b []byte) []byte {
			half := len(before) + (len(after)-len(before))/2
			return append(b[:half], make([]byte, len(after)-half)...)
		}, synced},
		{"slot durable, file cut", func(b []byte) []byte { return b[:len(after)-1] }, synced},
		{"slot not written, data durable", func(b []byte) []byte {
			off := slotOffset(seq)
			copy(b[off:off+slotSize], before[off:])
			return b
		}, synced},
		{"garbage after the end", func(b []byte) []byte {
			return append(b, bytes.Repeat([]byte{0xa5}, 3*BlockSize)...)
		}, all},
		{"older slot flipped", func(b []byte) []byte { b[slotOffset(seq-1)+30] ^= 4; return b }, all},
		{"newer slot flipped", func(b []byte) []byte { b[slotOffset(seq)+30] ^= 4; return b }, synced},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := crashCopy(t, dir)
			p := filepath.Join(d, filepath.Base(s.dataPath(7)))
			os.WriteFile(p, tc.damage(bytes.Clone(after)), 0o644)
			s2, c2 := reload(t, d, 7)
			checkHolds(t, s2, 7, tc.want)
			// The replica goes on: append, sync, crash, reload.
			tail := []byte("after the crash")
			appendSync(t, s2, c2, 1, tail, true)
			c2.closeFiles()
			s3, _ := reload(t, d, 7)
			checkHolds(t, s3, 7, append(bytes.Clone(tc.want), tail...))
		})
	}
}

// TestStoreTruncationCommitsFirst: a writer reopening below the synced
// length (and replica recovery) makes the shorter length durable before the
// old bytes are cut or overwritten, so a crash right after leaves either
// state, never a mix.
func TestStoreTruncationCommitsFirst(t *testing.T) {
	dir, s, c := openTestChunk(t, 4, 1)
	data := bytes.Repeat([]byte("truncate"), 25000) // 200000 bytes
	appendSync(t, s, c, 1, data, true)
	c.closeFiles()
	if _, err := s.openForWrite(4, 1, 70000); err != nil {
		t.Fatal(err)
	}
	// Crash before any new append: the cut is durable.
	d := crashCopy(t, dir)
	s2, _ := reload(t, d, 4)
	checkHolds(t, s2, 4, data[:70000])
	// New bytes over the cut region, unsynced, then a crash.
	appendSync(t, s, c, 1, bytes.Repeat([]byte("X"), 100000), false)
	c.closeFiles()
	d = crashCopy(t, dir)
	s3, _ := reload(t, d, 4)
	checkHolds(t, s3, 4, data[:70000])
	// Version bump by recovery: durable, and reloads.
	if _, err := s.recoverChunk(4, 1, 2); err != nil {
		t.Fatal(err)
	}
	s4, c4 := reload(t, crashCopy(t, dir), 4)
	if st := c4.state(); st.version != 2 || st.length != 70000 {
		t.Fatalf("after recovery reloaded state %+v, want version 2, 70000 bytes", st)
	}
	checkHolds(t, s4, 4, data[:70000])
}

// TestStoreInstallReloads: a replica copy reloads with its version and
// bytes, for lengths on and off block boundaries.
func TestStoreInstallReloads(t *testing.T) {
	for _, n := range []int{0, 1, BlockSize, BlockSize + 1, 3*BlockSize - 1, (1 << 20) + 5} {
		dir := t.TempDir()
		s, _, err := openStore(dir, 0, Faults{})
		if err != nil {
			t.Fatal(err)
		}
		data := bytes.Repeat([]byte{byte(n), 1, 2}, n/3+1)[:n]
		if err := s.install(6, 3, int64(n), bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		checkHolds(t, s, 6, data)
		s2, c2 := reload(t, dir, 6)
		if c2.state().version != 3 {
			t.Fatalf("installed replica reloaded at version %d, want 3", c2.state().version)
		}
		checkHolds(t, s2, 6, data)
		// And it takes appends.
		c3, err := s2.openForWrite(6, 4, int64(n))
		if err != nil {
			t.Fatal(err)
		}
		appendSync(t, s2, c3, 4, []byte("more"), true)
		c3.closeFiles()
		s3, _ := reload(t, dir, 6)
		checkHolds(t, s3, 6, append(bytes.Clone(data), "more"...))
	}
}

// TestStoreRemovedStaysRemoved: recovery or finalize racing a removal
// (they looked the chunk up first) fail with ErrNoChunk and leave no file
// behind that would resurrect the replica at the next start.
func TestStoreRemovedStaysRemoved(t *testing.T) {
	_, s, c := openTestChunk(t, 2, 1)
	appendSync(t, s, c, 1, []byte("doomed"), true)
	s.remove(2)
	c.ioMu.Lock()
	err := c.syncLocked(s)
	c.ioMu.Unlock()
	if !errors.Is(err, wire.ErrNoChunk) {
		t.Fatalf("sync of a removed chunk = %v, want ErrNoChunk", err)
	}
	if _, err := os.Stat(s.dataPath(2)); !os.IsNotExist(err) {
		t.Fatalf("removed chunk's file exists again: %v", err)
	}
	if s.health() != "" {
		t.Fatalf("store unhealthy after a sync of a removed chunk: %s", s.health())
	}
}

// openTestChunk opens a store in a new directory and chunk h in it for a
// writer at version.
func openTestChunk(t *testing.T, h, version uint64) (string, *store, *chunk) {
	t.Helper()
	dir := t.TempDir()
	s, _, err := openStore(dir, 0, Faults{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.openForWrite(h, version, 0)
	if err != nil {
		t.Fatal(err)
	}
	return dir, s, c
}

// TestStoreZeroAhead: a replica synced every few hundred bytes (a commit
// log) has zeros written ahead of its data. A crash at any point keeps
// exactly the synced bytes (the zeros, and a last commit whose data never
// reached the disk, are not part of the chunk), and closing the write
// handle trims the zeros.
func TestStoreZeroAhead(t *testing.T) {
	dir, s, c := openTestChunk(t, 7, 1)
	var synced []byte
	for i := range 300 { // 300 × 700 B: crosses blocks and a zero-ahead step
		rec := bytes.Repeat([]byte{byte('a' + i%26)}, 700)
		appendSync(t, s, c, 1, rec, true)
		synced = append(synced, rec...)
	}
	fi, err := os.Stat(s.dataPath(7))
	if err != nil {
		t.Fatal(err)
	}
	if want := fileSize(int64(len(synced))); fi.Size() <= want {
		t.Fatalf("file is %d bytes, want zeros ahead of the data's %d", fi.Size(), want)
	}
	appendSync(t, s, c, 1, []byte("written, never synced"), false)

	t.Run("crash", func(t *testing.T) {
		d := crashCopy(t, dir)
		s2, c2 := reload(t, d, 7)
		checkHolds(t, s2, 7, synced)
		appendSync(t, s2, c2, 1, []byte("after"), true)
		c2.closeFiles()
		s3, _ := reload(t, d, 7)
		checkHolds(t, s3, 7, append(bytes.Clone(synced), "after"...))
	})
	t.Run("last commit's data lost", func(t *testing.T) {
		// The newest slot is durable but the 700 bytes it covers read as
		// the zeros written ahead: the older commit is the chunk.
		d := crashCopy(t, dir)
		p := filepath.Join(d, filepath.Base(s.dataPath(7)))
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		n := int64(len(synced))
		from, to := DataFileOffset(n-700), fileSize(n)
		clear(b[from:to])
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		s2, _ := reload(t, d, 7)
		checkHolds(t, s2, 7, synced[:n-700])
	})
	t.Run("close trims", func(t *testing.T) {
		c.closeFiles()
		fi, err := os.Stat(s.dataPath(7))
		if err != nil {
			t.Fatal(err)
		}
		if want := fileSize(c.state().length); fi.Size() != want {
			t.Fatalf("closed file is %d bytes, want %d", fi.Size(), want)
		}
	})
}
