// Package mapreduce runs MapReduce jobs (Dean & Ghemawat, "MapReduce:
// Simplified Data Processing on Large Clusters", OSDI 2004, §2–3) on one
// machine, over files in a dfs.FS, in the shape Bigtable uses for its table
// input and output (Bigtable §8).
//
// It owns the job API (Job, Input/Split/RecordReader, MapFunc, ReduceFunc as
// reducer and combiner, Partitioner, Output/PartitionWriter), file input and
// output in two formats (FileInput, FileOutput), table input and output
// (TableInput: one split per tablet; TableOutput: batched ApplyBulk writes
// with job-fixed timestamps, so retried tasks write nothing twice), the
// cell list encoding of rows (AppendCells, DecodeCells), the built-in jobs
// (RowCountJob, CopyTableJob, ExportJob, ImportJob, ImportTSVJob) and the
// local runner (Run). docs/mapreduce.md describes the table side, the
// export file format and `cellar job` (cmd/cellar); the Apache Beam
// adapter is the nested module mapreduce/beam.
//
// # Execution model
//
// Run follows the paper's steps (§3.1) with goroutines in place of machines:
//
//  1. Input.Splits cuts the input into M splits; split i is map task i.
//  2. Map tasks run on RunOptions.Workers goroutines. Each reads its split,
//     calls Map per record, and buffers the emitted pairs with their reduce
//     partition (Partitioner, default hash(key) mod R).
//  3. When a task's buffer reaches its share of RunOptions.MemoryBudget
//     bytes (see there), the task sorts it by (partition, key), runs the
//     combiner over each key's values (§4.3), and spills it to a run file
//     in RunOptions.TempDir. A task's last buffer is sorted, combined and
//     kept in memory if the budget allows.
//  4. After every map task succeeded (a barrier, as in the paper), the R
//     reduce tasks run on Workers goroutines. Reduce task p merges partition
//     p of every run (k-way, in passes of RunOptions.MergeFactor), groups
//     the stream by key and calls Reduce once per key, in key order, writing
//     through one Output.Writer per attempt.
//  5. Once every partition committed, the Output's JobCommitter (if any)
//     commits the job: FileOutput writes Dir/_SUCCESS.
//
// The reduce input is deterministic: keys in bytes.Compare order, and each
// key's values ordered by map task index, then by emission order within the
// task. Spill points, Workers and timing change nothing, so the output is
// byte-identical whatever Workers or MemoryBudget is (with a combiner, as
// long as it is associative and commutative, since where it runs depends on
// the spill points).
//
// # Guarantees
//
//   - At-least-once task execution (§3.3): a task attempt that fails — its
//     function returns an error or panics (the panic is recovered and becomes
//     an error wrapping ErrPanic), its split cannot be read, or its output
//     cannot be written — is executed again, up to RunOptions.MaxAttempts
//     times (ErrCorrupt input is not retried). User functions must therefore
//     be deterministic and free of side effects other than their emits.
//   - Exactly-once committed output: a map attempt's output reaches the
//     reduce side only if the attempt succeeds (a failed attempt's buffer and
//     spill files are dropped), and a reduce attempt's output is committed
//     only if it succeeds, through the Output commit protocol (see Output):
//     each output record appears once however many attempts ran.
//   - A task that fails on its last attempt fails the job with a *TaskError
//     naming the phase, the task, the split, and the input record (map) or
//     key (reduce); the other running tasks are cancelled and the output is
//     not committed as a whole (no _SUCCESS), although partitions committed
//     before the failure stay.
//   - Cancelling ctx stops every task promptly (checked between records and
//     passed to user functions); Run returns an error wrapping ctx.Err().
//   - Run waits for every goroutine it started and removes its spill
//     directory before returning.
//
// # Concurrency
//
// Run may be called concurrently for different jobs. A job's Map, Combine,
// Reduce and Partition functions are called concurrently from several
// goroutines (never concurrently within one task attempt). FileInput and
// FileOutput are values safe for concurrent use; RecordReader and
// PartitionWriter values are used by one goroutine.
//
// # Record file format (FormatRecords)
//
// A file is a header followed by records; integers are little-endian,
// lengths are unsigned varints (encoding/binary uvarint):
//
//	header (8 bytes):
//	+------+------+------+------+---------+----------+----------+----------+
//	| 'C'  | 'M'  | 'R'  | 'F'  | version | reserved | reserved | reserved |
//	+------+------+------+------+---------+----------+----------+----------+
//	  magic "CMRF"                 0x01      0x00       0x00       0x00
//
//	record:
//	+-------------+---------------+---------+-----------+----------------+
//	| key length  | value length  | key     | value     | CRC32C         |
//	| uvarint     | uvarint       | klen B  | vlen B    | uint32 LE      |
//	+-------------+---------------+---------+-----------+----------------+
//	 \________________ covered by the CRC ______________/
//
// The CRC is CRC-32C (Castagnoli) of the two lengths, the key and the value
// as stored. klen + vlen is at most MaxRecordSize (64 MiB). There is no
// trailer: the file ends after its last record, and a partial record is
// corruption (FileOutput renames a file into place only once it is
// complete). A decoder checks every length against MaxRecordSize and against
// the bytes left before it allocates, and returns errors wrapping ErrCorrupt.
// The magic and version are part of the format and never change; a new
// layout gets a new version. The runner's spill files hold the same records
// without the header.
//
// Worked example (TestFormatDocExample): a file with the single record
// key "k", value "v1" is the 17 bytes
//
//	43 4d 52 46 01 00 00 00   header
//	01 02 6b 76 31            klen 1, vlen 2, "k", "v1"
//	64 f0 44 22               CRC32C 0x2244f064 of the 5 bytes above
//
// Record files are read one split per file. Text files (FormatText) are cut
// into splits of FileInput.SplitSize bytes; a line belongs to the split
// holding its first byte.
//
// # Performance
//
// BenchmarkWordCount (mapreduce_bench_test.go): word count over 8 generated
// text files in memfs, 200,000 lines, 1.1 million words (5.9 MB of map
// output), 4 reducers, Workers = GOMAXPROCS = 2, on the 2-core build machine
// shared with other jobs (load average 5–8); best of 3 runs of
// `go test -run '^$' -bench WordCount -benchtime 3x -count 3 ./mapreduce/`:
//
//	variant                         lines/s   words/s    spills  shuffle bytes
//	no combiner, 64 MiB budget       842,000  4,630,000       0      5,894,521
//	combiner,    64 MiB budget       893,000  4,910,000       0        251,715
//	no combiner, 256 KiB budget      507,000  2,790,000     552      5,894,521
//	combiner,    256 KiB budget      349,000  1,920,000     545      4,082,669
//
// With a tiny budget the combiner sees few values per key in each small
// spill, so it costs more than it saves; it pays where runs are large.
//
// # Example
//
//	res, err := mapreduce.Run(ctx, mapreduce.Job{
//		Input: mapreduce.FileInput{FS: fs, Paths: []string{"books"}},
//		Map: func(ctx context.Context, rec mapreduce.Record, emit mapreduce.Emit) error {
//			for w := range bytes.FieldsSeq(rec.Value) {
//				if err := emit(w, []byte("1")); err != nil {
//					return err
//				}
//			}
//			return nil
//		},
//		Combine:     sum,
//		Reduce:      sum,
//		NumReducers: 4,
//		Output:      mapreduce.FileOutput{FS: fs, Dir: "counts"},
//	}, &mapreduce.RunOptions{Workers: 8, MemoryBudget: 256 << 20})
//
// See Example for a complete program.
package mapreduce
