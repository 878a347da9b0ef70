package client

import (
	"cellar/internal/filter"
	"cellar/internal/keys"
	"cellar/internal/serr"
	"cellar/tablet"
)

// Sentinel errors. Every error the client returns for one of these reasons
// wraps the sentinel, whether the client detected it or a server sent it
// (statuses are mapped back through serr.Wire), so test with errors.Is.
var (
	// ErrTableNotFound: no table of that name (Open resolves names lazily,
	// so the first call on a missing table returns it).
	ErrTableNotFound = serr.ErrTableNotFound
	// ErrNotFound is ErrTableNotFound (absent rows are not errors: ReadRow
	// returns a nil Row).
	ErrNotFound = serr.ErrTableNotFound
	// ErrTableExists: CreateTable of an existing name.
	ErrTableExists = serr.ErrTableExists
	// ErrFamilyExists: CreateColumnFamily of an existing family.
	ErrFamilyExists = serr.ErrFamilyExists
	// ErrUnknownFamily: a mutation or read names a family not in the schema.
	ErrUnknownFamily = tablet.ErrUnknownFamily
	// ErrInvalidFilter: a filter the server cannot compile (bad regexp,
	// negative count).
	ErrInvalidFilter = filter.ErrInvalidFilter
	// ErrLimit: a row key, qualifier, value or row over the data model's
	// limits.
	ErrLimit = keys.ErrLimit
	// ErrInvalidArgument: bad input detected by the client before sending
	// (empty row key, bad family name, nil mutation, mismatched slices) or
	// by the server.
	ErrInvalidArgument = serr.ErrInvalidArgument
	// ErrOutcomeUnknown: a non-idempotent write (a Set with ServerTime, or
	// ApplyReadModifyWrite) failed after it was sent; it may have been
	// applied and was not retried.
	ErrOutcomeUnknown = serr.ErrOutcomeUnknown
	// ErrUnavailable: no server answered (the lock service at Dial, or the
	// tablet's server until the call's deadline).
	ErrUnavailable = serr.ErrUnavailable
	// ErrOverloaded: the tablet server held the write back until the
	// deadline because its memtables were over the server's memory budget
	// (flushes behind); the write was not applied.
	ErrOverloaded = serr.ErrOverloaded
	// ErrClosed: the Client was closed.
	ErrClosed = errClosed
)

var errClosed = closedError{}

type closedError struct{}

func (closedError) Error() string { return "cellar/client: client is closed" }
