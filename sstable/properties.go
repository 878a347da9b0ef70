package sstable

import (
	"encoding/binary"
	"fmt"
	"math"

	"cellar/internal/keys"
)

// Properties describes a finished table. The Writer computes it; Open reads
// it back from the properties block (FileSize is the file's length).
type Properties struct {
	NumEntries    uint64 // entries (cells and tombstones)
	NumTombstones uint64 // entries whose kind is a delete marker
	SmallestKey   []byte // first key; nil for an empty table
	LargestKey    []byte // last key; nil for an empty table
	// MinTimestamp and MaxTimestamp (µs) span the KindSet and
	// KindDeleteCell entries. With no such entry MinTimestamp is
	// math.MaxInt64 and MaxTimestamp math.MinInt64 (Min > Max).
	MinTimestamp, MaxTimestamp int64
	// MinSeq and MaxSeq span every entry; both 0 for an empty table.
	MinSeq, MaxSeq keys.SeqNum
	RawKeyBytes    uint64 // sum of key lengths
	RawValueBytes  uint64 // sum of value lengths
	DataBytes      uint64 // bytes of data blocks on disk, trailers included
	FileSize       uint64 // bytes of the whole file
	NumDataBlocks  uint64
}

// Property tags (part of the format; never change or reuse a value).
const (
	propNumEntries    = 1
	propNumTombstones = 2
	propSmallestKey   = 3
	propLargestKey    = 4
	propMinTimestamp  = 5
	propMaxTimestamp  = 6
	propMinSeq        = 7
	propMaxSeq        = 8
	propRawKeyBytes   = 9
	propRawValueBytes = 10
	propDataBytes     = 11
	propNumDataBlocks = 12
	propMaxKnown      = propNumDataBlocks
)

func emptyProperties() Properties {
	return Properties{MinTimestamp: math.MaxInt64, MaxTimestamp: math.MinInt64}
}

// encodeProperties serializes p as "Properties block" in doc.go describes.
func encodeProperties(p *Properties) []byte {
	var b []byte
	field := func(tag uint64, v []byte) {
		b = binary.AppendUvarint(b, tag)
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	uv := func(tag, v uint64) { field(tag, binary.AppendUvarint(nil, v)) }
	sv := func(tag uint64, v int64) { field(tag, binary.AppendVarint(nil, v)) }
	uv(propNumEntries, p.NumEntries)
	uv(propNumTombstones, p.NumTombstones)
	field(propSmallestKey, p.SmallestKey)
	field(propLargestKey, p.LargestKey)
	sv(propMinTimestamp, p.MinTimestamp)
	sv(propMaxTimestamp, p.MaxTimestamp)
	uv(propMinSeq, uint64(p.MinSeq))
	uv(propMaxSeq, uint64(p.MaxSeq))
	uv(propRawKeyBytes, p.RawKeyBytes)
	uv(propRawValueBytes, p.RawValueBytes)
	uv(propDataBytes, p.DataBytes)
	uv(propNumDataBlocks, p.NumDataBlocks)
	return b
}

// decodeProperties parses a properties block. Every tag up to propMaxKnown
// must appear exactly once; unknown higher tags are skipped (a later writer
// may add fields). Keys are copied out of b.
func decodeProperties(b []byte) (Properties, error) {
	p := emptyProperties()
	var seen [propMaxKnown + 1]bool
	for off := 0; off < len(b); {
		tag, n := binary.Uvarint(b[off:])
		if n <= 0 {
			return p, reasonf("bad property tag at properties offset %d", off)
		}
		l, m := binary.Uvarint(b[off+n:])
		if m <= 0 || l > uint64(len(b)-off-n-m) {
			return p, reasonf("bad length of property %d at properties offset %d", tag, off)
		}
		v := b[off+n+m : off+n+m+int(l)]
		off += n + m + int(l)
		if tag == 0 {
			return p, reasonf("property tag 0")
		}
		if tag > propMaxKnown {
			continue
		}
		if seen[tag] {
			return p, reasonf("property %d appears twice", tag)
		}
		seen[tag] = true
		var err error
		switch tag {
		case propSmallestKey:
			p.SmallestKey = cloneOrNil(v)
		case propLargestKey:
			p.LargestKey = cloneOrNil(v)
		case propMinTimestamp:
			p.MinTimestamp, err = varintField(v)
		case propMaxTimestamp:
			p.MaxTimestamp, err = varintField(v)
		default:
			var u uint64
			u, err = uvarintField(v)
			*p.uintField(tag) = u
		}
		if err != nil {
			return p, reasonf("property %d: %v", tag, err)
		}
	}
	for tag := 1; tag <= propMaxKnown; tag++ {
		if !seen[tag] {
			return p, reasonf("property %d missing", tag)
		}
	}
	return p, nil
}

// uintField returns the field of an unsigned property tag.
func (p *Properties) uintField(tag uint64) *uint64 {
	switch tag {
	case propNumEntries:
		return &p.NumEntries
	case propNumTombstones:
		return &p.NumTombstones
	case propMinSeq:
		return (*uint64)(&p.MinSeq)
	case propMaxSeq:
		return (*uint64)(&p.MaxSeq)
	case propRawKeyBytes:
		return &p.RawKeyBytes
	case propRawValueBytes:
		return &p.RawValueBytes
	case propDataBytes:
		return &p.DataBytes
	}
	return &p.NumDataBlocks
}

func uvarintField(v []byte) (uint64, error) {
	u, n := binary.Uvarint(v)
	if n <= 0 || n != len(v) {
		return 0, fmt.Errorf("bad uvarint")
	}
	return u, nil
}

func varintField(v []byte) (int64, error) {
	s, n := binary.Varint(v)
	if n <= 0 || n != len(v) {
		return 0, fmt.Errorf("bad varint")
	}
	return s, nil
}

func cloneOrNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}
