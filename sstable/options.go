package sstable

import (
	"fmt"
	"math"
)

// Compression selects how the Writer stores data, index and properties
// blocks. It is a per-table preference; the choice is recorded per block.
type Compression uint8

const (
	// CompressionSnappy compresses each block with Snappy, and stores it
	// uncompressed when Snappy saves less than 1/8 of its size. Default.
	CompressionSnappy Compression = 0
	// CompressionNone stores every block uncompressed.
	CompressionNone Compression = 1
)

func (c Compression) String() string {
	switch c {
	case CompressionSnappy:
		return "snappy"
	case CompressionNone:
		return "none"
	}
	return fmt.Sprintf("compression(%d)", uint8(c))
}

// Defaults and bounds of WriterOptions.
const (
	DefaultBlockSize          = 64 << 10 // bytes
	DefaultRestartInterval    = 16       // keys
	DefaultBloomFalsePositive = 0.01
	// MaxBlockSize bounds WriterOptions.BlockSize (bytes).
	MaxBlockSize = 16 << 20
	// MaxEntrySize bounds len(key)+len(value) of one entry (bytes), so that
	// a block (at most BlockSize plus one entry) stays under the readers'
	// 256 MiB block limit.
	MaxEntrySize = 128 << 20
	// MaxRestartInterval bounds WriterOptions.RestartInterval (keys).
	MaxRestartInterval = 1 << 16
	// MinBloomFalsePositive bounds how small a positive
	// WriterOptions.BloomFalsePositive may be (the filter grows with
	// -ln(p)).
	MinBloomFalsePositive = 1e-6
)

// WriterOptions configures a Writer. The zero value (or a nil pointer) gives
// the defaults; zero in any field means that field's default.
type WriterOptions struct {
	// BlockSize is the target uncompressed size of a data block in bytes: a
	// block is finished once its entries reach it, so a block exceeds it by
	// at most one entry. Default 64 KiB; at most MaxBlockSize.
	BlockSize int
	// RestartInterval is the number of keys between restart points (keys
	// stored whole, the targets of the binary search within a block).
	// Default 16; at most MaxRestartInterval.
	RestartInterval int
	// Compression of data, index and properties blocks. Default Snappy.
	Compression Compression
	// BloomFalsePositive is the target false-positive rate of the Bloom
	// filter over row and column prefixes. Default 0.01; negative disables
	// the filter; otherwise in [MinBloomFalsePositive, 1).
	BloomFalsePositive float64
}

// withDefaults returns a filled copy; o may be nil.
func (o *WriterOptions) withDefaults() WriterOptions {
	var c WriterOptions
	if o != nil {
		c = *o
	}
	if c.BlockSize == 0 {
		c.BlockSize = DefaultBlockSize
	}
	if c.RestartInterval == 0 {
		c.RestartInterval = DefaultRestartInterval
	}
	if c.BloomFalsePositive == 0 {
		c.BloomFalsePositive = DefaultBloomFalsePositive
	}
	return c
}

// Validate reports a field out of range, wrapping ErrInvalidOptions. Zero
// fields are valid (they mean the default).
func (o *WriterOptions) Validate() error {
	c := o.withDefaults()
	switch {
	case c.BlockSize < 0 || c.BlockSize > MaxBlockSize:
		return fmt.Errorf("%w: BlockSize %d outside [1, %d]", ErrInvalidOptions, c.BlockSize, MaxBlockSize)
	case c.RestartInterval < 0 || c.RestartInterval > MaxRestartInterval:
		return fmt.Errorf("%w: RestartInterval %d outside [1, %d]", ErrInvalidOptions, c.RestartInterval, MaxRestartInterval)
	case c.Compression != CompressionSnappy && c.Compression != CompressionNone:
		return fmt.Errorf("%w: unknown %s", ErrInvalidOptions, c.Compression)
	case math.IsNaN(c.BloomFalsePositive) || c.BloomFalsePositive >= 1 ||
		(c.BloomFalsePositive > 0 && c.BloomFalsePositive < MinBloomFalsePositive):
		return fmt.Errorf("%w: BloomFalsePositive %v outside [%v, 1) (negative disables the filter)",
			ErrInvalidOptions, c.BloomFalsePositive, MinBloomFalsePositive)
	}
	return nil
}

// ReaderOptions configures Open. A nil pointer gives the defaults.
type ReaderOptions struct {
	// Cache is the shared block cache; nil reads every block from the file.
	Cache *Cache
}
