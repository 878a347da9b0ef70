package chunkserver

import (
	"encoding/binary"
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

// store is the chunkserver's local storage: one chunk file per replica
// under dir (layout in format.go). Safe for concurrent use.
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

// chunk is one replica. ioMu serialises mutations of the file (appends,
// commits, truncations); mu guards the fields and is held for reading
// across a read's file I/O so that a truncation cannot change bytes under a
// checksum check (appends never rewrite bytes a reader can see).
type chunk struct {
	handle uint64
	ioMu   sync.Mutex
	mu     sync.RWMutex
	// guarded by mu:
	version uint64
	length  int64  // bytes written
	synced  int64  // bytes committed (fdatasynced with their checksums)
	tailCRC uint32 // CRC32C of the partial last block, bytes [fullBlocks(length)×BlockSize, length)
	removed bool
	// guarded by ioMu:
	f         *os.File // open while being written; nil otherwise
	seq       uint64   // seq of the newest durable commit slot; 0 = none yet
	dirSynced bool     // the file's directory entry is durable
	iov       [][]byte // scratch for appendLocked
	trailers  []byte   // scratch for appendLocked
	// Zero-ahead (see zeroAheadLocked): the file is known to hold written
	// zeros or data up to zeroedTo (a file offset; 0 = nothing beyond the
	// data). smallSyncs is set while the writer syncs often.
	zeroedTo   int64
	smallSyncs bool
	noZero     bool // a zero-ahead write failed: do not try again
}

// Zero-ahead. A replica synced after every few KiB (a commit log) would pay
// for a journal commit at every fdatasync, because every append grows the
// file. While a writer's syncs cover less than smallSyncBytes each, the
// replica writes zeros ahead of the data, zeroAheadStep at a time, so that
// most appends overwrite blocks the file already has and their fdatasync
// flushes data only (on this machine's ext4, a 4 KiB append + fdatasync on
// three files at once: 540 µs; into zeroed blocks: 325 µs). The zeros are
// never part of the chunk: the commit slot holds the length, recovery cuts
// what lies beyond it, and closing the write handle trims them.
const (
	smallSyncBytes = 32 << 10
	zeroAheadStep  = 1 << 20
)

var zeroBlock = make([]byte, zeroAheadStep)

// zeroAheadLocked extends the file with zeros past end (the file offset
// just written) when it is in small-sync mode and the zeroed room ahead is
// short. It is an optimisation only: a failure (say, a full disk) stops it
// for this chunk and is not reported; the data write itself reports its own.
func (c *chunk) zeroAheadLocked(end int64) {
	if !c.smallSyncs || c.noZero || end+zeroAheadStep/4 <= c.zeroedTo {
		return
	}
	from := max(end, c.zeroedTo)
	to := (end/zeroAheadStep + 2) * zeroAheadStep
	for from < to {
		n := min(to-from, zeroAheadStep)
		if _, err := c.f.WriteAt(zeroBlock[:n], from); err != nil {
			c.noZero = true
			return
		}
		from += n
		c.zeroedTo = from
	}
}

func (s *store) dataPath(h uint64) string { return filepath.Join(s.dir, fmt.Sprintf("%016x.chunk", h)) }

// openStore loads every chunk under dir. A chunk file with no usable
// commit slot, or whose committed bytes do not verify, is a corrupt
// replica: its file is removed and its handle returned in corrupt. Bytes
// beyond the committed length (written before a crash, never synced) are
// truncated away. A directory holding format 1 sidecars fails with
// ErrOldLayout.
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
		if strings.HasSuffix(e.Name(), ".meta") || strings.HasSuffix(e.Name(), ".meta.tmp") {
			return nil, nil, fmt.Errorf("%w: %s holds %s; move the old replicas away (they are re-replicated from other servers)", ErrOldLayout, dir, e.Name())
		}
	}
	buf := make([]byte, BlockSize+trailerSize)
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			os.Remove(filepath.Join(dir, name)) // an interrupted replica copy
			continue
		}
		if !strings.HasSuffix(name, ".chunk") {
			continue
		}
		h, perr := strconv.ParseUint(strings.TrimSuffix(name, ".chunk"), 16, 64)
		if perr != nil {
			continue
		}
		c, lerr := s.load(h, buf)
		if lerr != nil {
			os.Remove(s.dataPath(h))
			corrupt = append(corrupt, h)
			continue
		}
		s.chunks[h] = c
		s.used.Add(c.length)
	}
	return s, corrupt, nil
}

