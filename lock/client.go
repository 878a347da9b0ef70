package lock

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	lockpb "cellar/proto/cellar/lock/v1"
)

// ClientOptions configures a Client. Zero values mean defaults.
type ClientOptions struct {
	// Addrs are the replicas' gRPC addresses (any subset that includes a
	// live replica; the client learns the leader from them). Required.
	Addrs []string
	// Lease is the session lease to request (default: the server's).
	Lease time.Duration
	// Dialer, if set, makes the client's connections (tests: partitions).
	Dialer func(ctx context.Context, addr string) (net.Conn, error)
	// SafetyMargin is subtracted from every lease on the client, so that it
	// declares the session lost before the server could expire it, even with
	// a late timer (default lease/10).
	SafetyMargin time.Duration
	// NoSession makes a client without a session: reads, unconditional
	// writes and admin calls only (the admin CLI).
	NoSession bool
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// SessionState is reported on Client.States.
type SessionState int

// Session states.
const (
	// StateSafe: keep-alives are being acknowledged.
	StateSafe SessionState = iota
	// StateJeopardy: keep-alives are failing; the session may still recover
	// before its lease runs out.
	StateJeopardy
	// StateLost: the lease ran out (or the server said the session is gone);
	// every later operation on this client fails with ErrSessionExpired.
	StateLost
)

func (s SessionState) String() string {
	return [...]string{"safe", "jeopardy", "lost"}[s]
}

// Client is a lock-service client with one session, kept alive in the
// background until Close or loss. Safe for concurrent use.
type Client struct {
	opts    ClientOptions
	log     *slog.Logger
	session uint64
	lease   time.Duration
	ctx     context.Context // cancelled by Close: calls fail with ErrClosed
	cancel  context.CancelFunc
	kaCtx   context.Context // cancelled first by Close: stops the keep-alives
	kaStop  context.CancelFunc
	wg      sync.WaitGroup

	lost       atomic.Bool
	validUntil atomic.Int64 // unix nanos: the client's end of the lease
	lostAt     atomic.Int64 // unix nanos when loss was declared
	lostCh     chan struct{}
	states     chan SessionState
	events     chan Event
	dropped    atomic.Bool // an event was dropped because Events was full
	eventSeq   atomic.Uint64

	mu struct {
		sync.Mutex
		conns  map[string]*grpc.ClientConn
		leader string // best guess of the leader's gRPC address
		next   int    // round-robin index into Addrs
	}
}

// Dial connects to the lock service and opens a session (unless
// opts.NoSession).
func Dial(ctx context.Context, opts ClientOptions) (*Client, error) {
	if len(opts.Addrs) == 0 {
		return nil, fmt.Errorf("%w: ClientOptions.Addrs is empty", ErrInvalidArgument)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	c := &Client{opts: opts, log: opts.Logger.With("component", "lock-client"),
		lostCh: make(chan struct{}), states: make(chan SessionState, 16), events: make(chan Event, 4096)}
	c.mu.conns = map[string]*grpc.ClientConn{}
	c.mu.leader = opts.Addrs[0]
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.kaCtx, c.kaStop = context.WithCancel(c.ctx)
	if opts.NoSession {
		return c, nil
	}
	var resp *lockpb.OpenSessionResponse
	var t0 time.Time
	err := c.call(ctx, true, func(ctx context.Context, lc lockpb.LockClient) (err error) {
		t0 = time.Now() // the lease runs from before the request was sent
		resp, err = lc.OpenSession(ctx, &lockpb.OpenSessionRequest{LeaseMs: opts.Lease.Milliseconds()})
		return err
	})
	if err != nil {
		c.closeConns()
		c.cancel()
		return nil, err
	}
	c.session = resp.SessionId
	c.lease = time.Duration(resp.LeaseMs) * time.Millisecond
	if c.opts.SafetyMargin == 0 {
		c.opts.SafetyMargin = c.lease / 10
	}
	until := t0.Add(c.lease - c.opts.SafetyMargin)
	c.validUntil.Store(until.UnixNano())
	c.wg.Add(1)
	go func() { defer c.wg.Done(); c.keepAlive(until) }()
	return c, nil
}

// SessionID is the session's ID (0 for a NoSession client).
func (c *Client) SessionID() uint64 { return c.session }

// Lease is the granted lease.
func (c *Client) Lease() time.Duration { return c.lease }

// Lost is closed when the session is declared lost.
func (c *Client) Lost() <-chan struct{} { return c.lostCh }

// LostAt is when the client declared the session lost (zero if it has not).
func (c *Client) LostAt() time.Time {
	if n := c.lostAt.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// ValidUntil is the end of the session's lease as the client knows it: the
// server cannot expire the session before then, so a holder of a lock may
// act on it until this time (and must stop after).
func (c *Client) ValidUntil() time.Time { return time.Unix(0, c.validUntil.Load()) }

// States reports session state changes (jeopardy, safe again, lost). It is
// buffered; when the reader falls behind, changes other than the loss are
// dropped (Lost is the reliable signal).
func (c *Client) States() <-chan SessionState { return c.states }

// Events delivers the session's watch events in order. It is buffered; if
// the reader falls behind, events are dropped and an EventEventsLost is
// delivered when there is room again.
func (c *Client) Events() <-chan Event { return c.events }

// Close stops the keep-alives, closes the session (releasing its locks and
// ephemeral nodes) if it is still live, and closes the connections.
func (c *Client) Close() error {
	// Stop the keep-alives first, so that the stream's end after
	// CloseSession is not taken for a lost session.
	c.kaStop()
	c.wg.Wait()
	var err error
	if c.session != 0 && !c.lost.Load() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = c.call(ctx, true, func(ctx context.Context, lc lockpb.LockClient) error {
			_, err := lc.CloseSession(ctx, &lockpb.CloseSessionRequest{SessionId: c.session})
			return err
		})
		cancel()
		if errors.Is(err, ErrSessionExpired) {
			err = nil
		}
	}
	c.cancel()
	c.closeConns()
	return err
}

func (c *Client) closeConns() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cc := range c.mu.conns {
		cc.Close()
	}
	c.mu.conns = map[string]*grpc.ClientConn{}
}

func (c *Client) declareLost(why error) {
	if c.lost.CompareAndSwap(false, true) {
		c.lostAt.Store(time.Now().UnixNano())
		close(c.lostCh)
		c.log.Warn("session lost", "session", c.session, "err", why)
		select {
		case c.states <- StateLost:
		default:
		}
	}
}

func (c *Client) report(s SessionState) {
	select {
	case c.states <- s:
	default:
	}
}

// checkSession fails once the session is lost.
func (c *Client) checkSession() error {
	if c.session != 0 && !c.lost.Load() && time.Now().UnixNano() > c.validUntil.Load() {
		c.declareLost(errors.New("lease ran out"))
	}
	if c.lost.Load() {
		return fmt.Errorf("%w: session %d was lost at %v", ErrSessionExpired, c.session, c.LostAt().Format(time.RFC3339Nano))
	}
	return nil
}

// --- connections and leader discovery ---

func (c *Client) conn(addr string) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc := c.mu.conns[addr]; cc != nil {
		return cc, nil
	}
	dopts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if c.opts.Dialer != nil {
		dopts = append(dopts, grpc.WithContextDialer(c.opts.Dialer))
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, dopts...)
	if err != nil {
		return nil, fmt.Errorf("cellar/lock: dial %s: %w", addr, err)
	}
	c.mu.conns[addr] = cc
	return cc, nil
}

