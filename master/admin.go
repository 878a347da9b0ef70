package master

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	"cellar/dfs"
	"cellar/internal/idalloc"
	"cellar/internal/keys"
	"cellar/internal/metadata"
	"cellar/internal/serr"
	"cellar/lock"
	datapb "cellar/proto/cellar/data/v1"
	masterpb "cellar/proto/cellar/master/v1"
	tabletpb "cellar/proto/cellar/tablet/v1"
	"cellar/tablet"
)

// fileSystemSummary is the file system's health in one line: the dfs's own
// summary, or what kind of file system it is when it reports none.
func (m *Master) fileSystemSummary(ctx context.Context) string {
	r, ok := m.opts.FS.(dfs.StatusReporter)
	if !ok {
		return fmt.Sprintf("not replicated (%T: a single machine's storage)", m.opts.FS)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := r.Status(ctx)
	if err != nil {
		return fmt.Sprintf("UNKNOWN (dfs status: %v)", err)
	}
	return st.Summary()
}

// MaxTableNameLen bounds table names.
const MaxTableNameLen = 128

// ValidateTableName accepts names of letters, digits, '_', '-' and '.',
// 1 to MaxTableNameLen bytes, not METADATA.
func ValidateTableName(name string) error {
	if name == "" || len(name) > MaxTableNameLen {
		return fmt.Errorf("%w: table name must be 1 to %d bytes", serr.ErrInvalidArgument, MaxTableNameLen)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return fmt.Errorf("%w: table name %q: only letters, digits, '_', '-' and '.' are allowed", serr.ErrInvalidArgument, name)
		}
	}
	if name == metadata.Table {
		return fmt.Errorf("%w: %s is reserved", serr.ErrInvalidArgument, metadata.Table)
	}
	return nil
}

func validateFamilies(fams []*datapb.ColumnFamily) error {
	if len(fams) == 0 {
		return fmt.Errorf("%w: a table needs at least one column family", serr.ErrInvalidArgument)
	}
	seen := map[string]bool{}
	for _, f := range fams {
		if err := validateFamily(f); err != nil {
			return err
		}
		if seen[f.Name] {
			return fmt.Errorf("%w: column family %q listed twice", serr.ErrInvalidArgument, f.Name)
		}
		seen[f.Name] = true
	}
	return nil
}

func validateFamily(f *datapb.ColumnFamily) error {
	if f == nil {
		return fmt.Errorf("%w: nil column family", serr.ErrInvalidArgument)
	}
	if err := keys.ValidateFamily(f.Name); err != nil {
		return fmt.Errorf("%w: column family %q: %v", serr.ErrInvalidArgument, f.Name, err)
	}
	return validateGC(f.GcRule, 0)
}

