// Package bufpool keeps byte buffers for reuse on hot paths that would
// otherwise allocate (and have the runtime zero) a fresh buffer per
// operation only to overwrite all of it: the commit log's encoded entries,
// a tablet's encoded mutation batches.
package bufpool

import "sync"

// Buf is a pooled buffer. B may be resliced and grown by its holder; Put
// keeps whatever capacity it has then.
type Buf struct {
	B []byte
}

// Pool hands out Bufs. Buffers that grew past the pool's bound are dropped
// on Put, so one huge operation does not pin its memory. Safe for
// concurrent use; the zero Pool is not usable, use New.
type Pool struct {
	p   sync.Pool
	max int
}

// New returns a pool that keeps buffers of at most max bytes of capacity.
func New(max int) *Pool { return &Pool{max: max} }

// Get returns a Buf whose B is empty with capacity at least n.
func (p *Pool) Get(n int) *Buf {
	if v := p.p.Get(); v != nil {
		b := v.(*Buf)
		if cap(b.B) >= n {
			b.B = b.B[:0]
			return b
		}
		b.B = make([]byte, 0, n)
		return b
	}
	return &Buf{B: make([]byte, 0, n)}
}

// Put returns b for reuse. The caller must not use b, or any slice of
// b.B, afterwards. A nil b is ignored.
func (p *Pool) Put(b *Buf) {
	if b == nil || cap(b.B) > p.max {
		return
	}
	p.p.Put(b)
}
