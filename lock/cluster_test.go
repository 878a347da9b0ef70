package lock_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"cellar/lock"
	"cellar/lock/locktest"
)

// TestFailover_SessionsLocksAndWaitersSurvive kills the leader while clients
// hold locks, ephemeral nodes and sessions, and one client is blocked in
// Acquire: a new leader is elected, nothing is lost, the waiter still waits
// and gets the lock when the holder releases it.
func TestFailover_SessionsLocksAndWaitersSurvive(t *testing.T) {
	c := startCluster(t, nil)
	holder := dial(t, c, lock.ClientOptions{Lease: 5 * time.Second})
	waiter := dial(t, c, lock.ClientOptions{Lease: 5 * time.Second})
	ctx := ctxT(t, 30*time.Second)
	set(t, ctx, holder, "/l", nil)
	seq, err := holder.TryAcquire(ctx, "/l", lock.ModeExclusive)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := holder.Register(ctx, "/servers", "h", []byte("h")); err != nil {
		t.Fatal(err)
	}
	type result struct {
		seq lock.Sequencer
		err error
	}
	got := make(chan result, 1)
	go func() {
		s, err := waiter.Acquire(ctx, "/l", lock.ModeExclusive)
		got <- result{s, err}
	}()
	// Wait until the waiter's request is blocked on the server.
	old := leader(t, c)
	for i := 0; i < 3; i++ {
		if err := c.Stop(old); err != nil {
			t.Fatal(err)
		}
		// A liveness bound, not a performance figure: "a few election
		// timeouts" (200 ms each) on an idle machine; -race on a shared,
		// overloaded machine needs far more.
		lctx, cancel := context.WithTimeout(ctx, 100*200*time.Millisecond)
		nl, err := c.Leader(lctx)
		cancel()
		if err != nil {
			t.Fatalf("failover %d: %v", i, err)
		}
		if err := holder.CheckSequencer(ctx, seq); err != nil {
			t.Fatalf("failover %d: the holder's sequencer = %v", i, err)
		}
		if _, found, err := waiter.Get(ctx, "/servers/h"); err != nil || !found {
			t.Fatalf("failover %d: ephemeral node found=%v err=%v", i, found, err)
		}
		select {
		case r := <-got:
			t.Fatalf("failover %d: the waiter returned %v, %v while the lock was held", i, r.seq, r.err)
		case <-holder.Lost():
			t.Fatalf("failover %d: the holder lost its session", i)
		case <-waiter.Lost():
			t.Fatalf("failover %d: the waiter lost its session", i)
		default:
		}
		if err := c.Restart(old); err != nil {
			t.Fatal(err)
		}
		old = nl
	}
	if err := holder.Release(ctx, "/l"); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil || r.seq.Generation <= seq.Generation {
		t.Fatalf("waiter got %v, %v; want a newer generation than %d", r.seq, r.err, seq.Generation)
	}
	if err := holder.CheckSequencer(ctx, seq); !errors.Is(err, lock.ErrStaleSequencer) {
		t.Fatalf("old sequencer after hand-over = %v, want ErrStaleSequencer", err)
	}
}

