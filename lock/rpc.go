package lock

import (
	"context"
	"errors"
	"fmt"

	"sync"
	"time"

	"cellar/internal/raftutil"
	lockpb "cellar/proto/cellar/lock/v1"
)

// The gRPC handlers: each validates, applies or reads, and maps errors
// through rpcErrors.

func (s *Server) OpenSession(ctx context.Context, req *lockpb.OpenSessionRequest) (*lockpb.OpenSessionResponse, error) {
	d := time.Duration(req.LeaseMs) * time.Millisecond
	if d == 0 {
		d = s.opts.DefaultLease
	}
	if d < s.opts.MinLease || d > s.opts.MaxLease {
		return nil, rpcErrors.ToStatus(fmt.Errorf("%w: lease %v outside [%v, %v]", ErrInvalidArgument, d, s.opts.MinLease, s.opts.MaxLease))
	}
	res, err := s.apply(ctx, &command{op: opOpenSession, leaseNS: uint64(d)})
	if err != nil {
		return nil, rpcErrors.ToStatus(err)
	}
	return &lockpb.OpenSessionResponse{SessionId: res.session, LeaseMs: d.Milliseconds()}, nil
}

func (s *Server) CloseSession(ctx context.Context, req *lockpb.CloseSessionRequest) (*lockpb.CloseSessionResponse, error) {
	if _, err := s.apply(ctx, &command{op: opCloseSession, session: req.SessionId}); err != nil {
		return nil, rpcErrors.ToStatus(err)
	}
	return &lockpb.CloseSessionResponse{}, nil
}

func (s *Server) Watch(ctx context.Context, req *lockpb.WatchRequest) (*lockpb.WatchResponse, error) {
	var flags uint8
	if req.Content {
		flags |= flagWatchContent
	}
	if req.Children {
		flags |= flagWatchChildren
	}
	if err := ValidatePath(req.Path); err != nil {
		return nil, rpcErrors.ToStatus(err)
	}
	if _, err := s.apply(ctx, &command{op: opWatch, session: req.SessionId, path: req.Path, flags: flags}); err != nil {
		return nil, rpcErrors.ToStatus(err)
	}
	return &lockpb.WatchResponse{}, nil
}

func (s *Server) Get(ctx context.Context, req *lockpb.GetRequest) (*lockpb.GetResponse, error) {
	if err := validateNodePath(req.Path); err != nil {
		return nil, rpcErrors.ToStatus(err)
	}
	if err := s.readBarrier(ctx, req.Stale); err != nil {
		return nil, rpcErrors.ToStatus(err)
	}
	n, ok := s.fsm.get(req.Path)
	if !ok {
		return &lockpb.GetResponse{}, nil
	}
	return &lockpb.GetResponse{Found: true, Node: nodeToPB(n)}, nil
}

func (s *Server) Set(ctx context.Context, req *lockpb.SetRequest) (*lockpb.SetResponse, error) {
	if err := validateNodePath(req.Path); err != nil {
		return nil, rpcErrors.ToStatus(err)
	}
	if len(req.Content) > s.opts.MaxContent {
		return nil, rpcErrors.ToStatus(fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, len(req.Content), s.opts.MaxContent))
	}
	c := &command{op: opSet, session: req.SessionId, path: req.Path, content: req.Content}
	if req.ExpectedVersion != nil {
		c.flags |= flagHasExpected
		c.expected = *req.ExpectedVersion
	}
	if req.Ephemeral {
		c.flags |= flagEphemeral
	}
	res, err := s.apply(ctx, c)
	if err != nil {
		return nil, rpcErrors.ToStatus(err)
	}
	return &lockpb.SetResponse{Version: res.version}, nil
}

func (s *Server) Delete(ctx context.Context, req *lockpb.DeleteRequest) (*lockpb.DeleteResponse, error) {
	if err := validateNodePath(req.Path); err != nil {
		return nil, rpcErrors.ToStatus(err)
	}
	c := &command{op: opDelete, session: req.SessionId, path: req.Path}
	if req.ExpectedVersion != nil {
		c.flags |= flagHasExpected
		c.expected = *req.ExpectedVersion
	}
	if _, err := s.apply(ctx, c); err != nil {
		return nil, rpcErrors.ToStatus(err)
	}
	return &lockpb.DeleteResponse{}, nil
}

func (s *Server) List(ctx context.Context, req *lockpb.ListRequest) (*lockpb.ListResponse, error) {
	if err := ValidatePath(req.Path); err != nil {
		return nil, rpcErrors.ToStatus(err)
	}
	if err := s.readBarrier(ctx, req.Stale); err != nil {
		return nil, rpcErrors.ToStatus(err)
	}
	return &lockpb.ListResponse{Children: s.fsm.list(req.Path)}, nil
}

