package memtable

import "sync"

// Pool keeps memtables that are no longer used so that a new memtable
// reuses an arena's chunks instead of allocating them. A fresh chunk costs
// a page fault and the kernel's zeroing of every page on first write (or
// the Go allocator's clearing of a reused span), which for 1 KB values
// costs more than copying the values in; a recycled arena keeps its
// chunks, whose pages are already resident, in place (chunks of single
// entries larger than a chunk are dropped). The pool also keeps the Go
// heap from holding a dead arena until the next collection while a new one
// fills.
//
// A pool holds at most its limit of idle memtables; one shared by many
// tablets (a tablet server's) bounds the memory they hold idle together.
// Safe for concurrent use.
type Pool struct {
	mu   sync.Mutex
	max  int
	free []*Memtable
}

// NewPool returns a pool that keeps at most max idle memtables (max <= 0:
// none, so Get always allocates).
func NewPool(max int) *Pool { return &Pool{max: max} }

// Get returns an empty memtable with an arena of opts.ArenaSize bytes: an
// idle one of that capacity if the pool has one, else a new one (see New; it
// panics on invalid options as New does).
func (p *Pool) Get(opts *Options) *Memtable {
	o := mustOptions(opts)
	p.mu.Lock()
	for i := len(p.free) - 1; i >= 0; i-- {
		if m := p.free[i]; m.Capacity() == o.ArenaSize {
			p.free = append(p.free[:i], p.free[i+1:]...)
			p.mu.Unlock()
			return m
		}
	}
	p.mu.Unlock()
	return New(&o)
}

// Put hands m back for reuse; it is emptied now. The caller must be sure
// that nothing uses m any more: no Add, no iterator, and no key or value
// slice taken from an iterator (they point into the arena, which the next
// user overwrites). If the pool is full, m is dropped for the collector.
func (p *Pool) Put(m *Memtable) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) >= p.max {
		return
	}
	m.reset()
	p.free = append(p.free, m)
}

// Idle is the number of memtables the pool holds.
func (p *Pool) Idle() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.free)
}
