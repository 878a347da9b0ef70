// Package dfs is the file system every piece of Cellar's storage writes
// through (FS, File, ReadFile in fs.go, with the sentinels of errors.go),
// and the client of Cellar's replicated, append-only GFS-style file system
// (GFS, Ghemawat et al., SOSP 2003; HDFS's write pipeline and lease
// recovery).
//
// # Roles
//
//   - dfs/master: the namespace (files, implicit directories, each file's
//     ordered chunks with versions and lengths, replication factor, write
//     lease), replicated with raft. Replica locations are soft state learnt
//     from chunkserver heartbeats (GFS §4.1 / §2.6.2).
//   - dfs/chunkserver: chunks as local files with a CRC32C per 64 KiB,
//     pipelined writes, verified reads, a scrubber, replica copies.
//   - Client (this package, Dial): metadata from the master, data straight
//     to and from chunkservers.
//
// # Writes (GFS §3.1-3.2)
//
// A file has one writer at a time: Create takes its lease. Bytes are
// buffered and sent as packets (up to 1 MiB) down a pipeline client →
// replica 1 → replica 2 → replica 3; each replica forwards a packet before
// writing it, so the replicas write and fsync in parallel, and acks flow
// back once every replica has the packet. A log's file (Client.CreateLog,
// CreateOptions.FanOut; the commit log uses it through LogCreator) is
// written fanned out instead: the client sends each packet to every replica
// and counts it acked when all have acked, which saves the chain's hops on
// every Sync for three times the client's send bandwidth, as HBase's
// fan-out WAL does. File.Sync sends a sync packet and
// returns when its ack arrives, i.e. when every replica in the pipeline has
// fsynced every byte written so far. A replica failing mid-write is
// dropped: the master bumps the chunk's version (the dropped replica is
// then recognisably stale), a new pipeline over the survivors resumes at
// the last acknowledged offset and unacknowledged packets are sent again;
// the master later restores the replication target once the file is
// closed. When a chunk fills (64 MiB by default) it is synced on every
// replica and the master seals its length before the next chunk is
// allocated.
//
// Hung replicas: a replica waits PipelineAckTimeout per replica below it
// for its downstream's ack, so the replica next to a hung one reports it
// first and only the hung one is dropped; the client waits longer
// (PipelineTimeout) and drops the first replica if nothing comes back. A
// client avoids servers it dropped for ExcludeFor when it allocates new
// chunks (HDFS's excluded nodes). A file whose pipeline has fewer replicas
// than its target reports it (Degradable), so a long-lived writer such as
// the commit log can roll to a new file. Every dfs connection sends gRPC
// keep-alive pings, so a peer cut off the network is noticed in seconds,
// not when TCP gives up.
//
//	client ──pkt──▶ cs1 ──pkt──▶ cs2 ──pkt──▶ cs3
//	       ◀──ack── ... ◀──ack── ... ◀──ack──
//
// # Leases and fencing
//
// RecoverLease (LeaseRecoverer) fences a writer that may be dead or only
// paused: the master bumps the last chunk's version in its raft log, asks
// each replica to adopt the new version and cut itself to its synced
// length, settles the file's length at the smallest such length (every
// replica has at least what a Sync acknowledged) and seals the file. The
// old writer's later packets carry the old version and are refused, and its
// master calls fail, both with ErrLeaseLost.
//
// # Reads
//
// Open fixes the readable length: sealed chunks' lengths, plus, for a chunk
// under construction, the smallest synced length among its current
// replicas. ReadAt tries replicas nearest first (same host, same rack) and
// falls back on any error, checksum mismatches included; the chunkserver
// that found a mismatch drops its replica and reports it, and the master
// copies a good one in its place.
//
// # Errors
//
// Every error wraps a sentinel of errors.go; WireErrors maps them to gRPC
// statuses and back, so errors.Is works across the wire.
//
// The Client is safe for concurrent use; a File is not, except that one
// Sync may run concurrently with one Write (they take turns); a ReadFile is.
package dfs
