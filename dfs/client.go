package dfs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"cellar/dfs/internal/wire"
	dfspb "cellar/proto/cellar/dfs/v1"
)

// ClientOptions configures a Client. Zero values mean defaults.
type ClientOptions struct {
	// Name identifies this client as a lease holder; default a random ID.
	// Two live clients must never share one.
	Name string
	// Replication is the replica count of files this client creates; 0
	// means the master's default (3).
	Replication uint32
	// Host is this machine's host (as chunkservers advertise theirs); the
	// master places a new chunk's first replica there when it can, and
	// reads prefer replicas there. Default "".
	Host string
	// Rack is this machine's rack; reads prefer replicas on it. Default "".
	Rack string
	// RetryTimeout bounds how long a metadata call keeps retrying while the
	// masters elect a leader or a replica is down; default 30s.
	RetryTimeout time.Duration
	// ReadTimeout bounds one ReadAt (io.ReaderAt takes no ctx); default 1m.
	ReadTimeout time.Duration
	// LeaseRenewInterval is how often write leases are renewed; default 30s.
	LeaseRenewInterval time.Duration
	// PipelineTimeout is how long a write waits for any ack before it
	// drops the pipeline's first replica as hung (a hung replica further
	// down is reported by its upstream after the chunkservers' shorter
	// PipelineAckTimeout); default 60s.
	PipelineTimeout time.Duration
	// WriteWindow bounds the bytes in flight in a write pipeline before
	// Write blocks (bytes); default 16 MiB.
	WriteWindow int
	// ExcludeFor is how long new chunks avoid a chunkserver this client
	// dropped from a write pipeline (while enough others are live);
	// default 30s, past the master's usual dead-server verdict.
	ExcludeFor time.Duration
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

func (o *ClientOptions) withDefaults() ClientOptions {
	c := *o
	if c.Name == "" {
		var b [8]byte
		rand.Read(b[:])
		c.Name = "client-" + hex.EncodeToString(b[:])
	}
	if c.RetryTimeout == 0 {
		c.RetryTimeout = 30 * time.Second
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = time.Minute
	}
	if c.LeaseRenewInterval == 0 {
		c.LeaseRenewInterval = 30 * time.Second
	}
	if c.WriteWindow == 0 {
		c.WriteWindow = 16 << 20
	}
	if c.PipelineTimeout == 0 {
		c.PipelineTimeout = time.Minute
	}
	if c.ExcludeFor == 0 {
		c.ExcludeFor = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports inconsistent options.
func (o *ClientOptions) Validate() error {
	switch {
	case o.Replication > 16:
		return fmt.Errorf("cellar/dfs: ClientOptions.Replication %d above 16", o.Replication)
	case o.RetryTimeout < 0 || o.ReadTimeout < 0 || o.LeaseRenewInterval < 0 || o.WriteWindow < 0 || o.PipelineTimeout < 0 || o.ExcludeFor < 0:
		return errors.New("cellar/dfs: negative ClientOptions value")
	}
	return nil
}

// Client is the replicated file system's client: an FS whose metadata
// comes from the master replicas and whose data flows directly to and from
// the chunkservers. It is safe for concurrent use.
type Client struct {
	opts    ClientOptions
	log     *slog.Logger
	masters []dfspb.MasterClient
	mconns  []*grpc.ClientConn
	leader  atomic.Int32 // index of the master that last answered

	conns wire.Conns // chunkservers

	// packetBufs recycles the data buffers of acked packets (*[]byte) for
	// the next packets, so a writer does not allocate (and the GC does
	// not sweep) a fresh buffer per packet.
	packetBufs sync.Pool

	mu      sync.Mutex
	writers map[*writer]struct{} // open for writing; guarded by mu
	// excluded holds chunkservers this client dropped from a pipeline,
	// with when; new chunks avoid them for ExcludeFor (HDFS's excluded
	// nodes), so a log rolled after a replica hung does not meet the same
	// replica again before the master declares it dead. Guarded by mu.
	excluded map[string]time.Time

	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool
}

var (
	_ FS             = (*Client)(nil)
	_ LeaseRecoverer = (*Client)(nil)
)

// Dial returns a client of the file system whose master replicas are at
// masterAddrs (gRPC host:port). It does not wait for a connection.
func Dial(ctx context.Context, masterAddrs []string, opts *ClientOptions) (*Client, error) {
	if len(masterAddrs) == 0 {
		return nil, errors.New("cellar/dfs: Dial needs at least one master address")
	}
	if opts == nil {
		opts = &ClientOptions{}
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	o := opts.withDefaults()
	c := &Client{opts: o, log: o.Logger.With("component", "dfs-client", "client", o.Name),
		writers: map[*writer]struct{}{}, excluded: map[string]time.Time{}}
	for _, a := range masterAddrs {
		cc, err := grpc.NewClient(a, wire.DialOptions()...)
		if err != nil {
			c.closeConns()
			return nil, fmt.Errorf("cellar/dfs: master %s: %w", a, err)
		}
		c.mconns = append(c.mconns, cc)
		c.masters = append(c.masters, dfspb.NewMasterClient(cc))
	}
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.cancel = cancel
	c.wg.Add(1)
	go func() { defer c.wg.Done(); c.renewLoop(bg) }()
	return c, nil
}

// Name is the client's lease-holder name.
func (c *Client) Name() string { return c.opts.Name }

// Close aborts files still open for writing (their unsynced bytes are lost,
// their leases left to expire or be recovered) and releases connections.
func (c *Client) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	c.cancel()
	c.wg.Wait()
	c.mu.Lock()
	ws := make([]*writer, 0, len(c.writers))
	for w := range c.writers {
		ws = append(ws, w)
	}
	c.mu.Unlock()
	for _, w := range ws {
		w.abort(fmt.Errorf("cellar/dfs: client closed: %w", ErrClosed))
	}
	c.closeConns()
	return nil
}

func (c *Client) closeConns() {
	for _, cc := range c.mconns {
		cc.Close()
	}
	c.conns.Close()
}

func (c *Client) renewLoop(ctx context.Context) {
	t := time.NewTicker(c.opts.LeaseRenewInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.mu.Lock()
		n := len(c.writers)
		c.mu.Unlock()
		if n == 0 {
			continue
		}
		if _, err := masterCall(ctx, c, func(ctx context.Context, m dfspb.MasterClient) (*dfspb.RenewLeaseResponse, error) {
			return m.RenewLease(ctx, &dfspb.RenewLeaseRequest{ClientId: c.opts.Name})
		}); err != nil && ctx.Err() == nil {
			c.log.Warn("lease renewal failed", "err", err)
		}
	}
}

func (c *Client) chunkserver(addr string) (dfspb.ChunkserverClient, error) {
	cc, err := c.conns.Get(addr)
	if errors.Is(err, wire.ErrConnsClosed) {
		return nil, fmt.Errorf("cellar/dfs: client: %w", ErrClosed)
	}
	if err != nil {
		return nil, err
	}
	return dfspb.NewChunkserverClient(cc), nil
}

// retryable reports whether a master call may be tried on another replica:
// it reached a non-leader, a replica shutting down, or no server at all.
func retryable(err error) bool {
	if errors.Is(err, wire.ErrNotLeader) {
		return true
	}
	s, ok := status.FromError(err)
	return ok && s.Code() == codes.Unavailable
}

// masterCall runs f against the master replicas, following leader changes
// until it succeeds, fails for a reason other than leadership, or
// RetryTimeout passes. Calls that change the namespace are made idempotent
// by the master (a retried Create, AllocateChunk or Complete by the same
// client succeeds).
func masterCall[T any](ctx context.Context, c *Client, f func(context.Context, dfspb.MasterClient) (T, error)) (T, error) {
	if c.closed.Load() {
		var zero T
		return zero, fmt.Errorf("cellar/dfs: client: %w", ErrClosed)
	}
	deadline := time.Now().Add(c.opts.RetryTimeout)
	backoff := 10 * time.Millisecond
	n := int32(len(c.masters))
	for attempt := int32(1); ; attempt++ {
		i := c.leader.Load()
		// A per-attempt bound, so a replica that hangs (partitioned) does
		// not stall the call; generous, as RecoverLease talks to replicas.
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		r, err := f(actx, c.masters[i])
		cancel()
		if err == nil {
			return r, nil
		}
		err = WireErrors.FromStatus(err)
		if !retryable(err) || ctx.Err() != nil {
			return r, err
		}
		c.leader.CompareAndSwap(i, (i+1)%n)
		if time.Now().After(deadline) {
			return r, fmt.Errorf("cellar/dfs: no master leader answered within %v: %w", c.opts.RetryTimeout, err)
		}
		if attempt%n == 0 {
			select {
			case <-ctx.Done():
				return r, ctx.Err()
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 500*time.Millisecond)
		}
	}
}

// ------------------------------------------------------------ namespace

// exclude records that id was dropped from a write pipeline now.
func (c *Client) exclude(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.excluded[id] = time.Now()
}

// excludedIDs returns the chunkservers new chunks should avoid, forgetting
// those dropped longer than ExcludeFor ago.
func (c *Client) excludedIDs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []string
	for id, at := range c.excluded {
		if time.Since(at) >= c.opts.ExcludeFor {
			delete(c.excluded, id)
			continue
		}
		ids = append(ids, id)
	}
	return ids
}

// Create implements FS. The client holds the file's write lease until
// Close (or until someone calls RecoverLease). The file gets
// ClientOptions.Replication replicas (0: the master's default).
func (c *Client) Create(ctx context.Context, name string) (File, error) {
	return c.CreateReplicated(ctx, name, int(c.opts.Replication))
}

// CreateReplicated is Create with the file's own replica count (1 to 16;
// 0 means the master's default).
func (c *Client) CreateReplicated(ctx context.Context, name string, replication int) (File, error) {
	return c.CreateWith(ctx, name, CreateOptions{Replication: replication})
}

// CreateOptions are the options of CreateWith.
type CreateOptions struct {
	// Replication is the file's replica count (1 to 16; 0 means the
	// master's default).
	Replication int
	// FanOut sends every packet from the client to each replica at once
	// instead of down the chain client → replica 1 → replica 2 → replica 3
	// (see the comment at the top of writer.go): lower Sync latency for
	// three times the client's send bandwidth. For logs, not bulk data.
	FanOut bool
}

// CreateLog implements LogCreator: a file with FanOut.
func (c *Client) CreateLog(ctx context.Context, name string) (File, error) {
	return c.CreateWith(ctx, name, CreateOptions{FanOut: true})
}

// CreateWith is Create with options.
func (c *Client) CreateWith(ctx context.Context, name string, opts CreateOptions) (File, error) {
	replication := opts.Replication
	if err := CheckPath(name, false); err != nil {
		return nil, err
	}
	if replication < 0 || replication > 16 {
		return nil, fmt.Errorf("cellar/dfs: create %s with %d replicas: want 0 to 16: %w", name, replication, ErrInvalidArgument)
	}
	resp, err := masterCall(ctx, c, func(ctx context.Context, m dfspb.MasterClient) (*dfspb.CreateResponse, error) {
		return m.Create(ctx, &dfspb.CreateRequest{Path: name, ClientId: c.opts.Name, Replication: uint32(replication)})
	})
	if err != nil {
		return nil, err
	}
	w := &writer{c: c, path: name, chunkSize: int64(resp.ChunkSize), target: int(resp.Replication), fanOut: opts.FanOut, chunkIdx: -1, acks: newAcks(), nextNum: 1}
	c.mu.Lock()
	c.writers[w] = struct{}{}
	c.mu.Unlock()
	return w, nil
}

// Open implements FS. A file under construction is readable up to the
// length its replicas have synced when Open is called.
func (c *Client) Open(ctx context.Context, name string) (ReadFile, error) {
	if err := CheckPath(name, false); err != nil {
		return nil, err
	}
	r := &reader{c: c, path: name}
	if err := r.refresh(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// Stat implements FS. A file under construction reports its synced length.
func (c *Client) Stat(ctx context.Context, name string) (FileInfo, error) {
	if err := CheckPath(name, true); err != nil {
		return FileInfo{}, err
	}
	resp, err := masterCall(ctx, c, func(ctx context.Context, m dfspb.MasterClient) (*dfspb.StatResponse, error) {
		return m.Stat(ctx, &dfspb.StatRequest{Path: name})
	})
	if err != nil {
		return FileInfo{}, err
	}
	fi := FileInfo{Name: name, Size: int64(resp.Stat.Length), IsDir: resp.Stat.IsDir, ModTime: time.Unix(0, resp.Stat.MtimeUnixNanos)}
	if resp.Stat.UnderConstruction {
		r := &reader{c: c, path: name}
		if err := r.refresh(ctx); err != nil {
			return FileInfo{}, err
		}
		fi.Size = r.size
	}
	return fi, nil
}

// List implements FS. Files under construction list with their settled
// length (full chunks only); Stat gives their synced length.
func (c *Client) List(ctx context.Context, dir string) ([]FileInfo, error) {
	if err := CheckPath(dir, true); err != nil {
		return nil, err
	}
	resp, err := masterCall(ctx, c, func(ctx context.Context, m dfspb.MasterClient) (*dfspb.ListResponse, error) {
		return m.List(ctx, &dfspb.ListRequest{Dir: dir})
	})
	if err != nil {
		return nil, err
	}
	out := make([]FileInfo, 0, len(resp.Entries))
	for _, e := range resp.Entries {
		out = append(out, FileInfo{Name: e.Path, Size: int64(e.Length), IsDir: e.IsDir, ModTime: time.Unix(0, e.MtimeUnixNanos)})
	}
	return out, nil
}

// Rename implements FS.
func (c *Client) Rename(ctx context.Context, oldname, newname string) error {
	if err := CheckPath(oldname, false); err != nil {
		return err
	}
	if err := CheckPath(newname, false); err != nil {
		return err
	}
	_, err := masterCall(ctx, c, func(ctx context.Context, m dfspb.MasterClient) (*dfspb.RenameResponse, error) {
		return m.Rename(ctx, &dfspb.RenameRequest{OldPath: oldname, NewPath: newname})
	})
	return err
}

// Remove implements FS. Space is freed lazily by the chunkservers.
func (c *Client) Remove(ctx context.Context, name string) error {
	if err := CheckPath(name, false); err != nil {
		return err
	}
	_, err := masterCall(ctx, c, func(ctx context.Context, m dfspb.MasterClient) (*dfspb.DeleteResponse, error) {
		return m.Delete(ctx, &dfspb.DeleteRequest{Path: name})
	})
	return err
}

// RecoverLease implements LeaseRecoverer: the writer of name is fenced (its
// later Writes and Syncs fail with ErrLeaseLost), the file's length is
// settled at what every current replica had synced, and it is sealed.
func (c *Client) RecoverLease(ctx context.Context, name string) error {
	if err := CheckPath(name, false); err != nil {
		return err
	}
	_, err := masterCall(ctx, c, func(ctx context.Context, m dfspb.MasterClient) (*dfspb.RecoverLeaseResponse, error) {
		return m.RecoverLease(ctx, &dfspb.RecoverLeaseRequest{Path: name})
	})
	return err
}

// -------------------------------------------------------------- reading

type readChunk struct {
	lc     *dfspb.LocatedChunk
	start  int64 // file offset
	length int64 // readable bytes
}

// reader is a ReadFile: the chunk list and readable length are fixed at
// Open; locations are refreshed when every replica fails.
type reader struct {
	c    *Client
	path string
	mu   sync.Mutex
	// guarded by mu:
	chunks []readChunk
	size   int64
	closed bool
}

func (r *reader) refresh(ctx context.Context) error {
	resp, err := masterCall(ctx, r.c, func(ctx context.Context, m dfspb.MasterClient) (*dfspb.GetBlockLocationsResponse, error) {
		return m.GetBlockLocations(ctx, &dfspb.GetBlockLocationsRequest{Path: r.path})
	})
	if err != nil {
		return err
	}
	var chunks []readChunk
	var off int64
	for _, lc := range resp.Chunks {
		n := int64(lc.Length)
		if !lc.Complete {
			if n, err = r.c.visibleLength(ctx, lc); err != nil {
				return fmt.Errorf("cellar/dfs: open %s: %w", r.path, err)
			}
		}
		chunks = append(chunks, readChunk{lc: lc, start: off, length: n})
		off += n
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.chunks == nil {
		r.size = off
	}
	r.chunks = chunks
	return nil
}

// visibleLength is the length of a chunk under construction that readers
// may see: the smallest synced length among its current replicas (every
// replica has at least what a Sync acknowledged).
func (c *Client) visibleLength(ctx context.Context, lc *dfspb.LocatedChunk) (int64, error) {
	if len(lc.Locations) == 0 {
		return 0, nil
	}
	best := int64(-1)
	var lastErr error
	for _, loc := range lc.Locations {
		cl, err := c.chunkserver(loc.Address)
		if err != nil {
			lastErr = err
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		info, err := cl.ChunkInfo(cctx, &dfspb.ChunkInfoRequest{Handle: lc.Handle})
		cancel()
		if err != nil {
			lastErr = WireErrors.FromStatus(err)
			if errors.Is(lastErr, wire.ErrNoChunk) {
				best = max(best, 0) // allocated, nothing written there yet
			}
			continue
		}
		if info.Version < lc.Version {
			continue
		}
		if best < 0 || int64(info.SyncedLength) < best {
			best = int64(info.SyncedLength)
		}
	}
	if best < 0 {
		return 0, fmt.Errorf("no replica of chunk %x answered: %w", lc.Handle, lastErr)
	}
	return best, nil
}

func (r *reader) Size() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.size
}

func (r *reader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return fmt.Errorf("cellar/dfs: close %s: %w", r.path, ErrClosed)
	}
	r.closed = true
	return nil
}

// ReadAt implements io.ReaderAt over the length fixed at Open.
func (r *reader) ReadAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	size, chunks, closed := r.size, r.chunks, r.closed
	r.mu.Unlock()
	switch {
	case closed:
		return 0, fmt.Errorf("cellar/dfs: read %s: %w", r.path, ErrClosed)
	case off < 0:
		return 0, fmt.Errorf("cellar/dfs: read %s at %d: %w", r.path, off, ErrInvalidPath)
	case off >= size:
		if len(p) == 0 && off == size {
			return 0, nil
		}
		return 0, io.EOF
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.c.opts.ReadTimeout)
	defer cancel()
	n := 0
	for n < len(p) && off < size {
		i := sort.Search(len(chunks), func(i int) bool { return chunks[i].start+chunks[i].length > off }) // first chunk ending after off
		ch := chunks[i]
		coff := off - ch.start
		want := min(int64(len(p)-n), ch.length-coff)
		if err := r.readChunk(ctx, i, ch, coff, p[n:n+int(want)]); err != nil {
			return n, err
		}
		n += int(want)
		off += want
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// readChunk fills p from chunk i at coff, trying replicas nearest first and
// falling back on error or checksum mismatch; when all fail it refreshes
// the locations once (replicas move after failures) and tries again.
func (r *reader) readChunk(ctx context.Context, i int, ch readChunk, coff int64, p []byte) error {
	var errs []error
	const rounds = 4
	for round := 0; round < rounds; round++ {
		for _, loc := range r.c.nearest(ch.lc.Locations) {
			err := r.c.readReplica(ctx, loc.Address, ch.lc, coff, p)
			if err == nil {
				return nil
			}
			errs = append(errs, fmt.Errorf("%s: %w", loc.Address, err))
			if ctx.Err() != nil {
				break
			}
		}
		if round < rounds-1 {
			// Replicas may have moved, or block reports may not have
			// reached the master yet: back off, then refresh.
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(round*round) * 50 * time.Millisecond):
			}
			if err := r.refresh(ctx); err != nil {
				errs = append(errs, err)
				break
			}
			r.mu.Lock()
			if i < len(r.chunks) && r.chunks[i].lc.Handle == ch.lc.Handle {
				ch.lc = r.chunks[i].lc
			}
			r.mu.Unlock()
		}
	}
	allCorrupt := len(errs) > 0
	for _, e := range errs {
		if !errors.Is(e, ErrCorrupt) {
			allCorrupt = false
		}
	}
	err := errors.Join(errs...)
	if allCorrupt {
		return fmt.Errorf("cellar/dfs: read %s chunk %x: every replica failed: %w", r.path, ch.lc.Handle, err)
	}
	if len(errs) == 0 {
		err = errors.New("no replica known")
	}
	return fmt.Errorf("cellar/dfs: read %s chunk %x: no replica could serve it: %w", r.path, ch.lc.Handle, err)
}

// nearest orders replicas: this host first, then this rack, then the rest,
// in random order within each group to spread reads.
func (c *Client) nearest(locs []*dfspb.ChunkLocation) []*dfspb.ChunkLocation {
	out := append([]*dfspb.ChunkLocation(nil), locs...)
	mrand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	rank := func(l *dfspb.ChunkLocation) int {
		h, _, _ := net.SplitHostPort(l.Address)
		switch {
		case c.opts.Host != "" && h == c.opts.Host:
			return 0
		case c.opts.Rack != "" && l.Rack == c.opts.Rack:
			return 1
		}
		return 2
	}
	sort.SliceStable(out, func(i, j int) bool { return rank(out[i]) < rank(out[j]) })
	return out
}

func (c *Client) readReplica(ctx context.Context, addr string, lc *dfspb.LocatedChunk, coff int64, p []byte) error {
	cl, err := c.chunkserver(addr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rs, err := cl.ReadChunk(ctx, &dfspb.ReadChunkRequest{Handle: lc.Handle, Version: lc.Version, Offset: uint64(coff), Length: uint64(len(p))})
	if err != nil {
		return WireErrors.FromStatus(err)
	}
	n := 0
	for {
		m, err := rs.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return WireErrors.FromStatus(err)
		}
		if n+len(m.Data) > len(p) {
			return fmt.Errorf("replica sent %d bytes, %d asked: %w", n+len(m.Data), len(p), wire.ErrBadRequest)
		}
		n += copy(p[n:], m.Data)
	}
	if n != len(p) {
		return fmt.Errorf("replica sent %d of %d bytes: %w", n, len(p), io.ErrUnexpectedEOF)
	}
	return nil
}

var errNotLeader = fmt.Errorf("cellar/dfs: status from a follower: %w", wire.ErrNotLeader)
