package chunkserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"cellar/dfs"
	"cellar/dfs/internal/wire"
	"cellar/internal/clock"
	"cellar/internal/rpcerr"
	dfspb "cellar/proto/cellar/dfs/v1"
)

// Options configures a chunkserver. Zero values mean defaults.
type Options struct {
	// Dir holds the chunk files and the server's ID. Required.
	Dir string
	// Masters are the gRPC addresses of every dfs master replica; heartbeats
	// go to all of them (only the leader answers with commands). Required.
	Masters []string
	// Listen is the gRPC listen address; default "127.0.0.1:0".
	Listen string
	// Advertise is the address clients and peers dial; default the bound one.
	Advertise string
	// Rack names this server's rack for rack-aware placement; default "".
	Rack string
	// ID is the server's stable identity; default a random ID persisted in
	// Dir/ID on first start.
	ID string
	// CapacityBytes bounds the chunk bytes stored; 0 means unlimited. A
	// write that would exceed it fails with dfs.ErrNoSpace.
	CapacityBytes int64
	// HeartbeatInterval is how often the server reports to the masters;
	// default 1s.
	HeartbeatInterval time.Duration
	// ScrubInterval is the pause between background checksum passes over
	// every chunk; default 1h. Negative disables the scrubber.
	ScrubInterval time.Duration
	// PipelineAckTimeout is, per replica below it in the pipeline, how
	// long a replica waits for its downstream's ack before reporting the
	// downstream failed (a hung server): the last-but-one replica waits
	// once this, the one above it twice, and so on, so the replica next to
	// a hung one gives up first and the blame lands on the hung replica,
	// not on a healthy one between. Default 15s; clients should wait longer
	// than the whole chain (the dfs client's default is 1m).
	PipelineAckTimeout time.Duration
	// MaxConcurrentReplications bounds replica copies into this server;
	// default 4.
	MaxConcurrentReplications int
	// Faults injects storage failures (tests).
	Faults Faults
	// Clock drives the heartbeat and scrub timers; default clock.Real().
	Clock clock.Clock
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

func (o *Options) withDefaults() Options {
	c := *o
	if c.Listen == "" {
		c.Listen = "127.0.0.1:0"
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = time.Second
	}
	if c.ScrubInterval == 0 {
		c.ScrubInterval = time.Hour
	}
	if c.MaxConcurrentReplications == 0 {
		c.MaxConcurrentReplications = 4
	}
	if c.PipelineAckTimeout == 0 {
		c.PipelineAckTimeout = 15 * time.Second
	}
	if c.Clock == nil {
		c.Clock = clock.Real()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports missing or inconsistent options.
func (o *Options) Validate() error {
	switch {
	case o.Dir == "":
		return errors.New("cellar/dfs/chunkserver: Options.Dir is required")
	case len(o.Masters) == 0:
		return errors.New("cellar/dfs/chunkserver: Options.Masters is required")
	case o.CapacityBytes < 0:
		return errors.New("cellar/dfs/chunkserver: Options.CapacityBytes is negative")
	case o.HeartbeatInterval < 0:
		return errors.New("cellar/dfs/chunkserver: Options.HeartbeatInterval is negative")
	case o.MaxConcurrentReplications < 0:
		return errors.New("cellar/dfs/chunkserver: Options.MaxConcurrentReplications is negative")
	}
	return nil
}

// Server is a running chunkserver. Its methods are safe for concurrent use.
type Server struct {
	dfspb.UnimplementedChunkserverServer
	opts  Options
	id    string
	addr  string
	log   *slog.Logger
	store *store
	lis   net.Listener
	grpc  *grpc.Server

	masters []dfspb.MasterClient
	mconns  []*grpc.ClientConn

	conns wire.Conns // peer chunkservers

	kick    chan struct{} // asks for an immediate heartbeat
	replQ   chan *dfspb.ReplicateCommand
	corrMu  sync.Mutex
	corrupt []uint64 // found corrupt, not yet reported to a leader; guarded by corrMu
	inMu    sync.Mutex
	inRepl  map[uint64]bool // copies queued or running; guarded by inMu

	lastHeartbeat atomic.Int64 // unix nanos of the last heartbeat a leader answered
	corruptFound  atomic.Uint64
	scrubbed      atomic.Uint64

	cancel   context.CancelFunc
	wg       sync.WaitGroup
	handlers sync.WaitGroup // write streams, which Close waits for
	closed   atomic.Bool
}

// Start opens the chunk store under opts.Dir, serves gRPC and starts the
// heartbeat, scrubber and replication goroutines; Close stops them.
func Start(ctx context.Context, opts *Options) (*Server, error) {
	if opts == nil {
		opts = &Options{}
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	o := opts.withDefaults()
	id, err := serverID(o)
	if err != nil {
		return nil, err
	}
	st, corrupt, err := openStore(filepath.Join(o.Dir, "chunks"), o.CapacityBytes, o.Faults)
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", o.Listen)
	if err != nil {
		st.close()
		return nil, fmt.Errorf("cellar/dfs/chunkserver: listen %s: %w", o.Listen, err)
	}
	addr := o.Advertise
	if addr == "" {
		addr = lis.Addr().String()
	}
	s := &Server{
		opts: o, id: id, addr: addr, store: st, lis: lis,
		log:     o.Logger.With("component", "chunkserver", "server", id, "addr", addr),
		kick:    make(chan struct{}, 1),
		replQ:   make(chan *dfspb.ReplicateCommand, 256),
		inRepl:  map[uint64]bool{},
		corrupt: corrupt,
	}
	for _, m := range o.Masters {
		cc, err := grpc.NewClient(m, wire.DialOptions()...)
		if err != nil {
			s.closeConns()
			st.close()
			lis.Close()
			return nil, fmt.Errorf("cellar/dfs/chunkserver: master %s: %w", m, err)
		}
		s.mconns = append(s.mconns, cc)
		s.masters = append(s.masters, dfspb.NewMasterClient(cc))
	}
	s.grpc = grpc.NewServer(wire.ServerOptions()...)
	dfspb.RegisterChunkserverServer(s.grpc, s)
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.wg.Add(3 + o.MaxConcurrentReplications)
	go func() { defer s.wg.Done(); s.grpc.Serve(lis) }()
	go func() { defer s.wg.Done(); s.heartbeatLoop(bg) }()
	go func() { defer s.wg.Done(); s.scrubLoop(bg) }()
	for range o.MaxConcurrentReplications {
		go func() { defer s.wg.Done(); s.replicationWorker(bg) }()
	}
	s.log.Info("chunkserver started", "chunks", len(st.report()), "corrupt_on_start", len(corrupt))
	return s, nil
}

func serverID(o Options) (string, error) {
	if o.ID != "" {
		return o.ID, nil
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return "", fmt.Errorf("cellar/dfs/chunkserver: %w", err)
	}
	p := filepath.Join(o.Dir, "ID")
	if b, err := os.ReadFile(p); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	var r [8]byte
	rand.Read(r[:])
	id := "cs-" + hex.EncodeToString(r[:])
	if err := writeFileSync(p, []byte(id+"\n")); err != nil {
		return "", fmt.Errorf("cellar/dfs/chunkserver: %w", err)
	}
	return id, nil
}

// ID is the server's stable identity.
func (s *Server) ID() string { return s.id }

// Addr is the address clients dial.
func (s *Server) Addr() string { return s.addr }

// Close stops serving (open streams are cut, as a crash would), stops the
// background goroutines and waits for them. Unsynced bytes may be lost, as
// after a crash; synced ones stay on disk.
func (s *Server) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	s.cancel()
	s.grpc.Stop() // cancels every RPC; their handlers wind down
	s.handlers.Wait()
	s.wg.Wait()
	s.closeConns()
	s.store.close()
	s.log.Info("chunkserver stopped")
	return nil
}

func (s *Server) closeConns() {
	for _, c := range s.mconns {
		c.Close()
	}
	s.conns.Close()
}

func (s *Server) peer(addr string) (dfspb.ChunkserverClient, error) {
	c, err := s.conns.Get(addr)
	if err != nil {
		return nil, err
	}
	return dfspb.NewChunkserverClient(c), nil
}

func (s *Server) kickHeartbeat() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// markCorrupt drops a replica that failed its checksums and queues the
// report to the master, which re-replicates from a good copy.
func (s *Server) markCorrupt(h uint64, err error) {
	if !s.store.remove(h) {
		return
	}
	s.log.Warn("corrupt replica dropped", "chunk", fmt.Sprintf("%x", h), "err", err)
	s.corrMu.Lock()
	s.corrupt = append(s.corrupt, h)
	s.corrMu.Unlock()
	// Counted once queued: whoever sees the count sees the report.
	s.corruptFound.Add(1)
	s.kickHeartbeat()
}

// ---------------------------------------------------------------- writes

type writeResult struct {
	seq    uint64
	err    error
	synced int64
}

// WriteChunk implements the pipelined append. See the proto for the
// protocol; the handler forwards each packet downstream before writing it
// locally, so the replicas write (and fsync) in parallel, and acks a packet
// only after its own write (and fsync, for sync packets) and the
// downstream's ack.
func (s *Server) WriteChunk(stream dfspb.Chunkserver_WriteChunkServer) error {
	s.handlers.Add(1)
	defer s.handlers.Done()
	first, err := stream.Recv()
	if err != nil {
		return nil
	}
	hdr := first.GetHeader()
	if hdr == nil {
		return dfs.WireErrors.ToStatus(fmt.Errorf("cellar/dfs/chunkserver: write stream without header: %w", wire.ErrBadRequest))
	}
	idx := int32(hdr.Index)
	c, err := s.store.openForWrite(hdr.Handle, hdr.Version, int64(hdr.StartOffset))
	if err != nil {
		s.kickHeartbeat() // report a failed disk promptly
		stream.Send(failureAck(0, idx, err))
		return nil
	}
	defer c.closeFiles()
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	var down dfspb.Chunkserver_WriteChunkClient
	var downErr error
	if len(hdr.Downstream) > 0 {
		var cl dfspb.ChunkserverClient
		if cl, downErr = s.peer(hdr.Downstream[0]); downErr == nil {
			if down, downErr = cl.WriteChunk(ctx); downErr == nil {
				downErr = down.Send(&dfspb.WriteChunkRequest{Msg: &dfspb.WriteChunkRequest_Header{Header: &dfspb.WriteChunkHeader{
					Handle: hdr.Handle, Version: hdr.Version, StartOffset: hdr.StartOffset,
					Downstream: hdr.Downstream[1:], Index: hdr.Index + 1,
				}}})
			}
		}
	}
	// A reader goroutine turns the downstream's acks into a channel, so
	// the ack loop can give up on a downstream that hangs.
	var downAcks chan downAck
	readerDone := make(chan struct{})
	if down != nil && downErr == nil {
		downAcks = make(chan downAck, 64)
		go func() {
			defer close(readerDone)
			defer close(downAcks)
			for {
				a, err := down.Recv()
				select {
				case downAcks <- downAck{a, err}:
				case <-ctx.Done():
					return
				}
				if err != nil {
					return
				}
			}
		}()
	} else {
		close(readerDone)
	}
	defer func() { cancel(); <-readerDone }()
	pending := make(chan writeResult, 64)
	ackDone := make(chan struct{})
	go func() {
		defer close(ackDone)
		s.ackLoop(stream, down, downAcks, downErr, idx, pending, s.opts.PipelineAckTimeout*time.Duration(len(hdr.Downstream)))
	}()
	var localErr error
	downOK := down != nil && downErr == nil
	// A packet's data aliases a pooled receive buffer (no copy per hop);
	// it is released once forwarded and written.
	var in wire.Received
	defer in.Release()
	for {
		if err := stream.RecvMsg(&in); err != nil {
			if err != io.EOF {
				cancel()
			}
			break
		}
		msg := in.Msg
		pkt := msg.GetPacket()
		if pkt == nil && localErr == nil {
			localErr = fmt.Errorf("cellar/dfs/chunkserver: second header on a write stream: %w", wire.ErrBadRequest)
		}
		if downOK {
			if err := down.Send(msg); err != nil {
				downOK = false // the ack loop sees the failure on Recv
			}
		}
		var synced int64
		if localErr == nil {
			c.ioMu.Lock()
			localErr = c.appendLocked(s.store, hdr.Version, int64(pkt.Offset), pkt.Data)
			if localErr == nil && pkt.Sync {
				localErr = c.syncLocked(s.store)
			}
			c.ioMu.Unlock()
			synced = c.state().synced
			if localErr != nil {
				s.kickHeartbeat()
			}
		}
		seq := pkt.GetSeq()
		in.Release()
		select {
		case pending <- writeResult{seq: seq, err: localErr, synced: synced}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(pending)
	<-ackDone
	s.kickHeartbeat() // report the new length promptly
	return nil
}

func failureAck(seq uint64, idx int32, err error) *dfspb.WriteChunkAck {
	return &dfspb.WriteChunkAck{Seq: seq, FailedIndex: idx, Error: err.Error(), Reason: rpcerr.Reason(dfs.WireErrors.ToStatus(err))}
}

type downAck struct {
	ack *dfspb.WriteChunkAck
	err error
}

// recvDown waits for the downstream's next ack, at most timeout.
func (s *Server) recvDown(downAcks <-chan downAck, timeout time.Duration) (*dfspb.WriteChunkAck, error) {
	t := s.opts.Clock.NewTimer(timeout)
	defer t.Stop()
	select {
	case d, ok := <-downAcks:
		if !ok {
			return nil, fmt.Errorf("cellar/dfs/chunkserver: downstream stream ended: %w", context.Canceled)
		}
		return d.ack, d.err
	case <-t.C():
		return nil, fmt.Errorf("cellar/dfs/chunkserver: no ack from downstream for %v: %w", timeout, wire.ErrPipelineTimeout)
	}
}

func (s *Server) ackLoop(stream dfspb.Chunkserver_WriteChunkServer, down dfspb.Chunkserver_WriteChunkClient, downAcks <-chan downAck, downErr error, idx int32, pending <-chan writeResult, timeout time.Duration) {
	failed := false
	for r := range pending {
		if failed {
			continue
		}
		ack := &dfspb.WriteChunkAck{Seq: r.seq, FailedIndex: -1, SyncedLength: uint64(r.synced)}
		switch {
		case r.err != nil:
			ack = failureAck(r.seq, idx, r.err)
		case downErr != nil:
			ack = failureAck(r.seq, idx+1, downErr)
		case down != nil:
			dack, err := s.recvDown(downAcks, timeout)
			switch {
			case err != nil:
				ack = failureAck(r.seq, idx+1, dfs.WireErrors.FromStatus(err))
			case dack.FailedIndex >= 0:
				ack = dack
			case dack.Seq != r.seq:
				ack = failureAck(r.seq, idx+1, fmt.Errorf("cellar/dfs/chunkserver: downstream acked %d, want %d: %w", dack.Seq, r.seq, wire.ErrBadRequest))
			default:
				ack.SyncedLength = min(ack.SyncedLength, dack.SyncedLength)
			}
		}
		if ack.FailedIndex >= 0 {
			failed = true
		}
		if err := stream.Send(ack); err != nil {
			failed = true
		}
	}
	if down != nil && downErr == nil && !failed {
		down.CloseSend()
		for {
			if _, err := s.recvDown(downAcks, timeout); err != nil {
				break
			}
		}
	}
}

// ----------------------------------------------------------------- reads

// ReadChunk streams [offset, offset+length) of a replica, verified block by
// block; a checksum mismatch drops the replica, reports it and returns
// DataLoss so the reader tries another replica.
func (s *Server) ReadChunk(req *dfspb.ReadChunkRequest, stream dfspb.Chunkserver_ReadChunkServer) error {
	const maxChunk = 1 << 40 // far above any chunk size; keeps offset+length from overflowing
	if req.Offset > maxChunk || req.Length > maxChunk {
		return dfs.WireErrors.ToStatus(fmt.Errorf("cellar/dfs/chunkserver: read of %d bytes at %d: %w", req.Length, req.Offset, wire.ErrBadRequest))
	}
	buf := make([]byte, min(req.Length, wire.PacketSize))
	off, end := int64(req.Offset), int64(req.Offset+req.Length)
	for off < end {
		n := min(int64(len(buf)), end-off)
		k, err := s.store.readAt(req.Handle, req.Version, buf[:n], off)
		if err != nil {
			if errors.Is(err, dfs.ErrCorrupt) {
				s.markCorrupt(req.Handle, err)
			}
			return dfs.WireErrors.ToStatus(err)
		}
		if k == 0 {
			return dfs.WireErrors.ToStatus(fmt.Errorf("cellar/dfs/chunkserver: chunk %x ends at %d, read wants %d: %w", req.Handle, off, end, dfs.ErrPastEnd))
		}
		if err := stream.Send(&dfspb.ReadChunkResponse{Data: buf[:k]}); err != nil {
			return err
		}
		off += int64(k)
	}
	return nil
}

// ChunkInfo implements dfspb.ChunkserverServer.
func (s *Server) ChunkInfo(ctx context.Context, req *dfspb.ChunkInfoRequest) (*dfspb.ChunkInfoResponse, error) {
	c, ok := s.store.get(req.Handle)
	if !ok {
		return nil, dfs.WireErrors.ToStatus(fmt.Errorf("cellar/dfs/chunkserver: chunk %x: %w", req.Handle, wire.ErrNoChunk))
	}
	st := c.state()
	return &dfspb.ChunkInfoResponse{Version: st.version, Length: uint64(st.length), SyncedLength: uint64(st.synced)}, nil
}

// RecoverChunk implements dfspb.ChunkserverServer.
func (s *Server) RecoverChunk(ctx context.Context, req *dfspb.RecoverChunkRequest) (*dfspb.RecoverChunkResponse, error) {
	n, err := s.store.recoverChunk(req.Handle, req.OldVersion, req.NewVersion)
	if err != nil {
		return nil, dfs.WireErrors.ToStatus(err)
	}
	s.kickHeartbeat()
	return &dfspb.RecoverChunkResponse{SyncedLength: uint64(n)}, nil
}

// FinalizeChunk implements dfspb.ChunkserverServer.
func (s *Server) FinalizeChunk(ctx context.Context, req *dfspb.FinalizeChunkRequest) (*dfspb.FinalizeChunkResponse, error) {
	if err := s.store.finalize(req.Handle, req.Version, int64(req.Length)); err != nil {
		return nil, dfs.WireErrors.ToStatus(err)
	}
	s.kickHeartbeat()
	return &dfspb.FinalizeChunkResponse{}, nil
}

// ReplicateChunk copies a replica here from req.SourceAddress, verifying
// the source's checksums on the way (the source checks them as it reads).
func (s *Server) ReplicateChunk(ctx context.Context, req *dfspb.ReplicateChunkRequest) (*dfspb.ReplicateChunkResponse, error) {
	if err := s.copyChunk(ctx, req.Handle, req.Version, int64(req.Length), req.SourceAddress); err != nil {
		return nil, dfs.WireErrors.ToStatus(err)
	}
	return &dfspb.ReplicateChunkResponse{}, nil
}

func (s *Server) copyChunk(ctx context.Context, h, version uint64, length int64, source string) error {
	cl, err := s.peer(source)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rs, err := cl.ReadChunk(ctx, &dfspb.ReadChunkRequest{Handle: h, Version: version, Offset: 0, Length: uint64(length)})
	if err != nil {
		return dfs.WireErrors.FromStatus(err)
	}
	if err := s.store.install(h, version, length, &streamReader{rs: rs}); err != nil {
		return err
	}
	s.kickHeartbeat()
	return nil
}

// streamReader adapts a ReadChunk stream to io.Reader.
type streamReader struct {
	rs  dfspb.Chunkserver_ReadChunkClient
	buf []byte
}

func (r *streamReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		m, err := r.rs.Recv()
		if err == io.EOF {
			return 0, io.EOF
		}
		if err != nil {
			return 0, dfs.WireErrors.FromStatus(err)
		}
		r.buf = m.Data
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// Status implements dfspb.ChunkserverServer.
func (s *Server) Status(ctx context.Context, _ *dfspb.ChunkserverStatusRequest) (*dfspb.ChunkserverStatusResponse, error) {
	h := s.store.health()
	return &dfspb.ChunkserverStatusResponse{
		ServerId: s.id, Address: s.addr, Rack: s.opts.Rack,
		Chunks: uint64(len(s.store.report())), UsedBytes: uint64(s.store.used.Load()),
		CapacityBytes: uint64(s.opts.CapacityBytes), Healthy: h == "", UnhealthyReason: h,
		LastHeartbeatUnixNanos: s.lastHeartbeat.Load(),
		CorruptFound:           s.corruptFound.Load(), ScrubbedBytes: s.scrubbed.Load(),
	}, nil
}

// ------------------------------------------------------------ background

func (s *Server) heartbeatLoop(ctx context.Context) {
	t := s.opts.Clock.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		case <-s.kick:
		}
		s.heartbeat(ctx)
		t.Stop()
		t.Reset(s.opts.HeartbeatInterval)
	}
}

func (s *Server) heartbeat(ctx context.Context) {
	rep := s.store.report()
	h := s.store.health()
	req := &dfspb.HeartbeatRequest{
		ServerId: s.id, Address: s.addr, Rack: s.opts.Rack,
		CapacityBytes: uint64(s.opts.CapacityBytes), UsedBytes: uint64(s.store.used.Load()),
		Healthy: h == "", UnhealthyReason: h,
		Chunks: make([]*dfspb.ChunkReport, 0, len(rep)),
	}
	for _, r := range rep {
		req.Chunks = append(req.Chunks, &dfspb.ChunkReport{Handle: r.handle, Version: r.version, Length: uint64(r.length), SyncedLength: uint64(r.synced)})
	}
	s.corrMu.Lock()
	req.Corrupt = append([]uint64(nil), s.corrupt...)
	s.corrMu.Unlock()
	type answer struct {
		resp *dfspb.HeartbeatResponse
		err  error
	}
	answers := make(chan answer, len(s.masters))
	for _, m := range s.masters {
		go func() {
			cctx, cancel := context.WithTimeout(ctx, max(s.opts.HeartbeatInterval, 500*time.Millisecond))
			defer cancel()
			r, err := m.Heartbeat(cctx, req)
			answers <- answer{r, err}
		}()
	}
	reported := len(req.Corrupt)
	for range s.masters {
		a := <-answers
		if a.err != nil || !a.resp.Leader {
			continue
		}
		s.lastHeartbeat.Store(time.Now().UnixNano())
		s.corrMu.Lock()
		s.corrupt = s.corrupt[reported:]
		s.corrMu.Unlock()
		reported = 0
		for _, d := range a.resp.Delete {
			if c, ok := s.store.get(d.Handle); ok && doomed(c.state(), d) && s.store.remove(d.Handle) {
				s.log.Debug("deleted a replica the master no longer wants", "chunk", fmt.Sprintf("%x", d.Handle))
			}
		}
		for _, rc := range a.resp.Replicate {
			s.enqueueReplication(rc)
		}
	}
}

// doomed reports whether the master's delete command d covers a replica in
// state st (see DeleteCommand in the proto).
func doomed(st chunkState, d *dfspb.DeleteCommand) bool {
	if st.version >= d.BelowVersion {
		return false
	}
	return d.BelowLength == 0 || st.version+1 < d.BelowVersion || uint64(st.length) < d.BelowLength
}

func (s *Server) enqueueReplication(rc *dfspb.ReplicateCommand) {
	s.inMu.Lock()
	defer s.inMu.Unlock()
	if s.inRepl[rc.Handle] {
		return
	}
	select {
	case s.replQ <- rc:
		s.inRepl[rc.Handle] = true
	default: // queue full: the master asks again
	}
}

func (s *Server) replicationWorker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case rc := <-s.replQ:
			cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			err := s.copyChunk(cctx, rc.Handle, rc.Version, int64(rc.Length), rc.SourceAddress)
			cancel()
			if err != nil && ctx.Err() == nil {
				s.log.Warn("replica copy failed", "chunk", fmt.Sprintf("%x", rc.Handle), "source", rc.SourceAddress, "err", err)
			}
			s.inMu.Lock()
			delete(s.inRepl, rc.Handle)
			s.inMu.Unlock()
		}
	}
}

func (s *Server) scrubLoop(ctx context.Context) {
	if s.opts.ScrubInterval < 0 {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.opts.Clock.After(s.opts.ScrubInterval):
		}
		s.Scrub(ctx)
	}
}

// Scrub verifies every replica's checksums once, dropping and reporting
// corrupt ones; it returns how many it found. The background scrubber calls
// it every ScrubInterval.
func (s *Server) Scrub(ctx context.Context) int {
	found := 0
	for _, r := range s.store.report() {
		if ctx.Err() != nil {
			break
		}
		if err := s.store.verify(r.handle); err != nil {
			if errors.Is(err, dfs.ErrCorrupt) {
				s.markCorrupt(r.handle, err)
				found++
			}
			continue
		}
		s.scrubbed.Add(uint64(r.length))
	}
	return found
}

// ChunkFile returns the path of chunk h's file (tests damage it; chunk
// byte off is at file offset DataFileOffset(off)).
func (s *Server) ChunkFile(h dfs.ChunkHandle) string { return s.store.dataPath(uint64(h)) }

// Chunks lists the handles of the replicas held, sorted.
func (s *Server) Chunks() []dfs.ChunkHandle {
	rep := s.store.report()
	out := make([]dfs.ChunkHandle, len(rep))
	for i, r := range rep {
		out[i] = dfs.ChunkHandle(r.handle)
	}
	return out
}
