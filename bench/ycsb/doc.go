// Package ycsb runs the YCSB core workloads A–F (Cooper et al., "Benchmarking
// Cloud Serving Systems with YCSB", SoCC 2010) against any System, so that
// Cellar and a peer (the Cloud Bigtable emulator, in the nested module
// bench/bigtable) are measured by the same code in one process.
//
// What it owns: the key and record shapes, the request distributions, the
// operation mixes, the load and run phases, the latency histograms and the
// side-by-side report. What it does not: talking to a system, which is the
// System/DB implementation's job (see db.go for the contract).
//
// # Data
//
// Records are keyed "user" + decimal FNV-1a-64 hash of the record's ordered
// insert id (YCSB's default insertorder=hashed, buildKeyName), so keys of
// consecutive inserts spread over the key space. A record has FieldCount
// fields "field0".."field9" of FieldLength random printable bytes (YCSB's
// defaults: 10 fields of 100 bytes, 1 KB per record).
//
// # Workloads
//
//	A  50% read, 50% update               zipfian
//	B  95% read,  5% update               zipfian
//	C 100% read                           zipfian
//	D  95% read,  5% insert               latest
//	E  95% scan,  5% insert               zipfian scan start, scan length uniform 1..100
//	F  50% read, 50% read-modify-write    zipfian
//
// Reads read the whole record (readallfields=true); updates and
// read-modify-writes write one random field (writeallfields=false).
//
// "zipfian" is YCSB's scrambled zipfian (ScrambledZipfianGenerator): a
// zipfian draw with constant 0.99 over 10^10 items (precomputed zeta
// 26.46902820178302), FNV-hashed and reduced modulo the key-space size, so the
// popular records are scattered over the key space rather than clustered at
// its start. The key space is the records present at the workload's start
// plus room for the inserts expected during it; a draw beyond the highest
// acknowledged insert is drawn again, as YCSB does. "latest" is YCSB's
// SkewedLatestGenerator: a zipfian draw counted back from the most recently
// acknowledged insert, so new records are the most popular.
//
// # Order of workloads and inserts
//
// Workloads run in the configured order (default A,B,C,D,E,F) on one loaded
// data set; nothing is reloaded between them. D and E insert new records
// (ids continuing after the loaded ones); every later workload's key chooser
// covers all acknowledged records, so E scans D's inserts too. (YCSB's
// documented sequence is load, A, B, C, F, D, then a reload before E; we keep
// one data set so a run of all six needs one load per system, and E runs
// after D.) A workload that follows D or E therefore sees a slightly larger
// table than RecordCount: the report prints the record count after each
// phase. For YCSB's exact sequence run "A,B,C,F,D" and then "E" separately.
//
// # Systems side by side
//
// RunAll loads every system, then runs the workloads interleaved workload by
// workload (A on each system, then B on each system, …), so a change in the
// machine's load affects all systems alike. Each system sees the same
// sequence of random draws: thread i of workload w draws from a source seeded
// with (Seed, w, i).
//
// # Latencies
//
// Latencies are kept per operation type in a log-bucketed histogram (see
// Histogram) with 64 sub-buckets per power of two: any reported percentile is
// at most 1/64 (1.6%) above the true value. Means, minimums and maximums are
// exact.
//
// # Concurrency
//
// RunAll, Load and Run block until done; they call the DB from Threads
// goroutines at once, so a DB must be safe for concurrent use. Histogram and
// the generators are not safe for concurrent use; each client goroutine has
// its own.
//
// Example:
//
//	cfg := ycsb.Config{RecordCount: 10000, Duration: 2 * time.Second, Seed: 1}
//	rs, err := ycsb.RunAll(ctx, []ycsb.System{a, b}, cfg, os.Stdout)
//	if err != nil { … }
//	ycsb.PrintRatios(os.Stdout, rs...)
package ycsb
