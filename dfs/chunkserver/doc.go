// Package chunkserver stores dfs chunk replicas as local files and serves
// them (GFS §2.4-2.5, §5.2).
//
// Each replica is a data file "<handle>.chunk" holding the raw bytes and a
// checksum sidecar "<handle>.meta" with the chunk's version, its synced
// length and a CRC32C per 64 KiB block (layout in format.go). A Sync
// fdatasyncs both, concurrently. Every read verifies the CRCs of the blocks
// it touches, and a scrubber (Options.ScrubInterval) verifies every replica
// in the background; a replica that fails is removed and reported to the
// master in the next heartbeat, which has a good replica copied here or
// elsewhere.
//
// Writes arrive as a WriteChunk stream: a header (chunk, version, start
// offset, downstream replicas) and packets. The server forwards each
// packet downstream before writing it locally, and acks it upstream only
// after its own write (and fsync, for sync packets) and the downstream ack.
// Versions fence writers: a packet from a writer below the replica's
// version fails with dfs.ErrLeaseLost. A write or fsync error, or a full
// disk (Options.CapacityBytes), marks the server unhealthy: it refuses
// writes, the writer's pipeline routes around it, and the master places no
// new replicas on it. Faults in Options injects such failures.
//
// Every heartbeat carries a full block report; the reply may order
// deletions (unreferenced or stale replicas: lazy garbage collection) and
// replica copies (pulled from a source chunkserver with ReadChunk,
// verified, written under temporary names, synced and renamed into place).
//
// Lifecycle: Start, then Close. A Server is safe for concurrent use.
package chunkserver
