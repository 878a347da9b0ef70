package dfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"cellar/dfs/internal/wire"
	dfspb "cellar/proto/cellar/dfs/v1"
)

// The write path (GFS §3.2, HDFS's DataStreamer): bytes accumulate in a
// buffer; full buffers (wire.PacketSize), Syncs and chunk ends become
// packets sent down the chunk's pipeline client → replica 1 → replica 2 →
// replica 3. Sent packets stay queued until the pipeline acks them (an ack
// means every replica wrote the packet, and fsynced it if it was a sync
// packet); a receiver goroutine per pipeline consumes the acks.
//
// A file created for a log (CreateOptions.FanOut, FS.CreateLog) skips the
// chain: the client sends each packet to every replica itself and counts a
// packet acked once every replica has acked it, as HBase's fan-out WAL does.
// A Sync then waits for one network round trip and the slowest replica's
// fsync instead of three hops each way, for three times the client's send
// bandwidth: right for small synced appends, wrong for bulk data.
//
// When a replica fails, the pipeline is torn down, the failed replica is
// dropped, the master bumps the chunk's version (so the dropped replica is
// recognisably stale and later deleted) and a new pipeline over the
// survivors starts at the last acked offset; every unacked packet is sent
// again. A chunk is finished with a sync packet whose ack proves every
// replica has it on disk before the next chunk is allocated, so Sync only
// ever waits for the current chunk.

type packet struct {
	off  int64 // chunk offset
	data []byte
	sync bool
	seq  uint64 // position in its pipeline's stream
	num  uint64 // position in the file's packets, kept across repairs
}

// acks is the file-level progress of acknowledgements, shared by the
// writer's successive pipelines: Sync waits on it without holding the
// writer's opMu, so Writes go on while a Sync is in flight (group commit).
type acks struct {
	mu     sync.Mutex
	acked  uint64        // every packet up to this num is acked; guarded by mu
	notify chan struct{} // closed and replaced on progress or failure
}

func newAcks() *acks { return &acks{notify: make(chan struct{})} }

func (a *acks) state() (uint64, <-chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.acked, a.notify
}

func (a *acks) advance(num uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.acked = max(a.acked, num)
	close(a.notify)
	a.notify = make(chan struct{})
}

func (a *acks) poke() { a.advance(0) }

// pipeline is one write stream to a chunk's replicas: one stream to the
// head of the chain, or (fan-out) one stream per replica. mu guards the
// fields the receiver goroutines share with the writer.
type pipeline struct {
	acks    *acks
	bufs    *sync.Pool // the client's packetBufs
	chunk   *dfspb.LocatedChunk
	streams []dfspb.Chunkserver_WriteChunkClient
	fanOut  bool // streams[i] goes to chunk.Locations[i] alone
	cancel  context.CancelFunc
	done    chan struct{} // every receiver exited

	mu       sync.Mutex
	ackedBy  []uint64 // per stream: acks received (the next seq it will ack)
	unacked  []packet
	inflight int   // bytes in unacked
	acked    int64 // chunk offset every replica has
	failure  error
	failedAt int // pipeline index of the failed replica
	closing  bool
	notify   chan struct{} // closed and replaced on every change
	nextSeq  uint64
	progress time.Time // last ack, or when the queue became non-empty
}

// checkStall fails the pipeline when packets have waited for an ack longer
// than timeout. The stream furthest behind is blamed: in a chain, the head
// (a hung replica further down is named by its upstream, which times out
// first); in a fan-out, the replica that acked least.
func (pl *pipeline) checkStall(timeout time.Duration) {
	pl.mu.Lock()
	stalled := pl.failure == nil && len(pl.unacked) > 0 && time.Since(pl.progress) >= timeout
	if stalled {
		pl.failure = fmt.Errorf("no ack from the pipeline for %v: %w", timeout, wire.ErrPipelineTimeout)
		pl.failedAt = 0
		for i, n := range pl.ackedBy {
			if n < pl.ackedBy[pl.failedAt] {
				pl.failedAt = i
			}
		}
		pl.changedLocked()
	}
	pl.mu.Unlock()
	if stalled {
		pl.cancel()
		pl.acks.poke()
	}
}

func (pl *pipeline) changedLocked() {
	close(pl.notify)
	pl.notify = make(chan struct{})
}

