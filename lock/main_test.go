package lock_test

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"go.uber.org/goleak"

	"cellar/lock"
	"cellar/lock/locktest"
)

// hashicorp/raft v1.7.3 never answers a VerifyLeader future that is still
// queued when raft shuts down, so raftutil's goroutine waiting on it (for a
// read that was abandoned when a replica was stopped) outlives the test.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("cellar/internal/raftutil.awaitFuture.func1"))
}

var seedFlag = flag.Uint64("seed", 0, "seed for randomized tests (0: random)")

// testSeed returns -seed or a random seed, logged so a failure can be rerun.
func testSeed(t *testing.T) uint64 {
	s := *seedFlag
	if s == 0 {
		s = rand.Uint64()
	}
	t.Logf("seed %d (rerun with -seed %d)", s, s)
	return s
}

// startCluster starts a 3-replica cluster with test timings and waits for a
// leader.
func startCluster(t testing.TB, mod func(*lock.Options)) *locktest.Cluster {
	t.Helper()
	o := locktest.FastOptions()
	if mod != nil {
		mod(&o)
	}
	c, err := locktest.Start(3, t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Leader(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

func dial(t testing.TB, c *locktest.Cluster, o lock.ClientOptions) *lock.Client {
	t.Helper()
	o.Addrs = c.Addrs()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := lock.Dial(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// set writes an unconditional value for a test's setup, repeating it when
// leadership moved under load and the outcome is unknown (repeating the same
// unconditional write is harmless).
func set(t *testing.T, ctx context.Context, cl *lock.Client, path string, content []byte, opts ...lock.WriteOption) {
	t.Helper()
	for {
		_, err := cl.Set(ctx, path, content, opts...)
		if err == nil {
			return
		}
		if !errors.Is(err, lock.ErrOutcomeUnknown) {
			t.Fatalf("Set(%s): %v", path, err)
		}
	}
}