func (s *Server) Acquire(ctx context.Context, req *lockpb.AcquireRequest) (*lockpb.AcquireResponse, error) {
	if err := validateNodePath(req.Path); err != nil {
		return nil, rpcErrors.ToStatus(err)
	}
	mode := Mode(req.Mode)
	if mode != ModeExclusive && mode != ModeShared {
		return nil, rpcErrors.ToStatus(fmt.Errorf("%w: lock mode %d", ErrInvalidArgument, req.Mode))
	}
	for {
		freed := s.fsm.freedCh(req.Path) // before trying, so no release is missed
		res, err := s.apply(ctx, &command{op: opAcquire, session: req.SessionId, path: req.Path, mode: mode})
		if err == nil {
			return &lockpb.AcquireResponse{Sequencer: seqToPB(res.seq)}, nil
		}
		if !req.Wait || !errors.Is(err, ErrLockBusy) {
			return nil, rpcErrors.ToStatus(err)
		}
		t := time.NewTimer(time.Second) // re-check now and then (leadership, session)
		select {
		case <-freed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, rpcErrors.ToStatus(ctx.Err())
		case <-s.ctx.Done():
			t.Stop()
			return nil, rpcErrors.ToStatus(ErrClosed)
		}
		t.Stop()
	}
}

func (s *Server) Release(ctx context.Context, req *lockpb.ReleaseRequest) (*lockpb.ReleaseResponse, error) {
	if err := validateNodePath(req.Path); err != nil {
		return nil, rpcErrors.ToStatus(err)
	}
	if _, err := s.apply(ctx, &command{op: opRelease, session: req.SessionId, path: req.Path}); err != nil {
		return nil, rpcErrors.ToStatus(err)
	}
	return &lockpb.ReleaseResponse{}, nil
}

func (s *Server) CheckSequencer(ctx context.Context, req *lockpb.CheckSequencerRequest) (*lockpb.CheckSequencerResponse, error) {
	if req.Sequencer == nil {
		return nil, rpcErrors.ToStatus(fmt.Errorf("%w: no sequencer", ErrInvalidArgument))
	}
	seq := seqFromPB(req.Sequencer)
	if err := validateNodePath(seq.Path); err != nil {
		return nil, rpcErrors.ToStatus(err)
	}
	if err := s.readBarrier(ctx, req.Stale); err != nil {
		return nil, rpcErrors.ToStatus(err)
	}
	if err := s.fsm.checkSequencer(seq); err != nil {
		return nil, rpcErrors.ToStatus(err)
	}
	return &lockpb.CheckSequencerResponse{}, nil
}

func (s *Server) Status(ctx context.Context, _ *lockpb.StatusRequest) (_ *lockpb.StatusResponse, err error) {
	leaderID, leaderAddr := s.leaderGRPC()
	_, sessions, nodes := s.fsm.counts()
	resp := &lockpb.StatusResponse{
		Id: s.opts.ID, State: s.node.Raft.State().String(), LeaderId: leaderID, LeaderGrpcAddr: leaderAddr,
		Term: s.node.Raft.CurrentTerm(), LastIndex: s.node.Raft.LastIndex(), AppliedIndex: s.node.Raft.AppliedIndex(),
		Sessions: uint64(sessions), Nodes: uint64(nodes),
	}
	if resp.FirstIndex, err = s.node.FirstIndex(); err != nil {
		return nil, rpcErrors.ToStatus(err)
	}
	servers, err := s.node.Servers()
	if err != nil {
		return nil, rpcErrors.ToStatus(err)
	}
	for _, srv := range servers {
		m := &lockpb.Member{Id: string(srv.ID), RaftAddr: string(srv.Address), Voter: srv.Suffrage.String() == "Voter"}
		if mm, ok := s.fsm.member(string(srv.ID)); ok {
			m.GrpcAddr = mm.GRPCAddr
		}
		resp.Members = append(resp.Members, m)
	}
	return resp, nil
}

func (s *Server) AddVoter(ctx context.Context, req *lockpb.AddVoterRequest) (*lockpb.AddVoterResponse, error) {
	if req.Id == "" || req.RaftAddr == "" || req.GrpcAddr == "" {
		return nil, rpcErrors.ToStatus(fmt.Errorf("%w: id, raft address and gRPC address are required", ErrInvalidArgument))
	}
	if !s.node.IsLeader() {
		return nil, rpcErrors.ToStatus(ErrNotLeader)
	}
	// Record the address first, so that once the new voter can lead,
	// clients can find it.
	if _, err := s.apply(ctx, &command{op: opMember, path: req.Id, a: req.RaftAddr, b: req.GrpcAddr}); err != nil {
		return nil, rpcErrors.ToStatus(err)
	}
	if err := s.node.AddVoter(ctx, req.Id, req.RaftAddr); err != nil {
		return nil, rpcErrors.ToStatus(mapRaftutil(err))
	}
	return &lockpb.AddVoterResponse{}, nil
}

func (s *Server) RemoveVoter(ctx context.Context, req *lockpb.RemoveVoterRequest) (*lockpb.RemoveVoterResponse, error) {
	if req.Id == "" {
		return nil, rpcErrors.ToStatus(fmt.Errorf("%w: id is required", ErrInvalidArgument))
	}
	if !s.node.IsLeader() {
		return nil, rpcErrors.ToStatus(ErrNotLeader)
	}
	if err := s.node.RemoveServer(ctx, req.Id); err != nil {
		return nil, rpcErrors.ToStatus(mapRaftutil(err))
	}
	if _, err := s.apply(ctx, &command{op: opMember, path: req.Id, flags: flagEphemeral}); err != nil && !errors.Is(err, ErrNotLeader) {
		return nil, rpcErrors.ToStatus(err)
	}
	return &lockpb.RemoveVoterResponse{}, nil
}

