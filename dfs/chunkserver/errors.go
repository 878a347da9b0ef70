package chunkserver

import (
	"errors"
	"fmt"

	"cellar/dfs"
)

var (
	// ErrCorruptSlot marks a commit slot that cannot be decoded: damaged,
	// torn by a crash while being written, or never written. Opening the
	// store falls back to the other slot; with neither usable the replica
	// is dropped as corrupt.
	ErrCorruptSlot = errors.New("cellar/dfs/chunkserver: corrupt commit slot")
	// ErrOldLayout is returned by Start when the chunk directory holds
	// replicas in format version 1 (a "<handle>.meta" checksum sidecar
	// beside the data file), which this version does not read.
	ErrOldLayout = errors.New("cellar/dfs/chunkserver: chunk store in an unsupported layout (format 1 sidecars)")
)

// errCorruptData marks chunk bytes that do not match their checksum.
var errCorruptData = fmt.Errorf("cellar/dfs/chunkserver: chunk data does not match its checksum: %w", dfs.ErrCorrupt)
