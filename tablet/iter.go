package tablet

import (
	"bytes"
	"container/heap"
	"errors"
)

// internalIterator is the shape shared by memtable.Iterator and
// sstable.Iterator: a cursor over encoded (key, value) entries in key order.
type internalIterator interface {
	SeekGE(key []byte) bool
	First() bool
	Next() bool
	Valid() bool
	Key() []byte
	Value() []byte
	Error() error
	Close() error
}

// mergingIter merges child iterators into one stream in key order. Keys are
// unique across children (sequence numbers make them so), so there are no
// ties to break. Not safe for concurrent use.
type mergingIter struct {
	children []internalIterator
	h        iterHeap
	err      error
}

type iterHeap []internalIterator

func (h iterHeap) Len() int           { return len(h) }
func (h iterHeap) Less(i, j int) bool { return bytes.Compare(h[i].Key(), h[j].Key()) < 0 }
func (h iterHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *iterHeap) Push(x any)        { *h = append(*h, x.(internalIterator)) }
func (h *iterHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func newMergingIter(children []internalIterator) *mergingIter {
	return &mergingIter{children: children, h: make(iterHeap, 0, len(children))}
}

func (m *mergingIter) rebuild() bool {
	m.h = m.h[:0]
	for _, c := range m.children {
		if c.Valid() {
			m.h = append(m.h, c)
		} else if err := c.Error(); err != nil && m.err == nil {
			m.err = err
		}
	}
	if m.err != nil {
		m.h = m.h[:0]
		return false
	}
	heap.Init(&m.h)
	return m.Valid()
}

func (m *mergingIter) SeekGE(key []byte) bool {
	for _, c := range m.children {
		c.SeekGE(key)
	}
	return m.rebuild()
}

func (m *mergingIter) First() bool {
	for _, c := range m.children {
		c.First()
	}
	return m.rebuild()
}

// seekLo positions at the first entry >= lo, or the first entry for nil.
func (m *mergingIter) seekLo(lo []byte) bool {
	if lo == nil {
		return m.First()
	}
	return m.SeekGE(lo)
}

func (m *mergingIter) Next() bool {
	if len(m.h) == 0 {
		return false
	}
	top := m.h[0]
	if top.Next() {
		heap.Fix(&m.h, 0)
	} else {
		if err := top.Error(); err != nil {
			m.err = err
			m.h = m.h[:0]
			return false
		}
		heap.Pop(&m.h)
	}
	return m.Valid()
}

func (m *mergingIter) Valid() bool   { return m.err == nil && len(m.h) > 0 }
func (m *mergingIter) Key() []byte   { return m.h[0].Key() }
func (m *mergingIter) Value() []byte { return m.h[0].Value() }
func (m *mergingIter) Error() error  { return m.err }

func (m *mergingIter) Close() error {
	var errs []error
	for _, c := range m.children {
		errs = append(errs, c.Close())
	}
	m.h = m.h[:0]
	return errors.Join(errs...)
}

// boundedIter shows only the keys of it in [lo, hi) (nil = unbounded): the
// rows a merged tablet may read from a file it inherited (fileMeta.lo/hi).
type boundedIter struct {
	it     internalIterator
	lo, hi []byte
}

func (b *boundedIter) inBounds() bool {
	return b.it.Valid() && (b.hi == nil || bytes.Compare(b.it.Key(), b.hi) < 0)
}

func (b *boundedIter) SeekGE(key []byte) bool {
	if b.lo != nil && bytes.Compare(key, b.lo) < 0 {
		key = b.lo
	}
	b.it.SeekGE(key)
	return b.inBounds()
}

func (b *boundedIter) First() bool {
	if b.lo != nil {
		b.it.SeekGE(b.lo)
	} else {
		b.it.First()
	}
	return b.inBounds()
}

func (b *boundedIter) Next() bool {
	if !b.inBounds() {
		return false
	}
	b.it.Next()
	return b.inBounds()
}

func (b *boundedIter) Valid() bool   { return b.inBounds() }
func (b *boundedIter) Key() []byte   { return b.it.Key() }
func (b *boundedIter) Value() []byte { return b.it.Value() }
func (b *boundedIter) Error() error  { return b.it.Error() }
func (b *boundedIter) Close() error  { return b.it.Close() }
