package chunkserver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// The checksum sidecar ("<handle>.meta") of one chunk. All integers are
// little-endian; every constant below is part of the format: never change.
//
//	offset size field
//	     0    4 magic 0x4b484343 ("CCHK" in file order)
//	     4    1 format version (1)
//	     5    3 reserved, zero
//	     8    8 chunk handle
//	    16    8 chunk version
//	    24    8 length: bytes of chunk data the checksums cover (the synced length)
//	    32    4 block size in bytes (65536)
//	    36    4 CRC32C (Castagnoli) of bytes [0, 36)
//	    40  4×n CRC32C of data block i, i = 0..n-1, n = ceil(length / block size);
//	            block i is data bytes [i×65536, min((i+1)×65536, length)), so
//	            the last block's CRC covers only its written part
//
// Worked example: chunk 7, version 2, 70000 bytes of data: the header holds
// handle 7, version 2, length 70000, block size 65536; two CRCs follow, one
// of data[0:65536] and one of data[65536:70000]; the file is 48 bytes.
//
// The data file ("<handle>.chunk") holds the raw chunk bytes. It may be
// longer than the sidecar's length (bytes written but not synced before a
// crash); on start-up the chunkserver truncates it to that length.
const (
	metaMagic      = 0x4b484343
	metaVersion    = 1
	metaHeaderSize = 40
	// BlockSize is the checksummed unit of chunk data (bytes).
	BlockSize = 64 << 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorruptMeta marks a checksum sidecar that cannot be decoded.
var ErrCorruptMeta = errors.New("cellar/dfs/chunkserver: corrupt checksum sidecar")

// chunkMeta is the decoded sidecar.
type chunkMeta struct {
	Handle  uint64
	Version uint64
	Length  uint64
	CRCs    []uint32 // one per block; len == numBlocks(Length)
}

func numBlocks(length uint64) uint64 { return (length + BlockSize - 1) / BlockSize }

// encodeMeta appends the sidecar encoding of m to dst. m.CRCs must hold
// numBlocks(m.Length) entries.
func encodeMeta(dst []byte, m chunkMeta) []byte {
	var h [metaHeaderSize]byte
	binary.LittleEndian.PutUint32(h[0:], metaMagic)
	h[4] = metaVersion
	binary.LittleEndian.PutUint64(h[8:], m.Handle)
	binary.LittleEndian.PutUint64(h[16:], m.Version)
	binary.LittleEndian.PutUint64(h[24:], m.Length)
	binary.LittleEndian.PutUint32(h[32:], BlockSize)
	binary.LittleEndian.PutUint32(h[36:], crc32.Checksum(h[:36], castagnoli))
	dst = append(dst, h[:]...)
	for _, c := range m.CRCs {
		dst = binary.LittleEndian.AppendUint32(dst, c)
	}
	return dst
}

// decodeMeta parses a sidecar. It trusts no length: the CRC count is checked
// against the bytes present before anything is allocated. Trailing bytes
// after the CRCs are an error (the sidecar is rewritten whole).
func decodeMeta(b []byte) (chunkMeta, error) {
	if len(b) < metaHeaderSize {
		return chunkMeta{}, fmt.Errorf("%w: %d bytes, header needs %d", ErrCorruptMeta, len(b), metaHeaderSize)
	}
	if got := binary.LittleEndian.Uint32(b[0:]); got != metaMagic {
		return chunkMeta{}, fmt.Errorf("%w: bad magic %#x", ErrCorruptMeta, got)
	}
	if want, got := crc32.Checksum(b[:36], castagnoli), binary.LittleEndian.Uint32(b[36:]); want != got {
		return chunkMeta{}, fmt.Errorf("%w: header checksum %#x, want %#x", ErrCorruptMeta, got, want)
	}
	if b[4] != metaVersion {
		return chunkMeta{}, fmt.Errorf("%w: format version %d not supported", ErrCorruptMeta, b[4])
	}
	if b[5] != 0 || b[6] != 0 || b[7] != 0 {
		return chunkMeta{}, fmt.Errorf("%w: reserved bytes set", ErrCorruptMeta)
	}
	if bs := binary.LittleEndian.Uint32(b[32:]); bs != BlockSize {
		return chunkMeta{}, fmt.Errorf("%w: block size %d, want %d", ErrCorruptMeta, bs, BlockSize)
	}
	m := chunkMeta{
		Handle:  binary.LittleEndian.Uint64(b[8:]),
		Version: binary.LittleEndian.Uint64(b[16:]),
		Length:  binary.LittleEndian.Uint64(b[24:]),
	}
	n := numBlocks(m.Length)
	avail := uint64(len(b)-metaHeaderSize) / 4
	if n != avail || uint64(len(b)-metaHeaderSize)%4 != 0 {
		return chunkMeta{}, fmt.Errorf("%w: length %d needs %d checksums, sidecar holds %d bytes of them",
			ErrCorruptMeta, m.Length, n, len(b)-metaHeaderSize)
	}
	m.CRCs = make([]uint32, n)
	for i := range m.CRCs {
		m.CRCs[i] = binary.LittleEndian.Uint32(b[metaHeaderSize+4*i:])
	}
	return m, nil
}
