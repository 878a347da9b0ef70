package enginebench

import (
	"fmt"
	"slices"
)

// KeySize is the length of every key the harness writes or reads, in bytes.
const KeySize = 16

// Workload names, in the order Run executes them.
const (
	FillSeq     = "fillseq"
	FillRandom  = "fillrandom"
	FillSync    = "fillsync"
	Compact     = "compact"
	ReadRandom  = "readrandom"
	ReadMissing = "readmissing"
	Scan        = "scan"
)

// Workloads lists every workload in the order Run executes them.
var Workloads = []string{FillSeq, FillRandom, FillSync, Compact, ReadRandom, ReadMissing, Scan}

func isFill(w string) bool { return w == FillSeq || w == FillRandom || w == FillSync }
func isRead(w string) bool { return w == ReadRandom || w == ReadMissing || w == Scan }

// maxRows keeps key indices (2i+1) within 16 decimal digits.
const maxRows = 1_000_000_000_000

// Options configure a Run. The zero value of every field but Dir means its
// default.
type Options struct {
	// Dir is the local directory holding the databases (required); Run
	// creates one fresh subdirectory per filled database and removes it.
	Dir string
	// Rows is the number of rows each fill writes; default 1,000,000.
	Rows int
	// ValueSize is the length of every value, in bytes; default 1000.
	ValueSize int
	// Reads is the number of point reads of readrandom and of
	// readmissing; default Rows.
	Reads int
	// Concurrency is the number of goroutines issuing writes and reads;
	// default 1.
	Concurrency int
	// SyncBatch is the number of rows per write in fillsync; default 100.
	SyncBatch int
	// Seed fixes the key order, the read keys and the values; default 1.
	Seed uint64
	// Workloads to run, a subset of the package's Workloads (run in that
	// order whatever the order given); default all.
	Workloads []string
	// Keep leaves the last database in Dir instead of removing it.
	Keep bool
}

func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	if c.Rows == 0 {
		c.Rows = 1_000_000
	}
	if c.ValueSize == 0 {
		c.ValueSize = 1000
	}
	if c.Reads == 0 {
		c.Reads = c.Rows
	}
	if c.Concurrency == 0 {
		c.Concurrency = 1
	}
	if c.SyncBatch == 0 {
		c.SyncBatch = 100
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if len(c.Workloads) == 0 {
		c.Workloads = Workloads
	}
	c.Workloads = slices.Clone(c.Workloads)
	return c
}

// Validate reports a bad option, wrapping ErrInvalidOptions. Zero values
// are valid (they mean defaults) except for Dir.
func (o *Options) Validate() error {
	c := o.withDefaults()
	switch {
	case c.Dir == "":
		return fmt.Errorf("%w: Dir is required", ErrInvalidOptions)
	case c.Rows < 0 || c.Rows > maxRows:
		return fmt.Errorf("%w: Rows %d outside [1, %d]", ErrInvalidOptions, c.Rows, maxRows)
	case c.ValueSize < 0 || c.ValueSize > 1<<20:
		return fmt.Errorf("%w: ValueSize %d outside [1, %d]", ErrInvalidOptions, c.ValueSize, 1<<20)
	case c.Reads < 0:
		return fmt.Errorf("%w: Reads %d is negative", ErrInvalidOptions, c.Reads)
	case c.Concurrency < 0 || c.Concurrency > 1024:
		return fmt.Errorf("%w: Concurrency %d outside [1, 1024]", ErrInvalidOptions, c.Concurrency)
	case c.SyncBatch < 0 || c.SyncBatch > 100_000:
		return fmt.Errorf("%w: SyncBatch %d outside [1, 100000]", ErrInvalidOptions, c.SyncBatch)
	}
	for _, w := range c.Workloads {
		if !slices.Contains(Workloads, w) {
			return fmt.Errorf("%w: unknown workload %q (want some of %v)", ErrInvalidOptions, w, Workloads)
		}
	}
	return nil
}
