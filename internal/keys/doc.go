// Package keys encodes Cellar's internal cell keys so that plain byte
// comparison (bytes.Compare) gives the cell order of the data model
// (docs/DESIGN.md, "Data model"; Bigtable §2):
//
//	row ascending, family ascending, qualifier ascending,
//	timestamp descending, sequence number descending.
//
// The memtable, the SSTables and every merge in the tablet compare encoded
// keys with bytes.Compare and nothing else, so this package is the single
// definition of the order. It owns the encoding, the decoder (which trusts no
// byte it is given) and the limits on each component; it does not own values.
//
// # Layout (part of the format; never change)
//
//		+-----------------+------------+-----------------+---------+---------------+
//		| esc(row) 00 01  | family 00  | esc(qual) 00 01 | ts (8)  | trailer (8)   |
//		+-----------------+------------+-----------------+---------+---------------+
//
//	  - esc(x) writes every 0x00 byte of x as 0x00 0xFF and leaves other bytes
//	    alone; the terminator 0x00 0x01 sorts below any continuation, so the
//	    escaped form preserves the order of arbitrary byte strings and no
//	    component is a prefix of a longer one's encoding.
//	  - family is a schema name matching [_a-zA-Z0-9][-_.a-zA-Z0-9]* (no 0x00),
//	    terminated by a single 0x00.
//	  - ts is big-endian uint64(MaxInt64 - timestamp): newer timestamps sort
//	    first. Cell timestamps are microseconds in [0, MaxTimestamp];
//	    MarkerTimestamp (MaxInt64) is reserved for family and column delete
//	    markers so that they sort before every cell they may mask.
//	  - trailer is big-endian ^(seq<<8 | kind): higher sequence numbers sort
//	    first, so of two writes with one timestamp the later one wins.
//
// Worked example: row "r\x00", family "cf", qualifier "q", timestamp 5,
// sequence 7, KindSet encodes as
//
//	72 00 FF 00 01 | 63 66 00 | 71 00 01 | 7F FF FF FF FF FF FF FA | FF FF FF FF FF FF F8 FE
//
// # Deletes
//
// A tombstone masks only the cells written before it (lower sequence
// number), as Cloud Bigtable's deletes do: a later write with an old
// timestamp is visible again. KindDeleteFamily sits at (row, family, "",
// MarkerTimestamp); KindDeleteColumn sits at (row, family, qualifier,
// MarkerTimestamp) and its value holds the masked timestamp range;
// KindDeleteCell sits at the exact (row, family, qualifier, timestamp) it
// masks. A row delete is written as a family delete in every family.
//
// Everything in this package is a pure function and safe for concurrent use.
package keys
