package main

import (
	"context"
	"fmt"

	"cloud.google.com/go/bigtable"
	"google.golang.org/grpc"

	"cellar/bench/ycsb"
)

// bigtableDB implements ycsb.DB with the official Cloud Bigtable client:
// one row per record, one column per field in family "f". Reads and scans
// return the latest version of each cell only. Writes use ServerTime (the
// client does not retry them). Safe for concurrent use, as the client is.
type bigtableDB struct {
	c    *bigtable.Client
	conn *grpc.ClientConn
	t    *bigtable.Table
}

var _ ycsb.DB = (*bigtableDB)(nil)

var latest = bigtable.RowFilter(bigtable.LatestNFilter(1))

func (d *bigtableDB) Name() string { return "bttest" }

func (d *bigtableDB) Read(ctx context.Context, key string) error {
	row, err := d.t.ReadRow(ctx, key, latest)
	if err != nil {
		return err
	}
	if len(row[family]) == 0 {
		return fmt.Errorf("%s: %w", key, ycsb.ErrNotFound)
	}
	return nil
}

func (d *bigtableDB) apply(ctx context.Context, key string, fields map[string][]byte) error {
	m := bigtable.NewMutation()
	for f, v := range fields {
		m.Set(family, f, bigtable.ServerTime, v)
	}
	return d.t.Apply(ctx, key, m)
}

func (d *bigtableDB) Update(ctx context.Context, key string, fields map[string][]byte) error {
	return d.apply(ctx, key, fields)
}

func (d *bigtableDB) Insert(ctx context.Context, key string, fields map[string][]byte) error {
	return d.apply(ctx, key, fields)
}

func (d *bigtableDB) Scan(ctx context.Context, start string, count int) (int, error) {
	n := 0
	err := d.t.ReadRows(ctx, bigtable.InfiniteRange(start), func(bigtable.Row) bool {
		n++
		return true
	}, bigtable.LimitRows(int64(count)), latest)
	return n, err
}

func (d *bigtableDB) ReadModifyWrite(ctx context.Context, key string, fields map[string][]byte) error {
	if err := d.Read(ctx, key); err != nil {
		return err
	}
	return d.apply(ctx, key, fields)
}

func (d *bigtableDB) Close() error {
	err := d.c.Close()
	d.conn.Close() // may already be closed by the client
	return err
}
