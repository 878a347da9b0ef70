package client

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"cellar/internal/metadata"
	"cellar/internal/rpcerr"
	"cellar/internal/serr"
	"cellar/lock"
	"cellar/lock/locktest"
	datapb "cellar/proto/cellar/data/v1"
	masterpb "cellar/proto/cellar/master/v1"
	tabletpb "cellar/proto/cellar/tablet/v1"
)

// fakeStore is the cells of every table, shared by the fake servers (what
// a server may serve is decided per server).
type fakeStore struct {
	mu    sync.Mutex
	rows  map[uint64]map[string][]*datapb.Cell
	clock int64
}

func newFakeStore() *fakeStore { return &fakeStore{rows: map[uint64]map[string][]*datapb.Cell{}} }

func (s *fakeStore) set(table uint64, row []byte, family string, qual []byte, ts int64, value []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setLocked(table, row, family, qual, ts, value)
}

func (s *fakeStore) setLocked(table uint64, row []byte, family string, qual []byte, ts int64, value []byte) {
	if s.rows[table] == nil {
		s.rows[table] = map[string][]*datapb.Cell{}
	}
	if ts < 0 {
		s.clock++
		ts = s.clock
	}
	cells := slices.DeleteFunc(s.rows[table][string(row)], func(c *datapb.Cell) bool {
		return c.Family == family && bytes.Equal(c.Qualifier, qual) && c.Timestamp == ts
	})
	cells = append(cells, &datapb.Cell{Family: family, Qualifier: bytes.Clone(qual), Timestamp: ts, Value: bytes.Clone(value)})
	sort.Slice(cells, func(i, j int) bool {
		a, b := cells[i], cells[j]
		if a.Family != b.Family {
			return a.Family < b.Family
		}
		if c := bytes.Compare(a.Qualifier, b.Qualifier); c != 0 {
			return c < 0
		}
		return a.Timestamp > b.Timestamp
	})
	s.rows[table][string(row)] = cells
}

func (s *fakeStore) applyLocked(table uint64, row []byte, muts []*datapb.Mutation) {
	for _, m := range muts {
		switch x := m.Mutation.(type) {
		case *datapb.Mutation_SetCell_:
			s.setLocked(table, row, x.SetCell.Family, x.SetCell.Qualifier, x.SetCell.Timestamp, x.SetCell.Value)
		case *datapb.Mutation_DeleteFromRow_:
			delete(s.rows[table], string(row))
		case *datapb.Mutation_DeleteFromColumn_:
			if s.rows[table] != nil {
				s.rows[table][string(row)] = slices.DeleteFunc(s.rows[table][string(row)], func(c *datapb.Cell) bool {
					return c.Family == x.DeleteFromColumn.Family && bytes.Equal(c.Qualifier, x.DeleteFromColumn.Qualifier)
				})
			}
		}
	}
}

func (s *fakeStore) get(table uint64, row string) []*datapb.Cell {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.rows[table][row])
}

// servedRange is one tablet a fake server serves.
type servedRange struct {
	table      uint64
	start, end []byte
}

// fakeTabletServer is an in-memory TabletServer over a fakeStore, with
// failure hooks.
type fakeTabletServer struct {
	tabletpb.UnimplementedTabletServerServer
	id, addr string
	store    *fakeStore
	srv      *grpc.Server

	mu     sync.Mutex
	served []servedRange
	calls  map[string]int
	reqs   []*tabletpb.ReadRowsRequest
	// before fails a call before applying it (returned as is); after fails
	// it after applying. Both are consulted once per call.
	before, after func(method string) error
	// readFailAfter > 0 makes the next ReadRows fail with a plain
	// UNAVAILABLE after sending that many rows.
	readFailAfter int
	samples       []*tabletpb.SampleRowKeysResponse_Sample
}

func startFakeTabletServer(t *testing.T, id string, store *fakeStore) *fakeTabletServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeTabletServer{id: id, addr: l.Addr().String(), store: store, srv: grpc.NewServer(), calls: map[string]int{}}
	tabletpb.RegisterTabletServerServer(f.srv, f)
	done := make(chan struct{})
	go func() { defer close(done); f.srv.Serve(l) }()
	t.Cleanup(func() { f.srv.Stop(); <-done })
	return f
}

func (f *fakeTabletServer) serve(table uint64, start, end []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.served = append(f.served, servedRange{table: table, start: start, end: end})
}

