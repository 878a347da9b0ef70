package keys

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Limits of the data model (docs/DESIGN.md). Breaking one is an error, never a
// truncation.
const (
	MaxRowLen       = 64 << 10 // bytes
	MaxFamilyLen    = 64       // bytes
	MaxQualifierLen = 16 << 10 // bytes
	// MaxTimestamp is the largest timestamp a cell may carry (µs).
	MaxTimestamp int64 = math.MaxInt64 - 1
	// MarkerTimestamp is reserved for family and column delete markers.
	MarkerTimestamp int64 = math.MaxInt64
	// MaxSeq is the largest sequence number (56 bits; the low byte of the
	// trailer holds the kind).
	MaxSeq SeqNum = 1<<56 - 1
	// TrailerLen is the number of bytes after the column prefix: ts + trailer.
	TrailerLen = 16
)

// SeqNum orders writes within one tablet; a larger number is a later write.
type SeqNum uint64

func (s SeqNum) String() string { return fmt.Sprintf("seq:%d", uint64(s)) }

// Kind says what an entry is. Part of the format; never change the values.
type Kind uint8

const (
	// KindSet is a cell version with a value.
	KindSet Kind = 1
	// KindDeleteCell masks the one version at its timestamp.
	KindDeleteCell Kind = 2
	// KindDeleteColumn masks versions of its column in the timestamp range
	// held in its value (see EncodeTimeRange).
	KindDeleteColumn Kind = 3
	// KindDeleteFamily masks every cell of its family in its row.
	KindDeleteFamily Kind = 4
	maxKind               = KindDeleteFamily
)

func (k Kind) String() string {
	switch k {
	case KindSet:
		return "set"
	case KindDeleteCell:
		return "delete-cell"
	case KindDeleteColumn:
		return "delete-column"
	case KindDeleteFamily:
		return "delete-family"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// IsTombstone reports whether k is a delete marker.
func (k Kind) IsTombstone() bool { return k >= KindDeleteCell && k <= KindDeleteFamily }

// Sentinel errors. LimitError unwraps to ErrLimit.
var (
	// ErrLimit is returned when a key component breaks a limit.
	ErrLimit = errors.New("cellar/keys: limit exceeded")
	// ErrInvalid is returned for a malformed component (empty row, bad
	// family name, timestamp out of range).
	ErrInvalid = errors.New("cellar/keys: invalid key")
	// ErrCorrupt is returned by Decode for bytes that are not an encoded key.
	ErrCorrupt = errors.New("cellar/keys: corrupt key")
)

// LimitError says which limit was broken and by how much.
type LimitError struct {
	What     string // "row", "qualifier", "family", "value", "cells"
	Max, Got int
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("cellar/keys: %s is %d bytes, over the limit of %d", e.What, e.Got, e.Max)
}

// Unwrap makes errors.Is(err, ErrLimit) true.
func (e *LimitError) Unwrap() error { return ErrLimit }

// Key is a decoded cell key. Row and Qualifier may alias the encoded bytes
// when they contain no 0x00 byte; copy them before keeping them past the
// buffer's life.
type Key struct {
	Row       []byte
	Family    string
	Qualifier []byte
	Timestamp int64
	Seq       SeqNum
	Kind      Kind
}

func (k Key) String() string {
	return fmt.Sprintf("%q/%s:%q@%d#%d,%s", k.Row, k.Family, k.Qualifier, k.Timestamp, k.Seq, k.Kind)
}

// ValidateRow checks a row key against the limits.
func ValidateRow(row []byte) error {
	if len(row) == 0 {
		return fmt.Errorf("%w: empty row key", ErrInvalid)
	}
	if len(row) > MaxRowLen {
		return &LimitError{What: "row", Max: MaxRowLen, Got: len(row)}
	}
	return nil
}

// ValidateFamily checks a family name: [_a-zA-Z0-9][-_.a-zA-Z0-9]*, at most
// MaxFamilyLen bytes.
func ValidateFamily(f string) error {
	if len(f) == 0 {
		return fmt.Errorf("%w: empty family name", ErrInvalid)
	}
	if len(f) > MaxFamilyLen {
		return &LimitError{What: "family", Max: MaxFamilyLen, Got: len(f)}
	}
	for i := 0; i < len(f); i++ {
		c := f[i]
		ok := c == '_' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')
		if i > 0 {
			ok = ok || c == '-' || c == '.'
		}
		if !ok {
			return fmt.Errorf("%w: family name %q must match [_a-zA-Z0-9][-_.a-zA-Z0-9]*", ErrInvalid, f)
		}
	}
	return nil
}

// ValidateQualifier checks a qualifier against the limits (empty is allowed).
func ValidateQualifier(q []byte) error {
	if len(q) > MaxQualifierLen {
		return &LimitError{What: "qualifier", Max: MaxQualifierLen, Got: len(q)}
	}
	return nil
}

// ValidateTimestamp checks a cell timestamp is in [0, MaxTimestamp].
func ValidateTimestamp(ts int64) error {
	if ts < 0 || ts > MaxTimestamp {
		return fmt.Errorf("%w: timestamp %d outside [0, %d]", ErrInvalid, ts, MaxTimestamp)
	}
	return nil
}

// Validate checks every component of k. Marker kinds must carry
// MarkerTimestamp; the family-delete marker an empty qualifier.
func Validate(k Key) error {
	if err := ValidateRow(k.Row); err != nil {
		return err
	}
	if err := ValidateFamily(k.Family); err != nil {
		return err
	}
	if err := ValidateQualifier(k.Qualifier); err != nil {
		return err
	}
	if k.Kind == 0 || k.Kind > maxKind {
		return fmt.Errorf("%w: kind %d", ErrInvalid, k.Kind)
	}
	if k.Seq > MaxSeq {
		return fmt.Errorf("%w: sequence %d over %d", ErrInvalid, k.Seq, MaxSeq)
	}
	switch k.Kind {
	case KindDeleteColumn, KindDeleteFamily:
		if k.Timestamp != MarkerTimestamp {
			return fmt.Errorf("%w: %s marker must carry the marker timestamp", ErrInvalid, k.Kind)
		}
		if k.Kind == KindDeleteFamily && len(k.Qualifier) != 0 {
			return fmt.Errorf("%w: family delete marker with a qualifier", ErrInvalid)
		}
		return nil
	}
	return ValidateTimestamp(k.Timestamp)
}

func escapedLen(b []byte) int {
	n := len(b) + 2
	for _, c := range b {
		if c == 0 {
			n++
		}
	}
	return n
}

func appendEscaped(dst, b []byte) []byte {
	for _, c := range b {
		if c == 0 {
			dst = append(dst, 0, 0xFF)
		} else {
			dst = append(dst, c)
		}
	}
	return append(dst, 0, 1)
}

// EncodedLen is the length of Append's output for k.
func EncodedLen(k Key) int {
	return escapedLen(k.Row) + len(k.Family) + 1 + escapedLen(k.Qualifier) + TrailerLen
}

// Append appends the encoding of k to dst. It does not validate k; callers
// validate input once at the edge with Validate.
func Append(dst []byte, k Key) []byte {
	dst = appendEscaped(dst, k.Row)
	dst = append(dst, k.Family...)
	dst = append(dst, 0)
	dst = appendEscaped(dst, k.Qualifier)
	return AppendTrailer(dst, k.Timestamp, k.Seq, k.Kind)
}

// Encode returns the encoding of k in a new slice.
func Encode(k Key) []byte { return Append(make([]byte, 0, EncodedLen(k)), k) }

// AppendTrailer appends the 16-byte timestamp and trailer.
func AppendTrailer(dst []byte, ts int64, seq SeqNum, kind Kind) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(math.MaxInt64-ts))
	return binary.BigEndian.AppendUint64(dst, ^(uint64(seq)<<8 | uint64(kind)))
}

