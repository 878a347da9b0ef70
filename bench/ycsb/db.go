package ycsb

import (
	"context"
	"errors"
)

// DB is one system's client as the workloads use it. The runner opens one DB
// per system and shares it among Config.Threads goroutines, as YCSB's
// Bigtable binding shares one client: a DB must be safe for concurrent use.
// Field maps passed in are owned by the DB for the duration of the call only.
type DB interface {
	// Name is the system's short name, for the report.
	Name() string
	// Read reads the whole record (every field) and returns ErrNotFound
	// (wrapped) if it does not exist.
	Read(ctx context.Context, key string) error
	// Update writes the given fields of an existing record (the runner
	// passes one field: YCSB's default writeallfields=false).
	Update(ctx context.Context, key string, fields map[string][]byte) error
	// Insert writes a new record with all its fields.
	Insert(ctx context.Context, key string, fields map[string][]byte) error
	// Scan reads up to count whole records in key order starting at start
	// (inclusive) and returns how many it read.
	Scan(ctx context.Context, start string, count int) (int, error)
	// ReadModifyWrite reads the whole record, then writes the given fields
	// (one field, as Update); returns ErrNotFound (wrapped) if the record
	// does not exist.
	ReadModifyWrite(ctx context.Context, key string, fields map[string][]byte) error
	// Close releases the client.
	Close() error
}

// System is a system under test: it owns whatever runs the server side
// (processes, connections to a cluster) and hands out a client.
type System interface {
	// Name is the system's short name, for the report.
	Name() string
	// Open connects a client; the runner calls it once per RunAll and
	// closes the DB before RunAll returns. The table the workloads use
	// must exist (empty) when Open returns.
	Open(ctx context.Context) (DB, error)
	// Close stops what the System started. RunAll does not call it.
	Close() error
}

// Phaser is an optional interface of a System: RunAll calls BeginPhase
// before each phase (the load, each workload) the System runs and the
// function it returns when the phase ends. A System whose servers share
// the benchmark's process uses it to set the process up for itself, not
// for the peer that runs in between.
type Phaser interface {
	BeginPhase() (end func())
}

// ErrNotFound is returned (wrapped) by DB.Read and DB.ReadModifyWrite when
// the record does not exist. The runner treats it as a failed run: every key
// it reads was acknowledged as inserted.
var ErrNotFound = errors.New("cellar/ycsb: record not found")
