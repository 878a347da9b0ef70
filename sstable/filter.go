package sstable

import (
	"encoding/binary"

	"github.com/bits-and-blooms/bloom/v3"
)

// filterWriter collects the distinct row and column prefixes of a table's
// keys until Close, when the filter can be sized for their number. Keys come
// in order, so a prefix equal to the previous one of its kind is a repeat
// and is skipped; memory is at most the table's raw key bytes.
type filterWriter struct {
	fp      float64
	arena   []byte
	ends    []int // end offset in arena of each prefix
	lastRow []byte
	lastCol []byte
}

func (f *filterWriter) add(key []byte, rowLen, colLen int) {
	if row := key[:rowLen]; string(row) != string(f.lastRow) {
		f.arena = append(f.arena, row...)
		f.ends = append(f.ends, len(f.arena))
		f.lastRow = append(f.lastRow[:0], row...)
	}
	if col := key[:colLen]; string(col) != string(f.lastCol) {
		f.arena = append(f.arena, col...)
		f.ends = append(f.ends, len(f.arena))
		f.lastCol = append(f.lastCol[:0], col...)
	}
}

// finish builds the filter block: see "Filter block" in doc.go.
func (f *filterWriter) finish() []byte {
	bf := bloom.NewWithEstimates(uint(len(f.ends)), f.fp)
	start := 0
	for _, end := range f.ends {
		bf.Add(f.arena[start:end])
		start = end
	}
	words := bf.BitSet().Words()
	m := bf.Cap()
	need := int((m + 63) / 64)
	b := make([]byte, 0, filterHeaderLen+8*need)
	b = binary.LittleEndian.AppendUint64(b, uint64(m))
	b = binary.LittleEndian.AppendUint32(b, uint32(bf.K()))
	for i := 0; i < need; i++ {
		var w uint64
		if i < len(words) {
			w = words[i]
		}
		b = binary.LittleEndian.AppendUint64(b, w)
	}
	return b
}

// filterHeaderLen is m (uint64) + k (uint32) (part of the format; never
// change).
const filterHeaderLen = 12

// decodeFilter parses a filter block, checking that the number of words is
// exactly what m needs and that k is sane.
func decodeFilter(b []byte) (*bloom.BloomFilter, error) {
	if len(b) < filterHeaderLen {
		return nil, reasonf("filter block of %d bytes is shorter than its header", len(b))
	}
	m := binary.LittleEndian.Uint64(b)
	k := binary.LittleEndian.Uint32(b[8:])
	body := b[filterHeaderLen:]
	if m == 0 || k == 0 || k > maxBloomK || len(body)%8 != 0 || uint64(len(body)/8) != (m+63)/64 {
		return nil, reasonf("filter block header (m=%d bits, k=%d) does not match its %d bytes", m, k, len(b))
	}
	words := make([]uint64, len(body)/8)
	for i := range words {
		words[i] = binary.LittleEndian.Uint64(body[8*i:])
	}
	return bloom.FromWithM(words, uint(m), uint(k)), nil
}
