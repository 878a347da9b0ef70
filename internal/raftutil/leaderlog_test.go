package raftutil

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// gateDisk is a log store under logStore whose writes a test can hold,
// slow down, fail, or abandon (crash).
type gateDisk struct {
	raft.LogStore
	mu       sync.Mutex
	release  chan struct{} // non-nil while held; closed to release
	delay    time.Duration
	failNext bool
	crashed  bool
	durable  atomic.Uint64 // last index of the last completed write
	writes   atomic.Int64
}

var (
	errInjected    = errors.New("injected disk failure")
	errDiskCrashed = errors.New("disk gone (crash)")
)

func newGateDisk(s raft.LogStore) *gateDisk {
	d := &gateDisk{LogStore: s}
	if last, err := s.LastIndex(); err == nil {
		d.durable.Store(last)
	}
	return d
}

func (d *gateDisk) StoreLogs(logs []*raft.Log) error {
	for {
		d.mu.Lock()
		switch {
		case d.crashed:
			d.mu.Unlock()
			return errDiskCrashed
		case d.failNext:
			d.failNext = false
			d.mu.Unlock()
			return errInjected
		case d.release != nil:
			ch := d.release
			d.mu.Unlock()
			<-ch
			continue
		}
		delay := d.delay
		d.mu.Unlock()
		time.Sleep(delay)
		break
	}
	if err := d.LogStore.StoreLogs(logs); err != nil {
		return err
	}
	d.durable.Store(logs[len(logs)-1].Index)
	d.writes.Add(1)
	return nil
}

func (d *gateDisk) StoreLog(l *raft.Log) error { return d.StoreLogs([]*raft.Log{l}) }

func (d *gateDisk) hold() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.release == nil {
		d.release = make(chan struct{})
	}
}

func (d *gateDisk) unhold() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.release != nil {
		close(d.release)
		d.release = nil
	}
}

// crash makes every write, held or future, fail without writing.
func (d *gateDisk) crash() {
	d.mu.Lock()
	d.crashed = true
	d.mu.Unlock()
	d.unhold()
}

func (d *gateDisk) setFailNext() {
	d.mu.Lock()
	d.failNext = true
	d.mu.Unlock()
}

func (d *gateDisk) setDelay(t time.Duration) {
	d.mu.Lock()
	d.delay = t
	d.mu.Unlock()
}

func logs(from, to uint64) []*raft.Log {
	var out []*raft.Log
	for i := from; i <= to; i++ {
		out = append(out, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: []byte{byte(i)}})
	}
	return out
}

func returnsWithin(t *testing.T, d time.Duration, f func() error) (error, bool) {
	t.Helper()
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	select {
	case err := <-ch:
		return err, true
	case <-time.After(d):
		return nil, false
	}
}

// TestLogStore_LeaderQueues: while leading, StoreLogs returns with the disk
// held, GetLog and LastIndex see the entries at once, the gate and the
// clamp see them as not durable; releasing the disk makes them durable.
func TestLogStore_LeaderQueues(t *testing.T) {
	disk := newGateDisk(raft.NewInmemStore())
	var leading atomic.Bool
	leading.Store(true)
	s := newLogStore(disk, leading.Load, nil)
	defer s.close()
	if err := s.StoreLogs(logs(1, 2)); err != nil {
		t.Fatal(err)
	}
	if err := s.waitDurable(2); err != nil {
		t.Fatal(err)
	}
	disk.hold()
	if _, ok := returnsWithin(t, time.Second, func() error { return s.StoreLogs(logs(3, 5)) }); !ok {
		t.Fatal("leader StoreLogs blocked on a held disk")
	}
	if last, _ := s.LastIndex(); last != 5 {
		t.Fatalf("LastIndex = %d, want 5", last)
	}
	var l raft.Log
	if err := s.GetLog(4, &l); err != nil || l.Index != 4 {
		t.Fatalf("GetLog(4) = %v, %+v", err, l)
	}
	if d, _ := s.durableBelow(); d != 2 {
		t.Fatalf("durableBelow = %d, want 2", d)
	}
	if _, ok := returnsWithin(t, 100*time.Millisecond, func() error { return s.waitDurable(3) }); ok {
		t.Fatal("waitDurable(3) returned with the disk held")
	}
	if disk.durable.Load() != 2 {
		t.Fatal("entry 3 reached the disk while held")
	}
	disk.unhold()
	if err := s.waitDurable(5); err != nil {
		t.Fatal(err)
	}
	if disk.durable.Load() != 5 {
		t.Fatalf("disk has %d after waitDurable(5)", disk.durable.Load())
	}
	if d, _ := s.durableBelow(); d != ^uint64(0) {
		t.Fatalf("durableBelow = %d with an empty queue", d)
	}
}

