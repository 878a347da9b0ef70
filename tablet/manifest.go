package tablet

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"cellar/dfs"
	"cellar/internal/keys"
)

// The manifest records a tablet's durable state: its live SSTables per
// family and the sequence number up to which the commit log is redundant.
// It is rewritten whole (it is small) to a temporary file, synced, and
// renamed over the manifest; the rename is atomic and durable, so a crash
// leaves either the old or the new file set, never a mix.
//
// File names (part of the format): every Open of a tablet directory takes
// a new epoch e, one above the highest in the directory, by creating
// CLAIM-<e> exclusively (an empty file), and writes all its manifests as
// MANIFEST-<e>, through MANIFEST-<e>.tmp. e is decimal, 1 to 2^63-1, with
// no sign or leading zero; any other spelling is not a manifest or claim.
// The legacy name MANIFEST (and MANIFEST.tmp), all there was before
// epochs, is epoch 0: still read, never written by a tablet, and removed
// by the first Open with epochs. The directory's manifest is the one of
// the highest epoch; a server that lost the tablet writes only to its own
// lower epoch's, which nobody reads (see epoch.go and Tablet.checkFence).
// Open removes lower epochs' files once its own manifest is durable. Split
// and Merge give a brand-new directory its first manifest as MANIFEST-1.
//
// Format (part of the format; never change; a new layout gets a new
// version byte):
//
//	+----------+---------+----------------------------------+-----------+
//	| magic 8  | version | body                             | crc32c 4  |
//	| CLRMANIF | 1 byte  |                                  | LE        |
//	+----------+---------+----------------------------------+-----------+
//	body: uvarint id | flags (bit0 start row, bit1 end row, bit2 split) |
//	      [uvarint len, start row] | [uvarint len, end row] |
//	      uvarint flushedSeq | uvarint nextFileNum | uvarint splitFloor |
//	      uvarint families |
//	      families × ( uvarint len, name | uvarint files |
//	                   files × ( uvarint len, path | uvarint size | uvarint entries
//	                             [version 2: | bounds ] ) )
//	bounds (version 2 only): flags (bit0 low row, bit1 high row) |
//	      [uvarint len, low row] | [uvarint len, high row]
//
// Version 2 adds per-file row bounds: a tablet reads only the rows
// [low, high) of such a file (nil = unbounded), on top of its own range.
// A merged tablet (Merge) lists each parent's files bounded by that
// parent's range, since a file a parent shared with a former split
// sibling may hold rows the sibling has since changed. Version 1 is still
// written when no file has bounds, so that such manifests stay readable by
// older readers; both versions are read.
//
// The CRC32C (Castagnoli) covers magic, version and body. Paths are FS names
// (a daughter of a split names its parent's files). Worked example: tablet 7,
// unbounded, flushedSeq 9, nextFileNum 2, splitFloor 0, one family "cf"
// with no files:
//
//	43 4C 52 4D 41 4E 49 46 | 01 | 07 00 09 02 00 01 02 63 66 00 | crc
//
// splitFloor: tables in the tablet's own sst directory numbered below it
// were written before a split that kept this directory, and may be listed by
// the other daughter's manifest too, so this tablet never deletes them.
const (
	manifestMagic = "CLRMANIF"
	// manifestVersion is written when no file has bounds,
	// manifestVersionBounds when one does.
	manifestVersion       = 1
	manifestVersionBounds = 2
	// maxManifestSize caps what a decoder will read.
	maxManifestSize = 64 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// fileMeta is one live SSTable.
type fileMeta struct {
	path    string
	size    uint64
	entries uint64
	// lo and hi bound the rows the tablet reads from the file, [lo, hi)
	// (nil = unbounded), on top of the tablet's own range; set for the
	// files a merged tablet inherits (see Merge).
	lo, hi []byte
}

func (fm fileMeta) bounded() bool { return fm.lo != nil || fm.hi != nil }

// manifest is the durable state of a tablet. Values are immutable once
// published: changes make a copy (clone).
type manifest struct {
	id               ID
	startRow, endRow []byte // nil = unbounded
	flushedSeq       keys.SeqNum
	nextFileNum      uint64
	splitFloor       uint64 // own tables numbered below it may be shared
	split            bool   // the tablet was split; never open it again
	families         map[string][]fileMeta
}

func (m *manifest) clone() *manifest {
	c := *m
	c.families = make(map[string][]fileMeta, len(m.families))
	for f, files := range m.families {
		c.families[f] = append([]fileMeta(nil), files...)
	}
	return &c
}

func (m *manifest) encode() []byte {
	version := byte(manifestVersion)
	for _, files := range m.families {
		for _, fm := range files {
			if fm.bounded() {
				version = manifestVersionBounds
			}
		}
	}
	b := []byte(manifestMagic)
	b = append(b, version)
	b = binary.AppendUvarint(b, uint64(m.id))
	var flags byte
	if m.startRow != nil {
		flags |= 1
	}
	if m.endRow != nil {
		flags |= 2
	}
	if m.split {
		flags |= 4
	}
	b = append(b, flags)
	if m.startRow != nil {
		b = appendBytes(b, m.startRow)
	}
	if m.endRow != nil {
		b = appendBytes(b, m.endRow)
	}
	b = binary.AppendUvarint(b, uint64(m.flushedSeq))
	b = binary.AppendUvarint(b, m.nextFileNum)
	b = binary.AppendUvarint(b, m.splitFloor)
	names := sortedKeys(m.families)
	b = binary.AppendUvarint(b, uint64(len(names)))
	for _, f := range names {
		b = appendBytes(b, []byte(f))
		files := m.families[f]
		b = binary.AppendUvarint(b, uint64(len(files)))
		for _, fm := range files {
			b = appendBytes(b, []byte(fm.path))
			b = binary.AppendUvarint(b, fm.size)
			b = binary.AppendUvarint(b, fm.entries)
			if version >= manifestVersionBounds {
				var bf byte
				if fm.lo != nil {
					bf |= 1
				}
				if fm.hi != nil {
					bf |= 2
				}
				b = append(b, bf)
				if fm.lo != nil {
					b = appendBytes(b, fm.lo)
				}
				if fm.hi != nil {
					b = appendBytes(b, fm.hi)
				}
			}
		}
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

func appendBytes(b, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

// decodeManifest parses an encoded manifest. It trusts no length and never
// panics; errors wrap ErrCorrupt.
func decodeManifest(b []byte) (*manifest, error) {
	bad := func(format string, args ...any) (*manifest, error) {
		return nil, fmt.Errorf("%w: manifest: "+format, append([]any{ErrCorrupt}, args...)...)
	}
	if len(b) < len(manifestMagic)+1+4 {
		return bad("%d bytes is too short", len(b))
	}
	if string(b[:len(manifestMagic)]) != manifestMagic {
		return bad("bad magic")
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, crcTable) != sum {
		return bad("checksum mismatch")
	}
	version := body[len(manifestMagic)]
	if version != manifestVersion && version != manifestVersionBounds {
		return bad("unsupported version %d", version)
	}
	d := decoder{b: body, off: len(manifestMagic) + 1}
	m := &manifest{families: map[string][]fileMeta{}}
	m.id = ID(d.uvarint())
	flags := d.byte()
	m.split = flags&4 != 0
	if flags&^7 != 0 {
		return bad("flags %#x", flags)
	}
	if flags&1 != 0 {
		m.startRow = append([]byte{}, d.bytes(keys.MaxRowLen)...)
	}
	if flags&2 != 0 {
		m.endRow = append([]byte{}, d.bytes(keys.MaxRowLen)...)
	}
	m.flushedSeq = keys.SeqNum(d.uvarint())
	m.nextFileNum = d.uvarint()
	m.splitFloor = d.uvarint()
	nfam := d.count(2)
	for i := 0; i < nfam && d.err == nil; i++ {
		name := string(d.bytes(keys.MaxFamilyLen))
		nfiles := d.count(4)
		if d.err != nil {
			break
		}
		if err := keys.ValidateFamily(name); err != nil {
			return bad("family %d: %v", i, err)
		}
		if _, dup := m.families[name]; dup {
			return bad("family %q twice", name)
		}
		files := make([]fileMeta, 0, nfiles)
		for j := 0; j < nfiles && d.err == nil; j++ {
			var fm fileMeta
			fm.path = string(d.bytes(4096))
			fm.size = d.uvarint()
			fm.entries = d.uvarint()
			if version >= manifestVersionBounds {
				bf := d.byte()
				if bf&^3 != 0 {
					return bad("family %q file %d: bound flags %#x", name, j, bf)
				}
				if bf&1 != 0 {
					fm.lo = append([]byte{}, d.bytes(keys.MaxRowLen)...)
				}
				if bf&2 != 0 {
					fm.hi = append([]byte{}, d.bytes(keys.MaxRowLen)...)
				}
				if fm.lo != nil && fm.hi != nil && string(fm.lo) >= string(fm.hi) {
					return bad("family %q file %d: empty bounds", name, j)
				}
			}
			if d.err == nil {
				if err := dfs.CheckPath(fm.path, false); err != nil {
					return bad("family %q file %d: %v", name, j, err)
				}
			}
			files = append(files, fm)
		}
		m.families[name] = files
	}
	if d.err != nil {
		return bad("%v", d.err)
	}
	if d.off != len(body) {
		return bad("%d trailing bytes", len(body)-d.off)
	}
	if m.flushedSeq > keys.MaxSeq {
		return bad("flushed %v beyond the largest sequence number", m.flushedSeq)
	}
	if m.startRow != nil && m.endRow != nil && string(m.startRow) >= string(m.endRow) {
		return bad("empty row range")
	}
	return m, nil
}

// decoder reads fields with bounds checks; the first failure sticks in err
// and every later read returns zero values.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("bad %s at offset %d", what, d.off)
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	// Only the minimal encoding is accepted (no trailing 0x80 ... 0x00
	// padding), so that every decoded value has exactly one encoding.
	if n <= 0 || n > 1 && d.b[d.off+n-1] == 0 {
		d.fail("varint")
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.b) {
		d.fail("byte")
		return 0
	}
	d.off++
	return d.b[d.off-1]
}

func (d *decoder) bytes(max int) []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(max) || n > uint64(len(d.b)-d.off) {
		d.fail("length")
		return nil
	}
	v := d.b[d.off : d.off+int(n)]
	d.off += int(n)
	return v
}

// count reads an element count, each element taking at least minSize bytes.
func (d *decoder) count(minSize int) int {
	n := d.uvarint()
	if d.err != nil {
		return 0
	}
	if n > uint64((len(d.b)-d.off)/minSize) {
		d.fail("count")
		return 0
	}
	return int(n)
}
