package mapreduce

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// The record file format (see the package doc for the diagram and a worked
// example). It is used for FileFormatRecords input and output and, without
// the header, for the runner's spill files.
const (
	// recordMagic opens every record file. Part of the format; never change.
	recordMagic = "CMRF"
	// recordVersion1 is the only version so far. Part of the format.
	recordVersion1 = 1
	// headerSize is the size of the file header in bytes. Part of the format.
	headerSize = 8
	// crcSize is the size of a record's trailing CRC32C. Part of the format.
	crcSize = 4
)

// MaxRecordSize bounds key + value of one record, in bytes (64 MiB): the
// decoder refuses larger lengths as corruption, and writers refuse to write
// them (ErrRecordTooLarge).
const MaxRecordSize = 64 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendHeader appends the 8-byte record file header to dst.
func appendHeader(dst []byte) []byte {
	return append(dst, recordMagic[0], recordMagic[1], recordMagic[2], recordMagic[3], recordVersion1, 0, 0, 0)
}

// checkHeader validates a record file header.
func checkHeader(h []byte) error {
	if len(h) < headerSize {
		return fmt.Errorf("%w: header of %d bytes", ErrCorrupt, len(h))
	}
	if string(h[:4]) != recordMagic {
		return fmt.Errorf("%w: bad magic %q", ErrCorrupt, h[:4])
	}
	if h[4] != recordVersion1 {
		return fmt.Errorf("%w: unsupported version %d", ErrCorrupt, h[4])
	}
	if h[5] != 0 || h[6] != 0 || h[7] != 0 {
		return fmt.Errorf("%w: reserved header bytes not zero", ErrCorrupt)
	}
	return nil
}

// appendRecord appends one encoded record to dst. The caller has checked
// len(key)+len(value) <= MaxRecordSize.
func appendRecord(dst, key, value []byte) []byte {
	start := len(dst)
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	dst = binary.AppendUvarint(dst, uint64(len(value)))
	dst = append(dst, key...)
	dst = append(dst, value...)
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// recordSize is the encoded size of a record in bytes.
func recordSize(key, value []byte) int {
	return uvarintLen(uint64(len(key))) + uvarintLen(uint64(len(value))) + len(key) + len(value) + crcSize
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// recordDecoder reads records (no header) from a stream of known length.
// It trusts no length: each is checked against MaxRecordSize and against
// the bytes left before anything is allocated. Returned slices are valid
// until the next call.
type recordDecoder struct {
	r      *bufio.Reader
	remain int64 // bytes not yet consumed
	off    int64 // offset of the next record, for errors
	buf    []byte
}

func newRecordDecoder(r *bufio.Reader, size, baseOff int64) *recordDecoder {
	return &recordDecoder{r: r, remain: size, off: baseOff}
}

// readUvarint reads one uvarint, appending its raw bytes to d.buf.
func (d *recordDecoder) readUvarint() (uint64, error) {
	var x uint64
	for i := 0; i < binary.MaxVarintLen64; i++ {
		if d.remain == 0 {
			return 0, fmt.Errorf("%w: record at offset %d truncated in its length", ErrCorrupt, d.off)
		}
		c, err := d.r.ReadByte()
		if err != nil {
			return 0, d.ioErr(err)
		}
		d.remain--
		d.buf = append(d.buf, c)
		if i == binary.MaxVarintLen64-1 && c > 1 {
			break
		}
		x |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return x, nil
		}
	}
	return 0, fmt.Errorf("%w: record at offset %d has an overlong length", ErrCorrupt, d.off)
}

func (d *recordDecoder) ioErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: record at offset %d truncated", ErrCorrupt, d.off)
	}
	return err
}

// next decodes one record; io.EOF exactly at the end of the stream.
func (d *recordDecoder) next() (key, value []byte, err error) {
	if d.remain == 0 {
		return nil, nil, io.EOF
	}
	d.buf = d.buf[:0]
	kl, err := d.readUvarint()
	if err != nil {
		return nil, nil, err
	}
	vl, err := d.readUvarint()
	if err != nil {
		return nil, nil, err
	}
	if kl > MaxRecordSize || vl > MaxRecordSize || kl+vl > MaxRecordSize {
		return nil, nil, fmt.Errorf("%w: record at offset %d claims %d+%d bytes (max %d)", ErrCorrupt, d.off, kl, vl, MaxRecordSize)
	}
	body := int64(kl+vl) + crcSize
	if body > d.remain {
		return nil, nil, fmt.Errorf("%w: record at offset %d claims %d bytes, %d left", ErrCorrupt, d.off, body, d.remain)
	}
	h := len(d.buf)
	need := h + int(body)
	if cap(d.buf) < need {
		nb := make([]byte, h, need)
		copy(nb, d.buf)
		d.buf = nb
	}
	d.buf = d.buf[:need]
	if _, err := io.ReadFull(d.r, d.buf[h:]); err != nil {
		return nil, nil, d.ioErr(err)
	}
	d.remain -= body
	end := need - crcSize
	want := binary.LittleEndian.Uint32(d.buf[end:])
	if got := crc32.Checksum(d.buf[:end], castagnoli); got != want {
		return nil, nil, fmt.Errorf("%w: record at offset %d: checksum %08x, want %08x", ErrCorrupt, d.off, got, want)
	}
	d.off += int64(need)
	key = d.buf[h : h+int(kl) : h+int(kl)]
	value = d.buf[h+int(kl) : end : end]
	return key, value, nil
}

// decodeRecordFile decodes a whole record file held in memory: the header
// then every record, calling fn for each. Used by tests and the fuzz target.
func decodeRecordFile(data []byte, fn func(key, value []byte)) error {
	if err := checkHeader(data); err != nil {
		return err
	}
	d := newRecordDecoder(bufio.NewReader(bytes.NewReader(data[headerSize:])), int64(len(data)-headerSize), headerSize)
	for {
		k, v, err := d.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		fn(k, v)
	}
}
