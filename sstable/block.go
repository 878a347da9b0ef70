package sstable

import (
	"bytes"
	"encoding/binary"
)

// blockBuilder accumulates the entries of one block (data or index) in the
// layout described in doc.go: prefix-compressed entries, then the restart
// array, then the restart count. Not safe for concurrent use.
type blockBuilder struct {
	restartInterval int
	buf             []byte
	restarts        []uint32
	counter         int // entries since the last restart
	lastKey         []byte
	entries         int
}

func (b *blockBuilder) reset() {
	b.buf = b.buf[:0]
	b.restarts = b.restarts[:0]
	b.counter = 0
	b.lastKey = b.lastKey[:0]
	b.entries = 0
}

func (b *blockBuilder) empty() bool { return b.entries == 0 }

// estimatedSize is the size finish would return now (bytes).
func (b *blockBuilder) estimatedSize() int {
	return len(b.buf) + restartEntryLen*(len(b.restarts)+1)
}

// maxRestartSpan bounds the bytes between two restart points, whatever the
// restart interval: a seek binary-searches the restart points and then
// decodes entries one by one, so with large values (1 KB cells) sixteen
// entries per restart would have it touch 16 KB of cold memory per seek.
// Where restarts fall is the writer's choice; readers need no change.
const maxRestartSpan = 4 << 10

// add appends an entry; the caller guarantees key > the previous key.
func (b *blockBuilder) add(key, value []byte) {
	shared := 0
	if b.counter < b.restartInterval && b.entries > 0 && len(b.buf)-int(b.restarts[len(b.restarts)-1]) < maxRestartSpan {
		n := min(len(key), len(b.lastKey))
		for shared < n && key[shared] == b.lastKey[shared] {
			shared++
		}
	} else {
		b.restarts = append(b.restarts, uint32(len(b.buf)))
		b.counter = 0
	}
	b.buf = binary.AppendUvarint(b.buf, uint64(shared))
	b.buf = binary.AppendUvarint(b.buf, uint64(len(key)-shared))
	b.buf = binary.AppendUvarint(b.buf, uint64(len(value)))
	b.buf = append(b.buf, key[shared:]...)
	b.buf = append(b.buf, value...)
	b.lastKey = append(b.lastKey[:0], key...)
	b.counter++
	b.entries++
}

// finish appends the restart array and count and returns the block; the
// slice is valid until the next reset.
func (b *blockBuilder) finish() []byte {
	for _, r := range b.restarts {
		b.buf = binary.LittleEndian.AppendUint32(b.buf, r)
	}
	b.buf = binary.LittleEndian.AppendUint32(b.buf, uint32(len(b.restarts)))
	return b.buf
}

// blockIter walks the entries of one decoded (decompressed, checksummed)
// block. It trusts no byte of the block: every length is checked before
// slicing, and a malformed block sets err (a corruptReason) and makes the
// iterator invalid. Key is a private buffer; Value aliases the block.
type blockIter struct {
	data        []byte
	restartsOff int // start of the restart array = end of the entries
	numRestarts int
	cur, next   int // offsets of the current and the next entry
	key, val    []byte
	valid       bool
	err         error
}

// init prepares it for data, checking the restart array.
func (it *blockIter) init(data []byte) error {
	*it = blockIter{key: it.key[:0]}
	if len(data) < restartEntryLen {
		return it.fail(reasonf("block of %d bytes has no restart count", len(data)))
	}
	n := binary.LittleEndian.Uint32(data[len(data)-restartEntryLen:])
	if uint64(n) > uint64(len(data)/restartEntryLen-1) {
		return it.fail(reasonf("block of %d bytes claims %d restart points", len(data), n))
	}
	it.data = data
	it.numRestarts = int(n)
	it.restartsOff = len(data) - restartEntryLen*(int(n)+1)
	if n == 0 && it.restartsOff != 0 {
		return it.fail(reasonf("block has %d bytes of entries but no restart point", it.restartsOff))
	}
	prev := -1
	for i := 0; i < it.numRestarts; i++ {
		r := it.restart(i)
		if r <= prev || r >= it.restartsOff || (i == 0 && r != 0) {
			return it.fail(reasonf("restart point %d at offset %d out of order or past the entries", i, r))
		}
		prev = r
	}
	return nil
}

