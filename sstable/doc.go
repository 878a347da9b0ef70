// Package sstable implements Cellar's SSTables: immutable, sorted tables of
// (key, value) entries stored in a dfs file (Bigtable §4 "SSTable", §6
// "Locality groups", "Compression", "Caching for read performance", "Bloom
// filters"). A tablet flushes its memtable into one (minor compaction) and
// merges several into one (merging and major compactions); readers find
// entries with iterators and skip tables with the Bloom filter.
//
// The package owns the file format, the Writer that produces it through a
// dfs.File (sequential appends only), the Reader that serves it through a
// dfs.ReadFile (ReadAt only), and a byte-bounded block Cache shared by many
// Readers. It does not own the meaning of keys and values: keys are encoded
// cell keys of internal/keys, ordered with bytes.Compare, and every key in a
// table is unique. Merging tables, versions and tombstones is the tablet's
// job.
//
// # Lifecycle and concurrency
//
//	w := sstable.NewWriter(f, opts) // f from fs.Create
//	w.Add(k, v) ...                 // strictly increasing keys
//	w.Close()                       // meta blocks, footer, Sync, Close f
//
//	r, err := sstable.Open(rf, name, &sstable.ReaderOptions{Cache: c})
//	it := r.NewIter(); it.SeekGE(k); ...; it.Close()
//	r.Close()
//
// A Writer and an Iterator are not safe for concurrent use. A Reader is: any
// number of goroutines may call NewIter, MayContain, MidKey and Properties at
// once. A Cache is safe for concurrent use and is shared by Readers of many
// tables. Nothing in the package starts a goroutine.
//
// # File layout (TableFormatV1)
//
// All fixed-width integers are little-endian; varints are Go's
// encoding/binary uvarint (and zig-zag varint for signed values).
//
//	offset 0      +------------------------------------+
//	              | data block 0         | trailer 5 B |
//	              | data block 1         | trailer 5 B |
//	              | ...                                |
//	              | data block n-1       | trailer 5 B |
//	dataEnd       +------------------------------------+
//	              | filter block         | trailer 5 B |  (optional)
//	              | properties block     | trailer 5 B |
//	              | index block          | trailer 5 B |
//	size - 64     +------------------------------------+
//	              | footer (64 B)                      |
//	size          +------------------------------------+
//
// The blocks lie back to back with no padding; the reader checks that the
// data blocks tile [0, start of the first meta block) exactly and that each
// meta block ends where the next begins, the index ending at the footer.
//
// # Block handle
//
// A handle locates a block: its offset in the file and the length of its
// stored contents, not counting the 5-byte trailer. In the footer a handle is
// two fixed uint64s (16 bytes); in index entries it is uvarint offset then
// uvarint length.
//
// # Block trailer
//
// Every block (data, filter, properties, index) is followed by
//
//	+------+-----------------+
//	| type | CRC32C (uint32) |
//	| 1 B  |       4 B       |
//	+------+-----------------+
//
// type is 0 (stored uncompressed) or 1 (Snappy block format). The CRC32C
// (Castagnoli polynomial, not masked) covers the stored contents, compressed
// as they are, followed by the type byte. The writer compresses a block with
// Snappy when the table's Compression is Snappy and stores it compressed only
// if that saves at least 1/8 of its size; the filter block is never
// compressed. A Snappy block may claim at most 256 MiB
// decoded, and at most 22 times its stored length plus 64 bytes (a 3-byte
// copy op yields at most 64 bytes).
//
// # Data and index blocks
//
// Entries are prefix-compressed against the previous key, with a restart
// point every RestartInterval entries (16 by default; every entry in the
// index), or sooner once 4 KiB of entries follow the last one (so a seek
// among 1 KB values decodes a few entries, not sixteen), where the key is
// stored whole:
//
//	+------------------+--------------------+---------------------+--------------+-------+
//	| shared (uvarint) | unshared (uvarint) | value len (uvarint) | key[shared:] | value |
//	+------------------+--------------------+---------------------+--------------+-------+
//	... one such entry per key ...
//	+---------------------+-----+-----------------------+----------------------------+
//	| restart[0] (uint32) | ... | restart[r-1] (uint32) | r = num restarts (uint32)  |
//	+---------------------+-----+-----------------------+----------------------------+
//
// restart[i] is the offset, within the block, of an entry whose shared is 0.
// restart[0] is 0, restarts increase strictly, and an empty block is just
// r = 0. SeekGE binary-searches the restart keys for the last one below the
// target and scans forward from there.
//
// Worked example (restart interval 16): the entries apple→"1", applet→"2",
// apply→"3" encode as
//
//	00 05 01 61 70 70 6c 65 31   shared 0, 5 new key bytes "apple", value "1"
//	05 01 01 74 32               shares "apple", adds "t", value "2"
//	04 01 01 79 33               shares "appl", adds "y", value "3"
//	00 00 00 00                  restart[0] = 0
//	01 00 00 00                  1 restart point
//
// A data block is finished once its uncompressed size reaches BlockSize (64
// KiB by default), so it exceeds BlockSize by at most its last entry.
//
// The index block has one entry per data block, in order: the key is the
// data block's last key (a real key of the table, so MidKey returns one) and
// the value is the block's handle (uvarint offset, uvarint length). Open
// loads the whole index; SeekGE binary-searches it for the first block whose
// last key is >= the target.
//
// # Filter block
//
//	+------------+------------+-------------------------------------------+
//	| m (uint64) | k (uint32) | ceil(m/64) words of the bit set (uint64)  |
//	+------------+------------+-------------------------------------------+
//
// A Bloom filter of github.com/bits-and-blooms/bloom/v3 with m bits and k
// hash functions; its hashing (the library's murmur3-based four 64-bit base
// hashes, combined into k locations by double hashing, each modulo m) is
// part of the format, pinned by the golden files. It holds, for every key,
// its row prefix key[:keys.RowPrefixLen(key)] and its column prefix
// key[:keys.ColumnPrefixLen(key)] (the forms keys.AppendRowPrefix and
// keys.AppendColumnPrefix produce), sized for the number of distinct
// prefixes at the configured false-positive rate. It is absent (footer
// handle 0, 0) when the filter is disabled or the table is empty. The reader
// requires 1 <= k <= 64 and exactly ceil(m/64) words.
//
// # Properties block
//
// A sequence of fields, each
//
//	+---------------+------------------+------------------+
//	| tag (uvarint) | length (uvarint) | value (length B) |
//	+---------------+------------------+------------------+
//
// with tags 1 NumEntries, 2 NumTombstones, 3 SmallestKey, 4 LargestKey, 5
// MinTimestamp, 6 MaxTimestamp, 7 MinSeq, 8 MaxSeq, 9 RawKeyBytes, 10
// RawValueBytes, 11 DataBytes, 12 NumDataBlocks. Keys are raw bytes;
// timestamps are zig-zag varints; the rest are uvarints. Every tag 1..12
// appears exactly once; a reader skips higher tags. FileSize is not stored:
// it is the file's length. The reader cross-checks NumDataBlocks, DataBytes
// and LargestKey against the index.
//
// # Footer (64 bytes, at the end of the file)
//
//	offset  width  field
//	 0       8     index handle offset      (uint64)
//	 8       8     index handle length      (uint64)
//	16       8     filter handle offset     (uint64; 0 with length 0 = no filter)
//	24       8     filter handle length     (uint64)
//	32       8     properties handle offset (uint64)
//	40       8     properties handle length (uint64)
//	48       4     format version           (uint32, TableFormat)
//	52       4     CRC32C of bytes [0, 52)  (uint32)
//	56       8     magic "cellarST"         (uint64 0x545372616c6c6563)
//
// Every byte of a table is thus under a checksum, or is the magic number.
//
// # Corruption
//
// The reader trusts no length: every handle is checked against the file
// size and the layout above before anything is allocated, decoded sizes are
// capped, every block's checksum is verified before it is decoded or cached,
// and every entry is bounds-checked. Damage gives an error wrapping
// ErrCorrupt (a *CorruptError naming the file and the offset of the damaged
// structure); the reader never panics and never returns data that failed a
// checksum.
//
// # Golden files
//
// testdata/*.sst pin the format; TestGolden rebuilds them byte for byte.
// Regenerate them (only with a new TableFormat) with go generate.
//
//go:generate go test -run ^TestGolden$ -update
package sstable
