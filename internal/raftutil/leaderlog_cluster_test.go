package raftutil

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/hashicorp/raft"
)

// recFSM records every command it applies, in order.
type recFSM struct {
	mu    sync.Mutex
	cmds  []string
	last  uint64
	check atomic.Pointer[func(*raft.Log)] // called before each apply
}

func (f *recFSM) Apply(l *raft.Log) any {
	if c := f.check.Load(); c != nil {
		(*c)(l)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = append(f.cmds, string(l.Data))
	f.last = l.Index
	return len(f.cmds)
}

func (f *recFSM) applied() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.cmds)
}

func (f *recFSM) value() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.cmds) == 0 {
		return ""
	}
	return f.cmds[len(f.cmds)-1]
}

func (f *recFSM) Snapshot() (raft.FSMSnapshot, error) { return nopSnap{}, nil }
func (f *recFSM) Restore(r io.ReadCloser) error {
	return errors.Join(errors.New("recFSM: no snapshots in these tests"), r.Close())
}

type tnode struct {
	id, dir, addr string
	disk          *gateDisk
	fsm           *recFSM
	n             *Node // nil while down
}

type tcluster struct {
	t     *testing.T
	peers []Peer
	nodes []*tnode
}

func newTCluster(t *testing.T, size int) *tcluster {
	c := &tcluster{t: t}
	var trans []*raft.NetworkTransport
	for i := range size {
		tr, err := raft.NewTCPTransport("127.0.0.1:0", nil, 3, 2*time.Second, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		trans = append(trans, tr)
		tn := &tnode{id: fmt.Sprintf("n%d", i), dir: t.TempDir(), addr: string(tr.LocalAddr())}
		c.nodes = append(c.nodes, tn)
		c.peers = append(c.peers, Peer{ID: tn.id, Address: tn.addr})
	}
	for i, tn := range c.nodes {
		c.open(tn, trans[i])
	}
	t.Cleanup(func() {
		for _, tn := range c.nodes {
			if tn.n != nil {
				tn.n.Close()
			}
		}
	})
	c.leader()
	return c
}

func (c *tcluster) open(tn *tnode, tr raft.Transport) {
	c.t.Helper()
	if tr == nil {
		var err error
		if tr, err = raft.NewTCPTransport(tn.addr, nil, 3, 2*time.Second, io.Discard); err != nil {
			c.t.Fatal(err)
		}
	}
	tn.fsm = &recFSM{}
	n, err := Open(Options{
		ID: tn.id, Dir: tn.dir, Transport: tr, Bootstrap: c.peers,
		HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond,
		LeaderLeaseTimeout: 100 * time.Millisecond,
		Logger:             slog.New(slog.NewTextHandler(testLogOut, nil)),
		wrapDisk: func(s raft.LogStore) raft.LogStore {
			tn.disk = newGateDisk(s)
			return tn.disk
		},
	}, tn.fsm)
	if err != nil {
		c.t.Fatal(err)
	}
	tn.n = n
}

// leader waits for exactly one live node to lead.
func (c *tcluster) leader() *tnode {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var ls []*tnode
		for _, tn := range c.nodes {
			if tn.n != nil && tn.n.IsLeader() {
				ls = append(ls, tn)
			}
		}
		if len(ls) == 1 {
			return ls[0]
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatal("no single leader")
	return nil
}

func (c *tcluster) others(l *tnode) []*tnode {
	var out []*tnode
	for _, tn := range c.nodes {
		if tn != l {
			out = append(out, tn)
		}
	}
	return out
}

func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestLeaderLog_HeldLeaderDiskNothingApplies: with the leader's disk held,
// new entries reach the followers' disks and raft's commit index on the
// leader covers them (it counts its queued copy), yet no replica applies
// them, no follower is told they are committed, and no client is answered;
// once the disk is released, all of that happens.
func TestLeaderLog_HeldLeaderDiskNothingApplies(t *testing.T) {
	c := newTCluster(t, 3)
	l := c.leader()
	ctx := ctxT(t, 30*time.Second)
	if _, err := l.n.Apply(ctx, []byte("a")); err != nil {
		t.Fatal(err)
	}
	first := l.n.Raft.LastIndex() + 1
	l.disk.hold()
	results := make(chan error, 3)
	for _, v := range []string{"h1", "h2", "h3"} {
		go func() { _, err := l.n.Apply(ctx, []byte(v)); results <- err }()
	}
	eventually(t, "held entries replicated and counted committed by the leader", func() bool {
		last := l.n.Raft.LastIndex()
		if last < first+2 || l.n.Raft.CommitIndex() < last {
			return false
		}
		for _, f := range c.others(l) {
			if li, _ := f.n.logs.LastIndex(); li < last {
				return false
			}
		}
		return true
	})
	time.Sleep(300 * time.Millisecond) // several commit timeouts and heartbeats
	select {
	case err := <-results:
		t.Fatalf("an Apply returned (%v) before the leader's disk had its entry", err)
	default:
	}
	if got := l.disk.durable.Load(); got >= first {
		t.Fatalf("leader disk has %d while held", got)
	}
	for _, tn := range c.nodes {
		if got := tn.fsm.applied(); len(got) != 1 {
			t.Fatalf("%s applied %q with the leader's disk held", tn.id, got)
		}
	}
	for _, f := range c.others(l) {
		if ci := f.n.Raft.CommitIndex(); ci >= first {
			t.Fatalf("follower %s was told commit index %d >= %d", f.id, ci, first)
		}
	}
	l.disk.unhold()
	for range 3 {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	want := l.fsm.applied()
	if len(want) != 4 {
		t.Fatalf("leader applied %q", want)
	}
	for _, f := range c.others(l) {
		eventually(t, "followers apply", func() bool { return slices.Equal(f.fsm.applied(), want) })
	}
}

// TestLeaderLog_FollowersNeverPassLeaderDisk: with the leader's disk slower
// than the followers', under concurrent load, no replica (the leader
// included) applies an index beyond what the leader has on disk, although
// raft's commit index on the leader often is.
func TestLeaderLog_FollowersNeverPassLeaderDisk(t *testing.T) {
	c := newTCluster(t, 3)
	l := c.leader()
	ctx := ctxT(t, 60*time.Second)
	var violations atomic.Int64
	var bad atomic.Value
	check := func(lg *raft.Log) {
		if d := l.disk.durable.Load(); lg.Index > d {
			violations.Add(1)
			bad.Store(fmt.Sprintf("applied %d with the leader's disk at %d", lg.Index, d))
		}
	}
	for _, tn := range c.nodes {
		tn.fsm.check.Store(&check)
	}
	l.disk.setDelay(3 * time.Millisecond)
	var ahead atomic.Int64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if l.n.Raft.CommitIndex() > l.disk.durable.Load() {
				ahead.Add(1)
			}
			time.Sleep(100 * time.Microsecond)
		}
	})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 25 {
				if _, err := l.n.Apply(ctx, fmt.Appendf(nil, "w%d-%d", w, i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	sampler.Wait()
	want := l.fsm.applied()
	for _, f := range c.others(l) {
		eventually(t, "followers apply", func() bool { return slices.Equal(f.fsm.applied(), want) })
	}
	if n := violations.Load(); n > 0 {
		t.Fatalf("%d applies beyond the leader's disk, e.g. %v", n, bad.Load())
	}
	if ahead.Load() == 0 {
		t.Fatal("raft's commit index never ran ahead of the leader's disk: the test did not exercise the clamp")
	}
	t.Logf("commit index ahead of the leader's disk in %d samples; %d entries", ahead.Load(), len(want))
}

// TestLeaderLog_FailedWriteStopsNode: a failed queued write shuts the
// leader down; the held entry's client gets an outcome-unknown error, the
// node applies nothing after its disk and serves no reads; the other two
// carry on and agree.
func TestLeaderLog_FailedWriteStopsNode(t *testing.T) {
	c := newTCluster(t, 3)
	l := c.leader()
	ctx := ctxT(t, 30*time.Second)
	if _, err := l.n.Apply(ctx, []byte("a")); err != nil {
		t.Fatal(err)
	}
	durableBefore := l.disk.durable.Load()
	l.disk.setFailNext()
	_, err := l.n.Apply(ctx, []byte("lost"))
	// Either the gate answered (held entry) or raft failed the in-flight
	// future as it shut down: both are outcome unknown to the lock service.
	if !errors.Is(err, raft.ErrRaftShutdown) && !errors.Is(err, raft.ErrLeadershipLost) {
		t.Fatalf("Apply after a failed write = %v; want raft.ErrRaftShutdown or raft.ErrLeadershipLost (outcome unknown)", err)
	}
	t.Logf("client of the failed write got: %v", err)
	eventually(t, "failed leader shuts down", func() bool { return l.n.Raft.State() == raft.Shutdown })
	if got := l.fsm.applied(); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("failed leader applied %q", got)
	}
	if l.disk.durable.Load() != durableBefore {
		t.Fatal("the failed write reached the disk")
	}
	if _, err := l.n.ReadIndex(ctx); !errors.Is(err, ErrShutdown) {
		t.Fatal("ReadIndex on the failed node succeeded")
	}
	// (raft v1.7.3 may leave an Apply racing its shutdown unanswered, so a
	// short deadline.)
	if _, err := l.n.Apply(ctxT(t, time.Second), []byte("b")); err == nil {
		t.Fatal("Apply on the failed node succeeded")
	}
	l.n.Close()
	l.n = nil

	// The others elect a leader and go on; "lost" was never acknowledged,
	// so it may or may not be in their log (they may have stored it).
	l2 := c.leader()
	if _, err := l2.n.Apply(ctx, []byte("c")); err != nil {
		t.Fatal(err)
	}
	want := l2.fsm.applied()
	if want[0] != "a" || want[len(want)-1] != "c" || len(want) > 3 {
		t.Fatalf("new leader applied %q", want)
	}
	for _, f := range c.others(l2) {
		if f.n != nil {
			eventually(t, "survivors agree", func() bool { return slices.Equal(f.fsm.applied(), want) })
		}
	}
}

// Porcupine register: writes of unique strings, linearizable reads.
type regOp struct {
	write   bool
	val     string
	unknown bool
}

var strRegister = porcupine.NondeterministicModel{
	Init: func() []any { return []any{""} },
	Step: func(state, input, output any) []any {
		s, in, out := state.(string), input.(regOp), output.(regOp)
		switch {
		case !in.write:
			if out.val == s {
				return []any{s}
			}
			return nil
		case out.unknown:
			return []any{s, in.val}
		default:
			return []any{in.val}
		}
	},
	Equal: func(a, b any) bool { return a == b },
}

type history struct {
	mu  sync.Mutex
	ops []porcupine.Operation
}

func (h *history) add(client int, in regOp, call int64, out regOp, ret int64) {
	h.mu.Lock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
	h.mu.Unlock()
}

// op runs one client operation against the current leader.
func (c *tcluster) op(h *history, client int, write bool, val string) {
	var l *tnode
	for deadline := time.Now().Add(5 * time.Second); l == nil && time.Now().Before(deadline); {
		for _, tn := range c.nodes {
			if tn.n != nil && tn.n.IsLeader() {
				l = tn
			}
		}
		if l == nil {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if l == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	call := time.Now().UnixNano()
	if write {
		_, err := l.n.Apply(ctx, []byte(val))
		if err != nil {
			h.add(client, regOp{write: true, val: val}, call, regOp{unknown: true}, 1<<62)
			return
		}
		h.add(client, regOp{write: true, val: val}, call, regOp{}, time.Now().UnixNano())
		return
	}
	if err := l.n.VerifyLeader(ctx); err != nil {
		return // a failed read tells nothing
	}
	h.add(client, regOp{}, call, regOp{val: l.fsm.value()}, time.Now().UnixNano())
}

func (c *tcluster) load(h *history, phase string, clients, ops int) {
	var wg sync.WaitGroup
	for cl := range clients {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(cl), 7))
			for i := range ops {
				c.op(h, cl, r.IntN(2) == 0, fmt.Sprintf("%s-%d-%d", phase, cl, i))
			}
		})
	}
	wg.Wait()
}

