// Package tabletserver is Cellar's tablet server (Bigtable §5.2–5.3): it
// serves the tablets the master assigns to it over gRPC
// (tabletpb.TabletServerServer), with one shared commit log for all of them,
// and splits tablets that grow too large.
//
// It owns: the map of loaded tablets, request admission and routing, the
// conversion between wire messages and the tablet package, per-row write
// atomicity, the shared commit log servers/<id>/log and its release, the
// split procedure, and self-fencing on the lock-service session. It does not
// own: where tablets go (the master decides and sends LoadTablet /
// UnloadTablet), recovery of a dead server's log (the master splits it and
// names the per-tablet directories in LoadTablet.recovered_edits), or the
// lock client (the caller's; the server only registers with it and watches
// its session).
//
// # Lifecycle
//
// New opens the shared commit log; Start registers /cellar/servers/<id>
// (ephemeral, exclusively locked, content = Addr) and starts three
// background loops: the session watcher, the commit-log releaser and the
// split checker. Close unloads every tablet (flush + close), closes the log
// and deletes the lock node. Kill simulates a crash: tablets are closed
// without flushing and nothing is released.
//
// # Admission and routing
//
// Each loaded tablet is an entry (descriptor, schema, *tablet.Tablet) in a
// map by tablet id and a per-table list sorted by start row. A request for
// (table, row) finds the entry whose range holds the row and is admitted
// (counted in flight) only while the entry is serving. An entry being
// switched over (split, schema change) is paused: requests wait for the
// switch, at most 2 s, then look the row up again, so a write racing a
// split lands in the right daughter. Unloaded, split or unknown rows fail
// with serr.ErrNotServing before anything is applied, as do tablet errors
// that mean the same (tablet.ErrClosed, tablet.ErrRowOutOfRange).
//
// Every write to a row holds one of 1024 striped read-write row locks chosen
// by a hash of (table, row): blind writes (MutateRow, each row of
// MutateRows) hold it shared, so writes of one hot row still share commit-log
// syncs; the read and write of CheckAndMutateRow and ReadModifyWriteRow hold
// it exclusively, so they see every write acknowledged before them, none in
// flight, and are linearizable with respect to other writes of the row.
// Reads take no row lock: the tablet gives them a consistent snapshot.
// MutateRows takes its rows' stripes in ascending order.
//
// # Splits
//
// A tablet whose SSTable plus memtable bytes exceed Options.SplitSize (the
// checker runs every few seconds and after flushes), or one named by the
// master's SplitTablet, is split:
//
//  1. flush the parent while it still serves (so step 4's flush is short),
//     take a new tablet id from the lock-service counter (NextTabletID) and
//     record the intent (info:split = the left daughter) on the parent's
//     METADATA row;
//  2. pause the parent (new requests wait) and wait for requests in flight;
//  3. tablet.Split: the left daughter [start, split) in a new directory
//     tables/<T>/tablets/<new id>, the right [split, end) keeps the parent's
//     id and directory; the rename of its manifest is the on-disk commit;
//  4. commit to METADATA with ONE row write: row RowKey(T, split) gets
//     info:tablet = the left daughter and info:loc = this server;
//  5. open both daughters and serve them (waiting requests re-route);
//  6. best effort, and only if step 4 succeeded: the parent's row gets
//     info:tablet = the right daughter and loses info:split (otherwise the
//     intent stays, and the master finishes the split from it); the master
//     is told (ReportSplit); both daughters
//     are major-compacted in the background, and are not split again before
//     that (their inherited files count whole in their sizes).
//
// Splits, CompactTablet and the tablets' own background compactions share
// a semaphore of MaxConcurrentCompactions (tablet.Options.CompactionLimiter).
// METADATA's root tablet never splits; its META tablets split like user
// tablets past MetaSplitSize (or on SplitTablet), and their rows (the
// intent and the commit) are in the root tablet.
//
// # Commit log and fencing
//
// All tablets append to the one wal.Log. The releaser deletes a sealed log
// file once every tablet with entries in it has flushed past them (or is no
// longer here, having been flushed on unload). The session watcher fences
// the server when the lock session stays in jeopardy for JeopardyBound:
// requests fail with NOT_SERVING and ServerStatus.serving is false until the
// session is safe again. When the session is lost the server stops as Kill
// does. Every write also checks, right before its append, that the server
// is serving and the session's lease (lock.Client.ValidUntil) still runs.
//
// # Concurrency
//
// A Server is safe for concurrent use. Server.mu guards the tablet maps and
// is never held across I/O; entry.adminMu serializes management operations
// on one tablet; entry.mu guards admission state.
package tabletserver
