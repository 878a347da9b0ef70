// Package metaclient is the small client tablet servers use to commit
// splits to METADATA and report them to the master. It locates the one
// METADATA tablet a row belongs to (root or META, docs/serving.md) afresh
// on every call, since splits are rare, and retries while that tablet moves.
package metaclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"cellar/internal/metadata"
	"cellar/internal/serr"
	"cellar/lock"
	datapb "cellar/proto/cellar/data/v1"
	masterpb "cellar/proto/cellar/master/v1"
	tabletpb "cellar/proto/cellar/tablet/v1"
)

// Lock-service nodes (docs/serving.md).
const (
	rootPath   = "/cellar/root"
	masterPath = "/cellar/master"
)

// Client writes METADATA rows and reports to the master. Safe for
// concurrent use.
type Client struct {
	lc    *lock.Client
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

// New makes a client reading locations through lc (not closed by Close).
func New(lc *lock.Client) *Client {
	return &Client{lc: lc, conns: map[string]*grpc.ClientConn{}}
}

// Close closes the client's connections.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for a, cc := range c.conns {
		errs = append(errs, cc.Close())
		delete(c.conns, a)
	}
	return errors.Join(errs...)
}

func (c *Client) conn(addr string) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc := c.conns[addr]; cc != nil {
		return cc, nil
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	c.conns[addr] = cc
	return cc, nil
}

// locate returns the address of the server of the METADATA tablet that
// holds key: the root tablet for the rows of METADATA's own tablets, else
// the META tablet whose root row is the first one ending after key
// (metadata.FindMetaRow; METADATA splits, docs/serving.md).
func (c *Client) locate(ctx context.Context, key []byte) (string, error) {
	n, found, err := c.lc.Get(ctx, rootPath)
	if err != nil {
		return "", err
	}
	if !found {
		return "", fmt.Errorf("%w: the root tablet has no location yet", serr.ErrUnavailable)
	}
	_, rootAddr, err := metadata.DecodeLocation(n.Content)
	if err != nil {
		return "", err
	}
	if metadata.InRoot(key) {
		return rootAddr, nil
	}
	cc, err := c.conn(rootAddr)
	if err != nil {
		return "", err
	}
	stream, err := tabletpb.NewTabletServerClient(cc).ReadRows(ctx, &tabletpb.ReadRowsRequest{
		TableId: metadata.TableID, RowsLimit: 1,
		Rows: &datapb.RowSet{RowRanges: []*datapb.RowRange{{
			StartKey: metadata.SearchKey(metadata.TableID, key), EndKey: metadata.TableEnd(metadata.TableID)}}}})
	if err != nil {
		return "", serr.Wire.FromStatus(err)
	}
	var rows []metadata.Row
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", serr.Wire.FromStatus(err)
		}
		for _, r := range resp.Rows {
			row := metadata.Row{Key: r.Key, Cells: map[string][]byte{}}
			for _, cell := range r.Cells {
				if cell.Family == metadata.Family {
					row.Cells[string(cell.Qualifier)] = cell.Value
				}
			}
			rows = append(rows, row)
		}
	}
	row, err := metadata.FindMetaRow(rows, key)
	if errors.Is(err, metadata.ErrNoMetaTablet) {
		return "", fmt.Errorf("%w: %w", serr.ErrUnavailable, err)
	}
	if err != nil {
		return "", err
	}
	loc := row.Cells[metadata.QualLocation]
	if len(loc) == 0 {
		return "", fmt.Errorf("%w: the META tablet of row %x has no location yet", serr.ErrUnavailable, row.Key)
	}
	_, addr, err := metadata.DecodeLocation(loc)
	return addr, err
}

// MutateRow applies muts to METADATA row key with sync durability,
// retrying (within ctx) while the METADATA tablet is not served. The
// mutations must be idempotent (explicit timestamps): a retry after a lost
// reply applies them again.
func (c *Client) MutateRow(ctx context.Context, key []byte, muts []*datapb.Mutation) error {
	backoff := 20 * time.Millisecond
	for {
		err := c.mutateOnce(ctx, key, muts)
		if err == nil {
			return nil
		}
		if !retryable(err) || ctx.Err() != nil {
			return fmt.Errorf("write METADATA row %x: %w", key, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("write METADATA row %x: %w (last error: %v)", key, ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

func (c *Client) mutateOnce(ctx context.Context, key []byte, muts []*datapb.Mutation) error {
	addr, err := c.locate(ctx, key)
	if err != nil {
		return err
	}
	cc, err := c.conn(addr)
	if err != nil {
		return err
	}
	_, err = tabletpb.NewTabletServerClient(cc).MutateRow(ctx, &tabletpb.MutateRowRequest{TableId: metadata.TableID, RowKey: key, Mutations: muts})
	return serr.Wire.FromStatus(err)
}

func retryable(err error) bool {
	return errors.Is(err, serr.ErrUnavailable) || errors.Is(err, serr.ErrNotServing) ||
		errors.Is(err, lock.ErrNotLeader) || serr.Wire.Code(err).String() == "Unavailable"
}

// ReportSplit tells the active master about a committed split (best
// effort: a master that misses it learns the split from METADATA and the
// server's status).
func (c *Client) ReportSplit(ctx context.Context, req *masterpb.ReportSplitRequest) error {
	n, found, err := c.lc.Get(ctx, masterPath)
	if err != nil {
		return err
	}
	if !found || len(n.Content) == 0 {
		return fmt.Errorf("%w: no active master", serr.ErrUnavailable)
	}
	cc, err := c.conn(string(n.Content))
	if err != nil {
		return err
	}
	_, err = masterpb.NewMasterClient(cc).ReportSplit(ctx, req)
	return serr.Wire.FromStatus(err)
}
