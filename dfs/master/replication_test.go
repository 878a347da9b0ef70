package master

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	dfspb "cellar/proto/cellar/dfs/v1"
)

// newPlanner builds a leader's soft state without raft: n live servers and
// one file of 3-way replicated chunks whose replicas are given per chunk.
func newPlanner(t *testing.T, n int, replicas [][]int, opts Options) (*Server, time.Time) {
	t.Helper()
	opts.Dir = t.TempDir()
	o := opts.withDefaults()
	o.Logger = slog.New(slog.DiscardHandler)
	now := time.Unix(1000, 0)
	s := &Server{opts: o, fsm: newFSM(), servers: map[string]*serverState{}, expected: map[uint64][]string{},
		inflight: map[uint64]copyTask{}, pendingCopies: map[string][]*dfspb.ReplicateCommand{},
		pendingDeletes: map[string][]*dfspb.DeleteCommand{}, lastRenew: map[string]time.Time{},
		rng: rand.New(rand.NewPCG(1, 2)), log: o.Logger}
	for i := range n {
		id := fmt.Sprintf("s%d", i)
		s.servers[id] = &serverState{id: id, addr: id + ":1", healthy: true, lastSeen: now, chunks: map[uint64]replica{}}
	}
	f := &fileMeta{Replication: 3}
	for i, holders := range replicas {
		h := uint64(i + 1)
		f.Chunks = append(f.Chunks, chunkMeta{Handle: h, Version: 1, Length: 10, Complete: true})
		s.fsm.index[h] = chunkRef{"f", i}
		for _, srv := range holders {
			s.servers[fmt.Sprintf("s%d", srv)].chunks[h] = replica{version: 1, length: 10}
		}
	}
	s.fsm.files["f"] = f
	s.fsm.nextHandle = uint64(len(replicas) + 1)
	return s, now
}

func scheduled(s *Server) map[uint64]string {
	out := map[uint64]string{}
	for target, cmds := range s.pendingCopies {
		for _, c := range cmds {
			out[c.Handle] = target
		}
	}
	return out
}

// TestReplicationFewestReplicasFirst: with room for two copies, the two
// chunks down to one replica go first; the one with two waits.
func TestReplicationFewestReplicasFirst(t *testing.T) {
	s, now := newPlanner(t, 6, [][]int{{0, 1}, {2}, {0, 1, 2}, {3}}, Options{MaxConcurrentReplications: 2, MaxCopiesPerServer: 1})
	s.planReplication(now)
	got := scheduled(s)
	if len(got) != 2 || got[2] == "" || got[4] == "" {
		t.Fatalf("scheduled %v, want chunks 2 and 4 (one replica each) first", got)
	}
	if got[2] == got[4] {
		t.Fatalf("both copies sent to %s despite MaxCopiesPerServer 1", got[2])
	}
	if s.underRepl != 3 || s.missing != 0 {
		t.Fatalf("under-replicated %d, missing %d; want 3, 0", s.underRepl, s.missing)
	}
	// The copies are in flight: the next pass schedules only chunk 1, once
	// the bound allows it.
	s.pendingCopies = map[string][]*dfspb.ReplicateCommand{}
	s.planReplication(now)
	if got := scheduled(s); len(got) != 0 {
		t.Fatalf("second pass scheduled %v beyond the bound of 2 in flight", got)
	}
	s.opts.MaxConcurrentReplications = 3
	s.planReplication(now)
	if got := scheduled(s); len(got) != 1 || got[1] == "" {
		t.Fatalf("with room for one more, scheduled %v, want chunk 1", got)
	}
}

// TestReplicationDeadTargetRescheduled: a copy whose target dies is
// scheduled again elsewhere; a chunk whose only holders died is missing.
func TestReplicationDeadTargetRescheduled(t *testing.T) {
	s, now := newPlanner(t, 5, [][]int{{0}, {1, 2, 3}}, Options{HeartbeatInterval: time.Second})
	s.planReplication(now)
	first := scheduled(s)[1]
	if first == "" {
		t.Fatal("nothing scheduled for the under-replicated chunk")
	}
	s.servers[first].lastSeen = now.Add(-time.Hour)
	s.pendingCopies = map[string][]*dfspb.ReplicateCommand{}
	s.planReplication(now)
	if again := scheduled(s)[1]; again == "" || again == first {
		t.Fatalf("after target %s died, rescheduled to %q", first, again)
	}
	s.servers["s0"].lastSeen = now.Add(-time.Hour)
	s.planReplication(now)
	if s.missing != 1 {
		t.Fatalf("missing = %d after the only holder died, want 1", s.missing)
	}
}

// TestReplicationTrimsSurplus: a chunk with four current replicas loses one.
func TestReplicationTrimsSurplus(t *testing.T) {
	s, now := newPlanner(t, 4, [][]int{{0, 1, 2, 3}}, Options{})
	s.planReplication(now)
	n := 0
	for _, ds := range s.pendingDeletes {
		n += len(ds)
	}
	if n != 1 {
		t.Fatalf("%d deletions scheduled for one surplus replica", n)
	}
}

// TestGarbage: replicas of chunks no file references and stale versions of
// sealed chunks are deleted; handles the namespace has not allocated yet
// (a report racing ahead of a lagging replica) are left alone.
func TestGarbage(t *testing.T) {
	s, _ := newPlanner(t, 3, [][]int{{0, 1, 2}}, Options{})
	s.fsm.files["f"].Chunks[0].Version = 3
	s.fsm.nextHandle = 10
	got := map[uint64]uint64{}
	for _, d := range s.garbage([]*dfspb.ChunkReport{
		{Handle: 1, Version: 3},  // current
		{Handle: 1, Version: 2},  // stale
		{Handle: 5, Version: 1},  // unreferenced
		{Handle: 12, Version: 1}, // not allocated yet here
	}) {
		got[d.Handle] = d.BelowVersion
	}
	if len(got) != 2 || got[1] != 3 || got[5] == 0 {
		t.Fatalf("garbage = %v, want chunk 1 below version 3 and chunk 5", got)
	}
}