func (s *store) load(h uint64, buf []byte) (*chunk, error) {
	f, err := os.OpenFile(s.dataPath(h), os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	sl, err := recoverFile(f, fi.Size(), h, buf)
	if err != nil {
		return nil, err
	}
	length := int64(sl.Length)
	if fi.Size() > fileSize(length) {
		// Written, never committed. Cut it so later appends start clean;
		// the cut need not be durable (recovery ignores such bytes).
		if err := f.Truncate(fileSize(length)); err != nil {
			return nil, err
		}
	}
	return &chunk{handle: h, dirSynced: true, seq: sl.Seq, version: sl.Version, length: length, synced: length, tailCRC: sl.TailCRC}, nil
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
// be newer than version, takes version, and drops bytes beyond start. A
// new chunk, a version change or a cut below the synced length is
// committed (durable) before it returns.
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
	if err := c.openFileLocked(s); err != nil {
		return nil, s.fail(err)
	}
	return c, c.resetLocked(s, version, start, cur != version || c.seq == 0)
}

// resetLocked sets the chunk's version, cuts it to n bytes (n ≤ length)
// and commits if the version changed (bump), the cut reaches below the
// synced length, or the chunk was never committed. Callers hold ioMu and
// have the file open.
func (c *chunk) resetLocked(s *store, version uint64, n int64, bump bool) error {
	c.mu.Lock()
	c.version = version
	c.mu.Unlock()
	return c.truncateLocked(s, n, bump || c.seq == 0)
}

func (c *chunk) openFileLocked(s *store) error {
	if c.f != nil {
		return nil
	}
	f, err := os.OpenFile(s.dataPath(c.handle), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	c.f = f
	return nil
}

// closeFiles releases the write handle (the writer went away).
func (c *chunk) closeFiles() {
	c.ioMu.Lock()
	defer c.ioMu.Unlock()
	c.closeFilesLocked()
}

// liveLocked fails with wire.ErrNoChunk once the replica was removed
// (between the caller's lookup and its taking ioMu), so that nothing
// recreates its file. Callers hold ioMu, which remove takes too.
func (c *chunk) liveLocked() error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.removed {
		return fmt.Errorf("cellar/dfs/chunkserver: chunk %x: %w", c.handle, wire.ErrNoChunk)
	}
	return nil
}

func (c *chunk) closeFilesLocked() {
	if c.f != nil {
		if c.zeroedTo > 0 {
			c.mu.RLock()
			size, removed := fileSize(c.length), c.removed
			c.mu.RUnlock()
			if !removed && c.zeroedTo > size {
				c.f.Truncate(size) // only zeros lie beyond; recovery would cut them anyway
			}
			c.zeroedTo = 0
		}
		c.f.Close()
		c.f = nil
	}
}

// truncateLocked cuts the chunk to n bytes (nothing to cut if n ≥ length)
// and commits when commit is set or the cut reaches below the synced
// length; the commit comes before the file is cut, so a crash leaves either
// the old committed state intact or the new one durable. The last block's
// bytes are verified before its new tail CRC is computed from them.
// Callers hold ioMu and have the file open.
func (c *chunk) truncateLocked(s *store, n int64, commit bool) error {
	c.mu.RLock()
	length, synced, tail := c.length, c.synced, c.tailCRC
	c.mu.RUnlock()
	if n >= length {
		if commit {
			return c.syncLocked(s)
		}
		return nil
	}
	newTail := uint32(0)
	if tailLen(n) != 0 {
		b := fullBlocks(n)
		bl := blockLen(b, length)
		buf := make([]byte, bl+trailerSize)
		if !isComplete(b, length) {
			buf = buf[:bl]
		}
		if _, err := c.f.ReadAt(buf, blockFileOffset(b)); err != nil {
			return s.fail(err)
		}
		want := tail
		if isComplete(b, length) {
			want = binary.LittleEndian.Uint32(buf[BlockSize:])
		}
		if got := crc32.Checksum(buf[:bl], castagnoli); got != want {
			return fmt.Errorf("cellar/dfs/chunkserver: chunk %x block %d: checksum %#x, want %#x: %w", c.handle, b, got, want, errCorruptData)
		}
		newTail = crc32.Checksum(buf[:tailLen(n)], castagnoli)
	}
	c.mu.Lock()
	s.used.Add(n - c.length)
	c.length, c.tailCRC = n, newTail
	c.synced = min(c.synced, n)
	c.mu.Unlock()
	if commit || n < synced {
		if err := c.syncLocked(s); err != nil {
			return err
		}
	}
	if err := c.f.Truncate(fileSize(n)); err != nil {
		return s.fail(err)
	}
	c.zeroedTo = 0
	return nil
}

// append writes p at off (which must be the chunk's length) for a writer at
// version, with the trailer of every block it completes, in one pwritev.
// Callers hold ioMu (a pipeline stream owns the chunk while open).
func (c *chunk) appendLocked(s *store, version uint64, off int64, p []byte) error {
	if err := s.checkWritable(int64(len(p))); err != nil {
		return err
	}
	c.mu.RLock()
	cur, length, tail, removed := c.version, c.length, c.tailCRC, c.removed
	c.mu.RUnlock()
	switch {
	case removed:
		return fmt.Errorf("cellar/dfs/chunkserver: chunk %x: %w", c.handle, wire.ErrNoChunk)
	case cur != version:
		return fmt.Errorf("cellar/dfs/chunkserver: chunk %x is at version %d, writer at %d: %w: %w", c.handle, cur, version, wire.ErrStaleVersion, dfs.ErrLeaseLost)
	case off != length:
		return fmt.Errorf("cellar/dfs/chunkserver: chunk %x: write at %d, length is %d: %w", c.handle, off, length, wire.ErrBadRequest)
	case length+int64(len(p)) > maxChunkLength:
		return fmt.Errorf("cellar/dfs/chunkserver: chunk %x: write of %d bytes at %d: %w", c.handle, len(p), off, wire.ErrBadRequest)
	}
	if s.faults.Write != nil {
		if err := s.faults.Write(dfs.ChunkHandle(c.handle)); err != nil {
			return s.fail(err)
		}
	}
	if err := c.openFileLocked(s); err != nil {
		return s.fail(err)
	}
	if c.trailers == nil {
		c.trailers = make([]byte, 0, maxTrailers)
	}
	var newTail uint32
	c.iov, newTail = layoutAppend(c.iov[:0], c.trailers, length, tail, p)
	if err := pwritev(c.f, c.iov, DataFileOffset(off)); err != nil {
		return s.fail(err)
	}
	clear(c.iov) // drop references to p
	c.zeroAheadLocked(fileSize(length + int64(len(p))))
	c.mu.Lock()
	c.length += int64(len(p))
	c.tailCRC = newTail
	c.mu.Unlock()
	s.used.Add(int64(len(p)))
	return nil
}

// maxTrailers is room for the trailers of one packet (bytes).
const maxTrailers = trailerSize * (wire.PacketSize/BlockSize + 2)

// pwritev writes iov contiguously at off, all of it.
func pwritev(f *os.File, iov [][]byte, off int64) error {
	total := 0
	for _, v := range iov {
		total += len(v)
	}
	n, err := unix.Pwritev(int(f.Fd()), iov, off)
	if err != nil {
		return err
	}
	if n == total {
		return nil
	}
	// Short write (rare on a regular file): finish it the slow way.
	flat := make([]byte, 0, total)
	for _, v := range iov {
		flat = append(flat, v...)
	}
	_, err = f.WriteAt(flat[n:], off+int64(n))
	return err
}

// syncLocked commits the chunk's current state: it writes the next commit
// slot (the one not holding the newest durable commit) and fdatasyncs the
// file once, which makes the data, the trailers and the slot durable
// together. Callers hold ioMu.
func (c *chunk) syncLocked(s *store) error {
	if s.faults.Sync != nil {
		if err := s.faults.Sync(dfs.ChunkHandle(c.handle)); err != nil {
			return s.fail(err)
		}
	}
	if err := c.liveLocked(); err != nil {
		return err
	}
	if err := c.openFileLocked(s); err != nil {
		return s.fail(err)
	}
	c.mu.RLock()
	sl := commitSlot{Seq: c.seq + 1, Handle: c.handle, Version: c.version, Length: uint64(c.length), TailCRC: c.tailCRC}
	prevSynced := c.synced
	c.mu.RUnlock()
	if n := int64(sl.Length) - prevSynced; n > 0 {
		c.smallSyncs = n < smallSyncBytes
	}
	enc := encodeSlot(sl)
	if _, err := c.f.WriteAt(enc[:], slotOffset(sl.Seq)); err != nil {
		return s.fail(err)
	}
	if err := unix.Fdatasync(int(c.f.Fd())); err != nil {
		return s.fail(err)
	}
	if !c.dirSynced {
		if err := syncDir(s.dir); err != nil {
			return s.fail(err)
		}
		c.dirSynced = true
	}
	c.seq = sl.Seq
	c.mu.Lock()
	c.synced = int64(sl.Length)
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
// range touches is checked against its trailer (or, for a partial last
// block, the tail CRC); a mismatch returns dfs.ErrCorrupt.
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
	fstart := blockFileOffset(first)
	fend := fileSize(c.length)
	if isComplete(last, c.length) {
		fend = blockFileOffset(last) + BlockSize + trailerSize
	}
	buf := make([]byte, fend-fstart)
	if _, err := f.ReadAt(buf, fstart); err != nil {
		return 0, fmt.Errorf("cellar/dfs/chunkserver: chunk %x: %w: %v", h, dfs.ErrCorrupt, err)
	}
	n := 0
	for b := first; b <= last; b++ {
		blk := buf[(b-first)*(BlockSize+trailerSize):]
		want := c.tailCRC
		if isComplete(b, c.length) {
			want = binary.LittleEndian.Uint32(blk[BlockSize:])
			blk = blk[:BlockSize]
		}
		if got := crc32.Checksum(blk, castagnoli); got != want {
			return 0, fmt.Errorf("cellar/dfs/chunkserver: chunk %x block %d: checksum %#x, want %#x: %w", h, b, got, want, dfs.ErrCorrupt)
		}
		lo, hi := max(off, b*BlockSize)-b*BlockSize, min(end, (b+1)*BlockSize)-b*BlockSize
		n += copy(p[n:], blk[lo:hi])
	}
	return n, nil
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

// remove deletes chunk h's file; it reports whether the chunk existed.
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
	c.closeFilesLocked()
	os.Remove(s.dataPath(h))
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
	if err := c.liveLocked(); err != nil {
		return 0, err
	}
	st := c.state()
	if st.version < oldVersion {
		return 0, fmt.Errorf("cellar/dfs/chunkserver: chunk %x at version %d, recovery of %d: %w", h, st.version, oldVersion, wire.ErrStaleVersion)
	}
	if st.version > newVersion {
		return 0, fmt.Errorf("cellar/dfs/chunkserver: chunk %x at version %d, above recovery's %d: %w", h, st.version, newVersion, wire.ErrStaleVersion)
	}
	if err := c.openFileLocked(s); err != nil {
		return 0, s.fail(err)
	}
	defer c.closeFilesLocked()
	if err := c.resetLocked(s, newVersion, st.synced, true); err != nil {
		return 0, err
	}
	return st.synced, nil
}

// finalize settles chunk h at version and length after recovery.
func (s *store) finalize(h, version uint64, length int64) error {
	c, ok := s.get(h)
	if !ok {
		return fmt.Errorf("cellar/dfs/chunkserver: chunk %x: %w", h, wire.ErrNoChunk)
	}
	c.ioMu.Lock()
	defer c.ioMu.Unlock()
	if err := c.liveLocked(); err != nil {
		return err
	}
	st := c.state()
	if st.version > version {
		return fmt.Errorf("cellar/dfs/chunkserver: chunk %x at version %d, finalize at %d: %w", h, st.version, version, wire.ErrStaleVersion)
	}
	if st.synced < length {
		return fmt.Errorf("cellar/dfs/chunkserver: chunk %x has %d synced bytes, finalize at %d: %w", h, st.synced, length, wire.ErrBadRequest)
	}
	if err := c.openFileLocked(s); err != nil {
		return s.fail(err)
	}
	defer c.closeFilesLocked()
	return c.resetLocked(s, version, length, true)
}

// install adds a complete replica copied from elsewhere: r yields exactly
// length bytes. The copy is written to a temporary file, committed, synced
// and renamed into place, so a crash never leaves half a replica under the
// real name.
func (s *store) install(h, version uint64, length int64, r io.Reader) error {
	if err := s.checkWritable(length); err != nil {
		return err
	}
	if length < 0 || length > maxChunkLength {
		return fmt.Errorf("cellar/dfs/chunkserver: copy of chunk %x of %d bytes: %w", h, length, wire.ErrBadRequest)
	}
	if c, ok := s.get(h); ok {
		if st := c.state(); st.version >= version && st.synced >= length {
			return nil
		}
		s.remove(h)
	}
	tmp := s.dataPath(h) + ".tmp"
	defer os.Remove(tmp)
	d, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return s.fail(err)
	}
	defer d.Close()
	var tail uint32
	var n int64
	var iov [][]byte
	trailers := make([]byte, 0, maxTrailers)
	buf := make([]byte, 1<<20)
	for n < length {
		k, rerr := r.Read(buf[:min(int64(len(buf)), length-n)])
		if k > 0 {
			if s.faults.Write != nil {
				if err := s.faults.Write(dfs.ChunkHandle(h)); err != nil {
					return s.fail(err)
				}
			}
			iov, tail = layoutAppend(iov[:0], trailers, n, tail, buf[:k])
			if err := pwritev(d, iov, DataFileOffset(n)); err != nil {
				return s.fail(err)
			}
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
	sl := commitSlot{Seq: 1, Handle: h, Version: version, Length: uint64(length), TailCRC: tail}
	enc := encodeSlot(sl)
	if _, err := d.WriteAt(enc[:], slotOffset(sl.Seq)); err != nil {
		return s.fail(err)
	}
	if err := d.Truncate(fileSize(length)); err != nil { // an empty copy still has its header pages
		return s.fail(err)
	}
	if err := unix.Fdatasync(int(d.Fd())); err != nil {
		return s.fail(err)
	}
	if err := os.Rename(tmp, s.dataPath(h)); err != nil {
		return s.fail(err)
	}
	if err := syncDir(s.dir); err != nil {
		return s.fail(err)
	}
	s.mu.Lock()
	s.chunks[h] = &chunk{handle: h, dirSynced: true, seq: sl.Seq, version: version, length: length, synced: length, tailCRC: tail}
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
