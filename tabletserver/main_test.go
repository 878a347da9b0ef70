package tabletserver

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"cellar/dfs/memfs"
	"cellar/internal/serr"
	"cellar/lock"
	"cellar/lock/locktest"
	datapb "cellar/proto/cellar/data/v1"
	tabletpb "cellar/proto/cellar/tablet/v1"
)

// hashicorp/raft may leave raftutil's future waiter behind when a replica
// stops (see lock/main_test.go).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("cellar/internal/raftutil.awaitFuture.func1"))
}

var seedFlag = flag.Uint64("seed", 0, "seed for randomized tests (0: random)")

func testSeed(t *testing.T) uint64 {
	s := *seedFlag
	if s == 0 {
		s = rand.Uint64()
	}
	t.Logf("seed %d (rerun with -seed %d)", s, s)
	return s
}

// quiet discards logs unless TABLETSERVER_TEST_LOG is set.
var quiet = func() *slog.Logger {
	if os.Getenv("TABLETSERVER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.DiscardHandler)
}()

const testTable = 1

func testSchema() *datapb.TableSchema {
	return &datapb.TableSchema{Name: "t", TableId: testTable, Families: []*datapb.ColumnFamily{
		{Name: "cf"},
		{Name: "one", GcRule: &datapb.GcRule{Rule: &datapb.GcRule_MaxNumVersions{MaxNumVersions: 1}}},
	}}
}

// fakeMeta records METADATA writes.
type fakeMeta struct {
	mu   sync.Mutex
	rows map[string][]*datapb.Mutation
	n    int
}

func (f *fakeMeta) MutateRow(ctx context.Context, row []byte, muts []*datapb.Mutation) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rows == nil {
		f.rows = map[string][]*datapb.Mutation{}
	}
	for _, m := range muts {
		f.rows[string(row)] = append(f.rows[string(row)], proto.Clone(m).(*datapb.Mutation))
	}
	f.n++
	return nil
}

// lastSet returns the value of the latest set of (info, qual) on row.
func (f *fakeMeta) lastSet(row []byte, qual string) ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var v []byte
	ok := false
	for _, m := range f.rows[string(row)] {
		if sc := m.GetSetCell(); sc != nil && string(sc.GetQualifier()) == qual {
			v, ok = sc.GetValue(), true
		}
	}
	return v, ok
}

// env is a lock service, a file system, a master sequencer and METADATA.
type env struct {
	t      *testing.T
	ctx    context.Context
	lc     *locktest.Cluster
	fs     *memfs.FS
	master *lock.Client
	seq    *tabletpb.Sequencer
	meta   *fakeMeta
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	o := locktest.FastOptions()
	o.Logger = quiet
	lc, err := locktest.Start(1, t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lc.Close() })
	if _, err := lc.Leader(ctx); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ctx: ctx, lc: lc, fs: memfs.New(), meta: &fakeMeta{}}
	e.master = e.dial(lock.ClientOptions{})
	s, err := e.master.Elect(ctx, masterNode, "master:1")
	if err != nil {
		t.Fatal(err)
	}
	e.seq = &tabletpb.Sequencer{Path: s.Path, Generation: s.Generation, Mode: int32(s.Mode)}
	return e
}

func (e *env) dial(o lock.ClientOptions) *lock.Client {
	e.t.Helper()
	o.Addrs = e.lc.Addrs()
	o.Logger = quiet
	cl, err := lock.Dial(e.ctx, o)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { cl.Close() })
	return cl
}

// tserver is a started Server behind a gRPC server on loopback.
type tserver struct {
	s    *Server
	cl   tabletpb.TabletServerClient
	lock *lock.Client
}

func (e *env) startServer(lo lock.ClientOptions, mod func(*Options)) *tserver {
	e.t.Helper()
	lcl := e.dial(lo)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	o := Options{Addr: lis.Addr().String(), FS: e.fs, Lock: lcl, Meta: e.meta, Logger: quiet, checkInterval: 100 * time.Millisecond}
	if mod != nil {
		mod(&o)
	}
	s, err := New(e.ctx, o)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := s.Start(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	gs := grpc.NewServer()
	tabletpb.RegisterTabletServerServer(gs, s)
	go func() { _ = gs.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		conn.Close()
		gs.Stop()
		if err := s.Close(); err != nil {
			e.t.Logf("server close: %v", err)
		}
	})
	return &tserver{s: s, cl: tabletpb.NewTabletServerClient(conn), lock: lcl}
}

// newTablet allocates a tablet id and returns its descriptor.
func (e *env) newTablet(start, end string) *datapb.TabletDescriptor {
	e.t.Helper()
	id, err := NextTabletID(e.ctx, e.master)
	if err != nil {
		e.t.Fatal(err)
	}
	return &datapb.TabletDescriptor{TableId: testTable, TabletId: id, StartRow: []byte(start), EndRow: []byte(end), Dir: tabletDir(testTable, id)}
}

func (e *env) load(ts *tserver, d *datapb.TabletDescriptor, recovered ...string) {
	e.t.Helper()
	if _, err := ts.cl.LoadTablet(e.ctx, &tabletpb.LoadTabletRequest{Master: e.seq, Tablet: d, Schema: testSchema(), RecoveredEdits: recovered}); err != nil {
		e.t.Fatalf("LoadTablet(%d): %v", d.GetTabletId(), err)
	}
}

func set(fam, qual string, ts int64, val string) *datapb.Mutation {
	return &datapb.Mutation{Mutation: &datapb.Mutation_SetCell_{SetCell: &datapb.Mutation_SetCell{Family: fam, Qualifier: []byte(qual), Timestamp: ts, Value: []byte(val)}}}
}

func (ts *tserver) mutate(ctx context.Context, row string, muts ...*datapb.Mutation) error {
	_, err := ts.cl.MutateRow(ctx, &tabletpb.MutateRowRequest{TableId: testTable, RowKey: []byte(row), Mutations: muts})
	return serr.Wire.FromStatus(err)
}

// read streams ReadRows and returns the rows and the messages.
func (ts *tserver) read(ctx context.Context, req *tabletpb.ReadRowsRequest) ([]*datapb.Row, []*tabletpb.ReadRowsResponse, error) {
	if req.TableId == 0 {
		req.TableId = testTable
	}
	st, err := ts.cl.ReadRows(ctx, req)
	if err != nil {
		return nil, nil, serr.Wire.FromStatus(err)
	}
	var rows []*datapb.Row
	var msgs []*tabletpb.ReadRowsResponse
	for {
		m, err := st.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return rows, msgs, nil
			}
			return rows, msgs, serr.Wire.FromStatus(err)
		}
		msgs = append(msgs, m)
		rows = append(rows, m.GetRows()...)
	}
}

func rangeSet(start, end string) *datapb.RowSet {
	return &datapb.RowSet{RowRanges: []*datapb.RowRange{{StartKey: []byte(start), EndKey: []byte(end)}}}
}

// eventually polls cond until it holds or the env's deadline passes.
func (e *env) eventually(what string, cond func() bool) {
	e.t.Helper()
	for !cond() {
		select {
		case <-e.ctx.Done():
			e.t.Fatalf("timed out waiting for %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