func (it *blockIter) fail(err error) error {
	if it.err == nil {
		it.err = err
	}
	it.valid = false
	return it.err
}

func (it *blockIter) restart(i int) int {
	return int(binary.LittleEndian.Uint32(it.data[it.restartsOff+restartEntryLen*i:]))
}

// decodeAt parses the entry at off, whose predecessor's key is in it.key
// (ignored for a restart point, which must share nothing). It sets key, val,
// cur and next.
func (it *blockIter) decodeAt(off int) bool {
	if off >= it.restartsOff {
		it.valid = false
		return false
	}
	p := it.data[off:it.restartsOff]
	shared, n1 := binary.Uvarint(p)
	if n1 <= 0 {
		it.fail(reasonf("bad shared length in entry at block offset %d", off))
		return false
	}
	unshared, n2 := binary.Uvarint(p[n1:])
	if n2 <= 0 {
		it.fail(reasonf("bad key length in entry at block offset %d", off))
		return false
	}
	vlen, n3 := binary.Uvarint(p[n1+n2:])
	if n3 <= 0 {
		it.fail(reasonf("bad value length in entry at block offset %d", off))
		return false
	}
	h := n1 + n2 + n3
	rest := uint64(len(p) - h)
	if shared > uint64(len(it.key)) || unshared > rest || vlen > rest-unshared {
		it.fail(reasonf("entry at block offset %d overruns the block (shared %d, key %d, value %d)", off, shared, unshared, vlen))
		return false
	}
	ke := h + int(unshared)
	it.key = append(it.key[:shared], p[h:ke]...)
	it.val = p[ke : ke+int(vlen) : ke+int(vlen)]
	it.cur, it.next = off, off+ke+int(vlen)
	it.valid = true
	return true
}

// restartKey returns the key stored whole at restart point i, aliasing the
// block.
func (it *blockIter) restartKey(i int) ([]byte, bool) {
	off := it.restart(i)
	p := it.data[off:it.restartsOff]
	shared, n1 := binary.Uvarint(p)
	if n1 <= 0 || shared != 0 {
		it.fail(reasonf("restart point %d at block offset %d shares a prefix", i, off))
		return nil, false
	}
	unshared, n2 := binary.Uvarint(p[n1:])
	if n2 <= 0 {
		it.fail(reasonf("bad key length at restart point %d", i))
		return nil, false
	}
	_, n3 := binary.Uvarint(p[n1+n2:])
	if n3 <= 0 || unshared > uint64(len(p)-n1-n2-n3) {
		it.fail(reasonf("restart point %d at block offset %d overruns the block", i, off))
		return nil, false
	}
	h := n1 + n2 + n3
	return p[h : h+int(unshared)], true
}

func (it *blockIter) first() bool {
	if it.err != nil || it.numRestarts == 0 {
		it.valid = false
		return false
	}
	it.key = it.key[:0]
	return it.decodeAt(0)
}

func (it *blockIter) nextEntry() bool {
	if !it.valid {
		return false
	}
	return it.decodeAt(it.next)
}

// seekGE positions it at the first entry with key >= target: a binary
// search over the restart points for the last one whose key is < target,
// then a linear scan.
func (it *blockIter) seekGE(target []byte) bool {
	if it.err != nil || it.numRestarts == 0 {
		it.valid = false
		return false
	}
	// Find the first restart point whose key is >= target; start scanning
	// at the one before it.
	lo, hi := 0, it.numRestarts
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		k, ok := it.restartKey(mid)
		if !ok {
			return false
		}
		if bytes.Compare(k, target) < 0 {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	start := 0
	if lo > 0 {
		start = it.restart(lo - 1)
	}
	it.key = it.key[:0]
	for ok := it.decodeAt(start); ok; ok = it.decodeAt(it.next) {
		if bytes.Compare(it.key, target) >= 0 {
			return true
		}
	}
	return false
}
