package wal

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// The on-disk layout is described in doc.go.
const (
	// BlockSize is the size of the blocks a log file is cut into (bytes).
	// Part of the format; never change.
	BlockSize = 32 << 10
	// headerLen is the length of a fragment header (bytes): CRC 4, length
	// 2, type 1, log number 4. Part of the format; never change.
	headerLen = 11
	// maxFragmentPayload is the most payload one fragment can carry.
	maxFragmentPayload = BlockSize - headerLen
)

// Fragment types. Part of the format; never change the values.
const (
	fragZero   byte = 0 // never written: a zeroed (unwritten or lost) header
	fragFull   byte = 1 // a whole record
	fragFirst  byte = 2 // the first piece of a record spanning blocks
	fragMiddle byte = 3 // an inner piece
	fragLast   byte = 4 // the final piece
	fragEOF    byte = 5 // end-of-file marker written when a file is sealed
	maxFrag         = fragEOF
)

// crcMaskDelta is added to the rotated CRC (see maskCRC). Part of the
// format; never change.
const crcMaskDelta = 0xa282ead8

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// maskCRC rotates and offsets a CRC before it is stored, so that a record
// whose payload itself holds CRCs of its own bytes does not checksum
// trivially. Part of the format; never change.
func maskCRC(c uint32) uint32 { return (c>>15 | c<<17) + crcMaskDelta }

// framer cuts records into fragments for one log file. It remembers where
// in the current block the file ends. Not safe for concurrent use.
type framer struct {
	logNum   uint32 // the low 32 bits of the file number, in every header
	blockOff int    // bytes already used in the current block
}

// appendFragment appends one fragment of type typ holding p, which must fit
// in the current block.
func (f *framer) appendFragment(dst []byte, typ byte, p []byte) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, byte(len(p)), byte(len(p)>>8), typ)
	dst = binary.LittleEndian.AppendUint32(dst, f.logNum)
	dst = append(dst, p...)
	binary.LittleEndian.PutUint32(dst[start:], maskCRC(crc32.Checksum(dst[start+4:], crcTable)))
	f.blockOff += headerLen + len(p)
	return dst
}

// padBlock pads to the next block if fewer than headerLen bytes are left
// in the current one.
func (f *framer) padBlock(dst []byte) []byte {
	if left := BlockSize - f.blockOff; left < headerLen {
		for range left {
			dst = append(dst, 0)
		}
		f.blockOff = 0
	}
	return dst
}

// appendRecord appends payload as one record: a full fragment if it fits
// in the current block, else first, middle... and last fragments.
func (f *framer) appendRecord(dst, payload []byte) []byte {
	first := true
	for {
		dst = f.padBlock(dst)
		n := min(len(payload), BlockSize-f.blockOff-headerLen)
		last := n == len(payload)
		typ := fragMiddle
		switch {
		case first && last:
			typ = fragFull
		case first:
			typ = fragFirst
		case last:
			typ = fragLast
		}
		dst = f.appendFragment(dst, typ, payload[:n])
		payload = payload[n:]
		first = false
		if last {
			return dst
		}
	}
}

// appendEOF appends the end-of-file marker that seals the file. It is
// always the file's last headerLen bytes.
func (f *framer) appendEOF(dst []byte) []byte {
	return f.appendFragment(f.padBlock(dst), fragEOF, nil)
}

// parseFragment checks the fragment header at b[0:] (b runs to the end of
// the loaded part of its block) and returns its type and payload, or a
// reason it is not a valid fragment of log logNum.
func parseFragment(b []byte, logNum uint32) (typ byte, payload []byte, reason string) {
	if len(b) < headerLen {
		return 0, nil, fmt.Sprintf("truncated fragment header (%d of %d bytes)", len(b), headerLen)
	}
	crc := binary.LittleEndian.Uint32(b[0:4])
	n := int(binary.LittleEndian.Uint16(b[4:6]))
	typ = b[6]
	num := binary.LittleEndian.Uint32(b[7:11])
	if crc == 0 && n == 0 && typ == fragZero && num == 0 {
		return 0, nil, "zeroed fragment header"
	}
	if headerLen+n > len(b) {
		return 0, nil, fmt.Sprintf("fragment of %d bytes runs past its block or the file", n)
	}
	if got := maskCRC(crc32.Checksum(b[4:headerLen+n], crcTable)); got != crc {
		return 0, nil, fmt.Sprintf("checksum mismatch (stored %#08x, computed %#08x)", crc, got)
	}
	if num != logNum {
		return 0, nil, fmt.Sprintf("fragment of log file %d in log file %d (stale)", num, logNum)
	}
	if typ == fragZero || typ > maxFrag {
		return 0, nil, fmt.Sprintf("unknown fragment type %d", typ)
	}
	if typ == fragEOF && n != 0 {
		return 0, nil, fmt.Sprintf("end-of-file marker with %d payload bytes", n)
	}
	return typ, b[headerLen : headerLen+n], ""
}
