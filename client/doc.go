// Package client is Cellar's Go client, shaped after Cloud Bigtable's
// (cloud.google.com/go/bigtable): Dial a cluster through its lock service,
// Open a table, and Apply mutations, ReadRow / ReadRows with filters,
// CheckAndMutate, ApplyReadModifyWrite and SampleRowKeys; administer tables
// through Admin (CreateTable, TableInfo, GC policies, splits, flushes).
//
// # Finding tablets (Bigtable §5.1)
//
// The client keeps a per-table cache of tablet locations, filled lazily by
// reading METADATA: the root tablet's location from the lock node
// /cellar/root, the META tablet's row from the root tablet, then the user
// tablet's row (and up to 100 following ones, prefetched) from the META
// tablet. Each level is cached. An entry is dropped when its server answers
// NOT_SERVING or cannot be reached, and the next call looks it up again;
// a METADATA row without a location (tablet being reassigned) is waited
// for with backoff. Table names resolve to ids through /cellar/tables/<name>
// (cached). The admin client talks to the master named by /cellar/master.
//
// # Retries and deadlines
//
// Every call runs within its ctx; a ctx without a deadline gets 60s
// (WithDefaultCallTimeout). Transient failures (UNAVAILABLE, including
// NOT_SERVING, and broken connections) are retried with jittered
// exponential backoff (WithRetryBackoff); after NOT_SERVING, a call that
// finds the tablet at another server in METADATA retries there at once (a
// few times in a row at most), so that a tablet move does not look longer
// than it is. Writes are retried only when that
// is safe: a NOT_SERVING refusal is guaranteed to come before anything was
// applied, so it is always retried, and so is a write that was not sent
// because its server's connection was refused (the server is down); after
// any other failure a mutation is retried only if it is idempotent (every
// Set has an explicit timestamp; see Table.Apply for what a retry of one
// can do to another writer's write of the same cell version).
// A Set with ServerTime, CheckAndMutate and ApplyReadModifyWrite instead
// fail with an error wrapping ErrOutcomeUnknown: the write may or may not
// have been applied. ReadRows resumes after a failure strictly after the
// last row it delivered (or the server examined), so the callback never
// sees a row twice.
//
// # Errors
//
// Errors wrap the sentinels in errors.go (ErrTableNotFound,
// ErrUnknownFamily, ErrInvalidArgument, ErrOutcomeUnknown, ...); the ones
// servers send are mapped back through internal/serr, so errors.Is works
// across the wire. Bad input (empty row key, invalid family name, nil
// mutation, mismatched slices) is rejected before sending with
// ErrInvalidArgument; the client never panics on it. A missing row is not an
// error: ReadRow returns (nil, nil).
//
// # Concurrency
//
// Client, Table and AdminClient are safe for concurrent use (Close aside).
// Mutation and ReadModifyWrite are builders: not safe for concurrent
// modification, but one may be applied from several goroutines. Filters,
// GC policies and row sets are immutable values.
//
// One *grpc.ClientConn is kept per server address (insecure credentials),
// shared by every table and closed by Close.
package client