func mapRaftutil(err error) error {
	if errors.Is(err, raftutil.ErrNotLeader) {
		return fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
	}
	return err
}

// KeepAlive: each request extends the lease (after the leader has confirmed
// its leadership with a quorum, so that a deposed leader cannot extend a
// lease a new leader does not know about) and is acknowledged; events are
// pushed as they are applied.
func (s *Server) KeepAlive(stream lockpb.Lock_KeepAliveServer) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	ls, err := s.leader()
	if err != nil {
		return rpcErrors.ToStatus(err)
	}
	id := first.SessionId
	var sendMu sync.Mutex
	send := func(r *lockpb.KeepAliveResponse) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return stream.Send(r)
	}
	ack := func(req *lockpb.KeepAliveRequest) error {
		recv := time.Now()
		d, ok := s.fsm.sessionLease(id)
		if !ok {
			return fmt.Errorf("%w: session %d", ErrSessionExpired, id)
		}
		if _, err := s.confirmLeader(ctx); err != nil {
			return err
		}
		ls.mu.Lock()
		l := ls.leases[id]
		if l == nil {
			l = &lease{}
			ls.leases[id] = l
		}
		if dl := recv.Add(d); dl.After(l.deadline) {
			l.deadline = dl
		}
		l.warned = false
		ls.mu.Unlock()
		return send(&lockpb.KeepAliveResponse{AckId: req.Id, LeaseMs: d.Milliseconds()})
	}
	if err := ack(first); err != nil {
		return rpcErrors.ToStatus(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The receiving goroutine can only be unblocked by this handler
	// returning (gRPC then ends the stream), so the handler does not wait
	// for it; the server's WaitGroup owns it.
	errc := make(chan error, 1)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			req, err := stream.Recv()
			if err == nil && ctx.Err() == nil {
				err = ack(req)
			}
			if err == nil {
				continue
			}
			errc <- err
			return
		}
	}()
	from := first.FromSeq
	for {
		evs, more, ok := s.fsm.eventsAfter(id, from)
		if !ok {
			cancel()
			return rpcErrors.ToStatus(fmt.Errorf("%w: session %d", ErrSessionExpired, id))
		}
		if len(evs) > 0 {
			if err := send(&lockpb.KeepAliveResponse{Events: eventsToPB(evs)}); err != nil {
				cancel()
				return err
			}
			from = evs[len(evs)-1].Seq
		}
		select {
		case <-more:
		case err := <-errc:
			cancel()
			return rpcErrors.ToStatus(err)
		case <-ls.gone:
			cancel()
			return rpcErrors.ToStatus(ErrNotLeader)
		case <-s.ctx.Done():
			cancel()
			return rpcErrors.ToStatus(ErrClosed)
		case <-ctx.Done():
			return rpcErrors.ToStatus(ctx.Err())
		}
	}
}

func nodeToPB(n Node) *lockpb.Node {
	return &lockpb.Node{
		Path: n.Path, Content: n.Content, Version: n.Version, EphemeralOwner: n.EphemeralOwner,
		CtimeUnixNano: n.Ctime.UnixNano(), MtimeUnixNano: n.Mtime.UnixNano(),
		LockMode: lockpb.LockMode(n.LockMode), LockGeneration: n.LockGeneration, LockHolders: n.LockHolders,
	}
}

func nodeFromPB(p *lockpb.Node) Node {
	return Node{
		Path: p.Path, Content: p.Content, Version: p.Version, EphemeralOwner: p.EphemeralOwner,
		Ctime: time.Unix(0, p.CtimeUnixNano), Mtime: time.Unix(0, p.MtimeUnixNano),
		LockMode: Mode(p.LockMode), LockGeneration: p.LockGeneration, LockHolders: p.LockHolders,
	}
}

func seqToPB(s Sequencer) *lockpb.Sequencer {
	return &lockpb.Sequencer{Path: s.Path, Mode: lockpb.LockMode(s.Mode), Generation: s.Generation}
}

func seqFromPB(p *lockpb.Sequencer) Sequencer {
	return Sequencer{Path: p.Path, Mode: Mode(p.Mode), Generation: p.Generation}
}

func eventsToPB(evs []Event) []*lockpb.Event {
	out := make([]*lockpb.Event, len(evs))
	for i, e := range evs {
		out[i] = &lockpb.Event{Seq: e.Seq, Type: lockpb.EventType(e.Type), Path: e.Path, Child: e.Child, Version: e.Version, Generation: e.Generation}
	}
	return out
}

func eventFromPB(p *lockpb.Event) Event {
	return Event{Seq: p.Seq, Type: EventType(p.Type), Path: p.Path, Child: p.Child, Version: p.Version, Generation: p.Generation}
}
