// Package lock is Cellar's Chubby-style lock service: a small hierarchical
// namespace of nodes with sessions, leases, advisory locks, ephemeral nodes,
// events and sequencers, replicated with hashicorp/raft (raft-boltdb/v2 for
// the log, file snapshots, automatic snapshotting and log truncation through
// internal/raftutil). The server is Server (one replica; Start, Close, and
// Shutdown, which hands leadership over first); the
// client is Client (Dial, Close), with the helpers Elect, Register and
// WatchChildren used by the master and tablet servers. Package locktest runs
// an in-process cluster for tests and benchmarks.
//
// # Namespace
//
// A path is absolute ("/cellar/servers/ts1"); components are non-empty, not
// "." or "..", without control characters; at most 1024 bytes. Directories
// are implicit: a node's parent need not exist, and List("/a") returns the
// names of the existing nodes directly under "/a". A node has content (at
// most Options.MaxContent, default 256 KiB), a version (1 on creation, +1 per
// Set; IfVersion(v) makes a write compare-and-set, v = 0 meaning "must not
// exist"), and optionally an ephemeral owner session.
//
// # Sessions and leases
//
// A session has a lease. The leader keeps each session's lease deadline in
// memory only (it is not replicated): a keep-alive received at time r moves
// it to r + lease, once the leader has confirmed with a quorum that it still
// leads. When a deadline passes, the leader replicates an Expire command;
// every replica then releases the session's locks, deletes its ephemeral
// nodes and drops its watches. A new leader starts every live session with a
// full lease from the moment it took over (Chubby's grace period), so a
// leader failover alone never costs a session. A keep-alive acknowledged by a
// leader was received after a quorum still followed it, hence before any
// later leader was elected, so a later leader's grace deadline is later than
// any deadline the client was promised.
//
// The client starts its lease timer before sending each keep-alive (t0) and,
// when the keep-alive is acknowledged, extends its view of the lease to
// t0 + lease - SafetyMargin. It declares the session lost when that passes
// (or when the server says the session is gone), before the server can have
// expired it; after that every operation fails with ErrSessionExpired. It
// reports jeopardy when keep-alives go unanswered (States).
//
// # Locks and sequencers
//
// Locks are advisory, exclusive or shared, held by sessions on existing
// nodes. TryAcquire fails with ErrLockBusy; Acquire waits (the leader retries
// when the lock is released; the client follows leader changes). Acquire is
// idempotent per session. Each acquisition has a Sequencer (path, mode,
// generation); the generation is the Raft index of the command that took the
// lock from free, so it is unique and increasing, and CheckSequencer fails
// with ErrStaleSequencer once that acquisition has ended.
//
// # Events
//
// Watch(path, content, children) subscribes the session; events (content
// changed, node deleted, child added or removed, lock acquired or released,
// session expiring) are produced by Apply on every replica into the
// session's bounded queue (1024 events), numbered per session, and streamed
// on the KeepAlive stream from the client's last seen number, so they are
// delivered in order and survive leader changes. A client that falls behind
// by more than the queue gets EventEventsLost.
//
// # Reads
//
// Reads (Get, List, CheckSequencer) are linearizable by default (read
// index): the leader notes raft's commit index, confirms leadership with a
// quorum, and waits until that index is applied before reading; it serves
// reads and keep-alives only in a term in which it has committed a barrier,
// so the commit index covers every earlier leader's writes. Stale() lets the replica the client talks to answer
// from its own state.
//
// # Errors
//
// errors.go lists the sentinels; rpcErrors maps them to gRPC codes (NotFound,
// AlreadyExists, FailedPrecondition for version mismatch / stale sequencer /
// busy / not held, InvalidArgument for paths and limits, Aborted for a lost
// session, Unavailable for not-leader and unknown outcomes) and back on the
// client. The client retries requests refused before they were applied (not
// the leader, not connected) and idempotent ones; a non-idempotent write
// whose outcome is unknown returns ErrOutcomeUnknown.
//
// # Replicated formats
//
// Commands (command.go) are one binary layout, version byte first, with the
// leader's wall-clock time stamped in; Apply reads no clock and iterates maps
// in sorted order, so every replica computes the same state. Snapshots
// (fsm.go) are one checksummed binary layout; the derived indexes are rebuilt
// on restore. Both are described byte by byte beside their encoders.
//
// # Membership
//
// Clients find the leader's gRPC address through the replicated member table
// (ID, raft address, gRPC address): each leader records its own addresses and
// its bootstrap peers' when it takes over, and AddVoter records a new
// replica's before adding it. Status, answered by any replica, returns the
// leader's gRPC address.
package lock