func (f *fakeTabletServer) unserve(table uint64, start []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.served = slices.DeleteFunc(f.served, func(s servedRange) bool { return s.table == table && bytes.Equal(s.start, start) })
}

func (f *fakeTabletServer) callCount(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

func (f *fakeTabletServer) readReqs() []*tabletpb.ReadRowsRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

// enter counts the call and runs the before hook.
func (f *fakeTabletServer) enter(method string) (after func(string) error, err error) {
	f.mu.Lock()
	f.calls[method]++
	before := f.before
	after = f.after
	f.mu.Unlock()
	if before != nil {
		if err := before(method); err != nil {
			return nil, err
		}
	}
	return after, nil
}

func notServing(table uint64, row []byte) error {
	return serr.Wire.ToStatus(rpcerr.Errorf(serr.ErrNotServing, "table %d row %q", table, row))
}

// tabletOf returns the served tablet holding row.
func (f *fakeTabletServer) tabletOf(table uint64, row []byte) (servedRange, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.served {
		if s.table == table && metadata.Contains(s.start, s.end, row) {
			return s, true
		}
	}
	return servedRange{}, false
}

func (f *fakeTabletServer) MutateRow(ctx context.Context, req *tabletpb.MutateRowRequest) (*tabletpb.MutateRowResponse, error) {
	after, err := f.enter("MutateRow")
	if err != nil {
		return nil, err
	}
	if _, ok := f.tabletOf(req.TableId, req.RowKey); !ok {
		return nil, notServing(req.TableId, req.RowKey)
	}
	f.store.mu.Lock()
	f.store.applyLocked(req.TableId, req.RowKey, req.Mutations)
	f.store.mu.Unlock()
	if after != nil {
		if err := after("MutateRow"); err != nil {
			return nil, err
		}
	}
	return &tabletpb.MutateRowResponse{}, nil
}

func (f *fakeTabletServer) MutateRows(ctx context.Context, req *tabletpb.MutateRowsRequest) (*tabletpb.MutateRowsResponse, error) {
	after, err := f.enter("MutateRows")
	if err != nil {
		return nil, err
	}
	resp := &tabletpb.MutateRowsResponse{}
	for _, e := range req.Entries {
		if _, ok := f.tabletOf(req.TableId, e.RowKey); !ok {
			resp.Results = append(resp.Results, &tabletpb.MutateRowsResponse_Result{Code: 14, Message: "not serving", Reason: "NOT_SERVING"})
			continue
		}
		f.store.mu.Lock()
		f.store.applyLocked(req.TableId, e.RowKey, e.Mutations)
		f.store.mu.Unlock()
		resp.Results = append(resp.Results, &tabletpb.MutateRowsResponse_Result{})
	}
	if after != nil {
		if err := after("MutateRows"); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

func (f *fakeTabletServer) ReadRows(req *tabletpb.ReadRowsRequest, st grpc.ServerStreamingServer[tabletpb.ReadRowsResponse]) error {
	if _, err := f.enter("ReadRows"); err != nil {
		return err
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, proto.Clone(req).(*tabletpb.ReadRowsRequest))
	failAfter := f.readFailAfter
	f.readFailAfter = 0
	f.mu.Unlock()
	// Every key must lie in one served tablet, and every range must start
	// in it; like a real server, a range is cut at the tablet's end.
	var tab *servedRange
	check := func(start, end []byte, isRange bool) error {
		s, ok := f.tabletOf(req.TableId, start)
		if !ok || !isRange && (len(s.end) > 0 && (len(end) == 0 || bytes.Compare(end, s.end) > 0)) {
			return notServing(req.TableId, start)
		}
		if tab != nil && !bytes.Equal(tab.start, s.start) {
			return notServing(req.TableId, start)
		}
		tab = &s
		return nil
	}
	for _, k := range req.Rows.GetRowKeys() {
		if err := check(k, append(bytes.Clone(k), 0), false); err != nil {
			return err
		}
	}
	for _, r := range req.Rows.GetRowRanges() {
		if err := check(r.StartKey, r.EndKey, true); err != nil {
			return err
		}
	}
	if tab == nil {
		return serr.Wire.ToStatus(rpcerr.Errorf(serr.ErrInvalidArgument, "empty row set"))
	}
	in := func(k string) bool {
		if !metadata.Contains(tab.start, tab.end, []byte(k)) {
			return false
		}
		for _, x := range req.Rows.GetRowKeys() {
			if string(x) == k {
				return true
			}
		}
		for _, r := range req.Rows.GetRowRanges() {
			if metadata.Contains(r.StartKey, r.EndKey, []byte(k)) {
				return true
			}
		}
		return false
	}
	f.store.mu.Lock()
	var keys []string
	for k := range f.store.rows[req.TableId] {
		if in(k) && len(f.store.rows[req.TableId][k]) > 0 {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var rows []*datapb.Row
	for _, k := range keys {
		cells := f.store.rows[req.TableId][k]
		if req.Filter.GetCellsPerColumnLimitFilter() == 1 {
			var latest []*datapb.Cell
			for i, c := range cells {
				if i == 0 || c.Family != cells[i-1].Family || !bytes.Equal(c.Qualifier, cells[i-1].Qualifier) {
					latest = append(latest, c)
				}
			}
			cells = latest
		}
		rows = append(rows, &datapb.Row{Key: []byte(k), Cells: slices.Clone(cells)})
	}
	f.store.mu.Unlock()
	sent := int64(0)
	for _, r := range rows {
		if failAfter > 0 && sent == int64(failAfter) {
			return serr.Wire.ToStatus(fmt.Errorf("%w: stream broken", serr.ErrUnavailable))
		}
		if err := st.Send(&tabletpb.ReadRowsResponse{Rows: []*datapb.Row{r}, LastScannedRowKey: r.Key}); err != nil {
			return err
		}
		sent++
		if req.RowsLimit > 0 && sent >= req.RowsLimit {
			return nil
		}
	}
	return st.Send(&tabletpb.ReadRowsResponse{TabletEnd: true, ResumeKey: tab.end})
}

func (f *fakeTabletServer) CheckAndMutateRow(ctx context.Context, req *tabletpb.CheckAndMutateRowRequest) (*tabletpb.CheckAndMutateRowResponse, error) {
	if _, err := f.enter("CheckAndMutateRow"); err != nil {
		return nil, err
	}
	if _, ok := f.tabletOf(req.TableId, req.RowKey); !ok {
		return nil, notServing(req.TableId, req.RowKey)
	}
	f.store.mu.Lock()
	defer f.store.mu.Unlock()
	matched := len(f.store.rows[req.TableId][string(req.RowKey)]) > 0 // predicate ignored: "row has any cell"
	if matched {
		f.store.applyLocked(req.TableId, req.RowKey, req.TrueMutations)
	} else {
		f.store.applyLocked(req.TableId, req.RowKey, req.FalseMutations)
	}
	return &tabletpb.CheckAndMutateRowResponse{PredicateMatched: matched}, nil
}

func (f *fakeTabletServer) ReadModifyWriteRow(ctx context.Context, req *tabletpb.ReadModifyWriteRowRequest) (*tabletpb.ReadModifyWriteRowResponse, error) {
	after, err := f.enter("ReadModifyWriteRow")
	if err != nil {
		return nil, err
	}
	if _, ok := f.tabletOf(req.TableId, req.RowKey); !ok {
		return nil, notServing(req.TableId, req.RowKey)
	}
	f.store.mu.Lock()
	out := &datapb.Row{Key: req.RowKey}
	for _, r := range req.Rules {
		var cur []byte
		for _, c := range f.store.rows[req.TableId][string(req.RowKey)] {
			if c.Family == r.Family && bytes.Equal(c.Qualifier, r.Qualifier) {
				cur = c.Value
				break
			}
		}
		var v []byte
		switch x := r.Rule.(type) {
		case *tabletpb.ReadModifyWriteRule_AppendValue:
			v = append(bytes.Clone(cur), x.AppendValue...)
		case *tabletpb.ReadModifyWriteRule_IncrementAmount:
			var n int64
			if len(cur) == 8 {
				n = int64(binary.BigEndian.Uint64(cur))
			}
			v = binary.BigEndian.AppendUint64(nil, uint64(n+x.IncrementAmount))
		}
		f.store.clock++
		f.store.setLocked(req.TableId, req.RowKey, r.Family, r.Qualifier, f.store.clock, v)
		out.Cells = append(out.Cells, &datapb.Cell{Family: r.Family, Qualifier: r.Qualifier, Timestamp: f.store.clock, Value: v})
	}
	f.store.mu.Unlock()
	if after != nil {
		if err := after("ReadModifyWriteRow"); err != nil {
			return nil, err
		}
	}
	return &tabletpb.ReadModifyWriteRowResponse{Row: out}, nil
}

func (f *fakeTabletServer) SampleRowKeys(ctx context.Context, req *tabletpb.SampleRowKeysRequest) (*tabletpb.SampleRowKeysResponse, error) {
	if _, err := f.enter("SampleRowKeys"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return &tabletpb.SampleRowKeysResponse{Samples: f.samples}, nil
}

// fakeMaster is an in-memory Master.
type fakeMaster struct {
	masterpb.UnimplementedMasterServer
	addr string
	srv  *grpc.Server

	mu        sync.Mutex
	notMaster bool
	onCall    func(method string)
	tables    map[string]*masterpb.DescribeTableResponse
	calls     int
}

func startFakeMaster(t *testing.T) *fakeMaster {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &fakeMaster{addr: l.Addr().String(), srv: grpc.NewServer(), tables: map[string]*masterpb.DescribeTableResponse{}}
	masterpb.RegisterMasterServer(m.srv, m)
	done := make(chan struct{})
	go func() { defer close(done); m.srv.Serve(l) }()
	t.Cleanup(func() { m.srv.Stop(); <-done })
	return m
}

func (m *fakeMaster) enter(method string) error {
	m.mu.Lock()
	m.calls++
	nm, hook := m.notMaster, m.onCall
	m.mu.Unlock()
	if hook != nil {
		hook(method)
	}
	if nm {
		return serr.Wire.ToStatus(rpcerr.Errorf(serr.ErrNotMaster, "standby"))
	}
	return nil
}

func (m *fakeMaster) CreateTable(ctx context.Context, req *masterpb.CreateTableRequest) (*masterpb.CreateTableResponse, error) {
	if err := m.enter("CreateTable"); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.tables[req.Name]; ok {
		return nil, serr.Wire.ToStatus(rpcerr.Errorf(serr.ErrTableExists, "%q", req.Name))
	}
	s := &datapb.TableSchema{Name: req.Name, TableId: uint64(100 + len(m.tables)), Families: req.Families}
	d := &masterpb.DescribeTableResponse{Schema: s}
	start := []byte(nil)
	for i, k := range append(req.SplitKeys, nil) {
		d.Tablets = append(d.Tablets, &datapb.TabletDescriptor{TableId: s.TableId, TabletId: uint64(100 + i), StartRow: start, EndRow: k})
		start = k
	}
	m.tables[req.Name] = d
	return &masterpb.CreateTableResponse{Schema: s}, nil
}

func (m *fakeMaster) DescribeTable(ctx context.Context, req *masterpb.DescribeTableRequest) (*masterpb.DescribeTableResponse, error) {
	if err := m.enter("DescribeTable"); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.tables[req.Name]
	if !ok {
		return nil, serr.Wire.ToStatus(rpcerr.Errorf(serr.ErrTableNotFound, "%q", req.Name))
	}
	return d, nil
}

func (m *fakeMaster) ListTables(ctx context.Context, req *masterpb.ListTablesRequest) (*masterpb.ListTablesResponse, error) {
	if err := m.enter("ListTables"); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	resp := &masterpb.ListTablesResponse{}
	for n := range m.tables {
		resp.Names = append(resp.Names, n)
	}
	return resp, nil
}

func (m *fakeMaster) ModifyFamilies(ctx context.Context, req *masterpb.ModifyFamiliesRequest) (*masterpb.ModifyFamiliesResponse, error) {
	if err := m.enter("ModifyFamilies"); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.tables[req.Name]
	if !ok {
		return nil, serr.Wire.ToStatus(rpcerr.Errorf(serr.ErrTableNotFound, "%q", req.Name))
	}
	for _, mod := range req.Modifications {
		switch x := mod.Mod.(type) {
		case *masterpb.ModifyFamiliesRequest_Modification_Create:
			for _, f := range d.Schema.Families {
				if f.Name == x.Create.Name {
					return nil, serr.Wire.ToStatus(rpcerr.Errorf(serr.ErrFamilyExists, "%q", f.Name))
				}
			}
			d.Schema.Families = append(d.Schema.Families, x.Create)
		case *masterpb.ModifyFamiliesRequest_Modification_Update:
			for i, f := range d.Schema.Families {
				if f.Name == x.Update.Name {
					d.Schema.Families[i] = x.Update
				}
			}
		case *masterpb.ModifyFamiliesRequest_Modification_Drop:
			d.Schema.Families = slices.DeleteFunc(d.Schema.Families, func(f *datapb.ColumnFamily) bool { return f.Name == x.Drop })
		}
	}
	return &masterpb.ModifyFamiliesResponse{Schema: d.Schema}, nil
}

func (m *fakeMaster) ClusterStatus(ctx context.Context, req *masterpb.ClusterStatusRequest) (*masterpb.ClusterStatusResponse, error) {
	if err := m.enter("ClusterStatus"); err != nil {
		return nil, err
	}
	return &masterpb.ClusterStatusResponse{MasterAddress: m.addr, Servers: []*masterpb.ClusterStatusResponse_Server{{ServerId: "ts1", Address: "x", Tablets: 3}}}, nil
}

// testEnv is a lock service, fake tablet servers (servers[0] serves the
// root and META tablets) and a client.
type testEnv struct {
	t       *testing.T
	lockc   *locktest.Cluster
	lock    *lock.Client
	store   *fakeStore
	servers []*fakeTabletServer
	client  *Client
}

func newTestEnv(t *testing.T, nServers int) *testEnv {
	t.Helper()
	lc, err := locktest.Start(1, t.TempDir(), locktest.FastOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := lc.Leader(ctx); err != nil {
		t.Fatal(err)
	}
	lk, err := lock.Dial(ctx, lock.ClientOptions{Addrs: lc.Addrs(), NoSession: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lk.Close() })
	e := &testEnv{t: t, lockc: lc, lock: lk, store: newFakeStore()}
	for i := range nServers {
		e.servers = append(e.servers, startFakeTabletServer(t, fmt.Sprintf("ts%d", i), e.store))
	}
	s0 := e.servers[0]
	s0.serve(0, nil, metadata.TableEnd(0))
	s0.serve(0, metadata.TableEnd(0), nil)
	e.setLock(rootNode, metadata.EncodeLocation(s0.id, s0.addr))
	e.store.set(0, metadata.RowKey(0, nil), metadata.Family, []byte(metadata.QualTablet), 1,
		metadata.EncodeTablet(&datapb.TabletDescriptor{TableId: 0, TabletId: 2, StartRow: metadata.TableEnd(0)}))
	e.store.set(0, metadata.RowKey(0, nil), metadata.Family, []byte(metadata.QualLocation), 1, metadata.EncodeLocation(s0.id, s0.addr))
	c, err := Dial(ctx, lc.Addrs(), WithLogger(slog.New(slog.DiscardHandler)), WithRetryBackoff(time.Millisecond, 20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	e.client = c
	return e
}

func (e *testEnv) setLock(p string, content []byte) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, err := e.lock.Set(ctx, p, content)
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			e.t.Fatalf("set %s: %v", p, err)
		}
	}
}

// addTable creates table name (id) with tablets split at splits; tablet i
// is served by servers[assign[i]] (-1: unassigned).
func (e *testEnv) addTable(name string, id uint64, splits []string, assign []int) {
	e.t.Helper()
	s := &datapb.TableSchema{Name: name, TableId: id, Families: []*datapb.ColumnFamily{{Name: "cf"}}}
	b, _ := proto.Marshal(s)
	e.setLock(tablesDir+name, b)
	var start []byte
	ends := make([][]byte, 0, len(splits)+1)
	for _, k := range splits {
		ends = append(ends, []byte(k))
	}
	ends = append(ends, nil)
	for i, end := range ends {
		e.setMeta(id, uint64(100+i), start, end, assign[i])
		if assign[i] >= 0 {
			e.servers[assign[i]].serve(id, start, end)
		}
		start = end
	}
}

// setMeta writes the METADATA row of a tablet (server -1: no location).
func (e *testEnv) setMeta(table, tablet uint64, start, end []byte, server int) {
	key := metadata.RowKey(table, end)
	e.store.set(0, key, metadata.Family, []byte(metadata.QualTablet), 1,
		metadata.EncodeTablet(&datapb.TabletDescriptor{TableId: table, TabletId: tablet, StartRow: start, EndRow: end}))
	var loc []byte
	if server >= 0 {
		loc = metadata.EncodeLocation(e.servers[server].id, e.servers[server].addr)
	}
	e.store.set(0, key, metadata.Family, []byte(metadata.QualLocation), 1, loc)
}

// move reassigns the tablet [start, end) of table from server from to to.
func (e *testEnv) move(table, tablet uint64, start, end []byte, from, to int) {
	e.servers[from].unserve(table, start)
	e.servers[to].serve(table, start, end)
	e.setMeta(table, tablet, start, end, to)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

type tabletpbSample = tabletpb.SampleRowKeysResponse_Sample

func runtimeGosched() { time.Sleep(time.Millisecond) }

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
