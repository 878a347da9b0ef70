package chunkserver

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"cellar/dfs"
	"cellar/dfs/internal/wire"
)

// Faults injects storage failures (tests and fault drills). A nil func never
// fails. The error a hook returns is treated as the disk's own error.
type Faults struct {
	// Write is called before chunk data is written.
	Write func(handle dfs.ChunkHandle) error
	// Sync is called before a chunk is fsynced.
	Sync func(handle dfs.ChunkHandle) error
}

// store is the chunkserver's local storage: one data file and one checksum
// sidecar per chunk under dir. Safe for concurrent use.
type store struct {
	dir      string
	capacity int64 // bytes; 0 = unlimited
	faults   Faults

	used atomic.Int64 // bytes of chunk data held

	// health: once a write or fsync fails the store refuses writes
	// (reported to the master) until the process restarts.
	failed atomic.Pointer[string]

	mu     sync.Mutex
	chunks map[uint64]*chunk // guarded by mu
}

// chunk is one replica. ioMu serialises mutations of the files (appends,
// syncs, truncations); mu guards the fields and is held for reading across
// a read's file I/O so that a truncation cannot change bytes under a
// checksum check (appends never rewrite bytes a reader can see).
type chunk struct {
	handle uint64
	ioMu   sync.Mutex
	mu     sync.RWMutex
	// guarded by mu:
	version uint64
	length  int64    // bytes written
	synced  int64    // bytes fsynced with their checksums
	crcs    []uint32 // one per block of length
	removed bool
	// guarded by ioMu:
	data      *os.File // open while being written; nil otherwise
	meta      *os.File
	dirSynced bool  // the files' directory entries are durable
	metaLen   int64 // sidecar size on disk, -1 if unknown
}

func (s *store) dataPath(h uint64) string { return filepath.Join(s.dir, fmt.Sprintf("%016x.chunk", h)) }
func (s *store) metaPath(h uint64) string { return filepath.Join(s.dir, fmt.Sprintf("%016x.meta", h)) }

// openStore loads every chunk under dir. A sidecar that does not decode, or
// a data file shorter than its sidecar's length, is a corrupt replica: its
// files are removed and its handle returned in corrupt. Data beyond the
// synced length (written before a crash, never synced) is truncated away.
func openStore(dir string, capacity int64, faults Faults) (s *store, corrupt []uint64, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("cellar/dfs/chunkserver: %w", err)
	}
	s = &store{dir: dir, capacity: capacity, faults: faults, chunks: map[uint64]*chunk{}}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("cellar/dfs/chunkserver: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			os.Remove(filepath.Join(dir, name)) // an interrupted replica copy
			continue
		}
		if !strings.HasSuffix(name, ".meta") {
			continue
		}
		h, perr := strconv.ParseUint(strings.TrimSuffix(name, ".meta"), 16, 64)
		if perr != nil {
			continue
		}
		c, lerr := s.load(h)
		if lerr != nil {
			os.Remove(s.dataPath(h))
			os.Remove(s.metaPath(h))
			corrupt = append(corrupt, h)
			continue
		}
		s.chunks[h] = c
		s.used.Add(c.length)
	}
	return s, corrupt, nil
}

func (s *store) load(h uint64) (*chunk, error) {
	b, err := os.ReadFile(s.metaPath(h))
	if err != nil {
		return nil, err
	}
	m, err := decodeMeta(b)
	if err != nil {
		return nil, err
	}
	if m.Handle != h {
		return nil, fmt.Errorf("%w: sidecar of %x names chunk %x", ErrCorruptMeta, h, m.Handle)
	}
	fi, err := os.Stat(s.dataPath(h))
	if err != nil {
		return nil, err
	}
	switch {
	case uint64(fi.Size()) < m.Length:
		return nil, fmt.Errorf("%w: data file of %x has %d bytes, sidecar covers %d", dfs.ErrCorrupt, h, fi.Size(), m.Length)
	case uint64(fi.Size()) > m.Length:
		if err := os.Truncate(s.dataPath(h), int64(m.Length)); err != nil {
			return nil, err
		}
	}
	return &chunk{handle: h, dirSynced: true, version: m.Version, length: int64(m.Length), synced: int64(m.Length), crcs: m.CRCs}, nil
}

func (s *store) get(h uint64) (*chunk, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.chunks[h]
	return c, ok
}

// health returns "" when writes are accepted, else why not.
func (s *store) health() string {
	if p := s.failed.Load(); p != nil {
		return *p
	}
	if s.capacity > 0 && s.used.Load() >= s.capacity {
		return "disk full"
	}
	return ""
}