// TestPartition_LossReportedBeforeAnotherAcquires cuts a lock holder off
// from the cluster, many times: its lock goes to the waiting client only
// after the holder's lease ran out, and the holder had already reported the
// loss by then (from recorded times; no timing is asserted).
func TestPartition_LossReportedBeforeAnotherAcquires(t *testing.T) {
	c := startCluster(t, nil)
	const runs = 20
	const leaseD = 500 * time.Millisecond
	ctx := ctxT(t, 60*time.Second)
	other := dial(t, c, lock.ClientOptions{Lease: 10 * time.Second})
	for run := range runs {
		p := fmt.Sprintf("/p%d", run)
		part := locktest.NewPartition()
		a := dial(t, c, lock.ClientOptions{Lease: leaseD, Dialer: part.Dial})
		set(t, ctx, a, p, nil)
		if _, err := a.TryAcquire(ctx, p, lock.ModeExclusive); err != nil {
			t.Fatal(err)
		}
		got := make(chan error, 1)
		var acquiredAt time.Time
		go func() {
			_, err := other.Acquire(ctx, p, lock.ModeExclusive)
			acquiredAt = time.Now()
			got <- err
		}()
		part.Cut()
		validUntil := a.ValidUntil() // no keep-alive can be acknowledged after the cut
		if err := <-got; err != nil {
			t.Fatalf("run %d: other's Acquire: %v", run, err)
		}
		lostAt := a.LostAt()
		switch {
		case lostAt.IsZero():
			t.Fatalf("run %d: another client acquired the lock at %v but the holder has not reported the loss", run, acquiredAt)
		case !lostAt.Before(acquiredAt):
			t.Fatalf("run %d: holder reported the loss at %v, after the other acquired at %v", run, lostAt, acquiredAt)
		case acquiredAt.Before(validUntil):
			t.Fatalf("run %d: lock handed over at %v, before the holder's lease ended at %v", run, acquiredAt, validUntil)
		}
		var states []lock.SessionState
	drain:
		for {
			select {
			case st := <-a.States():
				states = append(states, st)
			default:
				break drain
			}
		}
		if len(states) < 2 || states[len(states)-2] != lock.StateJeopardy || states[len(states)-1] != lock.StateLost {
			t.Fatalf("run %d: reported states %v, want ... jeopardy, lost", run, states)
		}
		if _, _, err := a.Get(ctx, p); !errors.Is(err, lock.ErrSessionExpired) {
			t.Fatalf("run %d: Get after loss = %v, want ErrSessionExpired", run, err)
		}
		part.Heal()
		if _, err := a.TryAcquire(ctx, p, lock.ModeShared); !errors.Is(err, lock.ErrSessionExpired) {
			t.Fatalf("run %d: TryAcquire after loss and heal = %v, want ErrSessionExpired", run, err)
		}
		if err := other.Release(ctx, p); err != nil {
			t.Fatal(err)
		}
		a.Close()
	}
}