// AppendRowPrefix appends the prefix shared by every key of row: seeking to
// it positions an iterator at the row's first entry. It is also the Bloom
// filter key of the row.
func AppendRowPrefix(dst, row []byte) []byte { return appendEscaped(dst, row) }

// AppendFamilyPrefix appends the prefix shared by every key of (row, family).
func AppendFamilyPrefix(dst, row []byte, family string) []byte {
	dst = appendEscaped(dst, row)
	dst = append(dst, family...)
	return append(dst, 0)
}

// AppendColumnPrefix appends the prefix shared by every version of a column.
// It is the Bloom filter key of (row, family, qualifier).
func AppendColumnPrefix(dst, row []byte, family string, qualifier []byte) []byte {
	dst = AppendFamilyPrefix(dst, row, family)
	return appendEscaped(dst, qualifier)
}

// RowPrefixLen returns the length of the row prefix of an encoded key, or
// -1 when no terminator is found.
func RowPrefixLen(enc []byte) int { return terminated(enc, 0) }

// terminated returns the index just past the 00 01 terminator of the escaped
// component starting at off, or -1.
func terminated(enc []byte, off int) int {
	for i := off; i+1 < len(enc); i++ {
		if enc[i] != 0 {
			// Skip to the next 0x00 (vectorised): escaped components are
			// mostly non-zero bytes.
			z := bytes.IndexByte(enc[i:], 0)
			if z < 0 {
				return -1
			}
			if i += z; i+1 >= len(enc) {
				return -1
			}
		}
		switch enc[i+1] {
		case 1:
			return i + 2
		case 0xFF:
			i++
		default:
			return -1
		}
	}
	return -1
}

// ColumnPrefixLen returns the length of the column prefix of an encoded key
// (everything before the 16-byte trailer). Keys of one column share it.
func ColumnPrefixLen(enc []byte) int { return len(enc) - TrailerLen }

// FamilyPrefixLen returns the length of the (row, family) prefix of an
// encoded key, or -1 for a malformed key.
func FamilyPrefixLen(enc []byte) int {
	return FamilyPrefixLenAt(enc, RowPrefixLen(enc))
}

