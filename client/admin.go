package client

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"cellar/internal/keys"
	"cellar/internal/serr"
	datapb "cellar/proto/cellar/data/v1"
	masterpb "cellar/proto/cellar/master/v1"
)

// AdminClient administers tables through the active master, whose address
// it reads from the lock node /cellar/master. Safe for concurrent use; it
// shares the Client's connections and is closed with it.
//
// Calls are retried with backoff within ctx (default deadline 60s) when the
// master is unreachable or answers NOT_MASTER (after re-reading
// /cellar/master). A retried CreateTable whose first attempt reached the
// master may then report ErrTableExists.
type AdminClient struct{ c *Client }

// Admin returns the admin client.
func (c *Client) Admin() *AdminClient { return &AdminClient{c: c} }

func (c *Client) master(ctx context.Context) (string, error) {
	c.mu.Lock()
	addr := c.mu.masterAddr
	c.mu.Unlock()
	if addr != "" {
		return addr, nil
	}
	n, found, err := c.lock.Get(ctx, masterNode)
	if err != nil {
		return "", fmt.Errorf("read %s: %w: %w", masterNode, ErrUnavailable, err)
	}
	if !found || len(n.Content) == 0 {
		return "", fmt.Errorf("%w: no active master (%s is empty)", ErrUnavailable, masterNode)
	}
	addr = string(n.Content)
	c.mu.Lock()
	c.mu.masterAddr = addr
	c.mu.Unlock()
	return addr, nil
}

func (c *Client) forgetMaster(addr string) {
	c.mu.Lock()
	if c.mu.masterAddr == addr {
		c.mu.masterAddr = ""
	}
	c.mu.Unlock()
}

func (a *AdminClient) call(ctx context.Context, what string, fn func(ctx context.Context, mc masterpb.MasterClient) error) error {
	ctx, cancel := a.c.callCtx(ctx)
	defer cancel()
	b := a.c.newBackoff()
	var last error
	for {
		addr, err := a.c.master(ctx)
		if err == nil {
			var mc masterpb.MasterClient
			if mc, err = a.c.masterClient(addr); err != nil {
				return err
			}
			err = wireErr(fn(ctx, mc))
			if err == nil {
				return nil
			}
			if !errors.Is(err, serr.ErrNotMaster) && !isUnavailable(err) {
				return fmt.Errorf("cellar/client: %s: %w", what, err)
			}
			a.c.forgetMaster(addr)
		} else if errors.Is(err, ErrClosed) || ctx.Err() != nil {
			return fmt.Errorf("cellar/client: %s: %w", what, err)
		}
		last = err
		a.c.log.Debug("master unavailable; retrying", "op", what, "err", err)
		if werr := b.wait(ctx); werr != nil {
			return fmt.Errorf("cellar/client: %s: gave up: %w: %w (last error: %w)", what, ErrUnavailable, werr, last)
		}
	}
}

func familyProto(name string, p GCPolicy) (*datapb.ColumnFamily, error) {
	if err := keys.ValidateFamily(name); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	cf := &datapb.ColumnFamily{Name: name}
	if p != nil {
		cf.GcRule = p.proto()
	}
	return cf, nil
}

// CreateTable creates table name with families (name → GC policy; a nil
// policy keeps every version) and initial tablet boundaries splitKeys.
// Errors: ErrInvalidArgument, ErrTableExists, ErrUnavailable.
func (a *AdminClient) CreateTable(ctx context.Context, name string, families map[string]GCPolicy, splitKeys ...string) error {
	if err := validTableName(name); err != nil {
		return err
	}
	req := &masterpb.CreateTableRequest{Name: name}
	names := make([]string, 0, len(families))
	for f := range families {
		names = append(names, f)
	}
	slices.Sort(names)
	for _, f := range names {
		cf, err := familyProto(f, families[f])
		if err != nil {
			return err
		}
		req.Families = append(req.Families, cf)
	}
	for _, k := range splitKeys {
		if k == "" {
			return fmt.Errorf("%w: empty split key", ErrInvalidArgument)
		}
		req.SplitKeys = append(req.SplitKeys, []byte(k))
	}
	a.c.forgetTable(name)
	return a.call(ctx, "create table "+name, func(ctx context.Context, mc masterpb.MasterClient) error {
		_, err := mc.CreateTable(ctx, req)
		return err
	})
}

