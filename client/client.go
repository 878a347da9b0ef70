package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"cellar/internal/metadata"
	"cellar/internal/rpclimit"
	"cellar/lock"
	datapb "cellar/proto/cellar/data/v1"
	masterpb "cellar/proto/cellar/master/v1"
	tabletpb "cellar/proto/cellar/tablet/v1"
)

// Lock-service nodes the client reads (docs/serving.md).
const (
	masterNode = "/cellar/master"
	rootNode   = "/cellar/root"
	tablesDir  = "/cellar/tables/"
)

// lockReader is the part of the lock client the Client uses.
type lockReader interface {
	Get(ctx context.Context, p string, opts ...lock.ReadOption) (lock.Node, bool, error)
	Close() error
}

// Client is a connection to a Cellar cluster: a session-less lock-service
// client (to find the root tablet, table schemas and the master), one gRPC
// connection per tablet server or master address, and the tablet location
// cache. Safe for concurrent use, except Close.
type Client struct {
	opts   options
	log    *slog.Logger
	lock   lockReader
	cache  *locCache
	closed atomic.Bool

	// mu protects the connection and name caches.
	mu struct {
		sync.Mutex
		conns      map[string]*grpc.ClientConn
		tableIDs   map[string]uint64
		masterAddr string
	}
}

// Dial connects to the lock service at lockAddrs (any subset of the
// replicas) and checks that one answers within the dial timeout (default 5s,
// WithDialTimeout); otherwise it fails with an error wrapping ErrUnavailable
// that names the addresses. Tablet servers and the master are connected to
// lazily. The caller must Close the client.
func Dial(ctx context.Context, lockAddrs []string, opts ...Option) (*Client, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if len(lockAddrs) == 0 {
		return nil, fmt.Errorf("%w: no lock-service addresses", ErrInvalidArgument)
	}
	for _, a := range lockAddrs {
		if a == "" {
			return nil, fmt.Errorf("%w: empty lock-service address", ErrInvalidArgument)
		}
	}
	log := o.logger.With("component", "cellar-client")
	lc, err := lock.Dial(ctx, lock.ClientOptions{Addrs: lockAddrs, NoSession: true, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("cellar/client: dial lock service %v: %w", lockAddrs, err)
	}
	pctx, cancel := context.WithTimeout(ctx, o.dialTimeout)
	defer cancel()
	// Any replica answering (a stale read) proves the addresses are right.
	if _, _, err := lc.Get(pctx, masterNode, lock.Stale()); err != nil {
		lc.Close()
		return nil, fmt.Errorf("cellar/client: no lock-service replica of %s answered within %v: %w: %w",
			strings.Join(lockAddrs, ","), o.dialTimeout, ErrUnavailable, err)
	}
	return newClient(lc, o), nil
}

func newClient(lc lockReader, o options) *Client {
	c := &Client{opts: o, log: o.logger.With("component", "cellar-client"), lock: lc, cache: newLocCache()}
	c.mu.conns = map[string]*grpc.ClientConn{}
	c.mu.tableIDs = map[string]uint64{}
	return c
}

// Close closes every connection. Calls in flight fail; later calls return
// ErrClosed. Close is idempotent.
func (c *Client) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.mu.Lock()
	conns := c.mu.conns
	c.mu.conns = map[string]*grpc.ClientConn{}
	c.mu.Unlock()
	var errs []error
	for _, cc := range conns {
		errs = append(errs, cc.Close())
	}
	errs = append(errs, c.lock.Close())
	return errors.Join(errs...)
}

// conn returns the shared connection to addr, making it if needed (gRPC
// connects lazily and reconnects by itself).
func (c *Client) conn(addr string) (*grpc.ClientConn, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc := c.mu.conns[addr]; cc != nil {
		return cc, nil
	}
	dopts := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, rpclimit.DialOptions()...)
	dopts = append(dopts, c.opts.grpcOpts...)
	cc, err := grpc.NewClient(addr, dopts...)
	if err != nil {
		return nil, fmt.Errorf("cellar/client: connect %s: %w", addr, err)
	}
	c.mu.conns[addr] = cc
	return cc, nil
}

