package tablet

import (
	"bytes"
	"fmt"

	"cellar/internal/keys"
)

// resolver turns a stream of entries in key order (the merge of memtables
// and SSTables) into the visible versions of each column. It applies, per
// the data model (internal/keys doc):
//
//   - the snapshot: entries with a sequence number above it do not exist;
//   - of the entries at one (column, timestamp), only the newest (highest
//     sequence number) counts; a KindDeleteCell there hides the version;
//   - a family delete masks every cell of its (row, family) with a lower
//     sequence number; a column delete masks the cells of its column with a
//     lower sequence number and a timestamp in its range.
//
// It is a pure function of its input and does no I/O; GC policies and read
// filters are applied by the caller to the versions it reports, numbered 0
// (newest visible) upward within each column.
type resolver struct {
	snap keys.SeqNum

	fam    []byte      // (row, family) prefix of the current family
	famDel keys.SeqNum // highest family-delete sequence in fam (0 = none)

	col     []byte // column prefix of the current column
	colDels []colDel
	haveTS  bool
	lastTS  int64
	idx     int // visible versions reported in the current column
}

type colDel struct {
	r   keys.TimeRange
	seq keys.SeqNum
}

// cellVersion is a visible cell version.
type cellVersion struct {
	idx int // 0 = newest visible version of its column
	ts  int64
	seq keys.SeqNum
}

func newResolver(snap keys.SeqNum) *resolver { return &resolver{snap: snap} }

// reset forgets all state (for a seek to another place in the key space).
func (r *resolver) reset() {
	r.fam, r.famDel = r.fam[:0], 0
	r.col, r.colDels = r.col[:0], r.colDels[:0]
	r.haveTS, r.idx = false, 0
}

// add consumes the next entry and reports whether it is a visible version.
// Keys must arrive in strictly increasing order. A malformed key gives an
// error wrapping ErrCorrupt.
func (r *resolver) add(key, value []byte) (cellVersion, bool, error) {
	return r.addAt(key, value, -1)
}

// addAt is add for a caller that knows the key's family prefix length
// (keys.FamilyPrefixLen), or -1 to have it found when needed.
func (r *resolver) addAt(key, value []byte, fp int) (cellVersion, bool, error) {
	if len(key) < keys.TrailerLen+3 {
		return cellVersion{}, false, fmt.Errorf("%w: key of %d bytes", ErrCorrupt, len(key))
	}
	ts, seq, kind := keys.DecodeTrailer(key)
	if seq > r.snap {
		return cellVersion{}, false, nil
	}
	col := key[:len(key)-keys.TrailerLen]
	if !bytes.Equal(col, r.col) {
		if fp < 0 {
			fp = keys.FamilyPrefixLen(key)
		}
		if fp < 0 || fp > len(col) {
			return cellVersion{}, false, fmt.Errorf("%w: malformed key %x", ErrCorrupt, key)
		}
		if !bytes.Equal(key[:fp], r.fam) {
			r.fam = append(r.fam[:0], key[:fp]...)
			r.famDel = 0
		}
		r.col = append(r.col[:0], col...)
		r.colDels = r.colDels[:0]
		r.haveTS, r.idx = false, 0
	}
	switch kind {
	case keys.KindDeleteFamily:
		r.famDel = max(r.famDel, seq)
		return cellVersion{}, false, nil
	case keys.KindDeleteColumn:
		tr, err := keys.DecodeTimeRange(value)
		if err != nil {
			return cellVersion{}, false, fmt.Errorf("%w: column delete %x: %v", ErrCorrupt, key, err)
		}
		r.colDels = append(r.colDels, colDel{tr, seq})
		return cellVersion{}, false, nil
	case keys.KindSet, keys.KindDeleteCell:
	default:
		return cellVersion{}, false, fmt.Errorf("%w: key %x of kind %d", ErrCorrupt, key, kind)
	}
	if r.haveTS && ts == r.lastTS {
		return cellVersion{}, false, nil // an older write of the same version
	}
	r.haveTS, r.lastTS = true, ts
	if kind == keys.KindDeleteCell || seq < r.famDel {
		return cellVersion{}, false, nil
	}
	for _, d := range r.colDels {
		if seq < d.seq && d.r.Contains(ts) {
			return cellVersion{}, false, nil
		}
	}
	v := cellVersion{idx: r.idx, ts: ts, seq: seq}
	r.idx++
	return v, true, nil
}