// FamilyPrefixLenAt is FamilyPrefixLen for a key whose row prefix length
// (RowPrefixLen) the caller has already found; -1 for a malformed key or a
// negative rp.
func FamilyPrefixLenAt(enc []byte, rp int) int {
	if rp < 0 || rp > len(enc) {
		return -1
	}
	if i := bytes.IndexByte(enc[rp:], 0); i >= 0 {
		return rp + i + 1
	}
	return -1
}

// DecodeTrailer returns the timestamp, sequence number and kind of an
// encoded key of at least TrailerLen bytes.
func DecodeTrailer(enc []byte) (ts int64, seq SeqNum, kind Kind) {
	t := enc[len(enc)-TrailerLen:]
	ts = math.MaxInt64 - int64(binary.BigEndian.Uint64(t[:8]))
	tr := ^binary.BigEndian.Uint64(t[8:])
	return ts, SeqNum(tr >> 8), Kind(tr & 0xFF)
}

func unescape(enc []byte, off int) (val []byte, next int, err error) {
	end := terminated(enc, off)
	if end < 0 {
		return nil, 0, fmt.Errorf("%w: unterminated component at offset %d", ErrCorrupt, off)
	}
	raw := enc[off : end-2]
	for _, c := range raw {
		if c == 0 {
			out := make([]byte, 0, len(raw))
			for i := 0; i < len(raw); i++ {
				out = append(out, raw[i])
				if raw[i] == 0 {
					i++ // skip the 0xFF escape
				}
			}
			return out, end, nil
		}
	}
	return raw, end, nil
}

// QualifierAt returns the qualifier of an encoded key whose (row, family)
// prefix is fp bytes long (FamilyPrefixLen), without decoding the rest: the
// read path's cheap alternative to Decode. The result aliases enc unless the
// qualifier holds a 0x00 byte. Malformed input gives an error wrapping
// ErrCorrupt.
func QualifierAt(enc []byte, fp int) ([]byte, error) {
	if fp < 0 || fp > len(enc) {
		return nil, fmt.Errorf("%w: family prefix length %d of a %d-byte key", ErrCorrupt, fp, len(enc))
	}
	q, next, err := unescape(enc, fp)
	if err != nil {
		return nil, fmt.Errorf("qualifier: %w", err)
	}
	if len(enc)-next != TrailerLen {
		return nil, fmt.Errorf("%w: %d trailing bytes, want %d", ErrCorrupt, len(enc)-next, TrailerLen)
	}
	return q, nil
}

// RowAt returns the row of an encoded key without decoding the rest: the
// scan path's cheap alternative to Decode. The result aliases enc unless
// the row holds a 0x00 byte. Malformed input gives an error wrapping
// ErrCorrupt.
func RowAt(enc []byte) ([]byte, error) {
	row, _, err := unescape(enc, 0)
	if err != nil {
		return nil, fmt.Errorf("row: %w", err)
	}
	if err := ValidateRow(row); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return row, nil
}

// Decode parses an encoded key. It never panics; malformed input gives an
// error wrapping ErrCorrupt.
func Decode(enc []byte) (Key, error) {
	var k Key
	row, off, err := unescape(enc, 0)
	if err != nil {
		return k, fmt.Errorf("row: %w", err)
	}
	fend := -1
	for i := off; i < len(enc); i++ {
		if enc[i] == 0 {
			fend = i
			break
		}
	}
	if fend < 0 {
		return k, fmt.Errorf("%w: unterminated family", ErrCorrupt)
	}
	fam := string(enc[off:fend])
	qual, off, err := unescape(enc, fend+1)
	if err != nil {
		return k, fmt.Errorf("qualifier: %w", err)
	}
	if len(enc)-off != TrailerLen {
		return k, fmt.Errorf("%w: %d trailing bytes, want %d", ErrCorrupt, len(enc)-off, TrailerLen)
	}
	k.Row, k.Family, k.Qualifier = row, fam, qual
	k.Timestamp, k.Seq, k.Kind = DecodeTrailer(enc)
	if err := Validate(k); err != nil {
		return Key{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return k, nil
}

// TimeRange is a half-open range of timestamps [Start, End); End 0 means
// unbounded.
type TimeRange struct{ Start, End int64 }

// Contains reports whether ts is in the range.
func (r TimeRange) Contains(ts int64) bool {
	return ts >= r.Start && (r.End == 0 || ts < r.End)
}

// EncodeTimeRange encodes the value of a KindDeleteColumn marker (16 bytes,
// big-endian Start then End).
func EncodeTimeRange(r TimeRange) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 16), uint64(r.Start))
	return binary.BigEndian.AppendUint64(b, uint64(r.End))
}

// DecodeTimeRange decodes a KindDeleteColumn marker's value.
func DecodeTimeRange(v []byte) (TimeRange, error) {
	if len(v) != 16 {
		return TimeRange{}, fmt.Errorf("%w: time range of %d bytes", ErrCorrupt, len(v))
	}
	return TimeRange{int64(binary.BigEndian.Uint64(v)), int64(binary.BigEndian.Uint64(v[8:]))}, nil
}
