// Package wal is Cellar's commit log (Bigtable §5.3, "Commit-log
// implementation"; HBase's WAL): one log per tablet server, shared by all
// its tablets, to which every mutation is appended before it is applied to
// a memtable and acknowledged. After a crash the log is replayed (Replay)
// to rebuild the memtables; Files and Release let the owner delete files
// whose entries every tablet has flushed to SSTables.
//
// The package owns the byte layout of log files, group commit, rolling and
// replay. It does not know what an entry's Data means (the tablet encodes
// its mutations there), and it does not split a dead server's log by tablet
// (a later step built on Replay).
//
// # Lifecycle and concurrency
//
// Open starts a new file after any that exist (it does not replay) and
// starts a writer and a syncer goroutine; Append is safe for concurrent use
// and groups concurrent appends into one Write and one Sync (see the comment
// "Group commit" in log.go); Close drains the queue, seals the file and
// stops both goroutines. Files, Release and Stats are safe for concurrent
// use. Replay reads a directory no Log is writing.
//
// Context: if Append's ctx ends before the entry is handed to the writer,
// the entry is not applied; if it ends after, the outcome is unknown (the
// error wraps ErrOutcomeUnknown), as for any write whose reply was lost.
//
// Failure: a failed Write, Sync or roll to a new file poisons the Log. The
// waiters of that Write or Sync and every later Append (and Close) get an
// error wrapping ErrLogFailed, and nothing is
// acknowledged after it; the owner replays and opens a new Log. Appends
// made with sync=false and acknowledged before a failed Sync may be lost by
// a crash: that is what sync=false means.
//
// # Files
//
// Log files live in Options.Dir and are named %016d.log (for example
// 0000000000000012.log), so that names sort by number. A Log writes one
// file at a time and rolls to the next number once the file passes
// MaxFileSize. A file closed by its Log (at a roll or at Close) is sealed:
// it ends with an end-of-file marker.
//
// # Blocks and fragments
//
// A file is a sequence of BlockSize (32 KiB) blocks; the last may be short.
// Each record (one encoded entry) is written as one or more fragments; a
// fragment never crosses a block boundary, so every block starts with a
// fragment header, and a reader can find its place again at any block after
// damage. When fewer than 11 bytes (a header) are left in a block, they are
// zero padding and the next fragment starts the next block.
//
//	file:    | block 0 (32768 B)        | block 1 (32768 B)        | block 2 ... |
//	block:   | fragment | fragment | ... | fragment | zero padding (< 11 B) |
//
//	fragment:
//	 0         4        6        7                 11
//	 +---------+--------+--------+-----------------+==================+
//	 |   CRC   | Length |  Type  |     LogNum      |     Payload      |
//	 +---------+--------+--------+-----------------+==================+
//	   4 B       2 B      1 B          4 B           Length bytes
//
//	CRC     uint32 little-endian: the masked CRC-32C (Castagnoli) of the
//	        bytes from Length to the end of Payload (Length, Type, LogNum
//	        and Payload). mask(c) = ((c >> 15) | (c << 17)) + 0xa282ead8.
//	Length  uint16 little-endian: payload bytes (at most 32768 - 11).
//	Type    1 full record, 2 first, 3 middle, 4 last fragment of a record
//	        that spans blocks, 5 end-of-file marker (Length 0; always the
//	        last 11 bytes of a sealed file). 0 never appears in a valid
//	        fragment: an all-zero header is unwritten space.
//	LogNum  uint32 little-endian: the low 32 bits of the file's number. A
//	        fragment whose LogNum is not the file's own (left over from an
//	        older or copied file) is rejected like a checksum failure.
//
// All of these constants are part of the format; never change them. A new
// layout gets new Type or entry version values.
//
// # Entries
//
// The payload of a record is one entry:
//
//	+---------+------------------+----------------+=========+
//	| Version | Tablet (uvarint) | Seq (uvarint)  |  Data   |
//	+---------+------------------+----------------+=========+
//	   1 B        1-10 B            1-10 B         the rest of the record
//
// Version is 1. Data runs to the end of the record; the record's length
// bounds it, and the decoder checks every varint against the bytes left.
//
// # Worked example
//
// Entry{Tablet: 7, Seq: 300, Data: "hi"} as the first record of file 1:
//
//	entry:    01 07 ac 02 68 69                  version 1, tablet 7,
//	                                             seq 300 (uvarint ac 02), "hi"
//	fragment: 25 78 01 ff  06 00  01  01 00 00 00  01 07 ac 02 68 69
//	          CRC          len 6  full LogNum 1    payload
//
// CRC: the CRC-32C of "06 00 01 01 00 00 00 01 07 ac 02 68 69", masked, is
// 0xff017825, stored little-endian. Sealing the file then appends the
// marker 36 67 16 c6 00 00 05 01 00 00 00.
//
// # Replay and damage
//
// Replay reads every file in order. At a bad fragment (checksum, length,
// type or LogNum) or a broken fragment sequence it looks for any later block
// of the same file that starts with a valid fragment:
//
//   - none: the damage is a torn tail (a crash cut the file, or left unsynced
//     space unwritten). In the last file, or in a file that was never sealed
//     (the live file of a Log that crashed before another Log started), the
//     tail is dropped and ReplayStats.TornTail is set.
//   - some, or the file is sealed and not the last: the damage is corruption
//     of data that was written; Replay fails with a *CorruptError (wrapping
//     ErrCorrupt) naming the file and offset, or, with SkipCorrupt, counts
//     it and goes on at that later block.
//
// A crash can in principle leave a later unsynced block on disk and an
// earlier unsynced block unwritten (the device wrote them out of order);
// Replay then reports corruption, the safe answer, and SkipCorrupt recovers.
// Entries that were acknowledged with sync=true are never in such a region.
package wal
