package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"cellar/lock"
)

// lockAdminCommands are `cellar lock status|ls|get|set|rm|add-voter|remove-voter`.
func lockAdminCommands() []*cobra.Command {
	var addrs string
	var ifVersion int64
	withClient := func(cmd *cobra.Command, fn func(context.Context, *lock.Client) error) error {
		ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
		defer cancel()
		c, err := lock.Dial(ctx, lock.ClientOptions{Addrs: strings.Split(addrs, ","), NoSession: true, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return err
		}
		defer c.Close()
		return fn(ctx, c)
	}
	writeOpts := func() []lock.WriteOption {
		if ifVersion >= 0 {
			return []lock.WriteOption{lock.IfVersion(uint64(ifVersion))}
		}
		return nil
	}
	out := func(cmd *cobra.Command) func(string, ...any) {
		return func(format string, args ...any) { fmt.Fprintf(cmd.OutOrStdout(), format, args...) }
	}
	cmds := []*cobra.Command{
		{
			Use: "status", Short: "Each replica's view: state, leader, term, log indexes, sessions", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return withClient(cmd, func(ctx context.Context, c *lock.Client) error {
					p := out(cmd)
					var errs []error
					for _, a := range strings.Split(addrs, ",") {
						st, err := c.Status(ctx, a)
						if err != nil {
							errs = append(errs, fmt.Errorf("%s: %w", a, err))
							continue
						}
						p("%s id=%s state=%s leader=%s leader_grpc=%s term=%d first_index=%d last_index=%d applied=%d sessions=%d nodes=%d\n",
							a, st.ID, st.State, st.LeaderID, st.LeaderGRPCAddr, st.Term, st.FirstIndex, st.LastIndex, st.AppliedIndex, st.Sessions, st.Nodes)
						for _, m := range st.Members {
							p("  member %s raft=%s grpc=%s voter=%v\n", m.ID, m.RaftAddr, m.GRPCAddr, m.Voter)
						}
					}
					return errors.Join(errs...)
				})
			},
		},
		{
			Use: "ls PATH", Short: "List a node's children", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return withClient(cmd, func(ctx context.Context, c *lock.Client) error {
					kids, err := c.List(ctx, args[0])
					for _, k := range kids {
						out(cmd)("%s\n", k)
					}
					return err
				})
			},
		},
		{
			Use: "get PATH", Short: "Print a node's content and metadata", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return withClient(cmd, func(ctx context.Context, c *lock.Client) error {
					n, found, err := c.Get(ctx, args[0])
					if err != nil {
						return err
					}
					if !found {
						return fmt.Errorf("%w: %s", lock.ErrNotFound, args[0])
					}
					out(cmd)("version=%d ephemeral_owner=%d lock=%s generation=%d holders=%v mtime=%s\n%s\n",
						n.Version, n.EphemeralOwner, n.LockMode, n.LockGeneration, n.LockHolders, n.Mtime.Format(time.RFC3339Nano), strconv.Quote(string(n.Content)))
					return nil
				})
			},
		},
		{
			Use: "set PATH CONTENT", Short: "Write a node (--if-version for compare-and-set)", Args: cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				return withClient(cmd, func(ctx context.Context, c *lock.Client) error {
					v, err := c.Set(ctx, args[0], []byte(args[1]), writeOpts()...)
					if err == nil {
						out(cmd)("version=%d\n", v)
					}
					return err
				})
			},
		},
		{
			Use: "rm PATH", Short: "Delete a node (--if-version to make it conditional)", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return withClient(cmd, func(ctx context.Context, c *lock.Client) error {
					return c.Delete(ctx, args[0], writeOpts()...)
				})
			},
		},
		{
			Use: "add-voter ID RAFTADDR GRPCADDR", Short: "Add a running, empty replica as a voter", Args: cobra.ExactArgs(3),
			RunE: func(cmd *cobra.Command, args []string) error {
				return withClient(cmd, func(ctx context.Context, c *lock.Client) error {
					return c.AddVoter(ctx, args[0], args[1], args[2])
				})
			},
		},
		{
			Use: "remove-voter ID", Short: "Remove a replica from the cluster", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return withClient(cmd, func(ctx context.Context, c *lock.Client) error {
					return c.RemoveVoter(ctx, args[0])
				})
			},
		},
	}
	for _, c := range cmds {
		c.Flags().StringVar(&addrs, "addrs", envDefault("LOCK_ADDRS", "127.0.0.1:7070"), "lock-service gRPC addresses, comma-separated (env CELLAR_LOCK_ADDRS)")
		if c.Use == "set PATH CONTENT" || c.Use == "rm PATH" {
			c.Flags().Int64Var(&ifVersion, "if-version", -1, "apply only if the node is at this version (0: must not exist)")
		}
	}
	return cmds
}
