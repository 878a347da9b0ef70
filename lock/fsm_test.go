package lock

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/hashicorp/raft"
)

func randomCommand(r *rand.Rand) *command {
	paths := []string{"/a", "/a/b", "/a/c", "/d", "/d/e/f", "/", "bad"}
	c := &command{
		op:      opCode(1 + r.IntN(int(opMax))),
		now:     r.Int64(),
		session: uint64(r.IntN(12)),
		flags:   uint8(r.IntN(16)),
		mode:    Mode(r.IntN(3)),
		path:    paths[r.IntN(len(paths))],
		leaseNS: uint64(r.IntN(3)) * 1e9,
	}
	c.expected = uint64(r.IntN(4))
	if r.IntN(2) == 0 {
		c.content = []byte{byte(r.IntN(256))}
	}
	if c.op == opMember {
		c.path, c.a, c.b = "m"+string(rune('0'+r.IntN(3))), "raft", "grpc"
	}
	return c
}

// TestFSMDeterministicAndSnapshotRoundTrip applies one random command stream
// to two FSMs (one restored from a snapshot half way) and requires identical
// state and identical responses.
func TestFSMDeterministicAndSnapshotRoundTrip(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))
	a, b := newFSM(), newFSM()
	for i := uint64(1); i <= 3000; i++ {
		c := randomCommand(r)
		l := &raft.Log{Index: i, Type: raft.LogCommand, Data: c.encode()}
		ra, rb := a.Apply(l).(*applyResult), b.Apply(l).(*applyResult)
		if (ra.err == nil) != (rb.err == nil) || ra.version != rb.version || ra.seq != rb.seq || ra.session != rb.session {
			t.Fatalf("seed %d: command %d: responses differ: %+v vs %+v", seed, i, ra, rb)
		}
		if i%1000 == 500 {
			snap, err := b.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			data := []byte(snap.(fsmSnapshot))
			b = newFSM()
			if err := b.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
				t.Fatalf("seed %d: restore: %v", seed, err)
			}
		}
	}
	ea, eb := a.encodeLocked(), b.encodeLocked()
	if !bytes.Equal(ea, eb) {
		t.Fatalf("seed %d: states differ after the same commands", seed)
	}
	// The derived indexes were rebuilt correctly: compare them.
	for id, sa := range a.sess {
		sb := b.sess[id]
		if len(sa.held) != len(sb.held) || len(sa.ephemerals) != len(sb.ephemerals) {
			t.Fatalf("seed %d: session %d indexes differ", seed, id)
		}
	}
	// A damaged snapshot is refused and leaves the state alone.
	bad := bytes.Clone(eb)
	bad[len(bad)/2] ^= 0xff
	if err := b.Restore(io.NopCloser(bytes.NewReader(bad))); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("damaged snapshot: %v, want ErrCorrupt", err)
	}
	if !bytes.Equal(b.encodeLocked(), eb) {
		t.Fatal("a refused snapshot changed the state")
	}
}

func FuzzCommand(f *testing.F) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		f.Add(randomCommand(r).encode())
	}
	f.Add([]byte{})
	f.Add([]byte{cmdVersion, byte(opSet), 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := decodeCommand(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decode error %v is not ErrCorrupt", err)
			}
			return
		}
		if got := c.encode(); !bytes.Equal(got, data) {
			// Only non-minimal varints may re-encode differently.
			c2, err := decodeCommand(got)
			if err != nil || !bytes.Equal(c2.encode(), got) {
				t.Fatalf("re-encoding is not stable: %v", err)
			}
		}
		// Applying any decodable command never panics.
		fsm := newFSM()
		fsm.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: data})
	})
}

func FuzzSnapshot(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	x := newFSM()
	for i := uint64(1); i < 200; i++ {
		x.Apply(&raft.Log{Index: i, Type: raft.LogCommand, Data: randomCommand(r).encode()})
	}
	f.Add(x.encodeLocked())
	f.Fuzz(func(t *testing.T, data []byte) {
		y := newFSM()
		if err := y.Restore(io.NopCloser(bytes.NewReader(data))); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("restore error %v is not ErrCorrupt", err)
		}
	})
}

// TestFSMSessionEndCleansUpWithEvents walks one session through the FSM:
// watches, an ephemeral node, a lock, a session-expiring warning, then
// expiry, and checks the state and the watcher's ordered events.
func TestFSMSessionEndCleansUpWithEvents(t *testing.T) {
	f := newFSM()
	idx := uint64(0)
	apply := func(c *command) *applyResult {
		idx++
		return f.Apply(&raft.Log{Index: idx, Type: raft.LogCommand, Data: c.encode()}).(*applyResult)
	}
	watcher := apply(&command{op: opOpenSession, leaseNS: 1e9}).session
	owner := apply(&command{op: opOpenSession, leaseNS: 1e9}).session
	for _, c := range []*command{
		{op: opWatch, session: watcher, path: "/dir", flags: flagWatchChildren},
		{op: opWatch, session: watcher, path: "/dir/e", flags: flagWatchContent},
		{op: opSet, session: owner, path: "/dir/e", flags: flagEphemeral, content: []byte("x")},
		{op: opAcquire, session: owner, path: "/dir/e", mode: ModeExclusive},
		{op: opExpiring, session: owner},
		{op: opExpire, session: owner},
	} {
		if r := apply(c); r.err != nil {
			t.Fatalf("op %d: %v", c.op, r.err)
		}
	}
	if _, ok := f.get("/dir/e"); ok {
		t.Fatal("ephemeral node outlived its session")
	}
	if _, ok := f.sessionLease(owner); ok {
		t.Fatal("expired session still present")
	}
	if r := apply(&command{op: opSet, session: owner, path: "/x"}); !errors.Is(r.err, ErrSessionExpired) {
		t.Fatalf("write on an expired session: %v", r.err)
	}
	evs, _, _ := f.eventsAfter(watcher, 0)
	want := []EventType{EventChildAdded, EventContentChanged, EventLockAcquired, EventLockReleased, EventNodeDeleted, EventChildRemoved}
	if len(evs) != len(want) {
		t.Fatalf("events %+v, want types %v", evs, want)
	}
	for i, e := range evs {
		if e.Type != want[i] || e.Seq != uint64(i+1) {
			t.Fatalf("event %d = %+v, want type %v seq %d", i, e, want[i], i+1)
		}
	}
	// The owner's own expiring warning was queued (the session is gone now,
	// so check on a fresh one).
	s := apply(&command{op: opOpenSession, leaseNS: 1e9}).session
	apply(&command{op: opExpiring, session: s})
	if evs, _, _ := f.eventsAfter(s, 0); len(evs) != 1 || evs[0].Type != EventSessionExpiring {
		t.Fatalf("expiring warning: %+v", evs)
	}
}
