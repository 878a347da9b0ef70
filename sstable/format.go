package sstable

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// TableFormat is the version of the on-disk layout, stored in the footer.
// A new layout gets a new value; readers accept every value between
// MinTableFormat and MaxTableFormat, and writers write TableFormatV1.
type TableFormat uint32

// Table format versions (part of the format; never change the values).
const (
	// TableFormatV1: data blocks with prefix-compressed keys and restart
	// points, per-block Snappy or none, 5-byte block trailer with CRC32C,
	// index of last keys, bits-and-blooms Bloom filter of row and column
	// prefixes, tagged properties, 64-byte footer.
	TableFormatV1 TableFormat = 1

	MinTableFormat = TableFormatV1
	MaxTableFormat = TableFormatV1
)

func (v TableFormat) String() string { return fmt.Sprintf("table-format:v%d", uint32(v)) }

// On-disk constants (part of the format; never change).
const (
	// tableMagic ends every table: the ASCII bytes "cellarST" read as a
	// little-endian uint64.
	tableMagic uint64 = 0x5453_7261_6c6c_6563
	// footerLen is the fixed size of the footer in bytes.
	footerLen = 64
	// blockTrailerLen is the size of the trailer after every block: one
	// block-type byte and a little-endian CRC32C.
	blockTrailerLen = 5
	// blockTypeNone and blockTypeSnappy are the block-type byte values.
	blockTypeNone   byte = 0
	blockTypeSnappy byte = 1
	// restartEntryLen is the width of one restart offset and of the restart
	// count at the end of a block (little-endian uint32).
	restartEntryLen = 4
)

// Decoding limits. A table that breaks one is reported corrupt rather than
// allocating without bound.
const (
	// maxBlockLen bounds the size of any block (bytes). A data block
	// exceeds BlockSize (at most MaxBlockSize) only by its last entry (at
	// most MaxEntrySize) and its varint and restart overhead.
	maxBlockLen = 256 << 20
	// maxSnappyRatio bounds the decoded/encoded ratio a Snappy block may
	// claim: a 3-byte copy op yields at most 64 bytes.
	maxSnappyRatio = 22
	// maxBloomK bounds the number of hash functions of a stored filter.
	maxBloomK = 64
)

// crcTable is CRC-32C (Castagnoli), used for every checksum in a table.
var crcTable = crc32.MakeTable(crc32.Castagnoli)

// blockChecksum is the CRC32C stored in a block trailer: it covers the block
// contents as stored (compressed or not) followed by the block-type byte.
func blockChecksum(contents []byte, typ byte) uint32 {
	c := ^crc32.Update(0, crcTable, contents)
	// One more byte, by the table, as crc32.Update would do it (a []byte
	// here would escape to the heap on every block).
	c = crcTable[byte(c)^typ] ^ (c >> 8)
	return ^c
}

// handle locates a block: Length counts the stored contents, without the
// 5-byte trailer that follows them.
type handle struct {
	Offset, Length uint64
}

// end is the offset just past the block's trailer.
func (h handle) end() uint64 { return h.Offset + h.Length + blockTrailerLen }

// maxHandleLen is the longest varint encoding of a handle.
const maxHandleLen = 2 * binary.MaxVarintLen64

// appendHandle appends the varint form used in index entries: uvarint
// offset, uvarint length.
func appendHandle(dst []byte, h handle) []byte {
	dst = binary.AppendUvarint(dst, h.Offset)
	return binary.AppendUvarint(dst, h.Length)
}

// decodeHandle parses an index entry value; it must hold exactly a handle.
func decodeHandle(b []byte) (handle, error) {
	off, n := binary.Uvarint(b)
	if n <= 0 {
		return handle{}, reasonf("bad block handle offset")
	}
	length, m := binary.Uvarint(b[n:])
	if m <= 0 || n+m != len(b) {
		return handle{}, reasonf("bad block handle length")
	}
	return handle{Offset: off, Length: length}, nil
}

