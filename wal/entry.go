package wal

import (
	"encoding/binary"
	"fmt"

	"cellar/internal/keys"
)

// entryVersion is the first byte of every encoded entry. Part of the
// format; never change. A new entry layout gets a new value.
const entryVersion = 1

// Entry is one commit-log entry: an opaque payload for one tablet at one
// sequence number.
type Entry struct {
	Tablet uint64
	Seq    keys.SeqNum
	Data   []byte // opaque to the wal
}

// EncodeEntry appends the encoding of e (see doc.go) to dst and returns the
// extended slice.
func EncodeEntry(dst []byte, e Entry) []byte {
	dst = append(dst, entryVersion)
	dst = binary.AppendUvarint(dst, e.Tablet)
	dst = binary.AppendUvarint(dst, uint64(e.Seq))
	return append(dst, e.Data...)
}

// EncodedEntryLen is len(EncodeEntry(nil, e)).
func EncodedEntryLen(e Entry) int {
	return 1 + uvarintLen(e.Tablet) + uvarintLen(uint64(e.Seq)) + len(e.Data)
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// DecodeEntry decodes an entry encoded by EncodeEntry. The returned Data
// aliases b. Errors wrap ErrCorrupt.
func DecodeEntry(b []byte) (Entry, error) {
	e, reason := decodeEntry(b)
	if reason != "" {
		return Entry{}, fmt.Errorf("cellar/wal: decode entry: %s: %w", reason, ErrCorrupt)
	}
	return e, nil
}

func decodeEntry(b []byte) (Entry, string) {
	if len(b) == 0 {
		return Entry{}, "empty entry"
	}
	if b[0] != entryVersion {
		return Entry{}, fmt.Sprintf("unknown entry version %d", b[0])
	}
	b = b[1:]
	tablet, n := binary.Uvarint(b)
	if n <= 0 {
		return Entry{}, "bad tablet varint"
	}
	b = b[n:]
	seq, n := binary.Uvarint(b)
	if n <= 0 {
		return Entry{}, "bad sequence number varint"
	}
	return Entry{Tablet: tablet, Seq: keys.SeqNum(seq), Data: b[n:]}, ""
}
