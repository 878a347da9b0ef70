package lock

import (
	"context"
	"errors"
	"fmt"
	"strings"

	lockpb "cellar/proto/cellar/lock/v1"
)

// ReadOption is a per-call option of the read calls.
type ReadOption interface{ applyRead(*readOpts) }

type readOpts struct{ stale bool }

type staleOpt struct{}

func (staleOpt) applyRead(o *readOpts) { o.stale = true }

// Stale lets any replica serve the read from its own, possibly out of date,
// state (the default is linearizable, served by the leader).
func Stale() ReadOption { return staleOpt{} }

// WriteOption is a per-call option of Set and Delete.
type WriteOption interface{ applyWrite(*writeOpts) }

type writeOpts struct {
	expected  *uint64
	ephemeral bool
}

type ifVersion uint64

func (v ifVersion) applyWrite(o *writeOpts) { x := uint64(v); o.expected = &x }

// IfVersion makes the write a compare-and-set: it applies only if the node
// is at version v (0: the node must not exist), else ErrVersionMismatch.
func IfVersion(v uint64) WriteOption { return ifVersion(v) }

type ephemeralOpt struct{}

func (ephemeralOpt) applyWrite(o *writeOpts) { o.ephemeral = true }

// Ephemeral makes a created node belong to the client's session: it is
// deleted when the session ends.
func Ephemeral() WriteOption { return ephemeralOpt{} }

func readOptions(opts []ReadOption) readOpts {
	var o readOpts
	for _, opt := range opts {
		opt.applyRead(&o)
	}
	return o
}

// Get reads a node; found is false if it does not exist.
func (c *Client) Get(ctx context.Context, p string, opts ...ReadOption) (n Node, found bool, err error) {
	if err := c.checkSession(); err != nil {
		return Node{}, false, err
	}
	o := readOptions(opts)
	err = c.call(ctx, true, func(ctx context.Context, lc lockpb.LockClient) error {
		resp, err := lc.Get(ctx, &lockpb.GetRequest{Path: p, Stale: o.stale})
		if err == nil && resp.Found {
			n, found = nodeFromPB(resp.Node), true
		}
		return err
	})
	return n, found, err
}

// List returns the sorted names of p's direct children.
func (c *Client) List(ctx context.Context, p string, opts ...ReadOption) ([]string, error) {
	if err := c.checkSession(); err != nil {
		return nil, err
	}
	o := readOptions(opts)
	var out []string
	err := c.call(ctx, true, func(ctx context.Context, lc lockpb.LockClient) error {
		resp, err := lc.List(ctx, &lockpb.ListRequest{Path: p, Stale: o.stale})
		if err == nil {
			out = resp.Children
		}
		return err
	})
	return out, err
}

// Set writes a node's content, creating it if needed, and returns its new
// version. A failure with ErrOutcomeUnknown may or may not have applied.
func (c *Client) Set(ctx context.Context, p string, content []byte, opts ...WriteOption) (uint64, error) {
	if err := c.checkSession(); err != nil {
		return 0, err
	}
	var o writeOpts
	for _, opt := range opts {
		opt.applyWrite(&o)
	}
	var version uint64
	err := c.call(ctx, false, func(ctx context.Context, lc lockpb.LockClient) error {
		resp, err := lc.Set(ctx, &lockpb.SetRequest{SessionId: c.session, Path: p, Content: content, ExpectedVersion: o.expected, Ephemeral: o.ephemeral})
		if err == nil {
			version = resp.Version
		}
		return err
	})
	return version, err
}

// Delete removes a node (IfVersion makes it conditional).
func (c *Client) Delete(ctx context.Context, p string, opts ...WriteOption) error {
	if err := c.checkSession(); err != nil {
		return err
	}
	var o writeOpts
	for _, opt := range opts {
		opt.applyWrite(&o)
	}
	return c.call(ctx, false, func(ctx context.Context, lc lockpb.LockClient) error {
		_, err := lc.Delete(ctx, &lockpb.DeleteRequest{SessionId: c.session, Path: p, ExpectedVersion: o.expected})
		return err
	})
}