// DeleteTable deletes table name. Errors: ErrTableNotFound, ErrUnavailable.
func (a *AdminClient) DeleteTable(ctx context.Context, name string) error {
	if err := validTableName(name); err != nil {
		return err
	}
	defer a.c.forgetTable(name)
	return a.call(ctx, "delete table "+name, func(ctx context.Context, mc masterpb.MasterClient) error {
		_, err := mc.DeleteTable(ctx, &masterpb.DeleteTableRequest{Name: name})
		return err
	})
}

// Tables lists the tables' names, sorted.
func (a *AdminClient) Tables(ctx context.Context) ([]string, error) {
	var out []string
	err := a.call(ctx, "list tables", func(ctx context.Context, mc masterpb.MasterClient) error {
		resp, err := mc.ListTables(ctx, &masterpb.ListTablesRequest{})
		if err == nil {
			out = slices.Sorted(slices.Values(resp.Names))
		}
		return err
	})
	return out, err
}

// TableInfo describes a table: its id, families and tablets.
type TableInfo struct {
	Name     string
	ID       uint64
	Families []FamilyInfo
	Tablets  []TabletInfo
}

// FamilyInfo is one column family and its GC policy.
type FamilyInfo struct {
	Name     string
	GCPolicy GCPolicy
}

// TabletInfo is one tablet: rows [StartKey, EndKey) (EndKey "" is
// unbounded) and its current server (empty if unassigned).
type TabletInfo struct {
	ID               uint64
	StartKey, EndKey string
	ServerID         string
	ServerAddr       string
}

// TableInfo describes table name. Errors: ErrTableNotFound, ErrUnavailable.
func (a *AdminClient) TableInfo(ctx context.Context, name string) (*TableInfo, error) {
	if err := validTableName(name); err != nil && name != "METADATA" {
		return nil, err
	}
	var info *TableInfo
	err := a.call(ctx, "describe table "+name, func(ctx context.Context, mc masterpb.MasterClient) error {
		resp, err := mc.DescribeTable(ctx, &masterpb.DescribeTableRequest{Name: name})
		if err != nil {
			return err
		}
		info = &TableInfo{Name: resp.Schema.GetName(), ID: resp.Schema.GetTableId()}
		if info.Name == "" {
			info.Name = name
		}
		for _, f := range resp.Schema.GetFamilies() {
			info.Families = append(info.Families, FamilyInfo{Name: f.Name, GCPolicy: gcPolicyFromProto(f.GcRule)})
		}
		for _, t := range resp.Tablets {
			info.Tablets = append(info.Tablets, TabletInfo{ID: t.TabletId, StartKey: string(t.StartRow), EndKey: string(t.EndRow),
				ServerID: t.ServerId, ServerAddr: t.ServerAddress})
		}
		return nil
	})
	return info, err
}

func (a *AdminClient) modify(ctx context.Context, table, what string, mod *masterpb.ModifyFamiliesRequest_Modification) error {
	if err := validTableName(table); err != nil {
		return err
	}
	return a.call(ctx, what, func(ctx context.Context, mc masterpb.MasterClient) error {
		_, err := mc.ModifyFamilies(ctx, &masterpb.ModifyFamiliesRequest{Name: table, Modifications: []*masterpb.ModifyFamiliesRequest_Modification{mod}})
		return err
	})
}

// CreateColumnFamily adds family to table with policy (nil: keep every
// version). Errors: ErrFamilyExists, ErrTableNotFound, ErrInvalidArgument.
func (a *AdminClient) CreateColumnFamily(ctx context.Context, table, family string, policy GCPolicy) error {
	cf, err := familyProto(family, policy)
	if err != nil {
		return err
	}
	return a.modify(ctx, table, "create family "+family, &masterpb.ModifyFamiliesRequest_Modification{
		Mod: &masterpb.ModifyFamiliesRequest_Modification_Create{Create: cf}})
}

// SetGCPolicy changes family's GC policy (nil: keep every version).
func (a *AdminClient) SetGCPolicy(ctx context.Context, table, family string, policy GCPolicy) error {
	cf, err := familyProto(family, policy)
	if err != nil {
		return err
	}
	return a.modify(ctx, table, "set gc policy of "+family, &masterpb.ModifyFamiliesRequest_Modification{
		Mod: &masterpb.ModifyFamiliesRequest_Modification_Update{Update: cf}})
}

