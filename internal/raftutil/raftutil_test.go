package raftutil

import (
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/goleak"
)

// hashicorp/raft v1.7.3 never answers a VerifyLeader future that is still
// queued when raft shuts down, so awaitFuture's goroutine for a read
// abandoned at a crash outlives the test (as in lock's TestMain).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("cellar/internal/raftutil.awaitFuture.func1"))
}

// counter is a minimal FSM: it sums applied bytes.
type counter struct {
	mu sync.Mutex
	n  int
}

func (c *counter) Apply(l *raft.Log) any {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n += len(l.Data)
	return c.n
}
func (c *counter) Snapshot() (raft.FSMSnapshot, error) { return nopSnap{}, nil }
func (c *counter) Restore(r io.ReadCloser) error       { return r.Close() }

type nopSnap struct{}

func (nopSnap) Persist(s raft.SnapshotSink) error { return s.Close() }
func (nopSnap) Release()                          {}

func TestThreeNodesElectAndApply(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var nodes []*Node
	var peers []Peer
	for _, id := range []string{"a", "b", "c"} {
		n, err := Open(Options{ID: id, Dir: t.TempDir(), Bind: "127.0.0.1:0",
			HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond}, &counter{})
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		nodes = append(nodes, n)
		peers = append(peers, Peer{ID: id, Address: n.Addr()})
	}
	// Bootstrap from the first node only, then add the others as voters.
	if err := nodes[0].Raft.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{ID: "a", Address: raft.ServerAddress(peers[0].Address)}}}).Error(); err != nil {
		t.Fatal(err)
	}
	for !nodes[0].IsLeader() {
		select {
		case <-ctx.Done():
			t.Fatal("no leader")
		case <-time.After(10 * time.Millisecond):
		}
	}
	for _, p := range peers[1:] {
		if err := nodes[0].AddVoter(ctx, p.ID, p.Address); err != nil {
			t.Fatal(err)
		}
	}
	res, err := nodes[0].Apply(ctx, []byte("abc"))
	if err != nil || res.(int) != 3 {
		t.Fatalf("Apply = %v, %v; want 3", res, err)
	}
	if err := nodes[0].VerifyLeader(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[1].Apply(ctx, []byte("x")); err == nil {
		t.Fatal("Apply on a follower succeeded")
	}
	// The last voter learns the configuration once the leader replicates
	// it there; AddVoter returns when a majority (a and b) has it.
	for {
		srv, err := nodes[2].Servers()
		if err == nil && len(srv) == 3 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("Servers() on the last voter = %v, %v", srv, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