// Acquire takes the lock on node p in mode, waiting for it as long as ctx
// allows (across leader changes), and returns the acquisition's sequencer.
func (c *Client) Acquire(ctx context.Context, p string, mode Mode) (Sequencer, error) {
	return c.acquire(ctx, p, mode, true)
}

// TryAcquire takes the lock only if it is free now; else ErrLockBusy.
func (c *Client) TryAcquire(ctx context.Context, p string, mode Mode) (Sequencer, error) {
	return c.acquire(ctx, p, mode, false)
}

func (c *Client) acquire(ctx context.Context, p string, mode Mode, wait bool) (Sequencer, error) {
	if err := c.checkSession(); err != nil {
		return Sequencer{}, err
	}
	var seq Sequencer
	// Acquire is idempotent for a session (re-acquiring returns the held
	// lock's sequencer), so an ambiguous failure is retried.
	err := c.call(ctx, true, func(ctx context.Context, lc lockpb.LockClient) error {
		resp, err := lc.Acquire(ctx, &lockpb.AcquireRequest{SessionId: c.session, Path: p, Mode: lockpb.LockMode(mode), Wait: wait})
		if err == nil {
			seq = seqFromPB(resp.Sequencer)
		}
		return err
	})
	if err == nil {
		if err := c.checkSession(); err != nil { // granted, but too late to use
			return Sequencer{}, err
		}
	}
	return seq, err
}

// Release releases the session's lock on p.
func (c *Client) Release(ctx context.Context, p string) error {
	if err := c.checkSession(); err != nil {
		return err
	}
	retried := false
	err := c.call(ctx, false, func(ctx context.Context, lc lockpb.LockClient) error {
		_, err := lc.Release(ctx, &lockpb.ReleaseRequest{SessionId: c.session, Path: p})
		return err
	})
	for errors.Is(err, ErrOutcomeUnknown) && ctx.Err() == nil {
		// Retry: if the first attempt did apply, the lock is no longer held.
		retried = true
		err = c.call(ctx, false, func(ctx context.Context, lc lockpb.LockClient) error {
			_, err := lc.Release(ctx, &lockpb.ReleaseRequest{SessionId: c.session, Path: p})
			return err
		})
	}
	if retried && errors.Is(err, ErrNotHeld) {
		return nil
	}
	return err
}

// CheckSequencer returns nil if seq still names a held lock, else
// ErrStaleSequencer.
func (c *Client) CheckSequencer(ctx context.Context, seq Sequencer, opts ...ReadOption) error {
	if err := c.checkSession(); err != nil {
		return err
	}
	o := readOptions(opts)
	return c.call(ctx, true, func(ctx context.Context, lc lockpb.LockClient) error {
		_, err := lc.CheckSequencer(ctx, &lockpb.CheckSequencerRequest{Sequencer: seqToPB(seq), Stale: o.stale})
		return err
	})
}

// Watch sets the session's interest in p (content: content changes,
// deletion and lock changes; children: child added / removed); both false
// removes the watch. Events arrive on Events.
func (c *Client) Watch(ctx context.Context, p string, content, children bool) error {
	if err := c.checkSession(); err != nil {
		return err
	}
	return c.call(ctx, true, func(ctx context.Context, lc lockpb.LockClient) error {
		_, err := lc.Watch(ctx, &lockpb.WatchRequest{SessionId: c.session, Path: p, Content: content, Children: children})
		return err
	})
}

// Status is a replica's view of the cluster.
type Status struct {
	ID, State, LeaderID, LeaderGRPCAddr       string
	Term, FirstIndex, LastIndex, AppliedIndex uint64
	Sessions, Nodes                           uint64
	Members                                   []Member
}

