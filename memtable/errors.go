package memtable

import "errors"

// Sentinel errors. Add wraps them with detail; test with errors.Is.
var (
	// ErrArenaFull is returned by Add when the entry does not fit in the
	// space left in the arena. Nothing was added; the caller makes this
	// memtable immutable, rotates to a fresh one and adds the entry there.
	// An entry that is not ErrTooLarge always fits in a fresh memtable.
	ErrArenaFull = errors.New("cellar/memtable: arena full")
	// ErrTooLarge is returned (wrapped) by Add for an entry that could not
	// fit even in an empty memtable of this arena size. Rotating does not
	// help: reject the entry or use an arena of at least ArenaSizeFor bytes.
	ErrTooLarge = errors.New("cellar/memtable: entry larger than the arena")
	// ErrDuplicate is returned (wrapped) by Add for a key already present.
	// The engine makes every key unique with its sequence number, so this
	// is a bug guard, not a path taken in normal operation.
	ErrDuplicate = errors.New("cellar/memtable: duplicate key")
	// ErrInvalidOptions is returned (wrapped) by Options.Validate.
	ErrInvalidOptions = errors.New("cellar/memtable: invalid options")
)
