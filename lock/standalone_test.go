package lock_test

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"

	"cellar/lock"
)

// startShared starts a single replica on a caller-owned gRPC server with an
// in-memory raft transport (no raft port), as `cellar standalone` does.
func startShared(t *testing.T, dir, listen string) (*lock.Server, *grpc.Server, string) {
	t.Helper()
	lis, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_, trans := raft.NewInmemTransport("standalone")
	gs := grpc.NewServer(grpc.WaitForHandlers(true))
	o := fastOptions()
	o.ID, o.Dir, o.GRPCServer, o.GRPCAdvertise, o.RaftTransport = "only", dir, gs, addr, trans
	o.Bootstrap = []lock.Peer{{ID: "only", RaftAddr: "standalone", GRPCAddr: addr}}
	o.DefaultLease = time.Minute // longer than the test: only ExpireAllSessions ends it
	s, err := lock.Start(o)
	if err != nil {
		lis.Close()
		t.Fatal(err)
	}
	go gs.Serve(lis)
	return s, gs, addr
}

func fastOptions() lock.Options {
	return lock.Options{HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond,
		LeaderLeaseTimeout: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}
}

// TestSharedServerRestartExpireAllSessions: a single replica registered on
// a shared gRPC server with no raft port keeps its state across a restart,
// and ExpireAllSessions frees what the previous incarnation's sessions held
// at once instead of after their grace lease.
func TestSharedServerRestartExpireAllSessions(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, gs, addr := startShared(t, dir, "127.0.0.1:0")
	a, err := lock.Dial(ctx, lock.ClientOptions{Addrs: []string{addr}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Register(ctx, "/cellar/servers", "ts1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	// The "process" dies: the server goes away with the session still open.
	gs.Stop()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	a.Close()

	s, gs, addr = startShared(t, dir, "127.0.0.1:0")
	defer func() { gs.Stop(); s.Close() }()
	b, err := lock.Dial(ctx, lock.ClientOptions{Addrs: []string{addr}, NoSession: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, found, err := b.Get(ctx, "/cellar/servers/ts1"); err != nil || !found {
		t.Fatalf("after restart Get = %v, %v; want the node kept by its session's grace lease", found, err)
	}
	n, err := s.ExpireAllSessions(ctx)
	if err != nil || n != 1 {
		t.Fatalf("ExpireAllSessions = %d, %v, want 1, nil", n, err)
	}
	if _, found, err := b.Get(ctx, "/cellar/servers/ts1"); err != nil || found {
		t.Fatalf("after ExpireAllSessions Get = %v, %v; want the ephemeral node gone", found, err)
	}
}