func (s *store) fail(err error) error {
	msg := err.Error()
	s.failed.CompareAndSwap(nil, &msg)
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("cellar/dfs/chunkserver: %w: %v", dfs.ErrNoSpace, err)
	}
	return fmt.Errorf("cellar/dfs/chunkserver: %w: %v", wire.ErrDiskFailed, err)
}

func (s *store) checkWritable(n int64) error {
	if p := s.failed.Load(); p != nil {
		return fmt.Errorf("cellar/dfs/chunkserver: refusing writes: %w: %s", wire.ErrDiskFailed, *p)
	}
	if s.capacity > 0 && s.used.Load()+n > s.capacity {
		return fmt.Errorf("cellar/dfs/chunkserver: %w: %d of %d bytes used", dfs.ErrNoSpace, s.used.Load(), s.capacity)
	}
	return nil
}

// openForWrite readies chunk h for a writer at version, positioned at
// start: a new chunk is created (start must be 0); an existing one must not
// be newer than version, takes version, and drops bytes beyond start.
func (s *store) openForWrite(h, version uint64, start int64) (*chunk, error) {
	if err := s.checkWritable(0); err != nil {
		return nil, err
	}
	s.mu.Lock()
	c, ok := s.chunks[h]
	if !ok {
		if start != 0 {
			s.mu.Unlock()
			return nil, fmt.Errorf("cellar/dfs/chunkserver: chunk %x at offset %d: %w", h, start, wire.ErrNoChunk)
		}
		c = &chunk{handle: h, version: version}
		s.chunks[h] = c
	}
	s.mu.Unlock()
	c.ioMu.Lock()
	defer c.ioMu.Unlock()
	c.mu.RLock()
	cur, length, removed := c.version, c.length, c.removed
	c.mu.RUnlock()
	switch {
	case removed:
		return nil, fmt.Errorf("cellar/dfs/chunkserver: chunk %x: %w", h, wire.ErrNoChunk)
	case cur > version:
		return nil, fmt.Errorf("cellar/dfs/chunkserver: chunk %x is at version %d, writer at %d: %w: %w", h, cur, version, wire.ErrStaleVersion, dfs.ErrLeaseLost)
	case length < start:
		return nil, fmt.Errorf("cellar/dfs/chunkserver: chunk %x holds %d bytes, writer starts at %d: %w", h, length, start, wire.ErrBadRequest)
	}
	if err := c.openFilesLocked(s); err != nil {
		return nil, s.fail(err)
	}
	if length > start {
		if err := c.truncateLocked(s, start); err != nil {
			return nil, err
		}
	}
	if cur != version || !ok {
		c.mu.Lock()
		c.version = version
		c.mu.Unlock()
		if err := c.syncLocked(s); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *chunk) openFilesLocked(s *store) error {
	if c.data != nil {
		return nil
	}
	d, err := os.OpenFile(s.dataPath(c.handle), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	m, err := os.OpenFile(s.metaPath(c.handle), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		d.Close()
		return err
	}
	c.data, c.meta = d, m
	c.metaLen = -1
	if fi, err := m.Stat(); err == nil {
		c.metaLen = fi.Size()
	}
	return nil
}

// closeFiles releases the write handles (the writer went away).
func (c *chunk) closeFiles() {
	c.ioMu.Lock()
	defer c.ioMu.Unlock()
	if c.data != nil {
		c.data.Close()
		c.meta.Close()
		c.data, c.meta = nil, nil
	}
}

// truncateLocked cuts the chunk to n bytes and recomputes the last block's
// checksum from disk. Callers hold ioMu.
func (c *chunk) truncateLocked(s *store, n int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n >= c.length {
		return nil
	}
	if err := c.data.Truncate(n); err != nil {
		return s.fail(err)
	}
	s.used.Add(n - c.length)
	c.length = n
	c.crcs = c.crcs[:numBlocks(uint64(n))]
	if n%BlockSize != 0 {
		last := len(c.crcs) - 1
		buf := make([]byte, n-int64(last)*BlockSize)
		if _, err := c.data.ReadAt(buf, int64(last)*BlockSize); err != nil {
			return s.fail(err)
		}
		c.crcs[last] = crc32.Checksum(buf, castagnoli)
	}
	c.synced = min(c.synced, n)
	return nil
}

// append writes p at off (which must be the chunk's length) for a writer at
// version. Callers hold ioMu (a pipeline stream owns the chunk while open).
func (c *chunk) appendLocked(s *store, version uint64, off int64, p []byte) error {
	if err := s.checkWritable(int64(len(p))); err != nil {
		return err
	}
	c.mu.RLock()
	cur, length, removed := c.version, c.length, c.removed
	c.mu.RUnlock()
	switch {
	case removed:
		return fmt.Errorf("cellar/dfs/chunkserver: chunk %x: %w", c.handle, wire.ErrNoChunk)
	case cur != version:
		return fmt.Errorf("cellar/dfs/chunkserver: chunk %x is at version %d, writer at %d: %w: %w", c.handle, cur, version, wire.ErrStaleVersion, dfs.ErrLeaseLost)
	case off != length:
		return fmt.Errorf("cellar/dfs/chunkserver: chunk %x: write at %d, length is %d: %w", c.handle, off, length, wire.ErrBadRequest)
	}
	if s.faults.Write != nil {
		if err := s.faults.Write(dfs.ChunkHandle(c.handle)); err != nil {
			return s.fail(err)
		}
	}
	if err := c.openFilesLocked(s); err != nil {
		return s.fail(err)
	}
	if _, err := c.data.WriteAt(p, off); err != nil {
		return s.fail(err)
	}
	c.mu.Lock()
	c.crcs = extendCRCs(c.crcs, c.length, p)
	c.length += int64(len(p))
	c.mu.Unlock()
	s.used.Add(int64(len(p)))
	return nil
}

// extendCRCs updates the per-block checksums of a chunk of length bytes for
// p appended at its end.
func extendCRCs(crcs []uint32, length int64, p []byte) []uint32 {
	for len(p) > 0 {
		inBlock := length % BlockSize
		n := min(int64(len(p)), BlockSize-inBlock)
		if inBlock == 0 {
			crcs = append(crcs, crc32.Checksum(p[:n], castagnoli))
		} else {
			crcs[len(crcs)-1] = crc32.Update(crcs[len(crcs)-1], castagnoli, p[:n])
		}
		length += n
		p = p[n:]
	}
	return crcs
}

// syncLocked makes the chunk's data and checksums durable: the data file
// and the rewritten sidecar are fdatasynced concurrently. Callers hold ioMu.
func (c *chunk) syncLocked(s *store) error {
	if s.faults.Sync != nil {
		if err := s.faults.Sync(dfs.ChunkHandle(c.handle)); err != nil {
			return s.fail(err)
		}
	}
	if err := c.openFilesLocked(s); err != nil {
		return s.fail(err)
	}
	c.mu.RLock()
	m := chunkMeta{Handle: c.handle, Version: c.version, Length: uint64(c.length), CRCs: c.crcs}
	enc := encodeMeta(make([]byte, 0, metaHeaderSize+4*len(m.CRCs)), m)
	c.mu.RUnlock()
	derr := make(chan error, 1)
	go func() { derr <- unix.Fdatasync(int(c.data.Fd())) }()
	var err error
	if _, err = c.meta.WriteAt(enc, 0); err == nil && (c.metaLen < 0 || int64(len(enc)) < c.metaLen) {
		// Only a truncation shrinks the sidecar; ftruncate is costly, so
		// skip it when the sidecar only grew.
		err = c.meta.Truncate(int64(len(enc)))
	}
	if err == nil {
		c.metaLen = int64(len(enc))
		err = unix.Fdatasync(int(c.meta.Fd()))
	}
	if e := <-derr; err == nil {
		err = e
	}
	if err == nil && !c.dirSynced {
		if err = syncDir(s.dir); err == nil {
			c.dirSynced = true
		}
	}
	if err != nil {
		return s.fail(err)
	}
	c.mu.Lock()
	c.synced = int64(m.Length)
	c.mu.Unlock()
	return nil
}

type chunkState struct {
	version        uint64
	length, synced int64
}

func (c *chunk) state() chunkState {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return chunkState{c.version, c.length, c.synced}
}

// readAt reads and verifies [off, off+len(p)) of the chunk for a reader at
// version (the replica may be newer, never older). Every 64 KiB block the
// range touches is checked against its CRC; a mismatch returns dfs.ErrCorrupt.
func (s *store) readAt(h, version uint64, p []byte, off int64) (int, error) {
	c, ok := s.get(h)
	if !ok {
		return 0, fmt.Errorf("cellar/dfs/chunkserver: chunk %x: %w", h, wire.ErrNoChunk)
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.removed {
		return 0, fmt.Errorf("cellar/dfs/chunkserver: chunk %x: %w", h, wire.ErrNoChunk)
	}
	if c.version < version {
		return 0, fmt.Errorf("cellar/dfs/chunkserver: chunk %x at version %d, reader wants %d: %w", h, c.version, version, wire.ErrStaleVersion)
	}
	if off < 0 || off > c.length {
		return 0, fmt.Errorf("cellar/dfs/chunkserver: chunk %x: read at %d of %d bytes: %w", h, off, c.length, dfs.ErrPastEnd)
	}
	end := min(off+int64(len(p)), c.length)
	if end == off {
		return 0, nil
	}
	f, err := os.Open(s.dataPath(h))
	if err != nil {
		return 0, fmt.Errorf("cellar/dfs/chunkserver: chunk %x: %w: %v", h, dfs.ErrCorrupt, err)
	}
	defer f.Close()
	first, last := off/BlockSize, (end-1)/BlockSize
	bstart := first * BlockSize
	bend := min((last+1)*BlockSize, c.length)
	buf := make([]byte, bend-bstart)
	if _, err := f.ReadAt(buf, bstart); err != nil {
		return 0, fmt.Errorf("cellar/dfs/chunkserver: chunk %x: %w: %v", h, dfs.ErrCorrupt, err)
	}
	for b := first; b <= last; b++ {
		lo := (b - first) * BlockSize
		hi := min(lo+BlockSize, int64(len(buf)))
		if got := crc32.Checksum(buf[lo:hi], castagnoli); got != c.crcs[b] {
			return 0, fmt.Errorf("cellar/dfs/chunkserver: chunk %x block %d: checksum %#x, want %#x: %w", h, b, got, c.crcs[b], dfs.ErrCorrupt)
		}
	}
	return copy(p, buf[off-bstart:end-bstart]), nil
}

// verify checks every block of chunk h (the scrubber).
func (s *store) verify(h uint64) error {
	c, ok := s.get(h)
	if !ok {
		return nil
	}
	st := c.state()
	buf := make([]byte, min(st.length, 4<<20))
	for off := int64(0); off < st.length; off += int64(len(buf)) {
		n := min(int64(len(buf)), st.length-off)
		if _, err := s.readAt(h, 0, buf[:n], off); err != nil {
			if errors.Is(err, wire.ErrNoChunk) {
				return nil
			}
			return err
		}
	}
	return nil
}

// remove deletes chunk h's files; it reports whether the chunk existed.
func (s *store) remove(h uint64) bool {
	s.mu.Lock()
	c, ok := s.chunks[h]
	delete(s.chunks, h)
	s.mu.Unlock()
	if !ok {
		return false
	}
	c.ioMu.Lock()
	defer c.ioMu.Unlock()
	c.mu.Lock()
	c.removed = true
	s.used.Add(-c.length)
	c.mu.Unlock()
	if c.data != nil {
		c.data.Close()
		c.meta.Close()
		c.data, c.meta = nil, nil
	}
	os.Remove(s.dataPath(h))
	os.Remove(s.metaPath(h))
	return true
}

// recoverChunk fences chunk h at newVersion (lease recovery) and truncates
// it to its synced length, which it returns. A replica older than
// oldVersion missed a bump and is stale.
func (s *store) recoverChunk(h, oldVersion, newVersion uint64) (int64, error) {
	c, ok := s.get(h)
	if !ok {
		return 0, fmt.Errorf("cellar/dfs/chunkserver: chunk %x: %w", h, wire.ErrNoChunk)
	}
	c.ioMu.Lock()
	defer c.ioMu.Unlock()
	st := c.state()
	if st.version < oldVersion {
		return 0, fmt.Errorf("cellar/dfs/chunkserver: chunk %x at version %d, recovery of %d: %w", h, st.version, oldVersion, wire.ErrStaleVersion)
	}
	if st.version > newVersion {
		return 0, fmt.Errorf("cellar/dfs/chunkserver: chunk %x at version %d, above recovery's %d: %w", h, st.version, newVersion, wire.ErrStaleVersion)
	}
	if err := c.openFilesLocked(s); err != nil {
		return 0, s.fail(err)
	}
	defer c.closeFilesLocked()
	if err := c.truncateLocked(s, st.synced); err != nil {
		return 0, err
	}
	c.mu.Lock()
	c.version = newVersion
	c.mu.Unlock()
	if err := c.syncLocked(s); err != nil {
		return 0, err
	}
	return st.synced, nil
}

func (c *chunk) closeFilesLocked() {
	if c.data != nil {
		c.data.Close()
		c.meta.Close()
		c.data, c.meta = nil, nil
	}
}

// finalize settles chunk h at version and length after recovery.
func (s *store) finalize(h, version uint64, length int64) error {
	c, ok := s.get(h)
	if !ok {
		return fmt.Errorf("cellar/dfs/chunkserver: chunk %x: %w", h, wire.ErrNoChunk)
	}
	c.ioMu.Lock()
	defer c.ioMu.Unlock()
	st := c.state()
	if st.version > version {
		return fmt.Errorf("cellar/dfs/chunkserver: chunk %x at version %d, finalize at %d: %w", h, st.version, version, wire.ErrStaleVersion)
	}
	if st.synced < length {
		return fmt.Errorf("cellar/dfs/chunkserver: chunk %x has %d synced bytes, finalize at %d: %w", h, st.synced, length, wire.ErrBadRequest)
	}
	if err := c.openFilesLocked(s); err != nil {
		return s.fail(err)
	}
	defer c.closeFilesLocked()
	if err := c.truncateLocked(s, length); err != nil {
		return err
	}
	c.mu.Lock()
	c.version = version
	c.mu.Unlock()
	return c.syncLocked(s)
}

// install adds a complete replica copied from elsewhere: r yields exactly
// length bytes. The copy is written to temporary files, synced and renamed
// into place, so a crash never leaves half a replica under the real name.
func (s *store) install(h, version uint64, length int64, r io.Reader) error {
	if err := s.checkWritable(length); err != nil {
		return err
	}
	if c, ok := s.get(h); ok {
		if st := c.state(); st.version >= version && st.synced >= length {
			return nil
		}
		s.remove(h)
	}
	tmpData, tmpMeta := s.dataPath(h)+".tmp", s.metaPath(h)+".tmp"
	defer os.Remove(tmpData)
	defer os.Remove(tmpMeta)
	d, err := os.OpenFile(tmpData, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return s.fail(err)
	}
	defer d.Close()
	var crcs []uint32
	var n int64
	buf := make([]byte, 1<<20)
	for n < length {
		k, rerr := r.Read(buf[:min(int64(len(buf)), length-n)])
		if k > 0 {
			if s.faults.Write != nil {
				if err := s.faults.Write(dfs.ChunkHandle(h)); err != nil {
					return s.fail(err)
				}
			}
			if _, err := d.Write(buf[:k]); err != nil {
				return s.fail(err)
			}
			crcs = extendCRCs(crcs, n, buf[:k])
			n += int64(k)
		}
		if rerr == io.EOF && n < length {
			return fmt.Errorf("cellar/dfs/chunkserver: copy of chunk %x ended at %d of %d bytes: %w", h, n, length, io.ErrUnexpectedEOF)
		}
		if rerr != nil && rerr != io.EOF {
			return rerr
		}
	}
	if s.faults.Sync != nil {
		if err := s.faults.Sync(dfs.ChunkHandle(h)); err != nil {
			return s.fail(err)
		}
	}
	if err := unix.Fdatasync(int(d.Fd())); err != nil {
		return s.fail(err)
	}
	enc := encodeMeta(nil, chunkMeta{Handle: h, Version: version, Length: uint64(length), CRCs: crcs})
	if err := writeFileSync(tmpMeta, enc); err != nil {
		return s.fail(err)
	}
	if err := os.Rename(tmpData, s.dataPath(h)); err != nil {
		return s.fail(err)
	}
	if err := os.Rename(tmpMeta, s.metaPath(h)); err != nil {
		return s.fail(err)
	}
	if err := syncDir(s.dir); err != nil {
		return s.fail(err)
	}
	s.mu.Lock()
	s.chunks[h] = &chunk{handle: h, dirSynced: true, version: version, length: length, synced: length, crcs: crcs}
	s.mu.Unlock()
	s.used.Add(length)
	return nil
}

func writeFileSync(name string, b []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = unix.Fdatasync(int(f.Fd()))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// report lists every replica held, sorted by handle.
func (s *store) report() []reportEntry {
	s.mu.Lock()
	cs := make([]*chunk, 0, len(s.chunks))
	for _, c := range s.chunks {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	out := make([]reportEntry, 0, len(cs))
	for _, c := range cs {
		st := c.state()
		out = append(out, reportEntry{handle: c.handle, chunkState: st})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].handle < out[j].handle })
	return out
}

type reportEntry struct {
	handle uint64
	chunkState
}

func (s *store) close() {
	s.mu.Lock()
	cs := make([]*chunk, 0, len(s.chunks))
	for _, c := range s.chunks {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	for _, c := range cs {
		c.closeFiles()
	}
}