// TestRestartAll_StateFromSnapshotAndLog writes under a low snapshot
// threshold (so the log is truncated), restarts every replica, and finds all
// state, sessions and locks again.
func TestRestartAll_StateFromSnapshotAndLog(t *testing.T) {
	dir := t.TempDir()
	o := locktest.FastOptions()
	o.SnapshotThreshold, o.SnapshotInterval, o.TrailingLogs = 64, 50*time.Millisecond, 16
	c, err := locktest.Start(3, dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	leader(t, c)
	ctx := ctxT(t, 60*time.Second)
	holder := dial(t, c, lock.ClientOptions{Lease: 10 * time.Second})
	set(t, ctx, holder, "/held", nil)
	seq, err := holder.TryAcquire(ctx, "/held", lock.ModeExclusive)
	if err != nil {
		t.Fatal(err)
	}
	const writers, per = 4, 100
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				// An unconditional Set of the same content is safe to repeat
				// when its outcome is unknown (leadership may move under load).
				for {
					_, err := holder.Set(ctx, fmt.Sprintf("/data/w%d-%03d", w, i), []byte(fmt.Sprint(i)))
					if err == nil {
						break
					}
					if !errors.Is(err, lock.ErrOutcomeUnknown) {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Wait for every replica to have snapshotted and truncated its log.
	ctl := dial(t, c, lock.ClientOptions{NoSession: true})
	for _, addr := range c.Addrs() {
		for {
			st, err := ctl.Status(ctx, addr)
			if err == nil && st.FirstIndex > 1 {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("%s never truncated its log: %+v %v", addr, st, err)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		snaps, _ := filepath.Glob(filepath.Join(dir, fmt.Sprintf("r%d", i), "snapshots", "*"))
		if len(snaps) == 0 {
			t.Fatalf("replica %d has no snapshot on disk", i)
		}
		if err := c.Restart(i); err != nil {
			t.Fatal(err)
		}
	}
	leader(t, c)
	kids, err := ctl.List(ctx, "/data")
	if err != nil || len(kids) != writers*per {
		t.Fatalf("after restart: %d children, %v; want %d", len(kids), err, writers*per)
	}
	n, found, err := ctl.Get(ctx, "/data/w3-099")
	if err != nil || !found || string(n.Content) != "99" {
		t.Fatalf("after restart: %+v %v %v", n, found, err)
	}
	// The session outlived the restart (grace period) and still holds the lock.
	if err := ctl.CheckSequencer(ctx, seq); err != nil {
		t.Fatalf("after restart: sequencer %v: %v", seq, err)
	}
	set(t, ctx, holder, "/after", []byte("x"))
	select {
	case <-holder.Lost():
		t.Fatal("the holder lost its session across a full restart")
	default:
	}
}

// TestMembership_AddAndRemoveVoter adds a fourth replica with AddVoter, sees
// it in every replica's member table with its gRPC address, and removes it.
func TestMembership_AddAndRemoveVoter(t *testing.T) {
	c := startCluster(t, nil)
	ctx := ctxT(t, 30*time.Second)
	o := locktest.FastOptions()
	o.ID, o.Dir = "r3", t.TempDir()
	s4, err := lock.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	defer s4.Close()
	admin := dial(t, c, lock.ClientOptions{NoSession: true})
	if err := admin.AddVoter(ctx, "r3", s4.RaftAddr(), s4.Addr()); err != nil {
		t.Fatal(err)
	}
	set(t, ctx, admin, "/after-add", []byte("x"))
	// The new replica catches up and knows the leader's gRPC address.
	for {
		st, err := admin.Status(ctx, s4.Addr())
		if err == nil && len(st.Members) == 4 && st.LeaderGRPCAddr != "" && st.Nodes == 1 {
			var found bool
			for _, m := range st.Members {
				found = found || (m.ID == "r3" && m.GRPCAddr == s4.Addr() && m.Voter)
			}
			if !found {
				t.Fatalf("members %+v lack r3", st.Members)
			}
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("new replica never caught up: %+v %v", st, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := admin.RemoveVoter(ctx, "r3"); err != nil {
		t.Fatal(err)
	}
	st, err := admin.Status(ctx, "")
	if err != nil || len(st.Members) != 3 {
		t.Fatalf("after remove: %+v %v", st, err)
	}
}

// TestLeadershipTransfer_StreamsMoveOn moves leadership between replicas
// that stay up: keep-alive streams to the old leader must end so that the
// client moves to the new one, and a short lease survives every move.
func TestLeadershipTransfer_StreamsMoveOn(t *testing.T) {
	c := startCluster(t, nil)
	ctx := ctxT(t, 30*time.Second)
	holder := dial(t, c, lock.ClientOptions{Lease: 2 * time.Second})
	set(t, ctx, holder, "/t", nil)
	seq, err := holder.TryAcquire(ctx, "/t", lock.ModeExclusive)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		old := leader(t, c)
		if i < 2 {
			if err := c.Server(old).TransferLeadership(); err != nil {
				t.Fatalf("transfer %d: %v", i, err)
			}
		} else if err := c.Shutdown(old); err != nil { // the last move: a graceful shutdown
			t.Fatal(err)
		}
		// A whole lease passes under the new leader: keep-alives must reach it.
		for range 2 {
			set(t, ctx, holder, "/t", []byte(fmt.Sprint(i)))
			select {
			case <-holder.Lost():
				t.Fatalf("transfer %d: session lost", i)
			case <-time.After(holder.Lease() / 2):
			}
		}
		if err := holder.CheckSequencer(ctx, seq); err != nil {
			t.Fatalf("transfer %d: %v", i, err)
		}
	}
}
