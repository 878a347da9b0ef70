// Package master is the dfs master (GFS §2.3-2.6, §4): one replica of a
// raft group (internal/raftutil; 1 or 3 replicas) holding the namespace of
// the replicated file system.
//
// # What it owns
//
// The raft state machine (fsm.go) holds, for every file: its replication
// factor, its ordered chunks (handle, version, length, whether the length
// is settled), whether it is under construction and who holds its write
// lease. Directories are implicit in the file paths. Every mutation is a
// JSON command in the raft log; Apply is deterministic (the leader stamps
// times into commands). Snapshots are the JSON of the whole namespace.
//
// Soft state, rebuilt after a restart or failover and never persisted:
// which chunkserver holds which replica at which version and length (from
// the full block report in every heartbeat), chunkserver liveness, the
// pipeline of each chunk under construction, lease renewals, and the
// replica copies in flight. Chunkservers heartbeat every master replica, so
// a new leader already knows the replicas; it still waits DeadAfter before
// deleting or copying anything.
//
// # What the leader does
//
//   - Allocates chunks and places replicas over distinct live, healthy
//     servers; with racks configured, the first near the writer, the second
//     on its rack, the third on another (placement.go).
//   - Bumps a chunk's version when a writer drops a failed replica, and
//     recovers leases (RecoverLease, and on its own after LeaseHardLimit
//     without renewal): fence by version, settle the length from the
//     replicas' synced lengths, seal.
//   - Re-replicates chunks below their target, fewest live replicas first,
//     within MaxConcurrentReplications (and MaxCopiesPerServer per target),
//     by telling a target in its heartbeat reply to copy from a good
//     replica; trims surplus replicas.
//   - Garbage-collects lazily: a reported replica of a chunk no file
//     references, or a stale version of a sealed chunk, is deleted through
//     the heartbeat reply (deletes carry the version below which they
//     apply, so a report racing with a version bump cannot delete a current
//     replica).
//
// A follower answers namespace calls with ErrNotLeader (codes.Unavailable,
// reason NOT_LEADER); the client tries the next replica. Reads are served
// by whoever believes it is leader, without a quorum round: a deposed
// leader may briefly serve a stale view.
//
// Lifecycle: Start, then Close. A Server is safe for concurrent use.
package master
