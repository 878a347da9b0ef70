package cellarbeam

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/sdf"
)

// KeyRange is a restriction of the source: the rows [Start, End) of a
// table; an empty End is unbounded. It is the SDF restriction type, so
// Beam encodes it between workers.
type KeyRange struct {
	Start, End []byte
}

func (r KeyRange) String() string {
	if len(r.End) == 0 {
		return fmt.Sprintf("[%q, ∞)", r.Start)
	}
	return fmt.Sprintf("[%q, %q)", r.Start, r.End)
}

// contains reports whether k is in the range.
func (r KeyRange) contains(k []byte) bool {
	return bytes.Compare(k, r.Start) >= 0 && (len(r.End) == 0 || bytes.Compare(k, r.End) < 0)
}

// EndOfRange is the position to claim once a scan has read the whole
// restriction: the claim fails and marks the tracker done.
type EndOfRange struct{}

// ErrClaimOrder is the tracker's error for a claim of a key that is not
// after the last claimed one, or outside the restriction's start.
var ErrClaimOrder = errors.New("cellar/mapreduce/beam: row keys claimed out of order")

// KeyRangeTracker is the restriction tracker of a KeyRange (sdf.RTracker):
// positions are row keys claimed in increasing order. It splits a range
// dynamically at a key interpolated between the last claimed key and the
// end (see TrySplit). It is not safe for concurrent use; the source wraps
// it in an sdf.LockRTracker.
type KeyRangeTracker struct {
	rest    KeyRange
	claimed []byte // last claimed key; nil before the first claim
	done    bool
	err     error
}

var _ sdf.BoundableRTracker = (*KeyRangeTracker)(nil)

// NewKeyRangeTracker tracks rest.
func NewKeyRangeTracker(rest KeyRange) *KeyRangeTracker { return &KeyRangeTracker{rest: rest} }

// TryClaim claims the row key pos ([]byte or string) and reports whether
// the caller may output it. A key at or past the range's end (which a
// split may have moved) fails and marks the tracker done, as does
// EndOfRange. A key not after the last claimed one, or before the start,
// fails with ErrClaimOrder (GetError).
func (t *KeyRangeTracker) TryClaim(pos any) bool {
	if t.done || t.err != nil {
		return false
	}
	var k []byte
	switch p := pos.(type) {
	case EndOfRange:
		t.done = true
		return false
	case []byte:
		k = p
	case string:
		k = []byte(p)
	default:
		t.err = fmt.Errorf("cellar/mapreduce/beam: claim of a %T, want a row key", pos)
		return false
	}
	if bytes.Compare(k, t.rest.Start) < 0 || (t.claimed != nil && bytes.Compare(k, t.claimed) <= 0) {
		t.err = fmt.Errorf("%w: %q after %q in %v", ErrClaimOrder, k, t.claimed, t.rest)
		return false
	}
	if len(t.rest.End) > 0 && bytes.Compare(k, t.rest.End) >= 0 {
		t.done = true
		return false
	}
	t.claimed = bytes.Clone(k)
	return true
}

// GetError returns the claim error, if any.
func (t *KeyRangeTracker) GetError() error { return t.err }

// IsDone reports whether the whole restriction was claimed (or checkpointed).
func (t *KeyRangeTracker) IsDone() bool {
	return t.err == nil && (t.done || (len(t.rest.End) > 0 && bytes.Compare(t.rest.Start, t.rest.End) >= 0))
}

// GetRestriction returns the (possibly split) restriction.
func (t *KeyRangeTracker) GetRestriction() any { return t.rest }

// IsBounded is true: a table range is finite.
func (t *KeyRangeTracker) IsBounded() bool { return true }

// next is the smallest key the tracker may still claim.
func (t *KeyRangeTracker) next() []byte {
	if t.claimed == nil {
		return t.rest.Start
	}
	return append(bytes.Clone(t.claimed), 0)
}

// TrySplit keeps [Start, split) as the primary and returns [split, End) as
// the residual. fraction 0 is a checkpoint: split is the key right after
// the last claimed one, and the tracker is done. Otherwise split is
// interpolated at fraction of the way from the next claimable key to the
// end, treating the 8 bytes after their common prefix as a number; when no
// key strictly inside lies there (the range is too narrow), there is no
// split (residual nil).
func (t *KeyRangeTracker) TrySplit(fraction float64) (primary, residual any, err error) {
	if t.done || t.err != nil {
		return t.rest, nil, nil
	}
	from := t.next()
	if fraction <= 0 {
		res := KeyRange{Start: from, End: t.rest.End}
		t.rest.End = from
		t.done = true
		return t.rest, res, nil
	}
	split := interpolate(from, t.rest.End, min(fraction, 1))
	if split == nil || bytes.Compare(split, from) <= 0 || (len(t.rest.End) > 0 && bytes.Compare(split, t.rest.End) >= 0) {
		return t.rest, nil, nil
	}
	res := KeyRange{Start: split, End: t.rest.End}
	t.rest.End = split
	return t.rest, res, nil
}

// GetProgress estimates done and remaining work as fractions of the
// range, by the same interpolation.
func (t *KeyRangeTracker) GetProgress() (done, remaining float64) {
	if t.claimed == nil {
		return 0, 1
	}
	d := position(t.rest.Start, t.rest.End, t.claimed)
	return d, 1 - d
}

// window returns the common prefix of a and b (b empty: unbounded) and the
// 8 bytes after it of each as big-endian numbers (b unbounded: 2^64-1).
func window(a, b []byte) (prefix []byte, x, y uint64) {
	n := 0
	if len(b) > 0 {
		for n < len(a) && n < len(b) && a[n] == b[n] {
			n++
		}
	}
	num := func(k []byte) uint64 {
		var buf [8]byte
		if n < len(k) {
			copy(buf[:], k[n:])
		}
		return binary.BigEndian.Uint64(buf[:])
	}
	x, y = num(a), math.MaxUint64
	if len(b) > 0 {
		y = num(b)
	}
	return a[:n:n], x, y
}

// interpolate returns a key about fraction of the way from a to b, nil if
// the window has no room.
func interpolate(a, b []byte, fraction float64) []byte {
	prefix, x, y := window(a, b)
	if y <= x+1 {
		return nil
	}
	off := uint64(fraction * float64(y-x))
	if off == 0 {
		off = 1
	}
	if off >= y-x {
		return nil
	}
	return binary.BigEndian.AppendUint64(bytes.Clone(prefix), x+off)
}

// position is where k lies in [a, b) as a fraction.
func position(a, b, k []byte) float64 {
	prefix, x, y := window(a, b)
	var buf [8]byte
	if len(prefix) < len(k) {
		copy(buf[:], k[len(prefix):])
	}
	kx := binary.BigEndian.Uint64(buf[:])
	if y <= x || kx <= x {
		return 0
	}
	return min(float64(kx-x)/float64(y-x), 1)
}
