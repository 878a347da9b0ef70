package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"cellar/client"
	"cellar/dfs"
	"cellar/lock"
)

// clusterCommands are the admin and data commands of issue 6 (docs/cli.md),
// built on one session; `cellar shell` builds them afresh for every line.
func clusterCommands(s *session) []*cobra.Command {
	return []*cobra.Command{
		lsCmd(s), createCmd(s), describeCmd(s), dropCmd(s), familyCmd(s),
		putCmd(s), getCmd(s), scanCmd(s), deleteCmd(s), countCmd(s), incrCmd(s),
		splitCmd(s), flushCmd(s), compactCmd(s), statusCmd(s),
		importCmd(s), exportCmd(s),
	}
}

// addClusterCommands registers the admin and data commands and the shell on
// root, with the persistent --cluster flag.
func addClusterCommands(root *cobra.Command) {
	s := newSession()
	root.PersistentFlags().StringVar(&s.cluster, "cluster", s.cluster,
		"lock-service addresses of the cluster, comma-separated (CELLAR_CLUSTER)")
	for _, c := range clusterCommands(s) {
		c.GroupID = "data"
		root.AddCommand(c)
	}
	sh := shellCmd(s)
	sh.GroupID = "data"
	root.AddGroup(&cobra.Group{ID: "data", Title: "Tables and data (docs/cli.md):"})
	root.AddCommand(sh)
}

func lsCmd(s *session) *cobra.Command {
	return &cobra.Command{
		Use: "ls", Short: "List the tables, one per line", Args: argsRange(0, 0),
		RunE: s.withClient(func(ctx context.Context, cmd *cobra.Command, c *client.Client, _ []string) error {
			names, err := c.Admin().Tables(ctx)
			if err != nil {
				return err
			}
			for _, n := range names {
				fmt.Fprintln(cmd.OutOrStdout(), n)
			}
			return nil
		}),
	}
}

func createCmd(s *session) *cobra.Command {
	var splits []string
	cmd := &cobra.Command{
		Use:   "create TABLE FAMILY[:maxversions=N][:maxage=DURATION]... [--splits ROW,ROW,...]",
		Short: "Create a table with column families and GC rules",
		Long: `Create TABLE with the given column families. Each family may carry GC rules:
maxversions=N keeps the latest N versions of each column, maxage=DURATION drops
versions older than DURATION (Go syntax such as 90s or 36h, or whole days: 7d);
with both, a version is dropped when either rule drops it. A family without
rules keeps every version. --splits gives the initial tablet boundaries.`,
		Example: "  cellar create webtable contents:maxversions=3 anchor --splits com.m,org",
		Args:    argsRange(2, -1),
		RunE: s.withClient(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			fams := map[string]client.GCPolicy{}
			for _, a := range args[1:] {
				spec, err := parseFamilySpec(a)
				if err != nil {
					return err
				}
				if _, dup := fams[spec.name]; dup {
					return usagef("family %q given twice", spec.name)
				}
				fams[spec.name] = spec.policy
			}
			for _, k := range splits {
				if k == "" {
					return usagef("--splits: empty row key")
				}
			}
			return c.Admin().CreateTable(ctx, args[0], fams, splits...)
		}),
	}
	cmd.Flags().StringSliceVar(&splits, "splits", nil, "initial tablet boundaries, comma-separated")
	return cmd
}

func describeCmd(s *session) *cobra.Command {
	return &cobra.Command{
		Use: "describe TABLE", Short: "Describe a table: families with GC policies, tablets with row ranges and servers", Args: argsRange(1, 1),
		RunE: s.withClient(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			info, err := c.Admin().TableInfo(ctx, args[0])
			if err != nil {
				return tableErr(args[0], err)
			}
			return printTableInfo(cmd.OutOrStdout(), info)
		}),
	}
}

