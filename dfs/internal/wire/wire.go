// Package wire holds what the dfs client, master and chunkserver share on
// the wire: the internal sentinels that never reach dfs users, and the gRPC dial options.
// It is internal to dfs.
package wire

import (
	"errors"
	"math"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/keepalive"

	"cellar/internal/raftutil"
)

// Internal sentinels (wrapped with dfs sentinels where a user sees them).
var (
	// ErrNotLeader: a master replica that is not the raft leader got a
	// request that needs the leader; the client tries another replica.
	ErrNotLeader = raftutil.ErrNotLeader
	// ErrStaleVersion: a chunk replica's version is older than the caller's
	// (the replica missed a version bump) or a writer's version is older
	// than the replica's (the writer was fenced).
	ErrStaleVersion = errors.New("cellar/dfs: stale chunk version")
	// ErrDiskFailed: a chunkserver's disk failed a write or fsync; it
	// refuses writes until restarted.
	ErrDiskFailed = errors.New("cellar/dfs: chunkserver disk failed")
	// ErrNoChunk: the chunkserver holds no replica of the chunk.
	ErrNoChunk = errors.New("cellar/dfs: no such chunk replica")
	// ErrBadRequest: a malformed request (missing header, wrong offset).
	ErrBadRequest = errors.New("cellar/dfs: bad request")
	// ErrWarmingUp: a master that just became leader has not yet heard
	// from the chunkservers; the client retries.
	ErrWarmingUp = errors.New("cellar/dfs: master leader is still learning the chunkservers")
	// ErrPipelineTimeout: a write pipeline replica stopped acknowledging.
	ErrPipelineTimeout = errors.New("cellar/dfs: write pipeline timed out")
	// ErrRecoveryPending: lease recovery could not reach a replica of the
	// file's last chunk that may hold synced bytes; the caller retries.
	ErrRecoveryPending = errors.New("cellar/dfs: lease recovery needs an unreachable replica")
)

// MaxMessage is the largest gRPC message the dfs services send or accept
// (bytes): a write packet or read response is at most PacketSize plus
// framing.
const MaxMessage = 8 << 20

// PacketSize is the largest data payload of one write packet or read
// response message (bytes).
const PacketSize = 1 << 20

// DialOptions are the options every dfs gRPC connection uses (plaintext;
// Cellar runs on a private network).
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessage), grpc.MaxCallSendMsgSize(MaxMessage), grpc.ForceCodecV2(codec{})),
		experimental.WithBufferPool(pool),
		grpc.WithWriteBufferSize(ioBufferSize),
		grpc.WithReadBufferSize(ioBufferSize),
		grpc.WithInitialWindowSize(4 << 20),
		grpc.WithInitialConnWindowSize(16 << 20),
		// Reconnect to a restarted peer within seconds, not gRPC's default
		// of up to two minutes: heartbeats must reach a new master leader.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 2 * time.Second,
		}),
		// A peer cut off the network leaves its TCP connections looking
		// open until the kernel gives up (many minutes): calls on them
		// (a re-replication copy, a read) would hang that long. Pings
		// find a dead connection within KeepaliveTime+KeepaliveTimeout.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: KeepaliveTime, Timeout: KeepaliveTimeout, PermitWithoutStream: true}),
	}
}

// ioBufferSize is the size of each dfs connection's socket read and write
// buffers (bytes); gRPC's default of 32 KiB takes three or more syscalls
// each way per 64 KiB write packet.
const ioBufferSize = 256 << 10

// KeepaliveTime and KeepaliveTimeout: an idle dfs connection is pinged
// every KeepaliveTime and dropped if the ping is not answered within
// KeepaliveTimeout.
const (
	KeepaliveTime    = 10 * time.Second
	KeepaliveTimeout = 5 * time.Second
)

// ServerOptions are the options every dfs gRPC server uses.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxMessage),
		grpc.ForceServerCodecV2(codec{}),
		experimental.BufferPool(pool),
		grpc.WriteBufferSize(ioBufferSize),
		grpc.ReadBufferSize(ioBufferSize),
		grpc.MaxSendMsgSize(MaxMessage),
		grpc.InitialWindowSize(4 << 20),
		grpc.InitialConnWindowSize(16 << 20),
		grpc.MaxConcurrentStreams(math.MaxUint32),
		// Accept the clients' keep-alive pings (gRPC's default policy
		// closes connections that ping more often than every 5 minutes).
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: KeepaliveTime / 2, PermitWithoutStream: true}),
	}
}

// Conns caches one client connection per address (chunkservers dial their
// pipeline peers, the master and the client dial chunkservers). Safe for
// concurrent use; Close closes every connection and makes Get fail.
type Conns struct {
	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn // guarded by mu
	closed bool
}

// ErrConnsClosed: Get after Close.
var ErrConnsClosed = errors.New("cellar/dfs: connections closed")

// Get returns the connection to addr, creating it (lazily connecting) on
// first use.
func (c *Conns) Get(addr string) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrConnsClosed
	}
	if cc, ok := c.conns[addr]; ok {
		return cc, nil
	}
	cc, err := grpc.NewClient(addr, DialOptions()...)
	if err != nil {
		return nil, err
	}
	if c.conns == nil {
		c.conns = map[string]*grpc.ClientConn{}
	}
	c.conns[addr] = cc
	return cc, nil
}

// Close closes every cached connection.
func (c *Conns) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for a, cc := range c.conns {
		cc.Close()
		delete(c.conns, a)
	}
}