// Status asks the replica at addr ("" = the current leader guess).
func (c *Client) Status(ctx context.Context, addr string) (Status, error) {
	if addr == "" {
		addr = c.leaderGuess()
	}
	cc, err := c.conn(addr)
	if err != nil {
		return Status{}, err
	}
	r, err := lockpb.NewLockClient(cc).Status(ctx, &lockpb.StatusRequest{})
	if err != nil {
		return Status{}, rpcErrors.FromStatus(err)
	}
	st := Status{ID: r.Id, State: r.State, LeaderID: r.LeaderId, LeaderGRPCAddr: r.LeaderGrpcAddr, Term: r.Term, FirstIndex: r.FirstIndex,
		LastIndex: r.LastIndex, AppliedIndex: r.AppliedIndex, Sessions: r.Sessions, Nodes: r.Nodes}
	for _, m := range r.Members {
		st.Members = append(st.Members, Member{ID: m.Id, RaftAddr: m.RaftAddr, GRPCAddr: m.GrpcAddr, Voter: m.Voter})
	}
	return st, nil
}

// AddVoter adds a replica to the cluster (it must already be running with an
// empty data directory and no bootstrap list).
func (c *Client) AddVoter(ctx context.Context, id, raftAddr, grpcAddr string) error {
	return c.call(ctx, false, func(ctx context.Context, lc lockpb.LockClient) error {
		_, err := lc.AddVoter(ctx, &lockpb.AddVoterRequest{Id: id, RaftAddr: raftAddr, GrpcAddr: grpcAddr})
		return err
	})
}

// RemoveVoter removes a replica from the cluster.
func (c *Client) RemoveVoter(ctx context.Context, id string) error {
	return c.call(ctx, false, func(ctx context.Context, lc lockpb.LockClient) error {
		_, err := lc.RemoveVoter(ctx, &lockpb.RemoveVoterRequest{Id: id})
		return err
	})
}

// --- helpers for the master and tablet servers ---

// ensureNode creates p with empty content if it does not exist.
func (c *Client) ensureNode(ctx context.Context, p string) error {
	_, err := c.Set(ctx, p, nil, IfVersion(0))
	if errors.Is(err, ErrVersionMismatch) {
		return nil
	}
	if errors.Is(err, ErrOutcomeUnknown) { // it either exists now or we retry
		if _, found, gerr := c.Get(ctx, p); gerr == nil && found {
			return nil
		}
	}
	return err
}

// Elect blocks until this client wins the election on node p (an exclusive
// lock), then writes myAddr as p's content so others can find the winner.
// The win lasts until the session is lost (Lost) or Release(p).
func (c *Client) Elect(ctx context.Context, p, myAddr string) (Sequencer, error) {
	if err := ensureValid(p); err != nil {
		return Sequencer{}, err
	}
	if err := c.ensureNode(ctx, p); err != nil {
		return Sequencer{}, err
	}
	seq, err := c.Acquire(ctx, p, ModeExclusive)
	if err != nil {
		return Sequencer{}, err
	}
	if _, err := c.Set(ctx, p, []byte(myAddr)); err != nil {
		return Sequencer{}, fmt.Errorf("cellar/lock: elected on %s but could not publish the address: %w", p, err)
	}
	return seq, nil
}

// Register creates dir/id as an ephemeral node of this session with content
// and takes its exclusive lock, as a tablet server registers itself. It
// fails with ErrAlreadyExists if another session owns the node.
func (c *Client) Register(ctx context.Context, dir, id string, content []byte) (Sequencer, error) {
	p := strings.TrimSuffix(dir, "/") + "/" + id
	if err := ensureValid(p); err != nil {
		return Sequencer{}, err
	}
	if _, err := c.Set(ctx, p, content, Ephemeral()); err != nil {
		return Sequencer{}, err
	}
	return c.TryAcquire(ctx, p, ModeExclusive)
}

// WatchChildren watches dir's children and returns the current list; later
// changes arrive on Events as EventChildAdded / EventChildRemoved with Path
// dir (list again then). The watch is set before the list is read, so no
// change is missed.
func (c *Client) WatchChildren(ctx context.Context, dir string) ([]string, error) {
	if err := c.Watch(ctx, dir, false, true); err != nil {
		return nil, err
	}
	return c.List(ctx, dir)
}

// ensureValid checks a path on the client, with the same status the server
// would give it.
func ensureValid(p string) error {
	return rpcErrors.FromStatus(rpcErrors.ToStatus(validateNodePath(p)))
}
