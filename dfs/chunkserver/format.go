package chunkserver

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
)

// The chunk file, format version 2. One file per replica, "<handle>.chunk",
// holds the data, a CRC32C per 64 KiB block and the replica's commit state,
// so that a Sync costs one fdatasync of one file. All integers are
// little-endian; every constant below is part of the format: never change.
//
//	file offset  size   contents
//	          0    64   commit slot 0
//	         64  4032   zero
//	       4096    64   commit slot 1
//	       4160  4032   zero
//	       8192     …   data area: block 0 (65536 bytes), trailer 0 (4 bytes),
//	                    block 1, trailer 1, …, then the last block's bytes
//
// Block i is chunk bytes [i×65536, (i+1)×65536). A complete block is
// followed by its trailer, the CRC32C (Castagnoli) of the block's 65536
// bytes, written in the same pwritev as the block's last bytes. The last
// block, when partial, has no trailer: its CRC is in the commit slot. Chunk
// byte off therefore lives at file offset 8192 + off + 4×⌊off/65536⌋ (see
// DataFileOffset), and a chunk of length L fills exactly fileSize(L) =
// 8192 + L + 4×⌊L/65536⌋ bytes.
//
// Commit slot (64 bytes):
//
//	offset size field
//	     0    4 magic 0x544c5343 ("CSLT" in file order)
//	     4    1 format version (2)
//	     5    1 slot index: 0 at file offset 0, 1 at 4096; always seq mod 2
//	     6    2 reserved, zero
//	     8    8 seq: 1 for the first commit, +1 for each one after
//	    16    8 chunk handle
//	    24    8 chunk version
//	    32    8 length L: chunk bytes committed (the synced length)
//	    40    4 tail CRC: CRC32C of chunk bytes [⌊L/65536⌋×65536, L);
//	            0 when L is a multiple of 65536 (the last block is complete
//	            and its trailer holds its CRC)
//	    44    4 block size in bytes (65536)
//	    48   12 reserved, zero
//	    60    4 CRC32C of bytes [0, 60)
//
// A commit (Sync, a version change, a truncation below the synced length)
// writes the next seq into the slot that does not hold the current one,
// then fdatasyncs the file once. The data and trailers it covers were
// written by earlier appends, which only ever write beyond the committed
// length, so the bytes and CRCs the current slot covers are never
// rewritten while it is the newest durable one; the slot itself is never
// overwritten until a newer one is durable. A truncation below the committed
// length commits the shorter length before the file is cut or rewritten.
// (Like any design over a block device, this assumes a torn write leaves
// each 512-byte sector either old or new, never garbage in bytes that the
// write did not change.)
//
// Recovery (opening the store; recoverFile) takes the newest slot that
// decodes, names the chunk and whose new bytes verify: every block from the
// older slot's last block through the newest's last is checked against its
// trailer or the tail CRC, as a crash may have left the slot durable but not
// the data it covers (or the reverse). If they do not verify, that commit
// never completed and the older slot, durable since its own fdatasync, is
// used. Bytes beyond the chosen length (written, never committed) are cut.
//
// Worked example: chunk 7 is created at version 2 (seq 1 in slot 1: length
// 0), then 70000 bytes are appended and synced (seq 2 in slot 0: version 2,
// length 70000, tail CRC = CRC32C of bytes [65536, 70000)). The file is
// 8192 + 65536 + 4 + 4464 = 78196 bytes; the trailer of block 0 is at file
// offset 73728 and chunk byte 65536 at 73732.
//
// Format version 1 (a raw data file plus a "<handle>.meta" sidecar) is not
// read: a store holding a sidecar fails to open with ErrOldLayout.
const (
	formatVersion = 2
	slotMagic     = 0x544c5343
	slotSize      = 64
	slotStride    = 4096 // slot i is at file offset i×slotStride
	dataStart     = 8192 // file offset of chunk byte 0
	trailerSize   = 4
	// BlockSize is the checksummed unit of chunk data (bytes).
	BlockSize = 64 << 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// commitSlot is a decoded commit slot.
type commitSlot struct {
	Seq     uint64 // ≥ 1; the slot lives at index Seq%2
	Handle  uint64
	Version uint64
	Length  uint64 // committed chunk bytes
	TailCRC uint32 // CRC32C of the partial last block; 0 if none
}

func (s commitSlot) index() int       { return int(s.Seq % 2) }
func slotOffset(seq uint64) int64     { return int64(seq%2) * slotStride }
func numBlocks(length uint64) uint64  { return (length + BlockSize - 1) / BlockSize }
func fullBlocks(length int64) int64   { return length / BlockSize }
func blockFileOffset(b int64) int64   { return dataStart + b*(BlockSize+trailerSize) }
func fileSize(length int64) int64     { return dataStart + length + trailerSize*fullBlocks(length) }
func tailLen(length int64) int64      { return length % BlockSize }
func blockLen(b, length int64) int64  { return min(BlockSize, length-b*BlockSize) }
func isComplete(b, length int64) bool { return (b+1)*BlockSize <= length }

// DataFileOffset returns the offset in a chunk file (Server.ChunkFile) of
// chunk byte off.
func DataFileOffset(off int64) int64 { return dataStart + off + trailerSize*fullBlocks(off) }

// encodeSlot returns the slot's 64-byte encoding. s.Seq must be ≥ 1.
func encodeSlot(s commitSlot) [slotSize]byte {
	var b [slotSize]byte
	binary.LittleEndian.PutUint32(b[0:], slotMagic)
	b[4] = formatVersion
	b[5] = byte(s.index())
	binary.LittleEndian.PutUint64(b[8:], s.Seq)
	binary.LittleEndian.PutUint64(b[16:], s.Handle)
	binary.LittleEndian.PutUint64(b[24:], s.Version)
	binary.LittleEndian.PutUint64(b[32:], s.Length)
	binary.LittleEndian.PutUint32(b[40:], s.TailCRC)
	binary.LittleEndian.PutUint32(b[44:], BlockSize)
	binary.LittleEndian.PutUint32(b[60:], crc32.Checksum(b[:60], castagnoli))
	return b
}

// decodeSlot parses the commit slot found at slot index idx. Any damage,
// a torn write included, returns an error marked ErrCorruptSlot.
func decodeSlot(b []byte, idx int) (commitSlot, error) {
	if len(b) < slotSize {
		return commitSlot{}, fmt.Errorf("%w: slot %d: %d bytes, want %d", ErrCorruptSlot, idx, len(b), slotSize)
	}
	b = b[:slotSize]
	if got := binary.LittleEndian.Uint32(b[0:]); got != slotMagic {
		return commitSlot{}, fmt.Errorf("%w: slot %d: bad magic %#x", ErrCorruptSlot, idx, got)
	}
	if want, got := crc32.Checksum(b[:60], castagnoli), binary.LittleEndian.Uint32(b[60:]); want != got {
		return commitSlot{}, fmt.Errorf("%w: slot %d: checksum %#x, want %#x", ErrCorruptSlot, idx, got, want)
	}
	if b[4] != formatVersion {
		return commitSlot{}, fmt.Errorf("%w: slot %d: format version %d not supported", ErrCorruptSlot, idx, b[4])
	}
	for _, r := range append(b[6:8:8], b[48:60]...) {
		if r != 0 {
			return commitSlot{}, fmt.Errorf("%w: slot %d: reserved bytes set", ErrCorruptSlot, idx)
		}
	}
	if bs := binary.LittleEndian.Uint32(b[44:]); bs != BlockSize {
		return commitSlot{}, fmt.Errorf("%w: slot %d: block size %d, want %d", ErrCorruptSlot, idx, bs, BlockSize)
	}
	s := commitSlot{
		Seq:     binary.LittleEndian.Uint64(b[8:]),
		Handle:  binary.LittleEndian.Uint64(b[16:]),
		Version: binary.LittleEndian.Uint64(b[24:]),
		Length:  binary.LittleEndian.Uint64(b[32:]),
		TailCRC: binary.LittleEndian.Uint32(b[40:]),
	}
	switch {
	case s.Seq == 0:
		return commitSlot{}, fmt.Errorf("%w: slot %d: seq 0", ErrCorruptSlot, idx)
	case int(b[5]) != idx || s.index() != idx:
		return commitSlot{}, fmt.Errorf("%w: slot %d holds index %d, seq %d", ErrCorruptSlot, idx, b[5], s.Seq)
	case s.Length > maxChunkLength:
		return commitSlot{}, fmt.Errorf("%w: slot %d: length %d out of range", ErrCorruptSlot, idx, s.Length)
	case s.Length%BlockSize == 0 && s.TailCRC != 0:
		return commitSlot{}, fmt.Errorf("%w: slot %d: tail CRC set without a partial block", ErrCorruptSlot, idx)
	}
	return s, nil
}

// maxChunkLength bounds a chunk's length (bytes); the master's ChunkSize
// is at most 1 TiB.
const maxChunkLength = 1 << 40

// recoverFile picks the commit state of chunk file r (size bytes) of chunk
// h: the newest slot whose bytes verify, as the format comment above
// describes. It returns an error marked ErrCorruptSlot or dfs.ErrCorrupt
// when no slot is usable. buf is scratch space of at least
// BlockSize+trailerSize bytes, or nil.
func recoverFile(r io.ReaderAt, size int64, h uint64, buf []byte) (commitSlot, error) {
	var hdr [slotStride + slotSize]byte
	if _, err := r.ReadAt(hdr[:], 0); err != nil && err != io.EOF {
		return commitSlot{}, err // a short file leaves zeros: no slot
	}
	var slots []commitSlot
	var errs []error
	for idx := range 2 {
		s, err := decodeSlot(hdr[idx*slotStride:], idx)
		if err == nil && s.Handle != h {
			err = fmt.Errorf("%w: slot %d names chunk %x, file is chunk %x", ErrCorruptSlot, idx, s.Handle, h)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		slots = append(slots, s)
	}
	if len(slots) == 0 {
		return commitSlot{}, fmt.Errorf("chunk %x: no usable commit slot: %w; %w", h, errs[0], errs[1])
	}
	if len(slots) == 2 && slots[1].Seq > slots[0].Seq {
		slots[0], slots[1] = slots[1], slots[0]
	}
	newest := slots[0]
	// Blocks the newest commit may have written: from the older slot's
	// last block on. With one usable slot, it is the newest durable commit
	// (the other was never written, or was torn being written after this
	// one was durable), so only its last block is checked.
	from := lastBlock(int64(newest.Length))
	if len(slots) == 2 {
		older := slots[1]
		from = lastBlock(min(int64(older.Length), int64(newest.Length)))
		if newest.Seq != older.Seq+1 {
			from = 0 // never written by this store; trust nothing
		}
	}
	err := verifyBlocks(r, size, newest, from, buf)
	if err == nil || len(slots) == 1 {
		return newest, err
	}
	// The newest commit never completed; the older one was durable before
	// it began.
	older := slots[1]
	if oerr := verifyBlocks(r, size, older, lastBlock(int64(older.Length)), buf); oerr != nil {
		return commitSlot{}, fmt.Errorf("chunk %x: newest commit (seq %d): %w; older (seq %d): %w", h, newest.Seq, err, older.Seq, oerr)
	}
	return older, nil
}

// lastBlock is the index of the block holding the chunk's last byte, 0 for
// an empty chunk.
func lastBlock(length int64) int64 { return max(0, (length-1)/BlockSize) }

// verifyBlocks checks blocks [from, numBlocks(s.Length)) of the file
// against their trailers and s's tail CRC, and that the file is long enough.
// buf is scratch space of BlockSize+trailerSize bytes, or nil.
func verifyBlocks(r io.ReaderAt, size int64, s commitSlot, from int64, buf []byte) error {
	length := int64(s.Length)
	if len(buf) < BlockSize+trailerSize {
		buf = make([]byte, BlockSize+trailerSize)
	}
	if size < fileSize(length) {
		return fmt.Errorf("%w: file has %d bytes, seq %d needs %d", errCorruptData, size, s.Seq, fileSize(length))
	}
	for b := from; b < int64(numBlocks(s.Length)); b++ {
		n := blockLen(b, length)
		want := s.TailCRC
		if isComplete(b, length) {
			n += trailerSize
		}
		p := buf[:n]
		if _, err := r.ReadAt(p, blockFileOffset(b)); err != nil {
			return err
		}
		if isComplete(b, length) {
			want = binary.LittleEndian.Uint32(p[BlockSize:])
			p = p[:BlockSize]
		}
		if got := crc32.Checksum(p, castagnoli); got != want {
			return fmt.Errorf("%w: block %d: checksum %#x, want %#x (seq %d)", errCorruptData, b, got, want, s.Seq)
		}
	}
	return nil
}

// layoutAppend appends to iov the vectors that write p at the end of a
// chunk of length bytes whose partial last block has CRC tail, a trailer
// after every block p completes, and returns them with the new tail CRC.
// The trailers are stored in trailers' spare capacity when it has room.
func layoutAppend(iov [][]byte, trailers []byte, length int64, tail uint32, p []byte) ([][]byte, uint32) {
	t := trailers[:0]
	for len(p) > 0 {
		n := min(int64(len(p)), BlockSize-tailLen(length))
		tail = crc32.Update(tail, castagnoli, p[:n])
		iov = append(iov, p[:n])
		length += n
		p = p[n:]
		if tailLen(length) == 0 {
			at := len(t)
			t = binary.LittleEndian.AppendUint32(t, tail)
			iov = append(iov, t[at:at+trailerSize])
			tail = 0
		}
	}
	return iov, tail
}