func validateGC(r *datapb.GcRule, depth int) error {
	if r == nil {
		return nil
	}
	if depth > 16 {
		return fmt.Errorf("%w: GC rule nested too deeply", serr.ErrInvalidArgument)
	}
	switch x := r.Rule.(type) {
	case nil:
	case *datapb.GcRule_MaxNumVersions:
		if x.MaxNumVersions < 1 {
			return fmt.Errorf("%w: max versions must be at least 1", serr.ErrInvalidArgument)
		}
	case *datapb.GcRule_MaxAgeMicros:
		if x.MaxAgeMicros < 1 {
			return fmt.Errorf("%w: max age must be positive", serr.ErrInvalidArgument)
		}
	case *datapb.GcRule_Intersection_:
		for _, s := range x.Intersection.GetRules() {
			if err := validateGC(s, depth+1); err != nil {
				return err
			}
		}
	case *datapb.GcRule_Union_:
		for _, s := range x.Union.GetRules() {
			if err := validateGC(s, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// wire converts a handler's error for gRPC.
func wire[T any](resp T, err error) (T, error) {
	if err != nil {
		return resp, serr.Wire.ToStatus(err)
	}
	return resp, nil
}

// CreateTable creates a table: its METADATA rows first, then its schema
// (the commit point: rows without a schema are garbage), then it waits a
// bounded time for the tablets to be assigned.
func (m *Master) CreateTable(ctx context.Context, req *masterpb.CreateTableRequest) (*masterpb.CreateTableResponse, error) {
	return wire(m.createTable(ctx, req))
}

func (m *Master) createTable(ctx context.Context, req *masterpb.CreateTableRequest) (*masterpb.CreateTableResponse, error) {
	t, err := m.activeTerm()
	if err != nil {
		return nil, err
	}
	if err := ValidateTableName(req.Name); err != nil {
		return nil, err
	}
	if err := validateFamilies(req.Families); err != nil {
		return nil, err
	}
	splits := make([][]byte, 0, len(req.SplitKeys))
	for _, k := range req.SplitKeys {
		if err := keys.ValidateRow(k); err != nil || len(k) == 0 {
			return nil, fmt.Errorf("%w: split key %q: empty or invalid", serr.ErrInvalidArgument, k)
		}
		splits = append(splits, k)
	}
	sort.Slice(splits, func(i, j int) bool { return bytes.Compare(splits[i], splits[j]) < 0 })
	for i := 1; i < len(splits); i++ {
		if bytes.Equal(splits[i], splits[i-1]) {
			return nil, fmt.Errorf("%w: split key %q listed twice", serr.ErrInvalidArgument, splits[i])
		}
	}
	if len(splits) > 10000 {
		return nil, fmt.Errorf("%w: at most 10000 split keys", serr.ErrInvalidArgument)
	}
	t.mu.Lock()
	_, exists := t.names[req.Name]
	t.mu.Unlock()
	if exists {
		return nil, fmt.Errorf("%w: %q", serr.ErrTableExists, req.Name)
	}
	tableID, err := idalloc.NextTable(ctx, t.lc)
	if err != nil {
		return nil, err
	}
	var rows []metaRow
	start := []byte(nil)
	for i := 0; i <= len(splits); i++ {
		var end []byte
		if i < len(splits) {
			end = splits[i]
		}
		id, err := idalloc.NextTablet(ctx, t.lc)
		if err != nil {
			return nil, err
		}
		rows = append(rows, metaRow{desc: &datapb.TabletDescriptor{TableId: tableID, TabletId: id, StartRow: start, EndRow: end,
			Dir: metadata.TabletDir(tableID, id), State: datapb.TabletState_TABLET_STATE_NORMAL}, create: true})
		start = end
	}
	if err := t.writeMeta(ctx, rows); err != nil {
		return nil, err
	}
	schema := &datapb.TableSchema{Name: req.Name, TableId: tableID, Families: req.Families, CreatedMicros: time.Now().UnixMicro()}
	b, err := proto.Marshal(schema)
	if err != nil {
		return nil, err
	}
	if _, err := t.lc.Set(ctx, path.Join(TablesDir, req.Name), b, lock.IfVersion(0)); err != nil {
		if errors.Is(err, lock.ErrVersionMismatch) {
			return nil, fmt.Errorf("%w: %q", serr.ErrTableExists, req.Name)
		}
		return nil, fmt.Errorf("store schema: %w", err)
	}
	t.mu.Lock()
	t.schemas[tableID] = schema
	t.names[req.Name] = tableID
	for _, r := range rows {
		t.tablets[r.desc.TabletId] = &tabletInfo{desc: r.desc}
	}
	t.mu.Unlock()
	t.poke()
	m.log.Info("table created", "table", req.Name, "id", tableID, "tablets", len(rows))
	// Wait (bounded) for the tablets to be served, so that a write right
	// after CreateTable does not have to retry.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for wctx.Err() == nil {
		t.mu.Lock()
		pending := 0
		for _, r := range rows {
			if ti := t.tablets[r.desc.TabletId]; ti != nil && (ti.server == "" || ti.busy) {
				pending++
			}
		}
		t.mu.Unlock()
		if pending == 0 {
			break
		}
		select {
		case <-wctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	return &masterpb.CreateTableResponse{Schema: schema}, nil
}

// lookupTable returns a table's id and schema.
func (t *term) lookupTable(name string) (uint64, *datapb.TableSchema, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.schemasRead {
		// A master just elected has not read the schemas yet: "not
		// found" would be a lie.
		return 0, nil, fmt.Errorf("%w: the master was just elected and is reading the schemas; retry", serr.ErrUnavailable)
	}
	if name == metadata.Table {
		return metadata.TableID, t.schemas[metadata.TableID], nil
	}
	id, ok := t.names[name]
	if !ok {
		return 0, nil, fmt.Errorf("%w: %q", serr.ErrTableNotFound, name)
	}
	return id, t.schemas[id], nil
}

// DeleteTable removes the schema (the commit point), unloads the tablets
// and deletes their METADATA rows; the files go later (garbage collection).
func (m *Master) DeleteTable(ctx context.Context, req *masterpb.DeleteTableRequest) (*masterpb.DeleteTableResponse, error) {
	return wire(m.deleteTable(ctx, req))
}

func (m *Master) deleteTable(ctx context.Context, req *masterpb.DeleteTableRequest) (*masterpb.DeleteTableResponse, error) {
	t, err := m.activeTerm()
	if err != nil {
		return nil, err
	}
	if req.Name == metadata.Table {
		return nil, fmt.Errorf("%w: METADATA cannot be deleted", serr.ErrInvalidArgument)
	}
	id, _, err := t.lookupTable(req.Name)
	if err != nil {
		return nil, err
	}
	if err := t.lc.Delete(ctx, path.Join(TablesDir, req.Name)); err != nil && !errors.Is(err, lock.ErrNotFound) {
		return nil, fmt.Errorf("delete schema: %w", err)
	}
	t.mu.Lock()
	delete(t.names, req.Name)
	delete(t.schemas, id)
	tablets := t.tabletsOfLocked(id)
	type unload struct {
		addr string
		id   uint64
	}
	var unloads []unload
	var rows []metaRow
	for _, ti := range tablets {
		if s := t.servers[ti.server]; s != nil {
			unloads = append(unloads, unload{s.addr, ti.desc.TabletId})
		}
		rows = append(rows, metaRow{desc: ti.desc, delete: true})
		delete(t.tablets, ti.desc.TabletId)
	}
	t.mu.Unlock()
	for _, u := range unloads {
		t.unload(ctx, u.addr, u.id)
	}
	if err := t.writeMeta(ctx, rows); err != nil {
		// The schema is gone, so the rows are ignored; a later scan
		// finds them without a schema and the garbage collector goes.
		m.log.Warn("delete METADATA rows of dropped table", "table", req.Name, "err", err)
	}
	m.log.Info("table deleted", "table", req.Name, "id", id, "tablets", len(tablets))
	return &masterpb.DeleteTableResponse{}, nil
}

// ListTables lists user tables by name.
func (m *Master) ListTables(ctx context.Context, _ *masterpb.ListTablesRequest) (*masterpb.ListTablesResponse, error) {
	t, err := m.activeTerm()
	if err != nil {
		return nil, serr.Wire.ToStatus(err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	names := make([]string, 0, len(t.names))
	for n := range t.names {
		names = append(names, n)
	}
	sort.Strings(names)
	return &masterpb.ListTablesResponse{Names: names}, nil
}

// DescribeTable returns a table's schema and tablets with their servers.
func (m *Master) DescribeTable(ctx context.Context, req *masterpb.DescribeTableRequest) (*masterpb.DescribeTableResponse, error) {
	t, err := m.activeTerm()
	if err != nil {
		return nil, serr.Wire.ToStatus(err)
	}
	id, schema, err := t.lookupTable(req.Name)
	if err != nil {
		return nil, serr.Wire.ToStatus(err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	resp := &masterpb.DescribeTableResponse{Schema: schema}
	for _, ti := range t.tabletsOfLocked(id) {
		d := cloneDesc(ti.desc)
		if s := t.servers[ti.server]; s != nil {
			d.ServerId, d.ServerAddress = s.id, s.addr
		}
		resp.Tablets = append(resp.Tablets, d)
	}
	return resp, nil
}

// ModifyFamilies changes a table's families: the schema in the lock
// service first (compare-and-set), then every served tablet is reloaded
// with it.
func (m *Master) ModifyFamilies(ctx context.Context, req *masterpb.ModifyFamiliesRequest) (*masterpb.ModifyFamiliesResponse, error) {
	return wire(m.modifyFamilies(ctx, req))
}

func (m *Master) modifyFamilies(ctx context.Context, req *masterpb.ModifyFamiliesRequest) (*masterpb.ModifyFamiliesResponse, error) {
	t, err := m.activeTerm()
	if err != nil {
		return nil, err
	}
	if req.Name == metadata.Table {
		return nil, fmt.Errorf("%w: METADATA's families cannot change", serr.ErrInvalidArgument)
	}
	id, _, err := t.lookupTable(req.Name)
	if err != nil {
		return nil, err
	}
	p := path.Join(TablesDir, req.Name)
	n, found, err := t.lc.Get(ctx, p)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%w: %q", serr.ErrTableNotFound, req.Name)
	}
	schema := new(datapb.TableSchema)
	if err := proto.Unmarshal(n.Content, schema); err != nil {
		return nil, fmt.Errorf("corrupt schema of %q: %w", req.Name, err)
	}
	find := func(name string) int {
		for i, f := range schema.Families {
			if f.Name == name {
				return i
			}
		}
		return -1
	}
	for _, mod := range req.Modifications {
		switch x := mod.GetMod().(type) {
		case *masterpb.ModifyFamiliesRequest_Modification_Create:
			if err := validateFamily(x.Create); err != nil {
				return nil, err
			}
			if find(x.Create.Name) >= 0 {
				return nil, fmt.Errorf("%w: %q in table %q", serr.ErrFamilyExists, x.Create.Name, req.Name)
			}
			schema.Families = append(schema.Families, x.Create)
		case *masterpb.ModifyFamiliesRequest_Modification_Update:
			if err := validateFamily(x.Update); err != nil {
				return nil, err
			}
			i := find(x.Update.Name)
			if i < 0 {
				return nil, fmt.Errorf("%w: %q in table %q", errUnknownFamily, x.Update.Name, req.Name)
			}
			schema.Families[i] = x.Update
		case *masterpb.ModifyFamiliesRequest_Modification_Drop:
			i := find(x.Drop)
			if i < 0 {
				return nil, fmt.Errorf("%w: %q in table %q", errUnknownFamily, x.Drop, req.Name)
			}
			if len(schema.Families) == 1 {
				return nil, fmt.Errorf("%w: cannot drop the last column family of %q", serr.ErrInvalidArgument, req.Name)
			}
			schema.Families = append(schema.Families[:i], schema.Families[i+1:]...)
		default:
			return nil, fmt.Errorf("%w: empty family modification", serr.ErrInvalidArgument)
		}
	}
	b, err := proto.Marshal(schema)
	if err != nil {
		return nil, err
	}
	if _, err := t.lc.Set(ctx, p, b, lock.IfVersion(n.Version)); err != nil {
		if errors.Is(err, lock.ErrVersionMismatch) {
			return nil, fmt.Errorf("%w: the schema of %q changed concurrently; retry", serr.ErrUnavailable, req.Name)
		}
		return nil, err
	}
	t.mu.Lock()
	t.schemas[id] = schema
	type reload struct {
		addr string
		desc *datapb.TabletDescriptor
	}
	var reloads []reload
	for _, ti := range t.tabletsOfLocked(id) {
		if s := t.servers[ti.server]; s != nil {
			d := cloneDesc(ti.desc)
			d.ServerId, d.ServerAddress = s.id, s.addr
			reloads = append(reloads, reload{s.addr, d})
		}
	}
	t.mu.Unlock()
	var errs []error
	for _, r := range reloads {
		cl, err := m.conns.server(r.addr)
		if err == nil {
			_, err = cl.LoadTablet(ctx, &tabletpb.LoadTabletRequest{Master: seqProto(t.seq), Tablet: r.desc, Schema: schema})
			err = t.serverErr(err)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("tablet %d: %w", r.desc.TabletId, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		// The schema is stored; the tablets pick it up when they next load.
		m.log.Warn("reload tablets with the new schema", "table", req.Name, "err", err)
	}
	return &masterpb.ModifyFamiliesResponse{Schema: schema}, nil
}

// errUnknownFamily: the family to change does not exist.
var errUnknownFamily = tablet.ErrUnknownFamily

// SplitTable asks the server of the tablet holding split_row to split it
// there; the server commits the split and reports it.
func (m *Master) SplitTable(ctx context.Context, req *masterpb.SplitTableRequest) (*masterpb.SplitTableResponse, error) {
	return wire(m.splitTable(ctx, req))
}

func (m *Master) splitTable(ctx context.Context, req *masterpb.SplitTableRequest) (*masterpb.SplitTableResponse, error) {
	t, err := m.activeTerm()
	if err != nil {
		return nil, err
	}
	id, _, err := t.lookupTable(req.Name)
	if err != nil {
		return nil, err
	}
	if len(req.SplitRow) == 0 {
		return nil, fmt.Errorf("%w: empty split row", serr.ErrInvalidArgument)
	}
	if id == metadata.TableID && metadata.InRoot(req.SplitRow) {
		// META tablets split (at a METADATA row key past the root's
		// range); the root tablet never does.
		return nil, fmt.Errorf("%w: the root tablet does not split (METADATA rows below %x are its)", serr.ErrInvalidArgument, metadata.TableEnd(metadata.TableID))
	}
	t.mu.Lock()
	ti := t.tabletForLocked(id, req.SplitRow)
	var addr string
	var tabletID uint64
	if ti != nil {
		tabletID = ti.desc.TabletId
		if bytes.Equal(ti.desc.StartRow, req.SplitRow) {
			t.mu.Unlock()
			return &masterpb.SplitTableResponse{}, nil // already a boundary
		}
		if s := t.servers[ti.server]; s != nil && !ti.busy {
			addr = s.addr
		}
	}
	t.mu.Unlock()
	if addr == "" {
		return nil, fmt.Errorf("%w: the tablet holding %q is not served right now; retry", serr.ErrUnavailable, req.SplitRow)
	}
	cl, err := m.conns.server(addr)
	if err != nil {
		return nil, err
	}
	resp, err := cl.SplitTablet(ctx, &tabletpb.SplitTabletRequest{Master: seqProto(t.seq), TabletId: tabletID, SplitRow: req.SplitRow})
	if err != nil {
		return nil, t.serverErr(err)
	}
	if resp.Left != nil && resp.Right != nil {
		t.recordSplit(resp.Left, resp.Right)
	}
	return &masterpb.SplitTableResponse{}, nil
}

// recordSplit applies a committed split to the state: the right daughter
// keeps the parent's id, the left one is new, both on the parent's server.
func (t *term) recordSplit(left, right *datapb.TabletDescriptor) {
	t.mu.Lock()
	defer t.mu.Unlock()
	server := ""
	if p := t.tablets[right.TabletId]; p != nil {
		server = p.server
		p.desc = stripServer(right)
		p.since = t.nextGenLocked()
	}
	// The splitting server serves both daughters, and says so in the
	// descriptors it returns and reports. The master's record of the
	// parent may say unassigned (a status taken mid-split did not list
	// it): taking the daughters as unassigned would load them on a second
	// server.
	if right.ServerId != "" && t.servers[right.ServerId] != nil {
		server = right.ServerId
	}
	for _, d := range []*datapb.TabletDescriptor{left, right} {
		ti := t.tablets[d.TabletId]
		if ti == nil {
			ti = &tabletInfo{desc: stripServer(d), server: server, since: t.nextGenLocked()}
			t.tablets[d.TabletId] = ti
		} else if ti.server == "" && !ti.busy && server != "" {
			ti.server, ti.since = server, t.nextGenLocked()
		}
		// The split's intent is cleared before it is reported, so the
		// daughters are no longer held, unless their server is unknown
		// here: then they stay held (not loaded anywhere) until a status
		// adopts them or a scan finds them unserved. A scan that read the
		// intent earlier may hold them again; the rescan this asks for
		// releases them.
		ti.held = server == ""
	}
	t.metaDirty = true
}

// ReportSplit records a split a tablet server committed.
func (m *Master) ReportSplit(ctx context.Context, req *masterpb.ReportSplitRequest) (*masterpb.ReportSplitResponse, error) {
	t, err := m.activeTerm()
	if err != nil {
		return nil, serr.Wire.ToStatus(err)
	}
	if req.Left == nil || req.Right == nil {
		return nil, serr.Wire.ToStatus(fmt.Errorf("%w: split report without daughters", serr.ErrInvalidArgument))
	}
	t.recordSplit(req.Left, req.Right)
	m.log.Info("split reported", "table", req.Right.TableId, "parent", req.Right.TabletId, "left", req.Left.TabletId,
		"split_row", strconv.Quote(string(req.Right.StartRow)))
	return &masterpb.ReportSplitResponse{}, nil
}

// FlushTable and CompactTable forward to every server holding the table.
func (m *Master) FlushTable(ctx context.Context, req *masterpb.FlushTableRequest) (*masterpb.FlushTableResponse, error) {
	return wire(&masterpb.FlushTableResponse{}, m.forEachServerOf(ctx, req.Name, func(cl tabletpb.TabletServerClient, id uint64) error {
		_, err := cl.FlushTablet(ctx, &tabletpb.FlushTabletRequest{TableId: id})
		return err
	}))
}

// CompactTable compacts every tablet of a table (major: into one file per
// family, dropping deleted and expired cells).
func (m *Master) CompactTable(ctx context.Context, req *masterpb.CompactTableRequest) (*masterpb.CompactTableResponse, error) {
	return wire(&masterpb.CompactTableResponse{}, m.forEachServerOf(ctx, req.Name, func(cl tabletpb.TabletServerClient, id uint64) error {
		_, err := cl.CompactTablet(ctx, &tabletpb.CompactTabletRequest{TableId: id, Major: req.Major})
		return err
	}))
}

func (m *Master) forEachServerOf(ctx context.Context, name string, fn func(tabletpb.TabletServerClient, uint64) error) error {
	t, err := m.activeTerm()
	if err != nil {
		return err
	}
	id, _, err := t.lookupTable(name)
	if err != nil {
		return err
	}
	t.mu.Lock()
	addrs := map[string]bool{}
	unassigned := 0
	for _, ti := range t.tabletsOfLocked(id) {
		if s := t.servers[ti.server]; s != nil {
			addrs[s.addr] = true
		} else {
			unassigned++
		}
	}
	t.mu.Unlock()
	var errs []error
	for a := range addrs {
		cl, err := m.conns.server(a)
		if err == nil {
			err = fn(cl, id)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("server %s: %w", a, serr.Wire.FromStatus(err)))
		}
	}
	if unassigned > 0 {
		errs = append(errs, fmt.Errorf("%w: %d tablets of %q are not served right now", serr.ErrUnavailable, unassigned, name))
	}
	return errors.Join(errs...)
}

// ClusterStatus reports the servers and their load.
func (m *Master) ClusterStatus(ctx context.Context, _ *masterpb.ClusterStatusRequest) (*masterpb.ClusterStatusResponse, error) {
	t, err := m.activeTerm()
	if err != nil {
		return nil, serr.Wire.ToStatus(err)
	}
	fsHealth := m.fileSystemSummary(ctx) // an RPC: before the term's lock
	t.mu.Lock()
	defer t.mu.Unlock()
	resp := &masterpb.ClusterStatusResponse{MasterAddress: m.opts.Addr, FileSystem: fsHealth}
	counts := t.countsLocked()
	ids := make([]string, 0, len(t.servers))
	for id := range t.servers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		s := t.servers[id]
		srv := &masterpb.ClusterStatusResponse_Server{ServerId: id, Address: s.addr, Tablets: int32(counts[id])}
		if s.status != nil {
			srv.MemtableBytes, srv.MemtableBudget, srv.WritesHeldBack = s.status.MemtableBytes, s.status.MemtableBudget, s.status.WritesHeldBack
			for _, ts := range s.status.Tablets {
				srv.ReadsPerSecond += ts.ReadsPerSecond
				srv.WritesPerSecond += ts.WritesPerSecond
			}
		}
		resp.Servers = append(resp.Servers, srv)
	}
	for _, ti := range t.tablets {
		if ti.server == "" {
			resp.UnassignedTablets++
		}
	}
	return resp, nil
}

// collectGarbage deletes the directories of tables that no schema names
// (dropped, or never committed) once they have been orphaned for the
// grace period. (Recovered edits of tablets that no longer exist, SSTables
// and tablet directories are collectFiles's.)
func (t *term) collectGarbage(ctx context.Context) {
	ents, err := t.m.opts.FS.List(ctx, "tables")
	if err != nil {
		return
	}
	now := time.Now()
	for _, e := range ents {
		id, err := strconv.ParseUint(e.Name, 10, 64)
		if err != nil || !e.IsDir || id == metadata.TableID {
			continue
		}
		t.mu.Lock()
		_, live := t.schemas[id]
		dir := dfs.Join("tables", e.Name)
		first, seen := t.orphans[dir]
		switch {
		case live:
			delete(t.orphans, dir)
		case !seen:
			t.orphans[dir] = now
		}
		t.mu.Unlock()
		if !live && seen && now.Sub(first) >= t.m.opts.GCGracePeriod {
			if err := removeTree(ctx, t.m.opts.FS, dir); err != nil {
				t.m.log.Warn("garbage-collect dropped table", "dir", dir, "err", err)
				continue
			}
			t.m.log.Info("garbage-collected dropped table's files", "dir", dir)
			t.mu.Lock()
			delete(t.orphans, dir)
			t.mu.Unlock()
		}
	}
}
