package lock_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"cellar/lock"
	"cellar/lock/locktest"
	lockpb "cellar/proto/cellar/lock/v1"
)

func TestBasicNodesLocksEvents(t *testing.T) {
	c := startCluster(t, nil)
	a := dial(t, c, lock.ClientOptions{})
	b := dial(t, c, lock.ClientOptions{})
	ctx := ctxT(t, 20*time.Second)

	if err := a.Watch(ctx, "/cellar/master", true, false); err != nil {
		t.Fatal(err)
	}
	kids, err := a.WatchChildren(ctx, "/cellar/servers")
	if err != nil || len(kids) != 0 {
		t.Fatalf("WatchChildren = %v, %v", kids, err)
	}
	v, err := a.Set(ctx, "/cellar/master", []byte("x"), lock.IfVersion(0))
	if err != nil || v != 1 {
		t.Fatalf("Set = %d, %v", v, err)
	}
	if _, err := b.Set(ctx, "/cellar/master", []byte("y"), lock.IfVersion(0)); !errors.Is(err, lock.ErrVersionMismatch) {
		t.Fatalf("CAS on existing = %v, want ErrVersionMismatch", err)
	}
	if v, err = b.Set(ctx, "/cellar/master", []byte("y"), lock.IfVersion(1)); err != nil || v != 2 {
		t.Fatalf("CAS = %d, %v", v, err)
	}
	n, found, err := a.Get(ctx, "/cellar/master")
	if err != nil || !found || !bytes.Equal(n.Content, []byte("y")) || n.Version != 2 {
		t.Fatalf("Get = %+v %v %v", n, found, err)
	}
	if _, found, _ := a.Get(ctx, "/cellar/master", lock.Stale()); !found {
		t.Fatal("stale Get did not find the node")
	}
	seq, err := a.TryAcquire(ctx, "/cellar/master", lock.ModeExclusive)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.TryAcquire(ctx, "/cellar/master", lock.ModeExclusive); !errors.Is(err, lock.ErrLockBusy) {
		t.Fatalf("second TryAcquire = %v, want ErrLockBusy", err)
	}
	if err := b.CheckSequencer(ctx, seq); err != nil {
		t.Fatalf("CheckSequencer(held) = %v", err)
	}
	if err := a.Release(ctx, "/cellar/master"); err != nil {
		t.Fatal(err)
	}
	if err := b.CheckSequencer(ctx, seq); !errors.Is(err, lock.ErrStaleSequencer) {
		t.Fatalf("CheckSequencer(released) = %v, want ErrStaleSequencer", err)
	}
	seq2, err := b.TryAcquire(ctx, "/cellar/master", lock.ModeExclusive)
	if err != nil || seq2.Generation <= seq.Generation {
		t.Fatalf("re-acquire = %v, %v (old generation %d)", seq2, err, seq.Generation)
	}
	// Shared locks: two sessions together.
	if _, err := a.Set(ctx, "/shared", nil); err != nil {
		t.Fatal(err)
	}
	s1, err1 := a.TryAcquire(ctx, "/shared", lock.ModeShared)
	s2, err2 := b.TryAcquire(ctx, "/shared", lock.ModeShared)
	if err1 != nil || err2 != nil || s1.Generation != s2.Generation {
		t.Fatalf("shared = %v %v / %v %v", s1, err1, s2, err2)
	}
	// Register: ephemeral node + lock; it goes away with the session.
	if _, err := b.Register(ctx, "/cellar/servers", "ts1", []byte("addr1")); err != nil {
		t.Fatal(err)
	}
	if kids, err := a.List(ctx, "/cellar/servers"); err != nil || len(kids) != 1 || kids[0] != "ts1" {
		t.Fatalf("List = %v, %v", kids, err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := a.Get(ctx, "/cellar/servers/ts1"); found {
		t.Fatal("ephemeral node survived its session")
	}
	if err := a.CheckSequencer(ctx, seq2); !errors.Is(err, lock.ErrStaleSequencer) {
		t.Fatalf("closed session's sequencer = %v, want stale", err)
	}
	// Events, in order.
	want := []lock.EventType{lock.EventContentChanged, lock.EventContentChanged, lock.EventLockAcquired,
		lock.EventLockReleased, lock.EventLockAcquired, lock.EventChildAdded, lock.EventLockReleased, lock.EventChildRemoved}
	var got []lock.EventType
	var last uint64
	for len(got) < len(want) {
		select {
		case e := <-a.Events():
			if e.Seq != last+1 {
				t.Fatalf("event seq %d after %d", e.Seq, last)
			}
			last = e.Seq
			got = append(got, e.Type)
		case <-ctx.Done():
			t.Fatalf("events so far %v, want %v", got, want)
		}
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("events = %v, want %v", got, want)
		}
	}
}

func TestBadInput(t *testing.T) {
	c := startCluster(t, func(o *lock.Options) { o.MaxContent = 1024 })
	a := dial(t, c, lock.ClientOptions{})
	b := dial(t, c, lock.ClientOptions{})
	ctx := ctxT(t, 20*time.Second)
	if _, err := a.Set(ctx, "/n", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	seq, err := a.TryAcquire(ctx, "/n", lock.ModeExclusive)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Release(ctx, "/n"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		op   func() error
		want error
		code codes.Code
	}{
		{"relative path", func() error { _, err := a.Set(ctx, "n", nil); return err }, lock.ErrInvalidPath, codes.InvalidArgument},
		{"empty component", func() error { _, err := a.Set(ctx, "/a//b", nil); return err }, lock.ErrInvalidPath, codes.InvalidArgument},
		{"dot-dot", func() error { _, _, err := a.Get(ctx, "/a/../b"); return err }, lock.ErrInvalidPath, codes.InvalidArgument},
		{"root is not a node", func() error { _, err := a.TryAcquire(ctx, "/", lock.ModeExclusive); return err }, lock.ErrInvalidPath, codes.InvalidArgument},
		{"control char", func() error { return a.Delete(ctx, "/a\x00") }, lock.ErrInvalidPath, codes.InvalidArgument},
		{"register escapes dir", func() error { _, err := a.Register(ctx, "/d", "../x", nil); return err }, lock.ErrInvalidPath, codes.InvalidArgument},
		{"content over limit", func() error { _, err := a.Set(ctx, "/n", make([]byte, 1025)); return err }, lock.ErrTooLarge, codes.InvalidArgument},
		{"version mismatch", func() error { _, err := a.Set(ctx, "/n", []byte("z"), lock.IfVersion(7)); return err }, lock.ErrVersionMismatch, codes.FailedPrecondition},
		{"delete missing", func() error { return a.Delete(ctx, "/missing") }, lock.ErrNotFound, codes.NotFound},
		{"acquire missing", func() error { _, err := a.TryAcquire(ctx, "/missing", lock.ModeShared); return err }, lock.ErrNotFound, codes.NotFound},
		{"release not held", func() error { return b.Release(ctx, "/n") }, lock.ErrNotHeld, codes.FailedPrecondition},
		{"stale sequencer", func() error { return b.CheckSequencer(ctx, seq) }, lock.ErrStaleSequencer, codes.FailedPrecondition},
		{"bad mode", func() error { _, err := a.TryAcquire(ctx, "/n", lock.Mode(9)); return err }, lock.ErrInvalidArgument, codes.InvalidArgument},
		{"ephemeral over other's node", func() error { _, err := b.Set(ctx, "/n", nil, lock.Ephemeral()); return err }, lock.ErrAlreadyExists, codes.AlreadyExists},
	}
	for _, tc := range cases {
		err := tc.op()
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
		if got := status.Code(err); got != tc.code {
			t.Errorf("%s: code = %v, want %v", tc.name, got, tc.code)
		}
	}
	// Nothing applied partly: the node is as it was.
	n, _, err := a.Get(ctx, "/n")
	if err != nil || n.Version != 1 || string(n.Content) != "v1" || n.LockMode != lock.ModeNone {
		t.Fatalf("node after bad requests = %+v, %v", n, err)
	}
	// Operations on an expired (closed) session: the server says Aborted,
	// and the closed client refuses locally.
	id := b.SessionID()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Set(ctx, "/n", nil); !errors.Is(err, lock.ErrClosed) {
		t.Fatalf("Set on a closed client = %v, want ErrClosed", err)
	}
	cc, err := grpc.NewClient(c.Addrs()[leader(t, c)], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	raw := lockpb.NewLockClient(cc)
	for name, call := range map[string]func() error{
		"set": func() error { _, err := raw.Set(ctx, &lockpb.SetRequest{SessionId: id, Path: "/n"}); return err },
		"acquire": func() error {
			_, err := raw.Acquire(ctx, &lockpb.AcquireRequest{SessionId: id, Path: "/n", Mode: 1})
			return err
		},
		"release": func() error {
			_, err := raw.Release(ctx, &lockpb.ReleaseRequest{SessionId: id, Path: "/n"})
			return err
		},
	} {
		if err := call(); status.Code(err) != codes.Aborted {
			t.Errorf("%s on an expired session: %v, want Aborted", name, err)
		}
	}
	if n2, _, err := a.Get(ctx, "/n"); err != nil || n2.Version != 1 {
		t.Fatalf("node after expired-session writes = %+v, %v", n2, err)
	}
	// A follower refuses linearizable reads (NOT_LEADER) and serves stale
	// ones from its own state.
	follower := (leader(t, c) + 1) % 3
	fc, err := grpc.NewClient(c.Addrs()[follower], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	fraw := lockpb.NewLockClient(fc)
	if _, err := fraw.Get(ctx, &lockpb.GetRequest{Path: "/n"}); status.Code(err) != codes.Unavailable {
		t.Fatalf("linearizable read on a follower: %v, want Unavailable", err)
	}
	for {
		r, err := fraw.Get(ctx, &lockpb.GetRequest{Path: "/n", Stale: true})
		if err != nil {
			t.Fatalf("stale read on a follower: %v", err)
		}
		if r.Found && r.Node.Version == 1 {
			break
		}
		select { // the follower may lag a moment behind
		case <-ctx.Done():
			t.Fatalf("follower never caught up: %+v", r)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func leader(t *testing.T, c *locktest.Cluster) int {
	t.Helper()
	i, err := c.Leader(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// TestElect: one winner at a time, its address in the node; the standby
// takes over when the winner's session ends.
func TestElect(t *testing.T) {
	c := startCluster(t, nil)
	a := dial(t, c, lock.ClientOptions{})
	b := dial(t, c, lock.ClientOptions{})
	ctx := ctxT(t, 20*time.Second)
	seqA, err := a.Elect(ctx, "/cellar/master", "host-a:1")
	if err != nil {
		t.Fatal(err)
	}
	type res struct {
		seq lock.Sequencer
		err error
	}
	got := make(chan res, 1)
	go func() {
		s, err := b.Elect(ctx, "/cellar/master", "host-b:1")
		got <- res{s, err}
	}()
	n, _, err := b.Get(ctx, "/cellar/master")
	if err != nil || string(n.Content) != "host-a:1" || n.LockMode != lock.ModeExclusive {
		t.Fatalf("after a won: %+v %v", n, err)
	}
	select {
	case r := <-got:
		t.Fatalf("b won while a held the election: %+v", r)
	default:
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil || r.seq.Generation <= seqA.Generation {
		t.Fatalf("b's election: %+v (a's generation %d)", r, seqA.Generation)
	}
	if n, _, err := b.Get(ctx, "/cellar/master"); err != nil || string(n.Content) != "host-b:1" {
		t.Fatalf("after b won: %+v %v", n, err)
	}
	if err := b.CheckSequencer(ctx, seqA); !errors.Is(err, lock.ErrStaleSequencer) {
		t.Fatalf("a's sequencer after b won: %v", err)
	}
}