func printTableInfo(w interface{ Write([]byte) (int, error) }, info *client.TableInfo) error {
	fmt.Fprintf(w, "table %s (id %d)\n\n", info.Name, info.ID)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FAMILY\tGC POLICY")
	for _, f := range info.Families {
		fmt.Fprintf(tw, "%s\t%s\n", f.Name, policyString(f.GCPolicy))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLET\tSTART\tEND\tSERVER")
	for _, t := range info.Tablets {
		start, end := "(start)", "(end)"
		if t.StartKey != "" {
			start = escape([]byte(t.StartKey))
		}
		if t.EndKey != "" {
			end = escape([]byte(t.EndKey))
		}
		server := t.ServerAddr
		if server == "" {
			server = "(unassigned)"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", t.ID, start, end, server)
	}
	return tw.Flush()
}

func dropCmd(s *session) *cobra.Command {
	return &cobra.Command{
		Use: "drop TABLE", Short: "Delete a table and all its data", Args: argsRange(1, 1),
		RunE: s.withClient(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			return tableErr(args[0], c.Admin().DeleteTable(ctx, args[0]))
		}),
	}
}

func familyCmd(s *session) *cobra.Command {
	root := &cobra.Command{Use: "family", Short: "Add, delete or change a column family (add|delete|set)", Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("family: unknown subcommand %q: want add, delete or set", args[0])
			}
			return usagef("family: missing subcommand: add, delete or set")
		}}
	root.AddCommand(
		&cobra.Command{Use: "add TABLE FAMILY[:maxversions=N][:maxage=DURATION]", Short: "Add a column family", Args: argsRange(2, 2),
			RunE: s.withClient(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
				spec, err := parseFamilySpec(args[1])
				if err != nil {
					return err
				}
				return tableErr(args[0], c.Admin().CreateColumnFamily(ctx, args[0], spec.name, spec.policy))
			})},
		&cobra.Command{Use: "set TABLE FAMILY[:maxversions=N][:maxage=DURATION]", Short: "Replace a family's GC rules (none: keep every version)", Args: argsRange(2, 2),
			RunE: s.withClient(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
				spec, err := parseFamilySpec(args[1])
				if err != nil {
					return err
				}
				return tableErr(args[0], c.Admin().SetGCPolicy(ctx, args[0], spec.name, spec.policy))
			})},
		&cobra.Command{Use: "delete TABLE FAMILY", Short: "Drop a column family and its cells", Args: argsRange(2, 2),
			RunE: s.withClient(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
				spec, err := parseFamilySpec(args[1])
				if err != nil {
					return err
				}
				if spec.policy != nil {
					return usagef("family delete takes a family name without GC rules, not %q", args[1])
				}
				return tableErr(args[0], c.Admin().DeleteColumnFamily(ctx, args[0], spec.name))
			})},
	)
	return root
}

func splitCmd(s *session) *cobra.Command {
	return &cobra.Command{
		Use: "split TABLE ROW", Short: "Split the tablet holding ROW at ROW", Args: argsRange(2, 2),
		RunE: s.withClient(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			if err := checkRow(args[1]); err != nil {
				return err
			}
			return tableErr(args[0], c.Admin().SplitTable(ctx, args[0], args[1]))
		}),
	}
}

func flushCmd(s *session) *cobra.Command {
	return &cobra.Command{
		Use: "flush TABLE", Short: "Flush every tablet's memtable to SSTables", Args: argsRange(1, 1),
		RunE: s.withClient(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			return tableErr(args[0], c.Admin().FlushTable(ctx, args[0]))
		}),
	}
}

func compactCmd(s *session) *cobra.Command {
	var major bool
	cmd := &cobra.Command{
		Use: "compact TABLE [--major]", Short: "Compact every tablet (--major: into one SSTable, dropping deleted and expired cells)", Args: argsRange(1, 1),
		RunE: s.withClient(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			var p *progress
			if major {
				p = s.newProgress(cmd, "major compaction of "+args[0], "")
				defer p.Finish()
			}
			ctx, cancel := longCall(ctx)
			defer cancel()
			return tableErr(args[0], p.wait(func() error { return c.Admin().CompactTable(ctx, args[0], major) }))
		}),
	}
	cmd.Flags().BoolVar(&major, "major", false, "major compaction")
	return cmd
}

