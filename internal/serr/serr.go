// Package serr holds the sentinel errors of the serving layer (tablet
// servers, master, client) and their one wire table, so that an error
// raised by a tablet server or the master comes back to the client as the
// same sentinel and errors.Is works across the wire (rpcerr).
//
// The client package re-exports the sentinels users test for; the servers
// return them (wrapped, with a message) and convert with Wire.ToStatus.
package serr

import (
	"errors"

	"google.golang.org/grpc/codes"

	"cellar/internal/filter"
	"cellar/internal/keys"
	"cellar/internal/rpcerr"
	"cellar/tablet"
)

var (
	// ErrNotServing: the server does not serve the row's tablet (never
	// did, moved away, or is fenced). The client refreshes its location
	// cache and retries. UNAVAILABLE on the wire.
	ErrNotServing = errors.New("cellar: tablet not served here")
	// ErrStaleSequencer: a master request carried a sequencer that is no
	// longer the active master's. FAILED_PRECONDITION.
	ErrStaleSequencer = errors.New("cellar: stale master sequencer")
	// ErrWrongServer: a master request meant for another tablet-server
	// incarnation (a restarted server reusing the address of a dead one).
	// FAILED_PRECONDITION.
	ErrWrongServer = errors.New("cellar: request meant for another tablet server")
	// ErrNotMaster: a standby master was asked to act. UNAVAILABLE.
	ErrNotMaster = errors.New("cellar: not the active master")
	// ErrTableNotFound: no table of that name or id. NOT_FOUND.
	ErrTableNotFound = errors.New("cellar: table not found")
	// ErrTableExists: CreateTable of an existing name. ALREADY_EXISTS.
	ErrTableExists = errors.New("cellar: table already exists")
	// ErrFamilyExists: adding a family that exists. ALREADY_EXISTS.
	ErrFamilyExists = errors.New("cellar: column family already exists")
	// ErrInvalidArgument: a malformed request not covered by a more
	// specific sentinel. INVALID_ARGUMENT.
	ErrInvalidArgument = errors.New("cellar: invalid argument")
	// ErrOutcomeUnknown: a non-idempotent write (server-assigned
	// timestamps, ReadModifyWrite) failed after it may have been applied;
	// it was not retried. UNKNOWN.
	ErrOutcomeUnknown = errors.New("cellar: outcome unknown; the write may have been applied")
	// ErrUnavailable: no server could be reached within the deadline.
	// UNAVAILABLE.
	ErrUnavailable = errors.New("cellar: unavailable")
	// ErrOverloaded: the server held a write back (its memtables are over
	// the server's budget until flushes catch up) until the deadline;
	// nothing was applied. RESOURCE_EXHAUSTED.
	ErrOverloaded = errors.New("cellar: server overloaded; write not applied")
)

// Wire is the one rpcerr table of the TabletServer and Master services.
// More specific sentinels come first.
var Wire = rpcerr.NewTable(
	rpcerr.Entry{Err: ErrNotServing, Code: codes.Unavailable, Reason: "NOT_SERVING"},
	rpcerr.Entry{Err: ErrStaleSequencer, Code: codes.FailedPrecondition, Reason: "STALE_SEQUENCER"},
	rpcerr.Entry{Err: ErrWrongServer, Code: codes.FailedPrecondition, Reason: "WRONG_SERVER"},
	rpcerr.Entry{Err: ErrNotMaster, Code: codes.Unavailable, Reason: "NOT_MASTER"},
	rpcerr.Entry{Err: ErrTableNotFound, Code: codes.NotFound, Reason: "TABLE_NOT_FOUND"},
	rpcerr.Entry{Err: ErrTableExists, Code: codes.AlreadyExists, Reason: "TABLE_EXISTS"},
	rpcerr.Entry{Err: ErrFamilyExists, Code: codes.AlreadyExists, Reason: "FAMILY_EXISTS"},
	rpcerr.Entry{Err: tablet.ErrUnknownFamily, Code: codes.InvalidArgument, Reason: "UNKNOWN_FAMILY"},
	rpcerr.Entry{Err: filter.ErrInvalidFilter, Code: codes.InvalidArgument, Reason: "INVALID_FILTER"},
	rpcerr.Entry{Err: keys.ErrLimit, Code: codes.InvalidArgument, Reason: "LIMIT_EXCEEDED"},
	rpcerr.Entry{Err: keys.ErrInvalid, Code: codes.InvalidArgument, Reason: "INVALID_KEY"},
	rpcerr.Entry{Err: ErrInvalidArgument, Code: codes.InvalidArgument, Reason: "INVALID_ARGUMENT"},
	rpcerr.Entry{Err: ErrOutcomeUnknown, Code: codes.Unknown, Reason: "OUTCOME_UNKNOWN"},
	rpcerr.Entry{Err: tablet.ErrRowOutOfRange, Code: codes.Unavailable, Reason: "ROW_OUT_OF_RANGE"},
	rpcerr.Entry{Err: tablet.ErrClosed, Code: codes.Unavailable, Reason: "TABLET_CLOSED"},
	rpcerr.Entry{Err: ErrUnavailable, Code: codes.Unavailable, Reason: "UNAVAILABLE"},
	rpcerr.Entry{Err: ErrOverloaded, Code: codes.ResourceExhausted, Reason: "OVERLOADED"},
)
