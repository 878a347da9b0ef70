package client

import (
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc"

	datapb "cellar/proto/cellar/data/v1"
)

// Option configures Dial.
type Option func(*options)

type options struct {
	logger      *slog.Logger
	dialTimeout time.Duration
	grpcOpts    []grpc.DialOption
	backoffMin  time.Duration
	backoffMax  time.Duration
	callTimeout time.Duration
}

func defaultOptions() options {
	return options{
		logger:      slog.Default(),
		dialTimeout: 5 * time.Second,
		backoffMin:  10 * time.Millisecond,
		backoffMax:  time.Second,
		callTimeout: 60 * time.Second,
	}
}

// WithLogger sets the client's logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithDialTimeout bounds how long Dial waits for a lock-service replica to
// answer (default 5s).
func WithDialTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.dialTimeout = d
		}
	}
}

// WithGRPCDialOptions adds options to every gRPC connection the client
// makes to tablet servers and the master (insecure credentials are always
// set first; later options override).
func WithGRPCDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.grpcOpts = append(o.grpcOpts, opts...) }
}

// WithRetryBackoff sets the jittered exponential backoff between retries
// (default 10ms doubling up to 1s).
func WithRetryBackoff(min, max time.Duration) Option {
	return func(o *options) {
		if min > 0 {
			o.backoffMin = min
		}
		if max >= o.backoffMin {
			o.backoffMax = max
		}
	}
}

// WithDefaultCallTimeout sets the deadline of a call whose ctx has none
// (default 60s).
func WithDefaultCallTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.callTimeout = d
		}
	}
}

// Durability is how durable a write is when it is acknowledged.
type Durability int

const (
	// Sync: acknowledged after the commit log is synced (the default).
	Sync Durability = iota
	// Async: acknowledged after the log write; synced soon after.
	Async
	// SkipLog: memtable only; lost if the server dies.
	SkipLog
)

func (d Durability) String() string {
	switch d {
	case Sync:
		return "sync"
	case Async:
		return "async"
	case SkipLog:
		return "skiplog"
	}
	return "durability(?)"
}

// ParseDurability parses a durability's name as String prints it ("sync",
// "async", "skiplog"; "skip-log" too), for flags and configuration.
func ParseDurability(s string) (Durability, error) {
	switch s {
	case "sync":
		return Sync, nil
	case "async":
		return Async, nil
	case "skiplog", "skip-log":
		return SkipLog, nil
	}
	return Sync, fmt.Errorf("%w: durability %q: want sync, async or skiplog", ErrInvalidArgument, s)
}

func (d Durability) proto() datapb.Durability {
	switch d {
	case Async:
		return datapb.Durability_DURABILITY_ASYNC
	case SkipLog:
		return datapb.Durability_DURABILITY_SKIP_LOG
	}
	return datapb.Durability_DURABILITY_SYNC
}

// ApplyOption is a per-call option of the write calls.
type ApplyOption interface{ applyOpt(*applyOptions) }

type applyOptions struct{ durability Durability }

type durabilityOpt Durability

func (d durabilityOpt) applyOpt(o *applyOptions) { o.durability = Durability(d) }

// WithDurability sets the write's durability (default Sync).
func WithDurability(d Durability) ApplyOption { return durabilityOpt(d) }

func collectApply(opts []ApplyOption) applyOptions {
	var o applyOptions
	for _, opt := range opts {
		if opt != nil {
			opt.applyOpt(&o)
		}
	}
	return o
}

// ReadOption is a per-call option of the read calls.
type ReadOption interface{ readOpt(*readOptions) }

type readOptions struct {
	filter       Filter
	limit        int64
	noBlockCache bool
}

type filterOpt struct{ f Filter }

func (f filterOpt) readOpt(o *readOptions) { o.filter = f.f }

// RowFilter applies f to every row read.
func RowFilter(f Filter) ReadOption { return filterOpt{f} }

type limitOpt int64

func (l limitOpt) readOpt(o *readOptions) { o.limit = int64(l) }

// LimitRows stops a read after n rows (n <= 0: no limit).
func LimitRows(n int64) ReadOption { return limitOpt(n) }

type noBlockCacheOpt struct{}

func (noBlockCacheOpt) readOpt(o *readOptions) { o.noBlockCache = true }

// NoBlockCache keeps a read from filling the tablet servers' block caches
// with the blocks it loads (blocks already cached are still used), so that
// a full scan, a MapReduce input say, does not evict what other reads keep
// hot. HBase's Scan.setCacheBlocks(false).
func NoBlockCache() ReadOption { return noBlockCacheOpt{} }

func collectRead(opts []ReadOption) readOptions {
	var o readOptions
	for _, opt := range opts {
		if opt != nil {
			opt.readOpt(&o)
		}
	}
	return o
}