// TestLeaderLog_CrashWithQueuedEntries: the leader crashes (its queue is
// never written) with entries that raft on the leader already counted as
// committed (one follower has them on disk, the other's disk is held). No
// replica applies them and no client is answered for them; after the
// restarts (the one follower that has them comes back last, so it must
// drop them) every replica agrees and the clients' history is
// linearizable.
func TestLeaderLog_CrashWithQueuedEntries(t *testing.T) {
	c := newTCluster(t, 3)
	h := &history{}
	c.load(h, "before", 3, 20)

	l := c.leader()
	fs := c.others(l)
	f1, f2 := fs[0], fs[1]
	first := l.n.Raft.LastIndex() + 1
	l.disk.hold()
	f2.disk.hold()
	held := []string{"held-0", "held-1", "held-2"}
	var heldWG sync.WaitGroup
	for i, v := range held {
		heldWG.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			call := time.Now().UnixNano()
			_, err := l.n.Apply(ctx, []byte(v))
			t.Logf("%s: %v after %v", v, err, time.Since(time.Unix(0, call)))
			if err == nil {
				t.Errorf("client answered success for %s, which only one disk has", v)
				h.add(100+i, regOp{write: true, val: v}, call, regOp{}, time.Now().UnixNano())
				return
			}
			h.add(100+i, regOp{write: true, val: v}, call, regOp{unknown: true}, 1<<62)
		})
	}
	eventually(t, "held entries on f1's disk and counted committed by the leader", func() bool {
		last := l.n.Raft.LastIndex()
		return last >= first+2 && l.n.Raft.CommitIndex() >= last && f1.disk.durable.Load() >= last
	})
	time.Sleep(300 * time.Millisecond)
	everApplied := func() []string {
		var out []string
		for _, tn := range c.nodes {
			for _, v := range tn.fsm.applied() {
				if slices.Contains(held, v) {
					out = append(out, tn.id+":"+v)
				}
			}
		}
		return out
	}
	if got := everApplied(); len(got) > 0 {
		t.Fatalf("applied before the crash: %v", got)
	}
	if ci := f1.n.Raft.CommitIndex(); ci >= first {
		t.Fatalf("f1 was told commit index %d >= %d", ci, first)
	}

	// Crash the leader (queue lost) and f2 (its held write lost), stop f1.
	t0 := time.Now()
	l.n.crash(l.disk.crash)
	t.Logf("leader crashed in %v", time.Since(t0))
	f2.n.crash(f2.disk.crash)
	t.Logf("f2 crashed in %v", time.Since(t0))
	heldWG.Wait()
	if got := everApplied(); len(got) > 0 {
		t.Fatalf("applied at the crash: %v", got)
	}
	oldFSMs := []*recFSM{l.fsm, f1.fsm, f2.fsm}
	if err := f1.n.Close(); err != nil {
		t.Fatal(err)
	}
	f1.n, l.n, f2.n = nil, nil, nil
	for _, tn := range []*tnode{l, f2} {
		if got := tn.disk.durable.Load(); got >= first {
			t.Fatalf("%s's disk has %d after the crash, want < %d", tn.id, got, first)
		}
	}

	// l and f2 (without the entries) restart and make progress; then f1.
	c.open(l, nil)
	c.open(f2, nil)
	c.load(h, "between", 2, 10)
	c.open(f1, nil)
	c.load(h, "after", 3, 20)

	l2 := c.leader()
	ctx := ctxT(t, 20*time.Second)
	if _, err := l2.n.Apply(ctx, []byte("final")); err != nil {
		t.Fatal(err)
	}
	want := l2.fsm.applied()
	for _, tn := range c.nodes {
		eventually(t, "replicas agree", func() bool { return slices.Equal(tn.fsm.applied(), want) })
	}
	if got := everApplied(); len(got) > 0 {
		t.Fatalf("applied after the restarts: %v", got)
	}
	for _, f := range oldFSMs {
		for _, v := range f.applied() {
			if slices.Contains(held, v) {
				t.Fatalf("applied before the restarts: %s", v)
			}
		}
		// What each replica applied before the crash is a prefix of the
		// agreed sequence.
		if got := f.applied(); !slices.Equal(got, want[:min(len(got), len(want))]) {
			t.Fatalf("pre-crash sequence %q is not a prefix of %q", got, want)
		}
	}
	for _, op := range h.ops {
		in, out := op.Input.(regOp), op.Output.(regOp)
		if in.write && !out.unknown && !slices.Contains(want, in.val) {
			t.Fatalf("acknowledged write %s lost", in.val)
		}
	}
	res, info := porcupine.CheckOperationsVerbose(strRegister.ToModel(), h.ops, 30*time.Second)
	if res != porcupine.Ok {
		_ = info
		t.Fatalf("history of %d operations is not linearizable (%v)", len(h.ops), res)
	}
	t.Logf("%d operations, %d entries agreed", len(h.ops), len(want))
}

// testLogOut receives the test clusters' raft logs; point it at os.Stderr
// when debugging.
var testLogOut io.Writer = io.Discard
