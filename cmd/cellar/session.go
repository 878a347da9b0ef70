package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"cellar/client"
)

// defaultCluster is where `cellar standalone` listens by default, so that
// the admin commands reach it with no flags.
const defaultCluster = "127.0.0.1:7070"

// dialTimeout bounds how long a command waits for the lock service before
// it reports that no cluster is reachable.
const dialTimeout = 3 * time.Second

// session is what the admin and data commands share: the cluster address,
// the client (dialled on first use and reused by every command of a
// shell), and whether progress bars may be drawn. One session serves one
// `cellar COMMAND` run or one whole `cellar shell`.
type session struct {
	cluster string // comma-separated lock-service addresses
	// stdin, if set, replaces the command's standard input (the shell's
	// refuses to be read).
	stdin io.Reader
	// progress: draw progress bars on stderr (both stdout and stderr are
	// terminals).
	progress bool
	// keep: the client outlives each command (the shell closes it at its
	// end); otherwise every command closes it when it returns.
	keep bool

	c *client.Client
}

// newSession returns a session whose cluster is given later (by the
// --cluster flag); progress bars are on when stdout and stderr are both
// terminals.
func newSession() *session {
	return &session{
		cluster:  envDefault("CLUSTER", defaultCluster),
		progress: term.IsTerminal(int(os.Stdout.Fd())) && term.IsTerminal(int(os.Stderr.Fd())),
	}
}

// input is the standard input of cmd.
func (s *session) input(cmd *cobra.Command) io.Reader {
	if s.stdin != nil {
		return s.stdin
	}
	return cmd.InOrStdin()
}

// client dials the cluster on first use.
func (s *session) client(ctx context.Context) (*client.Client, error) {
	if s.c != nil {
		return s.c, nil
	}
	addrs := splitList(s.cluster)
	if len(addrs) == 0 {
		return nil, usagef("no cluster address: give --cluster ADDRS or set CELLAR_CLUSTER")
	}
	start := time.Now()
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	c, err := client.Dial(dctx, addrs, client.WithDialTimeout(dialTimeout), client.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("no cluster reachable at %s (waited %v; set --cluster or CELLAR_CLUSTER): %w",
			strings.Join(addrs, ","), time.Since(start).Round(100*time.Millisecond), rootCause(err))
	}
	s.c = c
	return c, nil
}

// Close closes the client, if one was dialled.
func (s *session) Close() error {
	if s.c == nil {
		return nil
	}
	err := s.c.Close()
	s.c = nil
	return err
}

// rootCause is the innermost wrapped error, for messages that already say
// what failed.
func rootCause(err error) error {
	for {
		var next error
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			next = u.Unwrap()
		case interface{ Unwrap() []error }:
			if es := u.Unwrap(); len(es) > 0 {
				next = es[len(es)-1]
			}
		}
		if next == nil {
			return err
		}
		err = next
	}
}

// withClient wraps a command body that needs the cluster.
func (s *session) withClient(fn func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		c, err := s.client(ctx)
		if err != nil {
			return err
		}
		if !s.keep {
			defer s.Close()
		}
		return fn(ctx, cmd, c, args)
	}
}

// argsRange checks the number of positional arguments and names what is
// missing or extra in one line, with the command's usage.
func argsRange(min, max int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) < min:
			return usagef("%s: missing arguments (usage: %s)", cmd.Name(), cmd.UseLine())
		case max >= 0 && len(args) > max:
			return usagef("%s: too many arguments (usage: %s)", cmd.Name(), cmd.UseLine())
		}
		return nil
	}
}

// longCallTimeout bounds the calls that take as long as the table is big
// (scan, count, export, compact). The client gives a call without a
// deadline 60s, which a full scan of a large table would exceed; Ctrl-C
// still stops them at once.
const longCallTimeout = 7 * 24 * time.Hour

func longCall(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, longCallTimeout)
}

// tableErr adds the table's name to a not-found error if needed.
func tableErr(table string, err error) error {
	if errors.Is(err, client.ErrTableNotFound) && !strings.Contains(err.Error(), table) {
		return fmt.Errorf("table %q: %w", table, err)
	}
	return err
}
