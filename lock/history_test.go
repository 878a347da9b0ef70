package lock_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"cellar/lock"
)

// Porcupine models of the two objects under test.

type regIn struct {
	get      bool
	expected uint64 // cas
	val      string // cas
}

type regOut struct {
	ver      uint64 // get
	val      string // get
	ok       bool   // cas applied
	mismatch bool   // cas refused
	unknown  bool   // cas outcome unknown
}

type regState struct {
	ver uint64
	val string
}

var regModel = porcupine.NondeterministicModel{
	Init: func() []any { return []any{regState{}} },
	Step: func(state, input, output any) []any {
		s, in, out := state.(regState), input.(regIn), output.(regOut)
		if in.get {
			if out.ver == s.ver && out.val == s.val {
				return []any{s}
			}
			return nil
		}
		applied := regState{ver: s.ver + 1, val: in.val}
		switch {
		case out.unknown:
			if s.ver == in.expected {
				return []any{s, applied}
			}
			return []any{s}
		case out.ok && s.ver == in.expected:
			return []any{applied}
		case out.mismatch && s.ver != in.expected:
			return []any{s}
		}
		return nil
	},
	Equal: func(a, b any) bool { return a.(regState) == b.(regState) },
	DescribeOperation: func(in, out any) string {
		return fmt.Sprintf("%+v -> %+v", in, out)
	},
}

type lockIn struct {
	client  int
	acquire bool // else release
}

type lockOut int

const (
	lockOK lockOut = iota
	lockNotHeld
	lockUnknown
)

var lockModel = porcupine.NondeterministicModel{
	Init: func() []any { return []any{-1} },
	Step: func(state, input, output any) []any {
		h, in, out := state.(int), input.(lockIn), output.(lockOut)
		if in.acquire {
			free := h == -1 || h == in.client
			switch {
			case out == lockOK && free:
				return []any{in.client}
			case out == lockUnknown && free:
				return []any{h, in.client}
			case out == lockUnknown:
				return []any{h}
			}
			return nil
		}
		switch {
		case out == lockOK && h == in.client:
			return []any{-1}
		case out == lockNotHeld && h != in.client:
			return []any{h}
		case out == lockUnknown && h == in.client:
			return []any{h, -1}
		case out == lockUnknown:
			return []any{h}
		}
		return nil
	},
	Equal: func(a, b any) bool { return a.(int) == b.(int) },
}

type holdInterval struct {
	client     int
	start, end time.Duration
}

