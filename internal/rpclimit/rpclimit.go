// Package rpclimit holds the gRPC message-size limits of Cellar's data
// path, shared by the tablet servers and every client that dials them.
//
// gRPC refuses messages over 4 MiB by default, below the tablet's 10 MiB
// value limit (tablet.DefaultMaxValueSize): without these options a legal
// cell would fail with RESOURCE_EXHAUSTED from the transport instead of
// reaching the server's own, clearer checks. Reads are batched well below
// the limit by the tablet server; bulk writes are split by the client.
package rpclimit

import "google.golang.org/grpc"

// MaxMessage is the largest gRPC message a tablet server accepts or sends
// and a client sends or accepts: room for a mutation of a few maximal
// values plus framing.
const MaxMessage = 64 << 20

// ServerOptions are the options of a gRPC server that serves tablets.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.MaxRecvMsgSize(MaxMessage), grpc.MaxSendMsgSize(MaxMessage)}
}

// DialOptions are the options of a connection to a tablet server.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessage), grpc.MaxCallSendMsgSize(MaxMessage))}
}