// writer is a File. opMu serialises Write, Sync and Close (File allows a
// Sync concurrent with a Write; they take turns).
type writer struct {
	c         *Client
	path      string
	chunkSize int64

	acks *acks

	opMu     sync.Mutex
	nextNum  uint64 // num of the next packet (from 1)
	buf      []byte
	chunkIdx int   // index of the current chunk, -1 before the first
	chunkOff int64 // bytes of the current chunk sent as packets
	lastLen  int64 // length of the previous chunk (when pl == nil and chunkIdx >= 0, of the current one)
	pl       *pipeline
	target   int   // the file's replication target
	fanOut   bool  // send to every replica directly (CreateOptions.FanOut)
	err      error // sticky
	closed   bool

	sizeMu sync.Mutex
	size   int64
}

func (w *writer) Size() int64 {
	w.sizeMu.Lock()
	defer w.sizeMu.Unlock()
	return w.size
}

func (w *writer) errf(format string, args ...any) error {
	return fmt.Errorf("cellar/dfs: %s: "+format, append([]any{w.path}, args...)...)
}

func (w *writer) usable() error {
	if w.closed {
		return w.errf("%w", ErrClosed)
	}
	return w.err
}

// Write implements io.Writer. Bytes go into packets as they fill; errors
// of the pipeline may be reported by a later call.
func (w *writer) Write(p []byte) (int, error) {
	w.opMu.Lock()
	defer w.opMu.Unlock()
	if err := w.usable(); err != nil {
		return 0, err
	}
	ctx := context.Background()
	n := 0
	for len(p) > 0 {
		room := w.chunkSize - w.chunkOff - int64(len(w.buf))
		take := min(int64(len(p)), room)
		if w.buf == nil {
			w.buf = w.c.packetBuf(int(take))
		}
		w.buf = append(w.buf, p[:take]...)
		p = p[take:]
		n += int(take)
		full := w.chunkOff+int64(len(w.buf)) == w.chunkSize
		if len(w.buf) >= wire.PacketSize || full {
			if err := w.flushLocked(ctx, full); err != nil {
				return n, w.fail(err)
			}
		}
		if full {
			if err := w.endChunkLocked(ctx); err != nil {
				return n, w.fail(err)
			}
		}
		w.sizeMu.Lock()
		w.size += take
		w.sizeMu.Unlock()
	}
	return n, nil
}

// fail makes err sticky and tears the pipeline down.
func (w *writer) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	if w.pl != nil {
		w.pl.abort()
		w.pl = nil
	}
	return w.err
}

// flushLocked sends the buffer as one packet (a sync packet if sync), even
// an empty one when sync is set.
func (w *writer) flushLocked(ctx context.Context, sync bool) error {
	if len(w.buf) == 0 && (!sync || w.pl == nil) {
		return nil
	}
	if w.pl == nil {
		if err := w.startChunkLocked(ctx); err != nil {
			return err
		}
	}
	pk := packet{off: w.chunkOff, data: w.buf, sync: sync, num: w.nextNum}
	w.nextNum++
	w.chunkOff += int64(len(w.buf))
	w.buf = nil
	if err := w.waitWindowLocked(ctx); err != nil {
		return err
	}
	w.pl.send(pk)
	return nil
}

// startChunkLocked allocates the next chunk (settling the previous one's
// length) and opens its pipeline.
func (w *writer) startChunkLocked(ctx context.Context) error {
	idx := w.chunkIdx + 1
	resp, err := masterCall(ctx, w.c, func(ctx context.Context, m dfspb.MasterClient) (*dfspb.AllocateChunkResponse, error) {
		return m.AllocateChunk(ctx, &dfspb.AllocateChunkRequest{Path: w.path, ClientId: w.c.opts.Name, Index: uint32(idx),
			PrevLength: uint64(w.lastLen), ClientHost: w.c.opts.Host, Excluded: w.c.excludedIDs()})
	})
	if err != nil {
		return err
	}
	if len(resp.Chunk.Locations) == 0 {
		return w.errf("chunk %x has no replicas: %w", resp.Chunk.Handle, ErrNoSpace)
	}
	w.chunkIdx, w.chunkOff = idx, 0
	w.pl = w.c.openPipeline(w.acks, resp.Chunk, 0, w.fanOut)
	return nil
}

var _ Degradable = (*writer)(nil)

// Degraded implements Degradable: the current chunk's pipeline has fewer
// replicas than the file's target (it lost some, or too few chunkservers
// were live when the chunk was allocated).
func (w *writer) Degraded() bool {
	w.opMu.Lock()
	defer w.opMu.Unlock()
	return w.pl != nil && len(w.pl.chunk.Locations) < w.target
}

