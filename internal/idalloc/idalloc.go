// Package idalloc hands out table and tablet ids from counter nodes in the
// lock service (docs/serving.md, "Identities"): a compare-and-set loop on
// /cellar/ids/<kind>, so ids are unique across masters and tablet servers
// and never reused, even across failovers.
package idalloc

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"cellar/lock"
)

// Counter nodes and their first values. Tablet ids 1 and 2 are METADATA's
// root and META tablets; table id 0 is METADATA.
const (
	TablePath   = "/cellar/ids/table"
	TabletPath  = "/cellar/ids/tablet"
	FirstTable  = 1
	FirstTablet = 100
)

// Next returns the next id of the counter at p (first if it does not exist
// yet). It retries a lost compare-and-set; a write whose outcome is unknown
// is retried too, which at worst skips an id.
func Next(ctx context.Context, c *lock.Client, p string, first uint64) (uint64, error) {
	for {
		n, found, err := c.Get(ctx, p)
		if err != nil {
			return 0, fmt.Errorf("idalloc: read %s: %w", p, err)
		}
		id, version := first, uint64(0)
		if found {
			v, err := strconv.ParseUint(string(n.Content), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("idalloc: counter %s holds %q: %w", p, n.Content, err)
			}
			id, version = v, n.Version
		}
		_, err = c.Set(ctx, p, []byte(strconv.FormatUint(id+1, 10)), lock.IfVersion(version))
		switch {
		case err == nil:
			return id, nil
		case errors.Is(err, lock.ErrVersionMismatch), errors.Is(err, lock.ErrOutcomeUnknown):
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			continue
		default:
			return 0, fmt.Errorf("idalloc: advance %s: %w", p, err)
		}
	}
}

// NextTablet returns a fresh tablet id.
func NextTablet(ctx context.Context, c *lock.Client) (uint64, error) {
	return Next(ctx, c, TabletPath, FirstTablet)
}

// NextTable returns a fresh table id.
func NextTable(ctx context.Context, c *lock.Client) (uint64, error) {
	return Next(ctx, c, TablePath, FirstTable)
}