// footer is the fixed-size record at the end of every table.
type footer struct {
	Index, Filter, Properties handle // Filter.Length == 0: no filter
	Format                    TableFormat
}

// Footer field offsets (part of the format; never change).
const (
	footerIndexOff   = 0
	footerFilterOff  = 16
	footerPropsOff   = 32
	footerFormatOff  = 48
	footerCRCOff     = 52
	footerMagicOff   = 56
	footerCRCCovered = footerCRCOff // the CRC covers bytes [0, 52)
)

func (f footer) encode() []byte {
	b := make([]byte, footerLen)
	put := func(off int, h handle) {
		binary.LittleEndian.PutUint64(b[off:], h.Offset)
		binary.LittleEndian.PutUint64(b[off+8:], h.Length)
	}
	put(footerIndexOff, f.Index)
	put(footerFilterOff, f.Filter)
	put(footerPropsOff, f.Properties)
	binary.LittleEndian.PutUint32(b[footerFormatOff:], uint32(f.Format))
	binary.LittleEndian.PutUint32(b[footerCRCOff:], crc32.Checksum(b[:footerCRCCovered], crcTable))
	binary.LittleEndian.PutUint64(b[footerMagicOff:], tableMagic)
	return b
}

// decodeFooter parses and checks a footer; b must be exactly footerLen
// bytes. It checks the magic, the CRC and the version, not the handles
// (which need the file size; see checkLayout).
func decodeFooter(b []byte) (footer, error) {
	var f footer
	if len(b) != footerLen {
		return f, reasonf("footer is %d bytes, want %d", len(b), footerLen)
	}
	if m := binary.LittleEndian.Uint64(b[footerMagicOff:]); m != tableMagic {
		return f, reasonf("bad magic number %#016x (not an sstable)", m)
	}
	want := binary.LittleEndian.Uint32(b[footerCRCOff:])
	if got := crc32.Checksum(b[:footerCRCCovered], crcTable); got != want {
		return f, reasonf("footer checksum mismatch: stored %#08x, computed %#08x", want, got)
	}
	get := func(off int) handle {
		return handle{binary.LittleEndian.Uint64(b[off:]), binary.LittleEndian.Uint64(b[off+8:])}
	}
	f.Index, f.Filter, f.Properties = get(footerIndexOff), get(footerFilterOff), get(footerPropsOff)
	f.Format = TableFormat(binary.LittleEndian.Uint32(b[footerFormatOff:]))
	if f.Format < MinTableFormat || f.Format > MaxTableFormat {
		return f, reasonf("unsupported %s (this reader supports v%d to v%d)", f.Format, MinTableFormat, MaxTableFormat)
	}
	return f, nil
}

// checkLayout validates the footer's handles against the footer's offset
// (the file size minus footerLen). TableFormatV1 lays the meta blocks out
// back to back, in this order, right before the footer:
//
//	data blocks | filter (optional) | properties | index | footer
//
// It returns dataEnd, the offset just past the last data block.
func (f footer) checkLayout(footerOff uint64) (dataEnd uint64, err error) {
	fits := func(h handle) bool {
		return h.Length <= footerOff && footerOff-h.Length >= blockTrailerLen &&
			h.Offset <= footerOff-h.Length-blockTrailerLen
	}
	if !fits(f.Index) || f.Index.end() != footerOff {
		return 0, reasonf("index handle %+v does not end at the footer (offset %d)", f.Index, footerOff)
	}
	if !fits(f.Properties) || f.Properties.end() != f.Index.Offset {
		return 0, reasonf("properties handle %+v does not end at the index", f.Properties)
	}
	dataEnd = f.Properties.Offset
	if f.Filter.Length != 0 || f.Filter.Offset != 0 {
		if f.Filter.Length == 0 || !fits(f.Filter) || f.Filter.end() != f.Properties.Offset {
			return 0, reasonf("filter handle %+v does not end at the properties", f.Filter)
		}
		dataEnd = f.Filter.Offset
	}
	return dataEnd, nil
}