func statusCmd(s *session) *cobra.Command {
	var dfsMasters string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Master, lock service, tablet servers and file-system health",
		Long: `Prints the active and standby masters, the lock service's leader and members, the
tablet servers with their tablet counts and request rates, the number of
unassigned tablets, and the file system's health as the active master sees it
(--dfs ADDRS asks the dfs masters directly instead; cellar dfs fsck checks every
chunk).`,
		Args: argsRange(0, 0),
		RunE: s.withClient(func(ctx context.Context, cmd *cobra.Command, c *client.Client, _ []string) error {
			out := cmd.OutOrStdout()
			st, err := c.Admin().ClusterStatus(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "master: %s\n", st.MasterAddr)
			standbys := "none"
			if len(st.StandbyMasters) > 0 {
				standbys = strings.Join(st.StandbyMasters, ", ")
			}
			fmt.Fprintf(out, "standby masters: %s\n", standbys)
			printLockStatus(ctx, out, splitList(s.cluster))
			fmt.Fprintf(out, "unassigned tablets: %d\n\n", st.UnassignedTablets)
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TABLET SERVER\tADDRESS\tTABLETS\tREADS/S\tWRITES/S\tMEMTABLES\tHELD BACK")
			for _, sv := range st.Servers {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f\t%.1f\t%s\t%d\n", sv.ID, sv.Addr, sv.Tablets, sv.ReadsPerSecond, sv.WritesPerSecond,
					memtableUse(sv.MemtableBytes, sv.MemtableBudget), sv.WritesHeldBack)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintln(out)
			return printFSStatus(ctx, out, dfsMasters, st.FileSystem)
		}),
	}
	cmd.Flags().StringVar(&dfsMasters, "dfs", envDefault("DFS_MASTERS", ""), "dfs masters' addresses, comma-separated, to ask them for file-system health instead of the master (CELLAR_DFS_MASTERS)")
	return cmd
}

// printLockStatus prints the lock service's leader and members, as seen by
// the first replica that answers (a line saying so if none does).
func printLockStatus(ctx context.Context, out interface{ Write([]byte) (int, error) }, addrs []string) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	lc, err := lock.Dial(ctx, lock.ClientOptions{Addrs: addrs, NoSession: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Fprintf(out, "lock service: unknown (%v)\n", oneLine(rootCause(err)))
		return
	}
	defer lc.Close()
	var st lock.Status
	for _, a := range addrs {
		if st, err = lc.Status(ctx, a); err == nil {
			break
		}
	}
	if err != nil {
		fmt.Fprintf(out, "lock service: unknown (%v)\n", oneLine(rootCause(err)))
		return
	}
	leader := st.LeaderGRPCAddr
	if leader == "" {
		leader = "none (election in progress)"
	} else {
		leader = fmt.Sprintf("%s (%s, term %d)", leader, st.LeaderID, st.Term)
	}
	fmt.Fprintf(out, "lock service leader: %s\n", leader)
	var ms []string
	for _, m := range st.Members {
		v := ""
		if !m.Voter {
			v = ", non-voter"
		}
		ms = append(ms, fmt.Sprintf("%s (%s%s)", m.GRPCAddr, m.ID, v))
	}
	fmt.Fprintf(out, "lock service members: %s\n", strings.Join(ms, ", "))
}

// printFSStatus prints the dfs's health from its masters when they are
// given, else as the active master reported it (fromMaster).
func printFSStatus(ctx context.Context, out interface{ Write([]byte) (int, error) }, masters, fromMaster string) error {
	ms := splitList(masters)
	if len(ms) == 0 {
		if fromMaster == "" {
			fromMaster = "not reported by the master; give --dfs ADDRS (dfs masters) to ask the file system"
		}
		fmt.Fprintf(out, "file system: %s\n", fromMaster)
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	dc, err := dfs.Dial(ctx, ms, &dfs.ClientOptions{RetryTimeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("dfs at %s: %w", masters, err)
	}
	defer dc.Close()
	st, err := dc.Status(ctx)
	if err != nil {
		return fmt.Errorf("dfs status from %s: %w", masters, err)
	}
	fmt.Fprintf(out, "file system: %s\n", st.Summary())
	return nil
}

// memtableUse shows a server's memtables against its budget: "12.0 MiB of
// 1.0 GiB (1%)"; "-" before the master has its first status.
func memtableUse(bytes, budget int64) string {
	if budget <= 0 {
		return "-"
	}
	return fmt.Sprintf("%s of %s (%d%%)", humanBytes(bytes), humanBytes(budget), bytes*100/budget)
}

// humanBytes formats n bytes in binary units with one decimal.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/unit, 0
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[i])
}
