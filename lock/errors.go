package lock

import (
	"errors"

	"google.golang.org/grpc/codes"

	"cellar/internal/rpcerr"
)

// Sentinel errors. Every error the server returns for one of these reasons
// carries the sentinel across the wire, so errors.Is works on the client.
var (
	// ErrNotFound: the node does not exist (Get of a missing node is not an
	// error: it reports found = false).
	ErrNotFound = errors.New("cellar/lock: node not found")
	// ErrAlreadyExists: an ephemeral create found a node it does not own.
	ErrAlreadyExists = errors.New("cellar/lock: node already exists")
	// ErrVersionMismatch: a compare-and-set's expected version is not the
	// node's version (0 means "must not exist").
	ErrVersionMismatch = errors.New("cellar/lock: version mismatch")
	// ErrStaleSequencer: the sequencer no longer names a held lock (released,
	// expired, or a newer generation holds it).
	ErrStaleSequencer = errors.New("cellar/lock: stale sequencer")
	// ErrLockBusy: a try-acquire found the lock held in a conflicting mode, or
	// a delete found the node locked by another session.
	ErrLockBusy = errors.New("cellar/lock: lock is held by another session")
	// ErrNotHeld: Release of a lock the session does not hold.
	ErrNotHeld = errors.New("cellar/lock: lock not held by this session")
	// ErrInvalidPath: a path that is not absolute, has empty, "." or ".."
	// components, control characters, or is too long.
	ErrInvalidPath = errors.New("cellar/lock: invalid path")
	// ErrInvalidArgument: any other malformed request (bad lease, bad mode,
	// ephemeral without a session).
	ErrInvalidArgument = errors.New("cellar/lock: invalid argument")
	// ErrTooLarge: content over Options.MaxContent.
	ErrTooLarge = errors.New("cellar/lock: content too large")
	// ErrSessionExpired: the session has expired or was closed; on the
	// client, every operation after the session was reported lost.
	ErrSessionExpired = errors.New("cellar/lock: session expired")
	// ErrNotLeader: the replica is not the leader; nothing was applied, so
	// the request can be retried at the leader.
	ErrNotLeader = errors.New("cellar/lock: not the leader")
	// ErrOutcomeUnknown: leadership was lost or the connection broke after
	// the write was sent; it may or may not have been applied.
	ErrOutcomeUnknown = errors.New("cellar/lock: outcome unknown")
	// ErrClosed: the server or client is closed.
	ErrClosed = errors.New("cellar/lock: closed")
	// ErrCorrupt: a command or snapshot failed to decode.
	ErrCorrupt = errors.New("cellar/lock: corrupt data")
)

// rpcErrors is the one sentinel <-> gRPC status table of the lock service.
var rpcErrors = rpcerr.NewTable(
	rpcerr.Entry{Err: ErrNotFound, Code: codes.NotFound, Reason: "NODE_NOT_FOUND"},
	rpcerr.Entry{Err: ErrAlreadyExists, Code: codes.AlreadyExists, Reason: "NODE_EXISTS"},
	rpcerr.Entry{Err: ErrVersionMismatch, Code: codes.FailedPrecondition, Reason: "VERSION_MISMATCH"},
	rpcerr.Entry{Err: ErrStaleSequencer, Code: codes.FailedPrecondition, Reason: "STALE_SEQUENCER"},
	rpcerr.Entry{Err: ErrLockBusy, Code: codes.FailedPrecondition, Reason: "LOCK_BUSY"},
	rpcerr.Entry{Err: ErrNotHeld, Code: codes.FailedPrecondition, Reason: "LOCK_NOT_HELD"},
	rpcerr.Entry{Err: ErrInvalidPath, Code: codes.InvalidArgument, Reason: "INVALID_PATH"},
	rpcerr.Entry{Err: ErrTooLarge, Code: codes.InvalidArgument, Reason: "CONTENT_TOO_LARGE"},
	rpcerr.Entry{Err: ErrInvalidArgument, Code: codes.InvalidArgument, Reason: "INVALID_ARGUMENT"},
	rpcerr.Entry{Err: ErrSessionExpired, Code: codes.Aborted, Reason: "SESSION_EXPIRED"},
	rpcerr.Entry{Err: ErrNotLeader, Code: codes.Unavailable, Reason: "NOT_LEADER"},
	rpcerr.Entry{Err: ErrOutcomeUnknown, Code: codes.Unavailable, Reason: "OUTCOME_UNKNOWN"},
	rpcerr.Entry{Err: ErrClosed, Code: codes.Unavailable, Reason: "CLOSED"},
	rpcerr.Entry{Err: ErrCorrupt, Code: codes.DataLoss, Reason: "CORRUPT"},
)