// reachable reports whether a request sent to addr now would reach the
// server. A connection that is not up (a fresh one, or one whose server
// went away) is brought up first, waiting at most reachWait: a server
// that refuses the connection is unreachable, and a request not sent
// cannot have been applied. A connection that is up, or still trying when
// the wait ends, counts as reachable: the request is sent and its outcome
// is whatever the server says.
func (c *Client) reachable(ctx context.Context, addr string) bool {
	cc, err := c.conn(addr)
	if err != nil {
		return false
	}
	if cc.GetState() == connectivity.Ready {
		return true // the common case: no timer
	}
	ctx, cancel := context.WithTimeout(ctx, reachWait)
	defer cancel()
	for {
		switch st := cc.GetState(); st {
		case connectivity.Ready:
			return true
		case connectivity.TransientFailure, connectivity.Shutdown:
			return false
		case connectivity.Idle:
			cc.Connect()
			fallthrough
		default: // Idle, Connecting
			if !cc.WaitForStateChange(ctx, st) {
				return true // still trying: send and let the server answer
			}
		}
	}
}

// reachWait bounds reachable's wait for a connection to come up.
const reachWait = time.Second

func (c *Client) tabletClient(addr string) (tabletpb.TabletServerClient, error) {
	cc, err := c.conn(addr)
	if err != nil {
		return nil, err
	}
	return tabletpb.NewTabletServerClient(cc), nil
}

func (c *Client) masterClient(addr string) (masterpb.MasterClient, error) {
	cc, err := c.conn(addr)
	if err != nil {
		return nil, err
	}
	return masterpb.NewMasterClient(cc), nil
}

// callCtx gives ctx the default call deadline if it has none.
func (c *Client) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.opts.callTimeout)
}

// Table is a handle on one table. Safe for concurrent use. Its table id is
// resolved on first use (and cached by the Client).
type Table struct {
	c    *Client
	name string
}

// Open returns a handle on the table name; it does no I/O. "METADATA" is
// the METADATA table (id 0; read-only by convention). Calls on a missing
// table fail with ErrTableNotFound.
func (c *Client) Open(table string) *Table { return &Table{c: c, name: table} }

// Name is the table's name.
func (t *Table) Name() string { return t.name }

func validTableName(name string) error {
	if name == "" || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("%w: bad table name %q", ErrInvalidArgument, name)
	}
	if err := lock.ValidatePath(tablesDir + name); err != nil {
		return fmt.Errorf("%w: bad table name %q: %v", ErrInvalidArgument, name, err)
	}
	return nil
}

// tableID resolves a table name to its id from /cellar/tables/<name>.
func (c *Client) tableID(ctx context.Context, name string) (uint64, error) {
	if c.closed.Load() {
		return 0, ErrClosed
	}
	if name == metadata.Table {
		return metadata.TableID, nil
	}
	if err := validTableName(name); err != nil {
		return 0, err
	}
	c.mu.Lock()
	id, ok := c.mu.tableIDs[name]
	c.mu.Unlock()
	if ok {
		return id, nil
	}
	n, found, err := c.lock.Get(ctx, tablesDir+name)
	if err != nil {
		return 0, fmt.Errorf("cellar/client: read schema of table %q: %w: %w", name, ErrUnavailable, err)
	}
	if !found {
		return 0, fmt.Errorf("%w: %q", ErrTableNotFound, name)
	}
	var s datapb.TableSchema
	if err := proto.Unmarshal(n.Content, &s); err != nil {
		return 0, fmt.Errorf("cellar/client: corrupt schema of table %q: %v", name, err)
	}
	c.mu.Lock()
	c.mu.tableIDs[name] = s.TableId
	c.mu.Unlock()
	return s.TableId, nil
}

// forgetTable drops a cached table id (after ErrTableNotFound, or when the
// admin client created or deleted the table).
func (c *Client) forgetTable(name string) {
	c.mu.Lock()
	id, ok := c.mu.tableIDs[name]
	delete(c.mu.tableIDs, name)
	c.mu.Unlock()
	if ok {
		c.cache.dropTable(id)
	}
}
