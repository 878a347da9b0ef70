package client

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"cellar/internal/serr"
	"cellar/tablet"
)

// backoff is a jittered exponential backoff. Not safe for concurrent use.
type backoff struct {
	cur, max time.Duration
}

func (c *Client) newBackoff() *backoff {
	return &backoff{cur: c.opts.backoffMin, max: c.opts.backoffMax}
}

// wait sleeps for a random duration in [cur/2, cur], doubles cur (up to
// max), and returns ctx's error if it ends first.
func (b *backoff) wait(ctx context.Context) error {
	d := b.cur/2 + time.Duration(rand.Int64N(int64(b.cur/2)+1))
	b.cur = min(2*b.cur, b.max)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// wireErr maps a gRPC error back to the serving layer's sentinels.
func wireErr(err error) error { return serr.Wire.FromStatus(err) }

// isNotServing reports a refusal the server guarantees came before
// anything was applied: the tablet is not served there (or the row is
// outside it).
func isNotServing(err error) bool {
	return errors.Is(err, serr.ErrNotServing) || errors.Is(err, tablet.ErrRowOutOfRange)
}

// isUnavailable reports a failure that may be transient: the server is
// unreachable, stopping, or the connection broke (possibly after the
// request was applied).
func isUnavailable(err error) bool {
	if errors.Is(err, ErrClosed) {
		return false
	}
	return status.Code(err) == codes.Unavailable || errors.Is(err, serr.ErrUnavailable)
}

// isCtxErr reports a cancellation or deadline, local or from the server.
func isCtxErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