// TestHistory_LinearizableUnderReplicaRestarts runs concurrent clients that
// take and release one exclusive lock and compare-and-set one node while
// replicas are stopped and restarted, then checks both histories with
// porcupine and that no two clients ever held the lock at once.
func TestHistory_LinearizableUnderReplicaRestarts(t *testing.T) {
	seed := testSeed(t)
	c := startCluster(t, nil)
	ctx := ctxT(t, 60*time.Second)
	setup := dial(t, c, lock.ClientOptions{NoSession: true})
	for _, p := range []string{"/lock", "/reg"} {
		if _, err := setup.Set(ctx, p, nil); err != nil {
			t.Fatal(err)
		}
	}
	n, _, err := setup.Get(ctx, "/reg")
	if err != nil {
		t.Fatal(err)
	}
	regBase := n.Version // the model starts from version 0; shift by this

	const clients = 6
	const runFor = 6 * time.Second
	start := time.Now()
	now := func() int64 { return int64(time.Since(start)) }
	var (
		mu        sync.Mutex
		regOps    []porcupine.Operation
		lockOps   []porcupine.Operation
		intervals []holdInterval
	)
	record := func(ops *[]porcupine.Operation, op porcupine.Operation) {
		mu.Lock()
		defer mu.Unlock()
		*ops = append(*ops, op)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errc := make(chan error, clients+1)
	for id := range clients {
		cl := dial(t, c, lock.ClientOptions{Lease: 10 * time.Second})
		r := rand.New(rand.NewPCG(seed, uint64(id)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				case <-cl.Lost():
					errc <- fmt.Errorf("client %d lost its session during replica restarts", id)
					return
				default:
				}
				switch x := r.IntN(10); {
				case x < 4: // lock cycle
					call := now()
					actx, cancel := context.WithTimeout(ctx, 5*time.Second)
					_, err := cl.Acquire(actx, "/lock", lock.ModeExclusive)
					cancel()
					ret := now()
					out := lockOK
					if err != nil {
						if errors.Is(err, lock.ErrSessionExpired) {
							errc <- fmt.Errorf("client %d: %w", id, err)
							return
						}
						out, ret = lockUnknown, math.MaxInt64
					}
					record(&lockOps, porcupine.Operation{ClientId: id, Input: lockIn{client: id, acquire: true}, Call: call, Output: out, Return: ret})
					acquired := time.Duration(ret)
					call = now()
					err = cl.Release(ctx, "/lock")
					ret = now()
					if out == lockOK {
						mu.Lock()
						intervals = append(intervals, holdInterval{id, acquired, time.Duration(call)})
						mu.Unlock()
					}
					rout := lockOK
					switch {
					case errors.Is(err, lock.ErrNotHeld):
						rout = lockNotHeld
					case err != nil:
						rout, ret = lockUnknown, math.MaxInt64
					}
					record(&lockOps, porcupine.Operation{ClientId: id, Input: lockIn{client: id}, Call: call, Output: rout, Return: ret})
				default: // read, then maybe compare-and-set
					call := now()
					n, _, err := cl.Get(ctx, "/reg")
					ret := now()
					if err != nil {
						continue // a failed read has no effect
					}
					record(&regOps, porcupine.Operation{ClientId: id, Input: regIn{get: true}, Call: call,
						Output: regOut{ver: n.Version - regBase, val: string(n.Content)}, Return: ret})
					if x >= 8 {
						continue
					}
					val := fmt.Sprintf("c%d-%d", id, k)
					call = now()
					_, err = cl.Set(ctx, "/reg", []byte(val), lock.IfVersion(n.Version))
					ret = now()
					var out regOut
					switch {
					case err == nil:
						out.ok = true
					case errors.Is(err, lock.ErrVersionMismatch):
						out.mismatch = true
					default:
						out.unknown, ret = true, math.MaxInt64
					}
					record(&regOps, porcupine.Operation{ClientId: id, Input: regIn{expected: n.Version - regBase, val: val}, Call: call, Output: out, Return: ret})
				}
			}
		}()
	}
	// Chaos: stop one replica at a time and restart it.
	r := rand.New(rand.NewPCG(seed, 99))
	restarts := 0
	deadline := time.After(runFor)
chaos:
	for {
		victim := r.IntN(3)
		if err := c.Stop(victim); err != nil {
			t.Fatal(err)
		}
		select {
		case <-deadline:
			break chaos
		case err := <-errc:
			t.Fatalf("seed %d: %v", seed, err)
		case <-time.After(time.Duration(200+r.IntN(400)) * time.Millisecond):
		}
		if err := c.Restart(victim); err != nil {
			t.Fatal(err)
		}
		restarts++
		select {
		case <-deadline:
			break chaos
		case err := <-errc:
			t.Fatalf("seed %d: %v", seed, err)
		case <-time.After(time.Duration(300+r.IntN(400)) * time.Millisecond):
		}
	}
	for i := range 3 {
		if c.Server(i) == nil {
			if err := c.Restart(i); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatalf("seed %d: %v", seed, err)
	}
	t.Logf("%d register ops, %d lock ops, %d holds, %d replica restarts", len(regOps), len(lockOps), len(intervals), restarts)
	if len(intervals) == 0 || len(regOps) == 0 {
		t.Fatalf("seed %d: no progress under restarts", seed)
	}
	// Mutual exclusion, from what the clients observed: a hold runs from the
	// acquire's return to the release's call.
	slices.SortFunc(intervals, func(a, b holdInterval) int { return int(a.start - b.start) })
	for i := 1; i < len(intervals); i++ {
		if p, q := intervals[i-1], intervals[i]; q.start < p.end {
			t.Fatalf("seed %d: clients %d and %d held the lock at once: [%v, %v] and [%v, %v]", seed, p.client, q.client, p.start, p.end, q.start, q.end)
		}
	}
	if res := porcupine.CheckOperationsTimeout(lockModel.ToModel(), lockOps, 30*time.Second); res != porcupine.Ok {
		t.Fatalf("seed %d: lock history check: %s (want Ok)", seed, res)
	}
	if res := porcupine.CheckOperationsTimeout(regModel.ToModel(), regOps, 30*time.Second); res != porcupine.Ok {
		t.Fatalf("seed %d: register history check: %s (want Ok)", seed, res)
	}
}
