package ycsb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"cellar/client"
	"cellar/internal/testcluster"
)

// CellarTable and CellarFamily are where the Cellar system keeps records:
// one row per record, one cell per field (qualifier = field name), one
// version kept.
const (
	CellarTable  = "usertable"
	CellarFamily = "f"
)

// NewCellarSystem returns the Cellar system for a running cluster whose lock
// service listens on lockAddrs; with no addresses it starts an in-process
// cluster (lock service, dfs with three chunkservers on local disk, one
// master, one tablet server) under os.TempDir and stops it on Close.
// Writes use durability d: with client.Sync (YCSB's runs here) a write is
// acknowledged after the commit log is synced on every dfs replica.
func NewCellarSystem(lockAddrs []string, d client.Durability) System {
	return &cellarSystem{addrs: lockAddrs, durability: d}
}

type cellarSystem struct {
	addrs      []string
	durability client.Durability
	st         *testcluster.Standalone
}

func (s *cellarSystem) Name() string { return "cellar" }

func (s *cellarSystem) Open(ctx context.Context) (DB, error) {
	if len(s.addrs) == 0 && s.st == nil {
		s.st = &testcluster.Standalone{Dir: os.TempDir()}
		c, err := testcluster.StartStandalone(s.st, testcluster.Options{Servers: 1, Masters: 1, MemtableSize: 64 << 20})
		if err != nil {
			s.st.Close()
			s.st = nil
			return nil, fmt.Errorf("start an in-process cellar cluster: %w", err)
		}
		s.addrs = c.LockAddrs()
	}
	cl, err := client.Dial(ctx, s.addrs)
	if err != nil {
		return nil, err
	}
	adm := cl.Admin()
	if err := adm.DeleteTable(ctx, CellarTable); err != nil && !errors.Is(err, client.ErrTableNotFound) {
		cl.Close()
		return nil, fmt.Errorf("drop %s: %w", CellarTable, err)
	}
	if err := adm.CreateTable(ctx, CellarTable, map[string]client.GCPolicy{CellarFamily: client.MaxVersionsPolicy(1)}); err != nil {
		cl.Close()
		return nil, fmt.Errorf("create %s: %w", CellarTable, err)
	}
	return &cellarDB{cl: cl, tbl: cl.Open(CellarTable), apply: client.WithDurability(s.durability)}, nil
}

// CPUTime implements CPUMeter for the in-process cluster, which runs in
// the benchmark's process with the client.
func (s *cellarSystem) CPUTime() (time.Duration, error) {
	if s.st == nil {
		return 0, errors.New("cellar/ycsb: the CPU time of a remote cluster is not known here")
	}
	return ProcessCPU()
}

func (s *cellarSystem) Close() error {
	if s.st != nil {
		s.st.Close()
		s.st = nil
	}
	return nil
}

type cellarDB struct {
	cl    *client.Client
	tbl   *client.Table
	apply client.ApplyOption
}

func (d *cellarDB) Name() string { return "cellar" }

func (d *cellarDB) Read(ctx context.Context, key string) error {
	row, err := d.tbl.ReadRow(ctx, key, client.RowFilter(client.LatestNFilter(1)))
	if err != nil {
		return err
	}
	if row == nil {
		return fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return nil
}

func (d *cellarDB) write(ctx context.Context, key string, fields map[string][]byte) error {
	m := client.NewMutation()
	for f, v := range fields {
		m.Set(CellarFamily, f, client.ServerTime, v)
	}
	return d.tbl.Apply(ctx, key, m, d.apply)
}

func (d *cellarDB) Update(ctx context.Context, key string, fields map[string][]byte) error {
	return d.write(ctx, key, fields)
}

func (d *cellarDB) Insert(ctx context.Context, key string, fields map[string][]byte) error {
	return d.write(ctx, key, fields)
}

func (d *cellarDB) Scan(ctx context.Context, start string, count int) (int, error) {
	n := 0
	err := d.tbl.ReadRows(ctx, client.InfiniteRange(start), func(client.Row) bool { n++; return true },
		client.LimitRows(int64(count)), client.RowFilter(client.LatestNFilter(1)))
	return n, err
}

func (d *cellarDB) ReadModifyWrite(ctx context.Context, key string, fields map[string][]byte) error {
	if err := d.Read(ctx, key); err != nil {
		return err
	}
	return d.write(ctx, key, fields)
}

func (d *cellarDB) Close() error { return d.cl.Close() }