// endChunkLocked syncs the full current chunk on every replica and closes
// its pipeline; the next Write allocates the next chunk.
func (w *writer) endChunkLocked(ctx context.Context) error {
	if w.pl == nil {
		return nil
	}
	if err := w.drainLocked(ctx); err != nil {
		return err
	}
	w.pl.finish()
	w.pl = nil
	w.lastLen = w.chunkOff
	w.chunkOff = 0
	return nil
}

// waitWindowLocked blocks while too many bytes are unacked.
func (w *writer) waitWindowLocked(ctx context.Context) error {
	return w.waitLocked(ctx, func(pl *pipeline) bool { return pl.inflight < w.c.opts.WriteWindow })
}

// drainLocked waits until every sent packet is acked.
func (w *writer) drainLocked(ctx context.Context) error {
	return w.waitLocked(ctx, func(pl *pipeline) bool { return len(pl.unacked) == 0 })
}

// waitLocked waits for cond on the current pipeline, repairing it when a
// replica fails.
func (w *writer) waitLocked(ctx context.Context, cond func(*pipeline) bool) error {
	for {
		pl := w.pl
		pl.mu.Lock()
		ok, failure, ch := cond(pl), pl.failure, pl.notify
		pl.mu.Unlock()
		if ok {
			return nil
		}
		if failure != nil {
			if err := w.repairLocked(ctx); err != nil {
				return err
			}
			continue
		}
		if err := w.waitProgress(ctx, ch, pl); err != nil {
			return err
		}
	}
}

// waitProgress waits for ch (a change of the pipeline) or ctx, checking
// every quarter of PipelineTimeout whether the pipeline has stalled.
func (w *writer) waitProgress(ctx context.Context, ch <-chan struct{}, pl *pipeline) error {
	t := time.NewTimer(w.c.opts.PipelineTimeout / 4)
	defer t.Stop()
	select {
	case <-ch:
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		pl.checkStall(w.c.opts.PipelineTimeout)
	}
	return nil
}

// repairLocked replaces a failed pipeline by one over the surviving
// replicas at a new chunk version and resends what was not acked.
func (w *writer) repairLocked(ctx context.Context) error {
	old := w.pl
	old.abort()
	old.mu.Lock()
	failure, at, pending, start := old.failure, old.failedAt, old.unacked, old.acked
	old.mu.Unlock()
	if errors.Is(failure, ErrLeaseLost) {
		return w.errf("%w", failure)
	}
	var survivors []*dfspb.ChunkLocation
	var ids []string
	for i, loc := range old.chunk.Locations {
		if i != at {
			survivors = append(survivors, loc)
			ids = append(ids, loc.ServerId)
		}
	}
	if len(survivors) == 0 {
		return w.errf("every replica of chunk %x failed: %w", old.chunk.Handle, failure)
	}
	w.c.log.Warn("replica dropped from write pipeline", "file", w.path, "chunk", fmt.Sprintf("%x", old.chunk.Handle),
		"replica", old.chunk.Locations[at].Address, "err", failure)
	w.c.exclude(old.chunk.Locations[at].ServerId)
	resp, err := masterCall(ctx, w.c, func(ctx context.Context, m dfspb.MasterClient) (*dfspb.BumpVersionResponse, error) {
		return m.BumpVersion(ctx, &dfspb.BumpVersionRequest{Path: w.path, ClientId: w.c.opts.Name, Handle: old.chunk.Handle, Survivors: ids})
	})
	if err != nil {
		return err
	}
	if len(resp.Chunk.Locations) == 0 {
		return w.errf("no surviving replica of chunk %x is known to the master: %w", old.chunk.Handle, failure)
	}
	pl := w.c.openPipeline(w.acks, resp.Chunk, start, w.fanOut)
	w.pl = pl
	for _, pk := range pending {
		pl.send(pk)
	}
	return nil
}

// Sync implements File: it returns once every byte written so far is on
// stable storage on every replica of the pipeline. It sends a sync packet
// under opMu, then waits for its ack without it, so a concurrent Write can
// fill the next group meanwhile; if the pipeline fails while it waits, it
// takes opMu to repair it.
func (w *writer) Sync(ctx context.Context) error {
	w.opMu.Lock()
	if err := w.usable(); err != nil {
		w.opMu.Unlock()
		return err
	}
	if err := w.flushLocked(ctx, true); err != nil {
		err = w.fail(err)
		w.opMu.Unlock()
		return err
	}
	if w.pl == nil { // nothing written since the last chunk was synced and sealed
		w.opMu.Unlock()
		return nil
	}
	target := w.nextNum - 1
	w.opMu.Unlock()
	for {
		acked, ch := w.acks.state()
		if acked >= target {
			return nil
		}
		if err := w.repairIfFailed(ctx); err != nil {
			return err
		}
		w.opMu.Lock()
		pl := w.pl
		w.opMu.Unlock()
		if pl == nil {
			continue // sealed meanwhile: the chunk end synced everything
		}
		// On ctx's end the file stays usable; the sync's outcome is unknown.
		if err := w.waitProgress(ctx, ch, pl); err != nil {
			return err
		}
	}
}