// ready waits briefly for cc to connect, so that a request is only sent on a
// working connection (a send that then fails is ambiguous; one never sent is
// not).
func ready(ctx context.Context, cc *grpc.ClientConn) bool {
	if cc.GetState() == connectivity.Ready {
		return true // the common case, without a timer
	}
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	cc.Connect()
	for {
		s := cc.GetState()
		switch s {
		case connectivity.Ready:
			return true
		case connectivity.TransientFailure, connectivity.Shutdown:
			return false
		}
		if !cc.WaitForStateChange(ctx, s) {
			return false
		}
	}
}

func (c *Client) leaderGuess() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.leader
}

// redirect picks the next replica to try after addr refused or failed: the
// leader that addr names if it knows one, else the next address in turn.
func (c *Client) redirect(ctx context.Context, addr string, askedOK bool) {
	next := ""
	if askedOK {
		if cc, err := c.conn(addr); err == nil {
			sctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			if st, err := lockpb.NewLockClient(cc).Status(sctx, &lockpb.StatusRequest{}); err == nil && st.LeaderGrpcAddr != "" && st.LeaderGrpcAddr != addr {
				next = st.LeaderGrpcAddr
			}
			cancel()
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.leader != addr {
		return // someone else already moved on
	}
	if next == "" {
		c.mu.next = (c.mu.next + 1) % len(c.opts.Addrs)
		next = c.opts.Addrs[c.mu.next]
	}
	c.mu.leader = next
}

// leaderConn returns a ready connection to the leader guess, or (addr, nil)
// after moving the guess on if it is not reachable.
func (c *Client) leaderConn(ctx context.Context) (string, *grpc.ClientConn, error) {
	addr := c.leaderGuess()
	cc, err := c.conn(addr)
	if err != nil {
		return addr, nil, err
	}
	if !ready(ctx, cc) {
		c.redirect(ctx, addr, false)
		return addr, nil, nil
	}
	return addr, cc, nil
}

// call runs fn against the leader, following redirects and retrying
// failures where the request was not applied. A failure after the request
// was sent is retried only if idempotent; otherwise it is ErrOutcomeUnknown.
func (c *Client) call(ctx context.Context, idempotent bool, fn func(context.Context, lockpb.LockClient) error) error {
	backoff := 10 * time.Millisecond
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := c.ctx.Err(); err != nil {
			return ErrClosed
		}
		addr, cc, err := c.leaderConn(ctx)
		if err != nil {
			return err
		}
		if cc != nil {
			err = rpcErrors.FromStatus(fn(ctx, lockpb.NewLockClient(cc)))
			switch {
			case err == nil:
				return nil
			case errors.Is(err, ErrNotLeader), errors.Is(err, ErrClosed):
				c.redirect(ctx, addr, true)
			case errors.Is(err, ErrOutcomeUnknown), status.Code(err) == codes.Unavailable:
				if !idempotent {
					if !errors.Is(err, ErrOutcomeUnknown) {
						err = fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
					}
					return err
				}
				c.redirect(ctx, addr, false)
			case errors.Is(err, ErrSessionExpired):
				if c.session != 0 {
					c.declareLost(err)
				}
				return err
			default:
				return err
			}
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-c.ctx.Done():
			t.Stop()
			return ErrClosed
		case <-t.C:
		}
		backoff = min(backoff*2, 50*time.Millisecond)
	}
}

// --- keep-alive ---

type kaMsg struct {
	resp *lockpb.KeepAliveResponse
	err  error
}

// keepAlive keeps the session alive until Close or loss. validUntil is the
// client's view of the lease: it is only ever extended to (time taken just
// before sending an acknowledged keep-alive) + lease - margin, so the client
// declares loss no later than the server can expire the session.
func (c *Client) keepAlive(validUntil time.Time) {
	lossTimer := time.NewTimer(time.Until(validUntil))
	defer lossTimer.Stop()
	jeopardy := false
	setJeopardy := func(j bool) {
		if j != jeopardy {
			jeopardy = j
			c.report(map[bool]SessionState{true: StateJeopardy, false: StateSafe}[j])
		}
	}
	interval := c.lease / 4
	for {
		err := c.runStream(&validUntil, lossTimer, interval, setJeopardy)
		if c.lost.Load() || c.kaCtx.Err() != nil {
			return
		}
		if errors.Is(err, ErrSessionExpired) {
			c.declareLost(err)
			return
		}
		setJeopardy(true)
		t := time.NewTimer(interval / 4)
		select {
		case <-c.kaCtx.Done():
			t.Stop()
			return
		case <-lossTimer.C:
			t.Stop()
			c.declareLost(fmt.Errorf("lease ran out: %w", err))
			return
		case <-t.C:
		}
	}
}

// runStream runs one KeepAlive stream to the current leader until it fails.
func (c *Client) runStream(validUntil *time.Time, lossTimer *time.Timer, interval time.Duration, setJeopardy func(bool)) error {
	ctx, cancel := context.WithCancel(c.kaCtx)
	defer cancel()
	addr, cc, err := c.leaderConn(ctx)
	if err != nil {
		return err
	}
	if cc == nil {
		return fmt.Errorf("cellar/lock: %s not reachable", addr)
	}
	stream, err := lockpb.NewLockClient(cc).KeepAlive(ctx)
	if err != nil {
		c.redirect(ctx, addr, false)
		return err
	}
	msgs := make(chan kaMsg, 16)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			r, err := stream.Recv()
			select {
			case msgs <- kaMsg{r, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	defer wg.Wait()
	defer cancel()
	sent := map[uint64]time.Time{}
	var nextID uint64
	send := func() error {
		nextID++
		sent[nextID] = time.Now() // before sending: the server's lease starts later
		return stream.Send(&lockpb.KeepAliveRequest{SessionId: c.session, FromSeq: c.eventSeq.Load(), Id: nextID})
	}
	if err := send(); err != nil {
		c.redirect(ctx, addr, false)
		return err
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-c.kaCtx.Done():
			return c.kaCtx.Err()
		case <-lossTimer.C:
			c.declareLost(errors.New("lease ran out"))
			return ErrSessionExpired
		case <-tick.C:
			// A keep-alive unanswered for a whole interval puts the session
			// in jeopardy; keep sending on the same stream meanwhile.
			for id, t := range sent {
				if id < nextID && time.Since(t) > interval {
					setJeopardy(true)
				}
			}
			if err := send(); err != nil {
				return err
			}
		case m := <-msgs:
			if m.err != nil {
				err := rpcErrors.FromStatus(m.err)
				if errors.Is(err, ErrNotLeader) {
					c.redirect(ctx, addr, true)
				} else if !errors.Is(err, ErrSessionExpired) {
					c.redirect(ctx, addr, false)
				}
				return err
			}
			if t, ok := sent[m.resp.AckId]; ok && m.resp.AckId != 0 {
				for id := range sent {
					if id <= m.resp.AckId {
						delete(sent, id)
					}
				}
				lease := time.Duration(m.resp.LeaseMs) * time.Millisecond
				if v := t.Add(lease - c.opts.SafetyMargin); v.After(*validUntil) {
					if time.Now().After(*validUntil) { // the old lease ran out first
						c.declareLost(errors.New("lease ran out"))
						return ErrSessionExpired
					}
					*validUntil = v
					c.validUntil.Store(v.UnixNano())
					lossTimer.Reset(time.Until(v))
				}
				setJeopardy(false)
			}
			for _, pe := range m.resp.Events {
				c.deliver(eventFromPB(pe))
			}
		}
	}
}

func (c *Client) deliver(e Event) {
	if e.Seq <= c.eventSeq.Load() {
		return // a duplicate after a reconnect
	}
	if c.dropped.Load() {
		select {
		case c.events <- Event{Seq: e.Seq - 1, Type: EventEventsLost}:
			c.dropped.Store(false)
		default:
		}
	}
	if !c.dropped.Load() {
		select {
		case c.events <- e:
		default:
			c.dropped.Store(true)
		}
	}
	c.eventSeq.Store(e.Seq)
}
