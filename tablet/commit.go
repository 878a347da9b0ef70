package tablet

import (
	"sync"
	"sync/atomic"

	"cellar/internal/keys"
)

// commitQueue publishes writes in sequence order. Apply enqueues its
// request while it holds Tablet.mu, right after taking its block of
// sequence numbers, so the queue is in sequence order. When a writer has
// inserted its row (or failed), finish marks it done and moves the visible
// sequence number past every done request at the head of the queue; it then
// waits until its own request is visible, so Apply returns only once its
// row, and every earlier one, can be read. Readers read at the visible
// sequence number and skip newer entries, so a reader sees all of a row
// mutation or none of it, and never a later Apply without an earlier one.
//
// Safe for concurrent use.
type commitQueue struct {
	mu      sync.Mutex
	cond    sync.Cond
	pending []*commitReq // guarded by mu; in sequence order
	visible atomic.Uint64
}

type commitReq struct {
	last keys.SeqNum
	done bool // guarded by commitQueue.mu
}

func (q *commitQueue) init(visible keys.SeqNum) {
	q.cond.L = &q.mu
	q.visible.Store(uint64(visible))
}

func (q *commitQueue) enqueue(last keys.SeqNum) *commitReq {
	r := &commitReq{last: last}
	q.mu.Lock()
	q.pending = append(q.pending, r)
	q.mu.Unlock()
	return r
}

// finish marks r done and waits until it is visible.
func (q *commitQueue) finish(r *commitReq) {
	q.mu.Lock()
	defer q.mu.Unlock()
	r.done = true
	n := 0
	for n < len(q.pending) && q.pending[n].done {
		q.visible.Store(uint64(q.pending[n].last))
		n++
	}
	if n > 0 {
		q.pending = append(q.pending[:0], q.pending[n:]...)
		q.cond.Broadcast()
	}
	for keys.SeqNum(q.visible.Load()) < r.last {
		q.cond.Wait()
	}
}

// waitVisible waits until every sequence number up to seq is published.
// Every enqueued request is finished by its writer whatever happens, so the
// wait ends.
func (q *commitQueue) waitVisible(seq keys.SeqNum) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for keys.SeqNum(q.visible.Load()) < seq {
		q.cond.Wait()
	}
}

func (q *commitQueue) visibleSeq() keys.SeqNum { return keys.SeqNum(q.visible.Load()) }
