package dfs

import (
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"cellar/dfs/internal/wire"
	"cellar/internal/raftutil"
	"cellar/internal/rpcerr"
)

// WireErrors is the sentinel <-> gRPC status table of the dfs services,
// shared by this package's client, dfs/master and dfs/chunkserver. It is
// immutable.
var WireErrors = rpcerr.NewTable(
	rpcerr.Entry{Err: ErrLeaseLost, Code: codes.Aborted, Reason: "DFS_LEASE_LOST"},
	rpcerr.Entry{Err: wire.ErrStaleVersion, Code: codes.FailedPrecondition, Reason: "DFS_STALE_VERSION"},
	rpcerr.Entry{Err: wire.ErrNotLeader, Code: codes.Unavailable, Reason: "NOT_LEADER"},
	rpcerr.Entry{Err: raftutil.ErrShutdown, Code: codes.Unavailable, Reason: "DFS_MASTER_SHUTDOWN"},
	rpcerr.Entry{Err: ErrNotFound, Code: codes.NotFound, Reason: "DFS_NOT_FOUND"},
	rpcerr.Entry{Err: ErrExist, Code: codes.AlreadyExists, Reason: "DFS_EXIST"},
	rpcerr.Entry{Err: ErrInvalidPath, Code: codes.InvalidArgument, Reason: "DFS_INVALID_PATH"},
	rpcerr.Entry{Err: ErrInvalidArgument, Code: codes.InvalidArgument, Reason: "DFS_INVALID_ARGUMENT"},
	rpcerr.Entry{Err: ErrClosed, Code: codes.FailedPrecondition, Reason: "DFS_CLOSED"},
	rpcerr.Entry{Err: ErrIsDir, Code: codes.FailedPrecondition, Reason: "DFS_IS_DIR"},
	rpcerr.Entry{Err: ErrNoSpace, Code: codes.ResourceExhausted, Reason: "DFS_NO_SPACE"},
	rpcerr.Entry{Err: ErrCorrupt, Code: codes.DataLoss, Reason: "DFS_CORRUPT"},
	rpcerr.Entry{Err: ErrPastEnd, Code: codes.OutOfRange, Reason: "DFS_PAST_END"},
	rpcerr.Entry{Err: wire.ErrDiskFailed, Code: codes.Unavailable, Reason: "DFS_DISK_FAILED"},
	rpcerr.Entry{Err: wire.ErrNoChunk, Code: codes.NotFound, Reason: "DFS_NO_CHUNK"},
	rpcerr.Entry{Err: wire.ErrBadRequest, Code: codes.InvalidArgument, Reason: "DFS_BAD_REQUEST"},
	rpcerr.Entry{Err: wire.ErrWarmingUp, Code: codes.Unavailable, Reason: "DFS_MASTER_WARMING_UP"},
	rpcerr.Entry{Err: wire.ErrPipelineTimeout, Code: codes.Unavailable, Reason: "DFS_PIPELINE_TIMEOUT"},
	rpcerr.Entry{Err: wire.ErrRecoveryPending, Code: codes.Unavailable, Reason: "DFS_RECOVERY_PENDING"},
)

// errorFromReason rebuilds a sentinel-wrapping error from an rpcerr reason
// carried inside a message (pipeline acks carry the failing replica's
// reason); unknown reasons give a plain error with msg.
func errorFromReason(reason, msg string) error {
	st := status.New(codes.Unknown, msg)
	if reason != "" {
		if ds, err := st.WithDetails(&errdetails.ErrorInfo{Domain: rpcerr.Domain, Reason: reason}); err == nil {
			st = ds
		}
	}
	return WireErrors.FromStatus(st.Err())
}
