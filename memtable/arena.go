package memtable

import (
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
)

// arena is a bump allocator over one preallocated, pointer-free buffer.
// Allocation is lock-free (a CAS loop on used) and never frees; the whole
// arena is dropped with its memtable. Because the buffer holds no Go
// pointers, the garbage collector never scans it, however many nodes it
// holds.
type arena struct {
	buf  []byte        // len(buf) is the capacity; never resliced
	used atomic.Uint64 // bytes handed out, including the reserved prefix
}

func newArena(size int64) *arena {
	// Allocate as []uint64 so that the base is 8-byte aligned whatever the
	// allocator does with []byte, then view it as bytes.
	words := make([]uint64, (size+7)/8)
	a := &arena{buf: unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(words))), size)}
	a.used.Store(arenaAlign)
	return a
}

// alloc reserves size bytes (rounded up to arenaAlign) and returns their
// offset, or false when they do not fit. A failed allocation consumes
// nothing, so a smaller entry may still fit afterwards.
func (a *arena) alloc(size uint64) (uint32, bool) {
	size = (size + arenaAlign - 1) &^ (arenaAlign - 1)
	for {
		old := a.used.Load()
		end := old + size
		if end > uint64(len(a.buf)) {
			return nilOffset, false
		}
		if a.used.CompareAndSwap(old, end) {
			return uint32(old), true
		}
	}
}

// size is the number of bytes handed out so far.
func (a *arena) size() int64 { return int64(a.used.Load()) }

// capacity is the arena's size in bytes.
func (a *arena) capacity() int64 { return int64(len(a.buf)) }

// uint32At returns the 4-byte word at off as an atomic. off must be
// 4-aligned and inside the arena (the slice index checks the latter).
func (a *arena) uint32At(off uint32) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&a.buf[off:][:4][0]))
}
