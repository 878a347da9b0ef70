// Package tablet is the LSM store of one tablet (Bigtable §5.3): the rows
// [StartRow, EndRow) of one table, kept in memtables and immutable SSTables
// per column family, with the commit log for durability. It is usable
// embedded, without any server: Open a directory on a dfs.FS, Apply row
// mutations, ReadRow and Scan, Close.
//
// # Layout in the file system
//
//	<Dir>/MANIFEST-<e>      the live file set and flushed sequence number,
//	                        written by the opener of epoch e (the highest
//	                        epoch's is the tablet's; MANIFEST is epoch 0)
//	<Dir>/MANIFEST-<e>.tmp  a manifest being written (deleted on the next write)
//	<Dir>/CLAIM-<e>         epoch e's claim, created exclusively by Open
//	<Dir>/log/%016d.log     the tablet's own commit log (when Options.Log is nil)
//	<Dir>/sst/%06d.sst      SSTables this tablet wrote
//
// The manifest format is in manifest.go, the commit-log payload of one
// Apply (a "batch") in mutation.go, each with a byte diagram and a worked
// example.
//
// # Write path
//
// Apply validates every mutation first (limits, families, row range), so a
// rejected Apply changes nothing. Under the tablet mutex it then takes a
// contiguous block of sequence numbers (one per mutation, a DeleteRow being
// one family delete per family, so later mutations of one Apply win), one
// server timestamp (monotonically non-decreasing, and on Open continuing
// from the newest timestamp in the tablet's files within
// MaxServerTimestampLead of the clock, so a move to a server whose clock
// is behind does not hide a new write under the one it overwrote), a
// place in the commit
// queue, and a reservation in the active memtable: the arena bytes the
// entries can take at most. A memtable admits a writer only if its size
// plus the reservations in flight still fit, so a row is never split across
// memtables and Add never runs out of room (the memtable's size counts the
// waste at its arena's chunk tails, its room check does not, so the
// reservations hold); otherwise the memtable is made
// immutable (rotated) and handed to the flusher. When MaxImmutableMemtables
// are already waiting the writer stalls (WriteStallBegin/End events),
// honouring its ctx: memory stays bounded.
//
// Outside the mutex the writer encodes its batch, appends it to the commit
// log (one entry; group commit happens in the wal package; Sync durability
// waits for the sync, Async for the write, SkipLog skips the log), inserts
// the entries into its memtable, and finishes its commit-queue request. The
// queue publishes a "visible" sequence number that only moves past a
// request once every earlier request is done; Apply returns once its own
// request is visible. Readers read at the visible sequence number and skip
// newer entries, so a read sees all of an Apply or nothing, and never a
// later Apply without an earlier one.
//
// # Families and files
//
// All families share one memtable (a row mutation is one insert batch), but
// a flush writes one SSTable per family, and the manifest lists files per
// family: a read of one family opens none of another's files, and
// compactions run per family with the family's own policy. Point reads
// skip a family's tables whose Bloom filter rules out the row (or, for a
// single-column read, both the column and the family's delete marker).
//
// # Reads
//
// A read merges the memtables and the family's SSTables (a heap of
// iterators; every key is unique, so there are no ties) and passes the
// stream through the resolver (resolve.go), a pure function that applies
// the snapshot, the "newest write per (column, timestamp) decides" rule and
// the tombstones: a family delete masks the family's cells with lower
// sequence numbers, a column delete the column's cells in its time range
// with lower sequence numbers, a cell delete the one version. The family's
// GC policy is applied to the visible versions on every read (versions
// numbered newest first; MaxAge against Options.Clock), then the read's
// column selection, time range and MaxVersions. Point reads fill the block
// cache; a scan adds only the first scanMaxFill blocks it misses in each
// SSTable and reads the rest into its own buffers (ScanOptions.NoCacheFill:
// none), and compactions never fill it.
//
// # Flushes and compactions
//
// A background flusher (owned by the Tablet, stopped by Close) takes the
// oldest immutable memtable once all its writers are done and published,
// writes its per-family SSTables, writes a new manifest (new files +
// FlushedSeq) and renames it over MANIFEST-<epoch>, and only then drops the
// memtable (its arena goes back to Options.MemtablePool once no read state
// holds it) and releases commit-log files holding nothing past FlushedSeq
// (own log; a shared log's owner uses FlushedSeq). A failed flush or
// compaction stops writes with ErrBackground; the log still holds the data
// and Open recovers it.
//
// A background compactor keeps each family at about CompactionTrigger
// tables: when a family has more, its smallest tables are merged into one
// (size-tiered). A merging compaction keeps tombstones, since what they
// mask may be in tables outside the merge, but drops the cells masked by
// tombstones inside it. Compact(ctx, true) flushes and
// rewrites each family into one table holding only the visible versions
// its GC policy keeps: tombstones, masked cells and garbage versions go.
// Every compaction also drops rows outside the tablet's range (a split
// daughter sheds its sibling's rows). A new file set is installed by the
// manifest rename; replaced tables are deleted when the last reader that
// holds them lets go, and Open deletes any table in Dir/sst that the
// manifest does not list, so a crash mid-flush or mid-compaction leaks
// nothing.
//
// # Recovery
//
// Open claims an epoch (see Fencing), reads the manifest, deletes orphan
// tables, opens the live ones, and
// replays Options.RecoverLogDirs (a shared server log), the entries
// Options.RecoverEntries feeds (a dead server's log split per tablet), and
// then its own log (wal.Replay): entries of this
// tablet with sequence numbers past FlushedSeq are decoded (trusting no
// length) and inserted, then flushed, and sequence numbers resume after the
// largest seen. Log
// entries are not in sequence order (concurrent Applies append in any
// order), so FlushedSeq advances to the largest replayed number only when
// the last replayed memtable is flushed.
//
// # Splits
//
// SplitKey proposes a row near the middle by size (the largest SSTable's
// MidKey, or the memtables' middle entry). Split stops writes, flushes,
// stops background work, and writes a manifest for each daughter listing
// the parent's SSTables by path, restricted by the daughter's row range;
// nothing is copied. One daughter may keep the parent's directory (the
// serving layer keeps the right daughter's ID and directory): its manifest
// replaces the parent's by the atomic rename, the split's commit point
// (under the splitting Tablet's epoch, and only if it is not fenced: the
// daughter's Open then claims the next epoch). A daughter in a new
// directory gets its first manifest as MANIFEST-1. Otherwise the parent's
// manifest is marked split and Open refuses it (ErrSplit).
//
// File deletion stays reference-safe because a tablet deletes only tables
// in its own Dir/sst numbered at or above its manifest's split floor. A
// daughter in a new directory owns none of the parent's tables; a daughter
// that keeps the directory gets a split floor above every table the parent
// wrote, so neither its compactions nor its orphan cleanup on Open touch a
// table the sibling may list; a split parent never runs again. Once the
// daughters' compactions have rewritten everything, the parent's tables
// are unreferenced; deleting them is the table-wide garbage collector's job
// (LiveFiles lists what a tablet references).
//
// # Merges
//
// Merge writes the manifest of a new tablet covering two adjacent closed
// tablets: both file lists, each file bounded by the range of the tablet
// it comes from (manifest version 2 records per-file row bounds; reads
// and compactions clip each file to them), so that a file one parent
// still shares with a former split sibling shows only that parent's rows.
// Its flushed sequence number exceeds every sequence number in those
// files (SSTable properties), so the merged tablet's writes win over
// everything inherited. The parents' files are not in the merged tablet's
// directory, so it never deletes them; ReadManifest lets the table-wide
// garbage collector see what every tablet references.
//
// # Fencing
//
// A server paused past its lock session may resume in the middle of a
// flush, compaction or split, after the tablet's new server opened it.
// Each Open therefore claims a new epoch of the directory (CLAIM-<e>,
// created exclusively: the file system decides between racing openers),
// and only then reads the newest manifest, which it writes again as
// MANIFEST-<e> before serving. Readers (Open, Split, Merge, ReadManifest)
// take the highest epoch's manifest, so the old server's later manifests
// are ignored. After every manifest commit, and before any file is
// deleted, a Tablet lists its directory: an epoch above its own means it
// was taken over, and it deletes nothing, writes no more manifests and
// fails with ErrFenced. If there is none, any later opener's claim, and
// so its manifest read, comes after the commit: it reads a file set that
// lists none of the files the commit made obsolete. A zombie's stray
// tables are orphans to the new owner's next Open, and table numbers skip
// names already taken.
//
// # Concurrency
//
// A Tablet is safe for concurrent use. Tablet.mu guards the write path's
// state and is never held across I/O or callbacks; installMu serializes
// manifest writes; compactMu runs one compaction at a time. Read states
// (the memtables and tables a read merges) are immutable and
// reference-counted. EventListener callbacks run with no lock held.
package tablet
