// Package chunkserver stores dfs chunk replicas as local files and serves
// them (GFS §2.4-2.5, §5.2).
//
// Each replica is one file, "<handle>.chunk" (format version 2, layout in
// format.go): the chunk's bytes in 64 KiB blocks, each complete block
// followed by its CRC32C, and two 64-byte commit slots holding the
// chunk's version, its synced length and the CRC of the partial last
// block. A Sync writes the slot that is not the newest durable one and
// fdatasyncs the file once, so data, checksums and version become durable
// together and a crash mid-Sync leaves the previous commit intact: on
// start-up the newest slot whose bytes verify wins, and bytes written
// beyond it are cut. Version changes and cuts below the synced length are
// committed the same way before they take effect. Every read verifies the
// CRCs of the blocks it touches, and a scrubber (Options.ScrubInterval)
// verifies every replica in the background; a replica that fails is
// removed and reported to the master in the next heartbeat, which has a
// good replica copied here or elsewhere. A directory written by format 1
// (a raw data file plus a "<handle>.meta" checksum sidecar, two fdatasyncs
// per Sync) is refused with ErrOldLayout.
//
// While a writer syncs every few KiB (a commit log), the replica writes
// zeros ahead of its data, 1 MiB at a time, so that the next appends
// overwrite blocks the file already has and their fdatasync needs no
// journal commit for a growing file; the zeros are never part of the chunk
// (the commit slot holds its length) and are trimmed when the writer goes.
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
// verified, written under a temporary name, committed, synced and renamed
// into place).
//
// Lifecycle: Start, then Close. A Server is safe for concurrent use.
package chunkserver