// repairIfFailed repairs the current pipeline if it has failed; it returns
// the file's sticky error, if any.
func (w *writer) repairIfFailed(ctx context.Context) error {
	w.opMu.Lock()
	defer w.opMu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	if w.pl == nil {
		return nil
	}
	w.pl.mu.Lock()
	failed := w.pl.failure != nil
	w.pl.mu.Unlock()
	if !failed {
		return nil
	}
	if err := w.repairLocked(ctx); err != nil {
		if ctx.Err() != nil {
			return err
		}
		return w.fail(err)
	}
	return nil
}

func (w *writer) syncLocked(ctx context.Context) error {
	if err := w.flushLocked(ctx, true); err != nil {
		return w.fail(err)
	}
	if w.pl == nil {
		return nil
	}
	if err := w.drainLocked(ctx); err != nil {
		if ctx.Err() != nil {
			return err // the file stays usable; the sync's outcome is unknown
		}
		return w.fail(err)
	}
	return nil
}

// Close implements File: it syncs, then seals the file at the master and
// ends the lease.
func (w *writer) Close() error {
	w.opMu.Lock()
	defer w.opMu.Unlock()
	if w.closed {
		return w.errf("%w", ErrClosed)
	}
	w.closed = true
	defer func() {
		w.c.mu.Lock()
		delete(w.c.writers, w)
		w.c.mu.Unlock()
	}()
	if w.err != nil {
		w.fail(w.err)
		return w.err
	}
	ctx := context.Background()
	if err := w.syncLocked(ctx); err != nil {
		return err
	}
	last := w.lastLen
	if w.pl != nil {
		w.pl.finish()
		w.pl = nil
		last = w.chunkOff
	}
	_, err := masterCall(ctx, w.c, func(ctx context.Context, m dfspb.MasterClient) (*dfspb.CompleteResponse, error) {
		return m.Complete(ctx, &dfspb.CompleteRequest{Path: w.path, ClientId: w.c.opts.Name, LastLength: uint64(last), Chunks: uint32(w.chunkIdx + 1)})
	})
	if err != nil {
		w.err = err
	}
	return err
}

// abort tears the writer down without syncing (client Close).
func (w *writer) abort(err error) {
	w.opMu.Lock()
	defer w.opMu.Unlock()
	w.fail(err)
	w.closed = true
}

// openPipeline starts a write stream to lc's replicas positioned at start:
// down a chain, or to each replica (fanOut). A stream that cannot be opened
// is returned already failed at that replica, so the caller's normal
// repair path drops it.
func (c *Client) openPipeline(a *acks, lc *dfspb.LocatedChunk, start int64, fanOut bool) *pipeline {
	ctx, cancel := context.WithCancel(context.Background())
	pl := &pipeline{acks: a, bufs: &c.packetBufs, chunk: lc, fanOut: fanOut, cancel: cancel, done: make(chan struct{}), acked: start, notify: make(chan struct{})}
	// A chain is one stream to the head, which forwards to the others.
	n, downstream := 1, make([]string, 0, len(lc.Locations)-1)
	for _, l := range lc.Locations[1:] {
		downstream = append(downstream, l.Address)
	}
	if fanOut {
		n, downstream = len(lc.Locations), nil
	}
	for i := range n {
		cl, err := c.chunkserver(lc.Locations[i].Address)
		var st dfspb.Chunkserver_WriteChunkClient
		if err == nil {
			st, err = cl.WriteChunk(ctx)
		}
		if err == nil {
			err = st.Send(&dfspb.WriteChunkRequest{Msg: &dfspb.WriteChunkRequest_Header{Header: &dfspb.WriteChunkHeader{
				Handle: lc.Handle, Version: lc.Version, StartOffset: uint64(start), Downstream: downstream, Index: uint32(i)}}})
		}
		if err != nil {
			pl.failure, pl.failedAt = WireErrors.FromStatus(err), i
			pl.streams = nil
			close(pl.done)
			a.poke()
			return pl
		}
		pl.streams = append(pl.streams, st)
	}
	pl.ackedBy = make([]uint64, n)
	var wg sync.WaitGroup
	for i, st := range pl.streams {
		wg.Go(func() { pl.receive(i, st) })
	}
	go func() { wg.Wait(); close(pl.done) }()
	return pl
}