// DeleteColumnFamily drops family and its cells.
func (a *AdminClient) DeleteColumnFamily(ctx context.Context, table, family string) error {
	if err := keys.ValidateFamily(family); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	return a.modify(ctx, table, "drop family "+family, &masterpb.ModifyFamiliesRequest_Modification{
		Mod: &masterpb.ModifyFamiliesRequest_Modification_Drop{Drop: family}})
}

// SplitTable splits the tablet of table holding row at row.
func (a *AdminClient) SplitTable(ctx context.Context, table, row string) error {
	if err := validTableName(table); err != nil {
		return err
	}
	if err := validRow(row); err != nil {
		return err
	}
	return a.call(ctx, "split table "+table, func(ctx context.Context, mc masterpb.MasterClient) error {
		_, err := mc.SplitTable(ctx, &masterpb.SplitTableRequest{Name: table, SplitRow: []byte(row)})
		return err
	})
}

// MergeTablets merges the tablet of table holding row with its right
// neighbour.
func (a *AdminClient) MergeTablets(ctx context.Context, table, row string) error {
	if err := validTableName(table); err != nil {
		return err
	}
	return a.call(ctx, "merge tablets of "+table, func(ctx context.Context, mc masterpb.MasterClient) error {
		_, err := mc.MergeTablets(ctx, &masterpb.MergeTabletsRequest{Name: table, Row: []byte(row)})
		return err
	})
}

// FlushTable flushes every tablet of table's memtable to SSTables.
func (a *AdminClient) FlushTable(ctx context.Context, table string) error {
	if err := validTableName(table); err != nil {
		return err
	}
	return a.call(ctx, "flush table "+table, func(ctx context.Context, mc masterpb.MasterClient) error {
		_, err := mc.FlushTable(ctx, &masterpb.FlushTableRequest{Name: table})
		return err
	})
}

// CompactTable compacts every tablet of table (major: into one SSTable,
// dropping deleted and GC'd cells).
func (a *AdminClient) CompactTable(ctx context.Context, table string, major bool) error {
	if err := validTableName(table); err != nil {
		return err
	}
	return a.call(ctx, "compact table "+table, func(ctx context.Context, mc masterpb.MasterClient) error {
		_, err := mc.CompactTable(ctx, &masterpb.CompactTableRequest{Name: table, Major: major})
		return err
	})
}

// ClusterStatus is the master's view of the cluster.
type ClusterStatus struct {
	MasterAddr        string
	StandbyMasters    []string
	Servers           []ServerStatus
	UnassignedTablets int
	// FileSystem is the file system's health in one line, as the active
	// master sees it.
	FileSystem string
}

// ServerStatus is one live tablet server.
type ServerStatus struct {
	ID, Addr        string
	Tablets         int
	ReadsPerSecond  float64
	WritesPerSecond float64
	// MemtableBytes is what the server's memtables hold, against its
	// MemtableBudget; WritesHeldBack counts the user writes it held back
	// at the budget since it started. Zero before the master's first
	// status round with the server.
	MemtableBytes, MemtableBudget, WritesHeldBack int64
}

// ClusterStatus asks the active master for the cluster's state.
func (a *AdminClient) ClusterStatus(ctx context.Context) (*ClusterStatus, error) {
	var out *ClusterStatus
	err := a.call(ctx, "cluster status", func(ctx context.Context, mc masterpb.MasterClient) error {
		resp, err := mc.ClusterStatus(ctx, &masterpb.ClusterStatusRequest{})
		if err != nil {
			return err
		}
		out = &ClusterStatus{MasterAddr: resp.MasterAddress, StandbyMasters: resp.StandbyMasters, UnassignedTablets: int(resp.UnassignedTablets), FileSystem: resp.FileSystem}
		for _, s := range resp.Servers {
			out.Servers = append(out.Servers, ServerStatus{ID: s.ServerId, Addr: s.Address, Tablets: int(s.Tablets),
				ReadsPerSecond: s.ReadsPerSecond, WritesPerSecond: s.WritesPerSecond,
				MemtableBytes: s.MemtableBytes, MemtableBudget: s.MemtableBudget, WritesHeldBack: s.WritesHeldBack})
		}
		return nil
	})
	return out, err
}
