package lock_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"cellar/lock"
)

// The single-client latency of the lock service's operations on 3 replicas
// with default options (raft-boltdb logs in a temporary directory), one op at
// a time. A write is one raft commit, so ns/op is the commit latency plus one
// gRPC round trip; compare builds with benchstat over -count 10, on an
// otherwise idle machine (every write waits for fsyncs).
//
//	go test -run '^$' -bench OneClient -count 10 ./lock/
func BenchmarkOneClient(b *testing.B) {
	c := startCluster(b, func(o *lock.Options) {
		*o = lock.Options{Logger: slog.New(slog.DiscardHandler)}
	})
	cl := dial(b, c, lock.ClientOptions{})
	ctx := context.Background()
	const p = "/bench/one"
	version, err := cl.Set(ctx, p, []byte("0"))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("op=acquire+release", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cl.Acquire(ctx, p, lock.ModeExclusive); err != nil {
				b.Fatal(err)
			}
			if err := cl.Release(ctx, p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("op=cas", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v, err := cl.Set(ctx, p, []byte("x"), lock.IfVersion(version))
			if errors.Is(err, lock.ErrOutcomeUnknown) { // leadership moved: resynchronise
				n, _, gerr := cl.Get(ctx, p)
				if gerr != nil {
					b.Fatal(gerr)
				}
				v, err = n.Version, nil
			}
			if err != nil {
				b.Fatal(err)
			}
			version = v
		}
	})
	b.Run("op=get", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := cl.Get(ctx, p); err != nil {
				b.Fatal(err)
			}
		}
	})
}
