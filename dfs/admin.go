package dfs

import (
	"context"
	"fmt"
	"time"

	dfspb "cellar/proto/cellar/dfs/v1"
)

// ChunkProblem is one chunk below its replication target (fsck).
type ChunkProblem struct {
	Path         string
	ChunkIndex   int
	Handle       ChunkHandle
	LiveReplicas int
	Target       int
	// Missing: no live replica holds the chunk; its data is unreadable.
	Missing bool
}

// FsckReport is the master's view of the replication of files.
type FsckReport struct {
	Files, Chunks int
	Problems      []ChunkProblem
}

// Missing reports whether any chunk has no live replica.
func (r FsckReport) Missing() bool {
	for _, p := range r.Problems {
		if p.Missing {
			return true
		}
	}
	return false
}

// Fsck lists the chunks of files under prefix ("" for all) that have fewer
// live replicas than their target, as `hdfs fsck` does.
func (c *Client) Fsck(ctx context.Context, prefix string) (FsckReport, error) {
	resp, err := masterCall(ctx, c, func(ctx context.Context, m dfspb.MasterClient) (*dfspb.FsckResponse, error) {
		return m.Fsck(ctx, &dfspb.FsckRequest{Prefix: prefix})
	})
	if err != nil {
		return FsckReport{}, err
	}
	r := FsckReport{Files: int(resp.Files), Chunks: int(resp.Chunks)}
	for _, p := range resp.Problems {
		r.Problems = append(r.Problems, ChunkProblem{Path: p.Path, ChunkIndex: int(p.ChunkIndex), Handle: ChunkHandle(p.Handle),
			LiveReplicas: int(p.LiveReplicas), Target: int(p.Target), Missing: p.Missing})
	}
	return r, nil
}

// ServerStatus is the master's view of one chunkserver.
type ServerStatus struct {
	ID, Address, Rack string
	Live, Healthy     bool
	UnhealthyReason   string
	Chunks            int
	CapacityBytes     uint64 // 0: unlimited
	UsedBytes         uint64
	LastHeartbeat     time.Time
}

// MasterStatus is the leader's summary of the file system.
type MasterStatus struct {
	Leader               string // the leader replica's address
	Files, Chunks        int
	UnderReplicated      int
	Missing              int
	ReplicationsInFlight int
	Servers              []ServerStatus
}

// Summary is the status in one line: HEALTHY, UNDER-REPLICATED or DATA
// MISSING, then the leader, the counts and the chunkservers' liveness.
func (s MasterStatus) Summary() string {
	live, healthy := 0, 0
	for _, sv := range s.Servers {
		if sv.Live {
			live++
		}
		if sv.Live && sv.Healthy {
			healthy++
		}
	}
	state := "HEALTHY"
	switch {
	case s.Missing > 0:
		state = "DATA MISSING"
	case s.UnderReplicated > 0:
		state = "UNDER-REPLICATED"
	}
	return fmt.Sprintf("%s (dfs leader %s; %d files, %d chunks, %d under-replicated, %d missing; chunkservers %d live, %d healthy of %d)",
		state, s.Leader, s.Files, s.Chunks, s.UnderReplicated, s.Missing, live, healthy, len(s.Servers))
}

// StatusReporter is implemented by file systems that can report their
// health (the dfs client); the master passes it on in its cluster status.
type StatusReporter interface {
	Status(ctx context.Context) (MasterStatus, error)
}

var _ StatusReporter = (*Client)(nil)

// Status asks the master leader for its state.
func (c *Client) Status(ctx context.Context) (MasterStatus, error) {
	resp, err := masterCall(ctx, c, func(ctx context.Context, m dfspb.MasterClient) (*dfspb.MasterStatusResponse, error) {
		r, err := m.Status(ctx, &dfspb.MasterStatusRequest{})
		if err == nil && !r.Leader {
			// Ask the leader: a follower's view of chunkservers is not the
			// one that acts.
			return nil, WireErrors.ToStatus(errNotLeader)
		}
		return r, err
	})
	if err != nil {
		return MasterStatus{}, err
	}
	st := MasterStatus{Leader: resp.LeaderId, Files: int(resp.Files), Chunks: int(resp.Chunks),
		UnderReplicated: int(resp.UnderReplicated), Missing: int(resp.Missing), ReplicationsInFlight: int(resp.ReplicationsInFlight)}
	for _, s := range resp.Servers {
		st.Servers = append(st.Servers, ServerStatus{ID: s.ServerId, Address: s.Address, Rack: s.Rack, Live: s.Live,
			Healthy: s.Healthy, UnhealthyReason: s.UnhealthyReason, Chunks: int(s.Chunks), CapacityBytes: s.CapacityBytes,
			UsedBytes: s.UsedBytes, LastHeartbeat: time.Unix(0, s.LastHeartbeatUnixNanos)})
	}
	return st, nil
}

// ChunkserverStatus is one chunkserver's own report.
type ChunkserverStatus struct {
	ID, Address, Rack string
	Chunks            int
	UsedBytes         uint64
	CapacityBytes     uint64
	Healthy           bool
	UnhealthyReason   string
	LastHeartbeat     time.Time // last heartbeat a master leader answered
	CorruptFound      uint64    // replicas found corrupt since start
	ScrubbedBytes     uint64
}

// ChunkserverStatus asks the chunkserver at addr for its state.
func (c *Client) ChunkserverStatus(ctx context.Context, addr string) (ChunkserverStatus, error) {
	cl, err := c.chunkserver(addr)
	if err != nil {
		return ChunkserverStatus{}, err
	}
	r, err := cl.Status(ctx, &dfspb.ChunkserverStatusRequest{})
	if err != nil {
		return ChunkserverStatus{}, WireErrors.FromStatus(err)
	}
	return ChunkserverStatus{ID: r.ServerId, Address: r.Address, Rack: r.Rack, Chunks: int(r.Chunks), UsedBytes: r.UsedBytes,
		CapacityBytes: r.CapacityBytes, Healthy: r.Healthy, UnhealthyReason: r.UnhealthyReason,
		LastHeartbeat: time.Unix(0, r.LastHeartbeatUnixNanos), CorruptFound: r.CorruptFound, ScrubbedBytes: r.ScrubbedBytes}, nil
}

// ChunkHandle names a chunk, cluster-wide and forever: the master allocates
// handles in increasing order and never reuses one.
type ChunkHandle uint64

// String renders the handle as chunkservers name its files (hex).
func (h ChunkHandle) String() string { return fmt.Sprintf("%016x", uint64(h)) }
