package memtable

import (
	"math"
	"sync"
	"sync/atomic"
	"unsafe"
)

const (
	// arenaAlign is the alignment of every allocation: node links are
	// atomic.Uint32 values and must sit on 4-byte boundaries.
	arenaAlign = 4
	// nilOffset means "no node". The first arenaAlign bytes of the arena
	// are never handed out, so no node lives at offset 0.
	nilOffset = 0

	// chunkShift sets the chunk size, 256 KiB: the unit in which an arena
	// grows. It is what an idle memtable costs (its first chunk holds the
	// head node), and what a chunk installation (a mutex and a make) is
	// amortized over: about 250 entries of 1 KB. See doc.go for the
	// measurement behind the choice.
	chunkShift = 18
	chunkSize  = 1 << chunkShift
	chunkMask  = chunkSize - 1

	// offsetLimit bounds the offset space: links are uint32 offsets, and
	// used (the end of the last allocation) must fit in 32 bits too.
	offsetLimit = math.MaxUint32 + 1 - arenaAlign
)

// chunk is one installed piece of an arena: the bytes behind the offsets
// [i<<chunkShift, i<<chunkShift + len(buf)) of its slot i. A standard chunk
// is chunkSize bytes (less for an arena smaller than a chunk); a big chunk
// holds one node larger than a chunk.
type chunk struct {
	buf []byte
	// displaced is, for a big chunk, the standard chunk that was in its
	// slot before it (or nil): reset puts it back, so that a pooled
	// memtable keeps its standard chunks and drops its big ones.
	displaced *chunk
	big       bool
}

// arena is a bump allocator over an offset space of 32-bit offsets whose
// memory is installed on demand in chunks of chunkSize bytes, so that an
// arena holds about as much memory as it has handed out. Offset off lives
// in chunk off>>chunkShift at byte off&chunkMask. An allocation never
// straddles a chunk boundary: one that does not fit in the rest of the
// current chunk starts at the next one (the rest is waste, counted in
// Size).
//
// A node larger than a chunk starts at a chunk boundary and gets one
// contiguous buffer of its own, of its exact size, installed in the slot
// of that boundary. Every accessor reads a node relative to its start
// offset, through the slot of that offset, so a big node reads as one
// piece, and the offsets past its start are never looked up: it takes the
// offsets of one chunk, whatever its size, and the next allocation starts
// at the next boundary. A big node owns its slot; nothing else is ever
// allocated in it.
//
// Allocation is lock-free (a CAS loop on state); installing a standard
// chunk takes mu. Chunks hold no Go pointers, so the garbage collector
// never scans them, however many nodes they hold; only the slot table has
// pointers (one per chunk).
type arena struct {
	// state packs used (high 32 bits: the end of the offsets handed out,
	// including the reserved prefix and the waste at chunk tails) and live
	// (low 32 bits: the bytes of the allocations themselves plus the
	// reserved prefix, without the waste). Add fails when live would pass
	// the capacity.
	state atomic.Uint64
	// bigExtra is the sum, over big nodes, of their size minus the chunk
	// of offsets they take: Size is used + bigExtra, the bytes held. It is
	// raised before a big node's CAS and lowered if that fails, so that a
	// concurrent Size never counts less than the live bytes.
	bigExtra atomic.Int64
	capacity int64
	// chunkLen is the length of a standard chunk: chunkSize, or the
	// capacity rounded up to 8 if that is smaller (an arena that small
	// never leaves its first chunk: used == live <= capacity there).
	chunkLen int
	// chunks is the slot table, sized for the most offsets the capacity
	// can consume (see maxUsed).
	chunks []slot
	mu     sync.Mutex // serializes installations of standard chunks
}

// slot is the table entry of chunk i: where its bytes are, held inline so
// that reading a node costs one load of the table entry more than a single
// buffer did, not a load of the entry and then of the chunk.
type slot struct {
	// p is the chunk's first byte, nil until installed; n is its length,
	// written before p is stored (so visible to whoever loaded p).
	p atomic.Pointer[byte]
	n int
	// c is the chunk itself, for install and reset.
	c *chunk
}

// load returns the chunk installed in s, or nil.
func (s *slot) load() *chunk {
	if s.p.Load() == nil {
		return nil
	}
	return s.c
}

// store installs c in s (nil: none).
func (s *slot) store(c *chunk) {
	if c == nil {
		s.c, s.n = nil, 0
		s.p.Store(nil)
		return
	}
	s.c, s.n = c, len(c.buf)
	s.p.Store(unsafe.SliceData(c.buf))
}

// maxUsed bounds used for an arena of the given capacity. An allocation of
// n bytes takes fewer than 2n offsets: n itself, plus the rest of a chunk
// it did not fit in (fewer than n bytes); or, larger than a chunk, one
// chunk of offsets plus the rest of the chunk before (each fewer than n).
// The head node takes no waste, so used < 2 * live <= 2 * capacity.
// offsetLimit caps that for arenas above 2 GiB, where the offsets can run
// out before the capacity does (see alloc).
func maxUsed(capacity int64) uint64 {
	return min(2*uint64(capacity), offsetLimit)
}