// send queues pk and sends it; a send error shows up as the receiver's
// failure.
func (pl *pipeline) send(pk packet) {
	pl.mu.Lock()
	if pl.failure != nil || pl.streams == nil {
		pl.unacked = append(pl.unacked, pk)
		pl.inflight += len(pk.data)
		pl.mu.Unlock()
		return
	}
	pk.seq = pl.nextSeq
	pl.nextSeq++
	if len(pl.unacked) == 0 {
		pl.progress = time.Now()
	}
	pl.unacked = append(pl.unacked, pk)
	pl.inflight += len(pk.data)
	pl.mu.Unlock()
	msg := &dfspb.WriteChunkRequest{Msg: &dfspb.WriteChunkRequest_Packet{Packet: &dfspb.WritePacket{
		Seq: pk.seq, Offset: uint64(pk.off), Data: pk.data, Sync: pk.sync}}}
	for _, st := range pl.streams {
		st.Send(msg)
	}
}

// receive consumes the acks of stream i. A packet is acked once every
// stream has acked it (a chain's one stream acks for all its replicas).
func (pl *pipeline) receive(i int, st dfspb.Chunkserver_WriteChunkClient) {
	defer pl.acks.poke() // wake Syncs waiting on a pipeline that ended
	who := pl.chunk.Locations[i].Address
	if !pl.fanOut {
		who = "head " + who
	}
	for {
		ack, err := st.Recv()
		pl.mu.Lock()
		switch {
		case pl.failure != nil:
			// Another stream failed: the writer repairs from pl.acked.
		case err == io.EOF && pl.closing && pl.ackedBy[i] == pl.nextSeq:
		case err != nil:
			if pl.failure == nil {
				pl.failure = fmt.Errorf("pipeline %s: %w", who, WireErrors.FromStatus(err))
				pl.failedAt = i
			}
		case ack.FailedIndex >= 0:
			if pl.failure == nil {
				pl.failure = errorFromReason(ack.Reason, ack.Error)
				pl.failedAt = min(int(ack.FailedIndex), len(pl.chunk.Locations)-1)
			}
		case ack.Seq != pl.ackedBy[i] || ack.Seq >= pl.nextSeq:
			if pl.failure == nil {
				pl.failure = fmt.Errorf("pipeline %s acked packet %d out of order: %w", who, ack.Seq, wire.ErrBadRequest)
				pl.failedAt = i
			}
		default:
			pl.ackedBy[i]++
			all := slices.Min(pl.ackedBy)
			var done []packet
			for len(pl.unacked) > 0 && pl.unacked[0].seq < all {
				pk := pl.unacked[0]
				pl.unacked = pl.unacked[1:]
				pl.inflight -= len(pk.data)
				pl.acked = pk.off + int64(len(pk.data))
				done = append(done, pk)
			}
			if len(done) > 0 {
				pl.progress = time.Now()
				pl.changedLocked()
			}
			pl.mu.Unlock()
			if len(done) > 0 {
				pl.acks.advance(done[len(done)-1].num)
				for _, pk := range done {
					pl.recycle(pk.data) // every replica has it; nothing resends it
				}
			}
			continue
		}
		pl.changedLocked()
		pl.mu.Unlock()
		return
	}
}

// packetBuf returns an empty buffer for packet data, recycled if one is
// free; n is the size the caller will append first (bytes).
func (c *Client) packetBuf(n int) []byte {
	if b, ok := c.packetBufs.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, max(n, 4<<10))
}

// recycle hands an acked packet's data buffer back to the client.
func (pl *pipeline) recycle(data []byte) {
	if cap(data) >= 4<<10 && pl.bufs != nil {
		pl.bufs.Put(&data)
	}
}

// finish closes a drained pipeline and waits for the stream to end.
func (pl *pipeline) finish() {
	pl.mu.Lock()
	pl.closing = true
	pl.mu.Unlock()
	for _, st := range pl.streams {
		st.CloseSend()
	}
	<-pl.done
	pl.cancel()
}

// abort cuts the stream and waits for the receiver to exit.
func (pl *pipeline) abort() {
	pl.mu.Lock()
	if pl.failure == nil {
		pl.failure = errors.New("pipeline aborted")
	}
	pl.mu.Unlock()
	pl.cancel()
	<-pl.done
}
