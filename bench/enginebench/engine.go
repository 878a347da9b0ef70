package enginebench

import "context"

// KV is one row to write: a key and its value. Both slices belong to the
// harness and are reused after Engine.Write returns.
type KV struct {
	Key, Value []byte
}

// Engine is what a storage engine implements to be benchmarked. The harness
// calls Write, Get and Scan from Options.Concurrency goroutines at once, so
// an implementation must be safe for concurrent use of those three; Compact
// and Close are called alone.
type Engine interface {
	// Write stores every row of kvs. With sync it returns only when all of
	// them are durable (the engine's synced commit); without, when they
	// are written with the engine's asynchronous durability. It must not
	// keep kvs or the slices in it.
	Write(ctx context.Context, kvs []KV, sync bool) error
	// Get appends the value of key to dst and returns it, with found false
	// (and no error) if the key is absent.
	Get(ctx context.Context, key, dst []byte) (value []byte, found bool, err error)
	// Scan calls fn for every row in ascending key order until fn returns
	// false. key and value are valid only during the call.
	Scan(ctx context.Context, fn func(key, value []byte) bool) error
	// Compact flushes everything in memory and compacts the whole
	// database into its final shape (a full or major compaction), and
	// returns when that is done.
	Compact(ctx context.Context) error
	// Close releases every resource.
	Close() error
}

// Opener describes an engine configuration and opens fresh databases with
// it.
type Opener struct {
	// Name labels the results ("cellar", "pebble").
	Name string
	// Settings is a one-line description of the configuration, printed
	// with the results so that figures are never shown without it.
	Settings string
	// MemoryBudget is the memory the configuration allows the engine
	// (memtables + block cache), in bytes; 0 = not stated.
	MemoryBudget int64
	// MemoryLimit, if positive, is the Go runtime's soft memory limit
	// (runtime/debug.SetMemoryLimit) while this engine runs; the previous
	// limit is restored afterwards. A garbage-collected engine whose block
	// cache and memtables live on the Go heap otherwise lets the heap grow
	// to twice its live size (GOGC=100) before collecting; a server sets
	// the same limit with GOMEMLIMIT.
	MemoryLimit int64
	// MemoryOverhead is the memory the engine states it may use beyond
	// MemoryBudget; the report says whether the peak RSS stayed within
	// budget + overhead. 0 = not stated.
	MemoryOverhead int64
	// Open opens a new, empty database in dir, a local directory that the
	// harness has created empty and removes after Close.
	Open func(ctx context.Context, dir string) (Engine, error)
}