func newArena(capacity int64) *arena {
	a := &arena{
		capacity: capacity,
		chunkLen: int(min(chunkSize, (capacity+7)&^7)),
		chunks:   make([]slot, maxUsed(capacity)>>chunkShift+1),
	}
	a.state.Store(arenaAlign<<32 | arenaAlign)
	return a
}

// newChunkBuf allocates n pointer-free bytes, 8-byte aligned: allocated as
// []uint64 whatever the allocator does with []byte, then viewed as bytes.
func newChunkBuf(n uint64) []byte {
	words := make([]uint64, (n+7)/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(words))), n)
}

// reset empties the arena for reuse (Pool): offsets are handed out from the
// start again. Standard chunks stay installed in their slots, with their
// pages resident; big chunks are dropped for the collector and the
// standard chunk each displaced is put back. The caller guarantees that
// nothing uses the arena meanwhile.
func (a *arena) reset() {
	for i := range a.chunks {
		if c := a.chunks[i].load(); c != nil && c.big {
			a.chunks[i].store(c.displaced)
		}
	}
	a.state.Store(arenaAlign<<32 | arenaAlign)
	a.bigExtra.Store(0)
}

// alloc reserves size bytes (rounded up to arenaAlign) and returns their
// offset, or false when they do not fit: when the live bytes would pass
// the capacity (the condition of the single preallocated arena this
// replaced: the waste at chunk tails never makes an entry fail that fits
// by ArenaSizeFor, which the tablet's reservations rely on), or, only
// possible for arenas above 2 GiB (see maxUsed), when the offsets run out.
// A failed allocation consumes nothing, so a smaller entry may still fit
// afterwards.
//
// The chunk under the returned offset is installed before alloc returns.
func (a *arena) alloc(size uint64) (uint32, bool) {
	size = (size + arenaAlign - 1) &^ (arenaAlign - 1)
	big := size > chunkSize
	if big {
		a.bigExtra.Add(int64(size - chunkSize))
	}
	for {
		old := a.state.Load()
		used, live := old>>32, old&math.MaxUint32
		start, end := used, used+size
		if big {
			// At the next boundary (if not at one), one chunk of
			// offsets: the next allocation starts in the next chunk.
			start = (used + chunkMask) &^ chunkMask
			end = start + chunkSize
		} else if used&chunkMask+size > chunkSize {
			start = (used + chunkMask) &^ chunkMask
			end = start + size
		}
		if live+size > uint64(a.capacity) || end > offsetLimit {
			if big {
				a.bigExtra.Add(-int64(size - chunkSize))
			}
			return nilOffset, false
		}
		if a.state.CompareAndSwap(old, end<<32|(live+size)) {
			a.install(uint32(start), size)
			return uint32(start), true
		}
	}
}

// install makes sure that the chunk under [off, off+size) is there before
// the allocation that got those offsets writes to them.
//
// Happens-before: a slot is published by an atomic store of its pointer
// (after its other fields). An allocator stores a slot (under mu for a
// standard chunk) or observes it stored with an atomic load here, then writes its node into that chunk, then publishes the node with
// the CAS that links it. A reader reaches a node only through a link it
// loaded atomically, so it observes that CAS, and everything before it,
// including the slot's store, happens before the reader's load of the
// slot. Within one use of the arena (between resets) a slot, once
// installed, never changes: standard chunks are shared by every
// allocation in their offsets, big chunks are owned by their one node.
//
// Concurrent allocators landing in one chunk not yet installed all come
// here; the first to take mu installs it, the others find it installed:
// installation is idempotent, and no allocator writes before it returns.
func (a *arena) install(off uint32, size uint64) {
	s := &a.chunks[off>>chunkShift]
	if size > chunkSize {
		// The node owns this slot (see alloc): no one else stores it.
		s.store(&chunk{buf: newChunkBuf(size), displaced: s.load(), big: true})
		return
	}
	if s.p.Load() != nil {
		return // the fast path: installed earlier, or kept by reset
	}
	a.mu.Lock()
	if s.p.Load() == nil {
		s.store(&chunk{buf: newChunkBuf(uint64(a.chunkLen))})
	}
	a.mu.Unlock()
}

// at returns the arena's bytes from off to the end of off's chunk. A node
// at off lies entirely within them (a big node's chunk is the node), so
// every field of a node is read at a position relative to the slice.
func (a *arena) at(off uint32) []byte {
	s := &a.chunks[off>>chunkShift]
	return unsafe.Slice(s.p.Load(), s.n)[off&chunkMask:]
}

// size is the bytes held: those handed out, the reserved prefix and the
// waste at chunk tails.
func (a *arena) size() int64 { return int64(a.state.Load()>>32) + a.bigExtra.Load() }

// used is the end of the offsets handed out.
func (a *arena) used() uint32 { return uint32(a.state.Load() >> 32) }

// live is the bytes handed out plus the reserved prefix, without the
// waste: what the capacity bounds.
func (a *arena) live() int64 { return int64(a.state.Load() & math.MaxUint32) }

// uint32At returns the 4-byte word at position i of b (a node's bytes, see
// at) as an atomic. i must be 4-aligned relative to the node, which is
// 4-aligned in an 8-aligned chunk; the slice index checks the bounds.
func uint32At(b []byte, i uint32) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&b[i:][:4][0]))
}
