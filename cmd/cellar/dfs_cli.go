package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"cellar/dfs"
)

// dfsCmd is the admin CLI of the replicated file system, after `hdfs dfs`
// and `hdfs fsck`.
func dfsCmd() *cobra.Command {
	var masters string
	root := &cobra.Command{Use: "dfs", Short: "File system commands: ls, put, get, cat, rm, mv, stat, fsck, status"}
	root.PersistentFlags().StringVar(&masters, "masters", envDefault("DFS_MASTERS", "127.0.0.1:7400"), "dfs master replicas' gRPC addresses, comma-separated (CELLAR_DFS_MASTERS)")
	// with dials the file system, runs f and closes the client.
	with := func(f func(ctx context.Context, c *dfs.Client, cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			ms := splitList(masters)
			if len(ms) == 0 {
				return errors.New("--masters is empty")
			}
			c, err := dfs.Dial(cmd.Context(), ms, &dfs.ClientOptions{RetryTimeout: 10 * time.Second})
			if err != nil {
				return err
			}
			defer c.Close()
			return f(cmd.Context(), c, cmd, args)
		}
	}
	root.AddCommand(
		&cobra.Command{Use: "ls [dir]", Short: "List a directory", Args: cobra.MaximumNArgs(1),
			RunE: with(func(ctx context.Context, c *dfs.Client, cmd *cobra.Command, args []string) error {
				dir := ""
				if len(args) == 1 {
					dir = remotePath(args[0])
				}
				ents, err := c.List(ctx, dir)
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				for _, e := range ents {
					if e.IsDir {
						fmt.Fprintf(tw, "d\t-\t-\t%s/\n", e.Name)
					} else {
						fmt.Fprintf(tw, "-\t%d\t%s\t%s\n", e.Size, e.ModTime.UTC().Format(time.RFC3339), e.Name)
					}
				}
				return tw.Flush()
			})},
		&cobra.Command{Use: "put <local> <remote>", Short: "Copy a local file into the file system", Args: cobra.ExactArgs(2),
			RunE: with(func(ctx context.Context, c *dfs.Client, cmd *cobra.Command, args []string) error {
				in, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer in.Close()
				name := remotePath(args[1])
				f, err := c.Create(ctx, name)
				if err != nil {
					return err
				}
				_, err = io.CopyBuffer(f, in, make([]byte, 1<<20))
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					// Leave nothing half-written behind.
					if rerr := c.Remove(ctx, name); rerr != nil {
						return fmt.Errorf("%w (and removing the partial %s failed: %v)", err, name, rerr)
					}
					return err
				}
				return nil
			})},
		&cobra.Command{Use: "get <remote> <local>", Short: "Copy a file out of the file system", Args: cobra.ExactArgs(2),
			RunE: with(func(ctx context.Context, c *dfs.Client, cmd *cobra.Command, args []string) error {
				// Open the remote file first and write to a temporary local
				// file renamed into place, so a failure leaves no partial copy.
				r, err := c.Open(ctx, remotePath(args[0]))
				if err != nil {
					return err
				}
				defer r.Close()
				out, err := os.CreateTemp(filepath.Dir(args[1]), "."+filepath.Base(args[1])+".part-*")
				if err != nil {
					return err
				}
				_, err = io.CopyBuffer(out, io.NewSectionReader(r, 0, r.Size()), make([]byte, 1<<20))
				if cerr := out.Close(); err == nil {
					err = cerr
				}
				if err == nil {
					err = os.Rename(out.Name(), args[1])
				}
				if err != nil {
					os.Remove(out.Name())
				}
				return err
			})},
		&cobra.Command{Use: "cat <remote>", Short: "Print a file", Args: cobra.ExactArgs(1),
			RunE: with(func(ctx context.Context, c *dfs.Client, cmd *cobra.Command, args []string) error {
				return copyOut(ctx, c, remotePath(args[0]), cmd.OutOrStdout())
			})},
		&cobra.Command{Use: "rm <path>", Short: "Remove a file or empty directory", Args: cobra.ExactArgs(1),
			RunE: with(func(ctx context.Context, c *dfs.Client, cmd *cobra.Command, args []string) error {
				return c.Remove(ctx, remotePath(args[0]))
			})},
		&cobra.Command{Use: "mv <old> <new>", Short: "Rename atomically", Args: cobra.ExactArgs(2),
			RunE: with(func(ctx context.Context, c *dfs.Client, cmd *cobra.Command, args []string) error {
				return c.Rename(ctx, remotePath(args[0]), remotePath(args[1]))
			})},
		&cobra.Command{Use: "stat <path>", Short: "Describe a file or directory", Args: cobra.ExactArgs(1),
			RunE: with(func(ctx context.Context, c *dfs.Client, cmd *cobra.Command, args []string) error {
				fi, err := c.Stat(ctx, remotePath(args[0]))
				if err != nil {
					return err
				}
				kind := "file"
				if fi.IsDir {
					kind = "directory"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "name: %s\ntype: %s\nsize: %d\nmodified: %s\n", fi.Name, kind, fi.Size, fi.ModTime.UTC().Format(time.RFC3339Nano))
				return nil
			})},
		&cobra.Command{Use: "fsck [prefix]", Short: "List under-replicated, corrupt or missing chunks; exit 2 when data is missing", Args: cobra.MaximumNArgs(1),
			RunE: with(func(ctx context.Context, c *dfs.Client, cmd *cobra.Command, args []string) error {
				prefix := ""
				if len(args) == 1 {
					prefix = remotePath(args[0])
				}
				r, err := c.Fsck(ctx, prefix)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				for _, p := range r.Problems {
					state := "UNDER-REPLICATED"
					if p.Missing {
						state = "MISSING"
					}
					fmt.Fprintf(out, "%s\tchunk %d (%s)\t%d/%d replicas\t%s\n", p.Path, p.ChunkIndex, p.Handle, p.LiveReplicas, p.Target, state)
				}
				fmt.Fprintf(out, "%d files, %d chunks, %d with problems\n", r.Files, r.Chunks, len(r.Problems))
				if r.Missing() {
					return &exitError{code: 2, err: errors.New("fsck: data is missing")}
				}
				if len(r.Problems) == 0 {
					fmt.Fprintln(out, "HEALTHY")
				}
				return nil
			})},
		&cobra.Command{Use: "status [chunkserver-addr]", Short: "Print the master's (or one chunkserver's) state", Args: cobra.MaximumNArgs(1),
			RunE: with(func(ctx context.Context, c *dfs.Client, cmd *cobra.Command, args []string) error {
				out := cmd.OutOrStdout()
				if len(args) == 1 {
					s, err := c.ChunkserverStatus(ctx, args[0])
					if err != nil {
						return err
					}
					fmt.Fprintf(out, "id: %s\naddress: %s\nrack: %s\nchunks: %d\nused: %d\ncapacity: %d\nhealthy: %v %s\nlast heartbeat: %s\ncorrupt found: %d\nscrubbed bytes: %d\n",
						s.ID, s.Address, s.Rack, s.Chunks, s.UsedBytes, s.CapacityBytes, s.Healthy, s.UnhealthyReason,
						s.LastHeartbeat.UTC().Format(time.RFC3339), s.CorruptFound, s.ScrubbedBytes)
					return nil
				}
				st, err := c.Status(ctx)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "leader: %s\nfiles: %d\nchunks: %d\nunder-replicated: %d\nmissing: %d\nreplications in flight: %d\n",
					st.Leader, st.Files, st.Chunks, st.UnderReplicated, st.Missing, st.ReplicationsInFlight)
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "SERVER\tADDRESS\tRACK\tLIVE\tHEALTHY\tCHUNKS\tUSED\tLAST HEARTBEAT")
				for _, s := range st.Servers {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%v\t%d\t%d\t%s\n", s.ID, s.Address, s.Rack, s.Live, s.Healthy, s.Chunks, s.UsedBytes,
						s.LastHeartbeat.UTC().Format(time.RFC3339))
				}
				return tw.Flush()
			})},
	)
	return root
}

// remotePath accepts the absolute form users of hdfs dfs type
// ("/a/b", "/") for the file system's relative names ("a/b", "").
func remotePath(p string) string { return strings.TrimPrefix(p, "/") }

// copyOut streams a dfs file to w in 1 MiB reads.
func copyOut(ctx context.Context, c *dfs.Client, name string, w io.Writer) error {
	r, err := c.Open(ctx, name)
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = io.CopyBuffer(w, io.NewSectionReader(r, 0, r.Size()), make([]byte, 1<<20))
	return err
}
