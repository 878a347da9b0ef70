// Package enginebench is the storage-engine benchmark harness of issue 2
// ("Performance"): the db_bench-style workloads run on any engine behind the
// small Engine interface, so that Cellar's tablet and a peer (Pebble, in the
// nested module bench/pebble) execute exactly the same code.
//
// It owns the workloads, the key and value generators, result verification,
// the memory report and the printed tables; it does not own any engine (the
// Cellar adapter, CellarOpener, lives here because the core module may import
// the tablet; the Pebble adapter lives in bench/pebble so that the core module
// never depends on Pebble).
//
// # Workloads
//
// Every run uses 16-byte keys (KeySize) and, by default, 1000-byte values and
// 1,000,000 rows. In the order they run:
//
//	fillseq      fresh database; keys in ascending order; one row per write, async log
//	fillrandom   fresh database; keys in a seeded random permutation; one row per write, async log
//	fillsync     fresh database; the same permutation; SyncBatch rows (default 100) per write, durable on return
//	compact      flush memtables and compact the last filled database fully (timed, reported)
//	readrandom   Reads point reads of seeded random existing keys; every one must be found with its value
//	readmissing  Reads point reads of seeded random keys that lie between existing keys; none may be found
//	scan         a full scan; every row exactly once, ascending, with its value
//
// compact runs before the first read workload whenever the database was
// filled since its last compaction, so reads always measure a fully
// compacted database. If only read workloads are chosen, an untimed fillseq
// prepares the database and a note in the Report says so.
//
// Keys are the 16-digit decimal of 2i for row i (so byte order is numeric
// order), and missing keys are the odd numbers 2i+1, which fall between
// existing keys and cannot be rejected by a file's key range. Values are
// slices of a seeded pool in which every 100 bytes are 50 random bytes and
// their copy, so they compress to about half (as db_bench's default
// compression ratio 0.5); the value of row i depends only on i and the seed,
// so reads and the scan verify every value they see.
//
// Concurrency workers take batches from a shared cursor over the key order,
// so the set of operations is fixed by the seed whatever the concurrency.
//
// # Figures
//
// ops/s counts rows written, point reads, or rows scanned per second of wall
// time. MB/s is 10^6 bytes per second of key+value bytes moved (only key
// bytes for a missing read). Timings include the harness's verification,
// which is the same for every engine.
//
// # Memory
//
// Before each workload the harness collects garbage, returns free memory to
// the OS and resets the kernel's peak-RSS mark (writing 5 to
// /proc/self/clear_refs); after it, it reads VmHWM from /proc/self/status. The
// Report prints the largest peak against the engine's configured budget
// (memtables + block cache) and the baseline RSS measured before the engine
// was opened, with the Go collector's GOGC and GOMEMLIMIT: with the default
// GOGC=100 the Go heap may grow to about twice its live data between
// collections, so an engine whose budget lives in the Go heap can show a
// peak near twice its budget; GOMEMLIMIT set to the budget plus overhead
// bounds that. On systems without /proc the figures are reported as unknown.
//
// # Use
//
//	rep, err := enginebench.Run(ctx, enginebench.CellarOpener(nil), &enginebench.Options{Dir: dir, Rows: 100000})
//	if err != nil { ... }
//	rep.Print(os.Stdout)
//
// Run is not safe for concurrent use on one directory; the engine sees
// Options.Concurrency goroutines at once.
package enginebench
