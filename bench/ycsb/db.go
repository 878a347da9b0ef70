package ycsb

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"
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

// CPUMeter is an optional interface of a System: CPUTime is the CPU time
// (user + system) used so far by every process of the system under test
// and by the benchmark's process, which runs the client. RunAll reads it
// around each phase and reports CPU per operation, which shows on a small
// machine whether a system is bound by its CPU or by waiting (disk, network).
// A system sharing the benchmark's process is also charged for whatever
// else that process does meanwhile (an idle peer's background work).
type CPUMeter interface {
	CPUTime() (time.Duration, error)
}

// ProcessCPU is the CPU time (user + system) this process has used.
func ProcessCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("cellar/ycsb: getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// ErrNotFound is returned (wrapped) by DB.Read and DB.ReadModifyWrite when
// the record does not exist. The runner treats it as a failed run: every key
// it reads was acknowledged as inserted.
var ErrNotFound = errors.New("cellar/ycsb: record not found")
