// Package memtable is the sorted in-memory buffer of a tablet's recent
// mutations (Bigtable §5.3: "the recently committed ones are stored in memory
// in a sorted buffer called a memtable"). Writes go to the commit log and
// then here; when the memtable is full the tablet makes it immutable, starts
// a new one and flushes the old one to an SSTable (minor compaction).
//
// It owns the ordering and storage of (key, value) entries only. Keys are
// encoded internal keys (cellar/internal/keys) compared with bytes.Compare,
// and every key is unique (the sequence number makes it so); values are
// opaque. It does not interpret kinds, tombstones or versions: the tablet
// does that when it merges iterators.
//
// # Structure
//
// A skiplist whose nodes, keys and values all live in one arena: a space
// of 32-bit offsets whose memory is allocated as it fills, in chunks of 256
// KiB (Options.ArenaSize, default 64 MiB, bounds what it holds, not what
// New allocates). Links are 32-bit offsets into the arena rather than Go
// pointers, so the garbage collector sees a few pointer-free allocations
// however many entries they hold, and a server's idle memtables cost it a
// chunk each, not their capacity. Entries are never removed or changed;
// the arena is dropped whole with the memtable, or handed to a Pool that
// empties it for the next memtable and keeps its chunks (a recycled
// chunk's pages are resident: a fresh one costs a page fault and the
// kernel's zeroing per page on first write, more than the copies of 1 KB
// values into it).
//
// Arena layout (offsets in bytes; allocation bumps "used" with a CAS;
// offset off is byte off&(C-1) of chunk off>>18, C = 256 KiB):
//
//	0        4          96                                      C
//	+--------+----------+--------+-----+--------+..............+
//	|reserved| head node| node A | ... | node J | rest: waste  |  chunk 0
//	+--------+----------+--------+-----+--------+..............+
//	 offset 0 = nil      every node starts 4-byte aligned
//	C                                                           2C
//	+--------+--------+-----+--------+..........................+
//	| node K | node L | ... | node N |  free                    |  chunk 1
//	+--------+--------+-----+--------+..........................+
//	                                  ^used
//	2C: not yet allocated; 3C: ...
//
// A node never straddles two chunks: one that does not fit in the rest of
// the current chunk starts at the next one, and that rest is waste (after
// node J above: node K did not fit there), counted in Size. A node larger than a chunk (a value of up to
// tens of MiB) starts at a chunk boundary with a buffer of its own, of its
// size, installed in that chunk's slot; it takes the offsets of one chunk
// (nothing else goes in that slot), and the next node starts at the next
// boundary. Every node is read relative to its start offset, through the
// chunk of that offset, so a big node reads as one piece. Chunks are
// installed by the first allocation that lands in them (under a mutex,
// idempotently, before the allocation writes; see arena.install for why a
// reader never reaches a node whose chunk it cannot see).
//
// Node layout (header fields little-endian; links are atomic.Uint32 in the
// machine's order; h is the tower height, 1..20):
//
//	+---------+-----------+---------+---------+-----+-----------+-----+-------+-----+
//	| keyLen  | valueLen  | height  | next[0] | ... | next[h-1] | key | value | pad |
//	| uint32  | uint32    | uint32  | uint32  |     | uint32    |     |       | 0-3 |
//	+---------+-----------+---------+---------+-----+-----------+-----+-------+-----+
//	  0         4           8         12              12+4(h-1)  12+4h
//
// next[i] is the offset of the following node at level i (0 = end). A tower
// has height h with probability 3/4 · (1/4)^(h-1), so a node costs on average
// 12 + 4·4/3 ≈ 17.3 bytes of overhead plus its key and value; the head node
// has an empty key and a full tower of 20 links. An entry with key length k
// and value length v takes at most ArenaSizeFor(k, v) - 96 bytes.
//
// Worked example (tested in TestDocLayoutExample; all of it in chunk 0):
// in a fresh arena the head node sits at offset 4 and takes 12 + 20·4 = 92 bytes, so used = 96. Add of
// key "b", value "2" drawing height 1 allocates 12+4+1+1 = 18 bytes, rounded
// to 20, at offset 96; Add of "a", "1" drawing height 2 allocates 12+8+1+1 =
// 22, rounded to 24, at offset 116; Size() is then 140. The links are
//
//	head(4):   next[0] = 116  next[1] = 116  next[2..19] = 0
//	"a"(116):  next[0] = 96   next[1] = 0
//	"b"(96):   next[0] = 0
//
// Arena order is allocation order; list order is key order.
//
// # Concurrency
//
// Memtable is safe for concurrent use: any number of goroutines may Add, and
// any number of iterators may read, at the same time, without locks.
//
//   - Add searches for the splice (the nodes before and after the new key at
//     each level), allocates the node with a CAS on the arena's bump offset,
//     writes header, key and value with plain stores, then links the node
//     bottom-up with one CAS per level on the predecessor's link. A failed
//     CAS means another node was linked there meanwhile; the splice is
//     searched again from the same predecessor (nodes are never removed, so
//     it is still before the key) and the CAS retried.
//   - The entry exists once linked at level 0; upper levels only speed up
//     searches. Linking bottom-up means a node reachable at level i+1 is
//     already linked at level i.
//   - Readers load links with atomic loads. The CAS that publishes a node
//     happens after its bytes were written, so a reader that reaches a node
//     sees all of it (Go memory model: an atomic store synchronizes with the
//     atomic load that observes it). Readers never see half-added entries.
//   - An iterator sees every entry whose Add returned before NewIter was
//     called; entries added while it is in use may or may not be seen.
//   - Two concurrent Adds of one key: exactly one wins, the other gets
//     ErrDuplicate; its node stays allocated but unreachable.
//   - AddWith takes an Inserter, which remembers where the previous Add
//     linked its node at each level. A key above the previous one is searched
//     for from there, at the levels its node will be linked at, instead of
//     from the head at every level: those nodes have smaller keys and are
//     never removed, so they are valid places to start whatever else was
//     linked meanwhile. A key out of order gets the full search. The tablet
//     inserts a row's cells in key order through one Inserter
//     (BenchmarkAddRow).
//
// Inserts use CAS rather than a mutex, measured on the 2-core build machine
// (BenchmarkAdd: keys with 16-byte rows, 1000-byte values, arena rotation
// included; medians of 3 runs):
//
//	                          sequential rows   random rows
//	1 goroutine, CAS            3.03 M adds/s    1.07 M adds/s
//	2 goroutines, CAS           2.95 M adds/s    1.79 M adds/s
//	2 goroutines, mutex         2.42 M adds/s    0.82 M adds/s
//
// With a mutex two writers are slower than one (they hand the lock back and
// forth); with CAS, random inserts scale and sequential inserts (both
// writers contending for the same tail links) hold level. Readers take no
// lock either way.
//
// # Sizes and errors
//
// Size reports the arena bytes used, for flush decisions: nodes, the head
// node, and the waste at chunk tails. Add returns ErrArenaFull when the
// entry does not fit in the space left, counted without that waste,
// exactly as in a single arena of Options.ArenaSize bytes (nothing is
// consumed, so a smaller entry may still fit): the tablet rotates to a new
// memtable. Because the waste is not counted there, entries reserved at
// ArenaSizeFor bytes each while Size plus the reservations is within the
// capacity always fit (the tablet relies on it); Size may end above
// Capacity by the waste. The tablet compares Size with its memtable size,
// so it rotates when the memory held reaches that. An entry that could not
// fit even in an empty memtable of this size gets an error wrapping
// ErrTooLarge instead, so that the tablet rejects it (or sizes its arenas
// with ArenaSizeFor) rather than rotating forever. With the default 64 MiB
// arena, 64 KiB rows and 10 MiB values fit.
//
// # Chunk size
//
// 256 KiB, measured on the 2-core build machine (TestHeapProportional,
// TestFullAtSamePoint with a 16 MiB arena, BenchmarkAdd; 64 KiB and 1 MiB
// for comparison):
//
//	chunk    heap of a 64 MiB   waste (share of Size) for values of
//	         memtable, 1 entry  100 B    1 KB    10 KB   100 KB    1 MB
//	64 KiB        84 KB         0.09%    1.4%    8.2%     0.4%     0.4%
//	256 KiB      267 KB         0.02%    0.26%   0.56%   23.6%     1.6%
//	1 MiB       1.05 MB         0.01%    0.07%   0.56%    4.4%     4.4%
//
// (the single arena: 64 MiB per memtable, idle or not). BenchmarkAdd did
// not tell the three apart: a chunk installation is amortized over 60 to
// 1000 entries of 1 KB, and the differences stayed within the noise of the
// shared machine (medians of 3 runs, sequential rows, 1 goroutine: 1104,
// 658 and 1017 ns per Add).
//
// The waste is the rest of a chunk that the next node did not fit in: it
// stays under the node's size, so it is a small fraction of a chunk for
// small entries, but entries of a third of a chunk to a chunk (values of
// about 85-256 KiB) lose a quarter to a half of each chunk, and a tablet
// holding them flushes its memtables that much earlier. Nodes larger than
// a chunk have buffers of their own size and waste only the rest of the
// chunk before them. A larger chunk moves that band up but costs every
// idle memtable its size; 256 KiB keeps an idle memtable at 1/256 of the
// default capacity while small entries waste under 1%.
//
// # Example
//
//	m := memtable.New(nil)
//	k := keys.Encode(keys.Key{Row: []byte("r1"), Family: "cf", Qualifier: []byte("q"),
//		Timestamp: 10, Seq: 1, Kind: keys.KindSet})
//	if err := m.Add(k, []byte("v")); errors.Is(err, memtable.ErrArenaFull) {
//		// rotate: make m immutable, create a new memtable, add there
//	}
//	it := m.NewIter()
//	for ok := it.First(); ok; ok = it.Next() {
//		use(it.Key(), it.Value())
//	}
//	_ = it.Close()
package memtable
