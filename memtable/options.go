package memtable

import "fmt"

// Arena size bounds.
const (
	// DefaultArenaSize is the arena size used when Options.ArenaSize is 0.
	DefaultArenaSize int64 = 64 << 20
	// MinArenaSize is the smallest arena accepted (bytes).
	MinArenaSize int64 = 1 << 10
	// MaxArenaSize is the largest arena accepted (bytes): node links are
	// 32-bit offsets into the arena. Above 2 GiB the offsets, which also
	// cover the waste at chunk tails, may run out before the capacity
	// does (Add then reports ErrArenaFull early).
	MaxArenaSize int64 = 1<<32 - arenaAlign
)

// Options configures a Memtable. The zero value is valid and means defaults.
type Options struct {
	// ArenaSize is the capacity of the arena in bytes: keys, values and
	// skiplist nodes all live in it, and Add reports ErrArenaFull when they
	// would take more. The arena is allocated as it fills, in chunks of 256
	// KiB, not up front. Default 64 MiB (DefaultArenaSize); zero means the
	// default; otherwise it must lie in [MinArenaSize, MaxArenaSize].
	ArenaSize int64
}

func (o Options) withDefaults() Options {
	if o.ArenaSize == 0 {
		o.ArenaSize = DefaultArenaSize
	}
	return o
}

// Validate reports an arena size outside [MinArenaSize, MaxArenaSize] (zero
// is valid: it means the default). The error wraps ErrInvalidOptions.
func (o Options) Validate() error {
	if o.ArenaSize == 0 {
		return nil
	}
	if o.ArenaSize < MinArenaSize || o.ArenaSize > MaxArenaSize {
		return fmt.Errorf("%w: ArenaSize %d bytes is outside [%d, %d]",
			ErrInvalidOptions, o.ArenaSize, MinArenaSize, MaxArenaSize)
	}
	return nil
}
