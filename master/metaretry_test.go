package master

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"cellar/internal/metadata"
	"cellar/internal/rpcerr"
	"cellar/internal/serr"
	tabletpb "cellar/proto/cellar/tablet/v1"
)

// refusingServer answers NOT_SERVING to its first `refusals` MutateRows, then
// applies them (counting both).
type refusingServer struct {
	tabletpb.UnimplementedTabletServerServer
	refusals int32
	calls    atomic.Int32
}

func (s *refusingServer) MutateRow(ctx context.Context, req *tabletpb.MutateRowRequest) (*tabletpb.MutateRowResponse, error) {
	if s.calls.Add(1) <= s.refusals {
		return nil, serr.Wire.ToStatus(rpcerr.Errorf(serr.ErrNotServing, "tablet moving"))
	}
	return &tabletpb.MutateRowResponse{}, nil
}

func startRefusing(t *testing.T, refusals int32) (*refusingServer, *term) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fs := &refusingServer{refusals: refusals}
	gs := grpc.NewServer()
	tabletpb.RegisterTabletServerServer(gs, fs)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	tm := &term{
		servers: map[string]*serverInfo{"s1": {id: "s1", addr: lis.Addr().String()}},
		tablets: map[uint64]*tabletInfo{metadata.RootTabletID: {desc: metadata.RootTablet(), server: "s1"}},
	}
	m := &Master{log: slog.New(slog.DiscardHandler), conns: newConnCache(nil), opts: Options{RPCTimeout: 5 * time.Second}}
	t.Cleanup(func() { m.conns.close() })
	tm.m = m
	return fs, tm
}

// A METADATA write that meets NOT_SERVING (its META tablet moving) looks
// again and is applied once the tablet is served, instead of failing the
// merge or intent that made it; a refusal that lasts past metaRetryWindow
// is returned, still ErrNotServing.
func TestMetaRowWriteRetriesNotServing(t *testing.T) {
	key := metadata.RowKey(metadata.TableID, nil) // in the root tablet
	ctx := context.Background()
	fs, tm := startRefusing(t, 2)
	if err := tm.mutateMetaRow(ctx, key, deleteColumn(metadata.QualMerge)); err != nil {
		t.Fatalf("write after two refusals: %v", err)
	}
	if n := fs.calls.Load(); n != 3 {
		t.Errorf("MutateRow calls = %d, want 3 (two refused)", n)
	}
	fs, tm = startRefusing(t, 1<<30)
	err := tm.mutateMetaRow(ctx, key, deleteColumn(metadata.QualMerge))
	if !errors.Is(err, serr.ErrNotServing) {
		t.Fatalf("write refused throughout = %v, want ErrNotServing", err)
	}
	if n := fs.calls.Load(); n < 2 {
		t.Errorf("MutateRow calls = %d, want several", n)
	}
}