// TestLogStore_FollowerDurableOnReturn: as a follower, StoreLogs returns
// only once the entries are on disk, after whatever the node queued while
// it led; and GetLog of a still-queued entry (raft's duplicate check before
// it answers Success) waits for the disk too.
func TestLogStore_FollowerDurableOnReturn(t *testing.T) {
	disk := newGateDisk(raft.NewInmemStore())
	var leading atomic.Bool
	s := newLogStore(disk, leading.Load, nil)
	defer s.close()

	// Plain follower: durable on return.
	if err := s.StoreLogs(logs(1, 3)); err != nil {
		t.Fatal(err)
	}
	if disk.durable.Load() != 3 || disk.writes.Load() != 1 {
		t.Fatalf("follower StoreLogs returned before the disk write (durable %d)", disk.durable.Load())
	}

	// A leader queues 4..6 on a held disk, then steps down.
	leading.Store(true)
	disk.hold()
	if err := s.StoreLogs(logs(4, 6)); err != nil {
		t.Fatal(err)
	}
	leading.Store(false)

	var l raft.Log
	getDone := make(chan error, 1)
	go func() { getDone <- s.GetLog(5, &l) }()
	storeDone := make(chan error, 1)
	go func() { storeDone <- s.StoreLogs(logs(7, 7)) }()
	select {
	case <-getDone:
		t.Fatal("follower GetLog of a queued entry returned before it was durable")
	case <-storeDone:
		t.Fatal("follower StoreLogs returned before the queue was durable")
	case <-time.After(100 * time.Millisecond):
	}
	disk.unhold()
	if err := <-storeDone; err != nil {
		t.Fatal(err)
	}
	if err := <-getDone; err != nil || l.Index != 5 {
		t.Fatalf("GetLog(5) = %v, %+v", err, l)
	}
	if disk.durable.Load() != 7 {
		t.Fatalf("disk has %d, want 7", disk.durable.Load())
	}
	// In order: the queue (4..6) before the follower's 7.
	for i := uint64(1); i <= 7; i++ {
		if err := disk.LogStore.GetLog(i, &l); err != nil {
			t.Fatalf("disk lacks %d: %v", i, err)
		}
	}
}

// TestLogStore_FailedWriteIsSticky: a failed queued write is reported once
// to onFail, wakes the waiters with the error, and refuses every later
// write and delete, leader or follower.
func TestLogStore_FailedWriteIsSticky(t *testing.T) {
	disk := newGateDisk(raft.NewInmemStore())
	var leading atomic.Bool
	leading.Store(true)
	failed := make(chan error, 2)
	s := newLogStore(disk, leading.Load, func(err error) { failed <- err })
	defer s.close()
	disk.setFailNext()
	if err := s.StoreLogs(logs(1, 2)); err != nil {
		t.Fatal(err) // queued: the failure comes later
	}
	if err := s.waitDurable(1); !errors.Is(err, errInjected) {
		t.Fatalf("waitDurable = %v, want the disk's error", err)
	}
	if err := <-failed; !errors.Is(err, errInjected) {
		t.Fatalf("onFail got %v", err)
	}
	if err := s.StoreLogs(logs(3, 3)); err == nil {
		t.Fatal("leader StoreLogs after a failed write succeeded")
	}
	leading.Store(false)
	if err := s.StoreLogs(logs(3, 3)); err == nil {
		t.Fatal("follower StoreLogs after a failed write succeeded")
	}
	if err := s.DeleteRange(1, 1); err == nil {
		t.Fatal("DeleteRange after a failed write succeeded")
	}
	if _, bad := s.durableBelow(); !bad {
		t.Fatal("durableBelow does not report the failure")
	}
	if disk.durable.Load() != 0 {
		t.Fatal("something reached the disk")
	}
	select {
	case err := <-failed:
		t.Fatalf("onFail called twice (%v)", err)
	default:
	}

	// The gate answers instead of applying.
	inner := &recFSM{}
	g := &gatedFSM{fsm: inner, logs: s}
	if r, ok := g.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: []byte("x")}).(heldError); !ok || !errors.Is(r.err, ErrShutdown) || !errors.Is(r.err, raft.ErrRaftShutdown) {
		t.Fatalf("gated Apply answered %v", r)
	}
	if len(inner.applied()) != 0 {
		t.Fatal("the gate applied an entry that is not on disk")
	}
	if _, err := g.Snapshot(); err == nil {
		t.Fatal("Snapshot after a failed write succeeded")
	}
}

// TestClampTransport: LeaderCommitIndex is cut to below the first queued
// entry, plain and pipelined.
func TestClampTransport(t *testing.T) {
	disk := newGateDisk(raft.NewInmemStore())
	var leading atomic.Bool
	leading.Store(true)
	s := newLogStore(disk, leading.Load, nil)
	defer s.close()
	_, a := raft.NewInmemTransport("a")
	_, b := raft.NewInmemTransport("b")
	a.Connect("b", b)
	defer a.Close()
	defer b.Close()
	seen := make(chan uint64, 4)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	wg.Go(func() {
		for {
			select {
			case rpc := <-b.Consumer():
				seen <- rpc.Command.(*raft.AppendEntriesRequest).LeaderCommitIndex
				rpc.Respond(&raft.AppendEntriesResponse{Success: true}, nil)
			case <-stop:
				return
			}
		}
	})
	tr := wrapTransport(a, s)
	if _, ok := tr.(raft.WithPreVote); !ok {
		t.Fatal("wrapper hides pre-vote")
	}
	if err := s.StoreLogs(logs(1, 3)); err != nil {
		t.Fatal(err)
	}
	s.waitDurable(3)
	disk.hold()
	defer disk.unhold()
	s.StoreLogs(logs(4, 6))
	req := &raft.AppendEntriesRequest{LeaderCommitIndex: 5}
	if err := tr.AppendEntries("b", "b", req, &raft.AppendEntriesResponse{}); err != nil {
		t.Fatal(err)
	}
	if got := <-seen; got != 3 {
		t.Fatalf("follower saw commit %d, want 3", got)
	}
	p, err := tr.AppendEntriesPipeline("b", "b")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.AppendEntries(&raft.AppendEntriesRequest{LeaderCommitIndex: 6}, &raft.AppendEntriesResponse{}); err != nil {
		t.Fatal(err)
	}
	if got := <-seen; got != 3 {
		t.Fatalf("pipelined: follower saw commit %d, want 3", got)
	}
	if err := tr.AppendEntries("b", "b", &raft.AppendEntriesRequest{LeaderCommitIndex: 2}, &raft.AppendEntriesResponse{}); err != nil {
		t.Fatal(err)
	}
	if got := <-seen; got != 2 {
		t.Fatalf("follower saw commit %d, want 2 (unchanged)", got)
	}
}
