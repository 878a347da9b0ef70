package memtable

import (
	"encoding/binary"
	"fmt"
)

// Hooks for the external tests (package memtable_test).

// ChunkSize is the arena's chunk size.
const ChunkSize = chunkSize

// Live returns the live bytes of m's arena: Size without the waste at chunk
// tails; what the capacity bounds.
func Live(m *Memtable) int64 { return m.arena.live() }

// Chunks returns the chunks installed in m's arena: the standard ones by
// slot (including one displaced by a big node, which reset puts back),
// and the number of big ones.
func Chunks(m *Memtable) (standard map[int]*chunk, big int) {
	standard = map[int]*chunk{}
	for i := range m.arena.chunks {
		c := m.arena.chunks[i].load()
		if c != nil && c.big {
			big++
			c = c.displaced
		}
		if c != nil {
			standard[i] = c
		}
	}
	return standard, big
}

// CheckChunks walks level 0 and checks that every node lies in one chunk:
// a node no larger than a chunk within the chunk of its offset, a larger
// one at a chunk boundary in a big chunk of its own that holds it; and
// that no node lies at or past the offsets used.
func CheckChunks(m *Memtable) error {
	used := m.arena.used()
	for n := m.next(m.head, 0).Load(); n != nilOffset; n = m.next(n, 0).Load() {
		k, v := m.keyValue(n)
		h := binary.LittleEndian.Uint32(m.arena.at(n)[8:])
		size := uint32(nodeSize(int(h), len(k), len(v)))
		size = (size + arenaAlign - 1) &^ (arenaAlign - 1)
		c := m.arena.chunks[n>>chunkShift].load()
		switch {
		case n+min(size, chunkSize) > used:
			return fmt.Errorf("node at %d (%d bytes) past used %d", n, size, used)
		case size > chunkSize && (n&chunkMask != 0 || !c.big || uint32(len(c.buf)) < size):
			return fmt.Errorf("big node at %d (%d bytes): chunk offset %d, big %v, %d bytes", n, size, n&chunkMask, c.big, len(c.buf))
		case size <= chunkSize && (c.big || n&chunkMask+size > uint32(len(c.buf))):
			return fmt.Errorf("node at %d (%d bytes) straddles its chunk (big %v, %d bytes)", n, size, c.big, len(c.buf))
		}
	}
	return nil
}
