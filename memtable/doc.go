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
// A skiplist whose nodes, keys and values all live in one arena: a single
// []byte preallocated by New (Options.ArenaSize, default 64 MiB). Links are
// 32-bit offsets into the arena rather than Go pointers, so the garbage
// collector sees one pointer-free allocation however many entries it holds.
// Entries are never removed or changed; the arena is dropped whole with the
// memtable, or handed to a Pool that empties it for the next memtable (a
// recycled arena's pages are resident: a fresh one costs a page fault and
// the kernel's zeroing per page on first write, more than the copies of
// 1 KB values into it).
//
// Arena layout (offsets in bytes; allocation bumps "used" with a CAS):
//
//	0        4                  96
//	+--------+------------------+--------+--------+-----+--------+.........+
//	|reserved| head node        | node A | node B | ... | node N |  free   |
//	+--------+------------------+--------+--------+-----+--------+.........+
//	 offset 0 = nil              every node starts 4-byte aligned ^used
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
// Worked example (tested in TestDocLayoutExample): in a fresh arena the head
// node sits at offset 4 and takes 12 + 20·4 = 92 bytes, so used = 96. Add of
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
// Size reports the arena bytes used, for flush decisions. Add returns
// ErrArenaFull when the entry does not fit in the space left (nothing is
// consumed, so a smaller entry may still fit): the tablet rotates to a new
// memtable. An entry that could not fit even in an empty memtable of this
// size gets an error wrapping ErrTooLarge instead, so that the tablet
// rejects it (or sizes its arenas with ArenaSizeFor) rather than rotating
// forever. With the default 64 MiB arena, 64 KiB rows and 10 MiB values fit.
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
