package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"cellar/client"
	"cellar/dfs"
	"cellar/dfs/local"
	"cellar/mapreduce"
)

// jobFlags are the flags every `cellar job` subcommand shares.
type jobFlags struct {
	cluster    string
	dfsMasters string
	workers    int
	reducers   int
	memory     int64
	tmp        string
	attempts   int
	quiet      bool
}

// jobCmd is `cellar job ...`: the built-in MapReduce jobs over tables
// (HBase's RowCounter, CopyTable, Export, Import and ImportTsv), run by the
// local runner of package mapreduce.
func jobCmd() *cobra.Command {
	var f jobFlags
	root := &cobra.Command{Use: "job", Short: "MapReduce jobs over tables: rowcount, copytable, export, import, importtsv"}
	pf := root.PersistentFlags()
	pf.StringVar(&f.cluster, "cluster", envDefault("CLUSTER", "127.0.0.1:7070"), "lock-service addresses, comma-separated (CELLAR_CLUSTER)")
	pf.StringVar(&f.dfsMasters, "dfs-masters", envDefault("DFS_MASTERS", "127.0.0.1:7400"), "dfs master addresses for dfs: paths, comma-separated (CELLAR_DFS_MASTERS)")
	pf.IntVar(&f.workers, "workers", 0, "map and reduce tasks run at once (default: the number of CPUs)")
	pf.IntVar(&f.reducers, "reducers", 4, "reduce partitions (output files of export)")
	pf.Int64Var(&f.memory, "memory", 0, "shuffle memory budget in bytes before spilling to disk (default 64 MiB)")
	pf.StringVar(&f.tmp, "tmp", "", "local directory for spill files (default the system's)")
	pf.IntVar(&f.attempts, "attempts", 0, "executions of a failing task before the job fails (default 4)")
	pf.BoolVar(&f.quiet, "quiet", false, "no progress bar even on a terminal")

	var start, end string
	var cells bool
	rowcount := &cobra.Command{Use: "rowcount TABLE", Short: "Count a table's rows (and cells per family with --cells)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.withClient(cmd, func(ctx context.Context, cl *client.Client) error {
				in := mapreduce.TableInput{Client: cl, Table: args[0], Start: start, End: end}
				job, counts := mapreduce.RowCountJob(in, cells)
				res, err := f.run(ctx, cmd, job)
				if err != nil {
					return err
				}
				c, err := counts()
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				fmt.Fprintf(out, "rows\t%d\n", c.Rows)
				if cells {
					fams := make([]string, 0, len(c.Cells))
					for fam := range c.Cells {
						fams = append(fams, fam)
					}
					slices.Sort(fams)
					for _, fam := range fams {
						fmt.Fprintf(out, "cells\t%s\t%d\n", fam, c.Cells[fam])
					}
				}
				summary(out, c.Rows, c.Bytes, res)
				return nil
			})
		}}
	rowcount.Flags().BoolVar(&cells, "cells", false, "also count cell versions per family")
	rangeFlags(rowcount, &start, &end)

	copytable := &cobra.Command{Use: "copytable SRC DST", Short: "Copy rows (every version, with timestamps) into an existing table with the same families", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.withClient(cmd, func(ctx context.Context, cl *client.Client) error {
				job := mapreduce.CopyTableJob(mapreduce.TableInput{Client: cl, Table: args[0], Start: start, End: end},
					&mapreduce.TableOutput{Client: cl, Table: args[1]})
				job.NumReducers = f.reducers
				res, err := f.run(ctx, cmd, job)
				if err != nil {
					return err
				}
				summary(cmd.OutOrStdout(), res.OutputRecords, res.ShuffleBytes, res)
				return nil
			})
		}}
	rangeFlags(copytable, &start, &end)

	export := &cobra.Command{Use: "export TABLE DIR", Short: "Write a table's rows to record files in DIR (local, or dfs:PATH)", Args: cobra.ExactArgs(2),
		Long: "Writes DIR/part-NNNNN record files (docs/mapreduce.md, \"Export files\"): one record per row, key = row key, value = every cell version with its timestamp; `import` restores every byte. DIR must be empty or absent.",
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.withClient(cmd, func(ctx context.Context, cl *client.Client) error {
				fs, dir, closeFS, err := f.openPath(ctx, args[1], true)
				if err != nil {
					return err
				}
				defer closeFS()
				job := mapreduce.ExportJob(mapreduce.TableInput{Client: cl, Table: args[0], Start: start, End: end}, mapreduce.FileOutput{FS: fs, Dir: dir})
				job.NumReducers = f.reducers
				res, err := f.run(ctx, cmd, job)
				if err != nil {
					return err
				}
				summary(cmd.OutOrStdout(), res.MapInputRecords, res.ShuffleBytes, res)
				return nil
			})
		}}
	rangeFlags(export, &start, &end)

	importC := &cobra.Command{Use: "import TABLE DIR", Short: "Write the rows of export files in DIR (local, or dfs:PATH) into TABLE", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.withClient(cmd, func(ctx context.Context, cl *client.Client) error {
				fs, dir, closeFS, err := f.openPath(ctx, args[1], false)
				if err != nil {
					return err
				}
				defer closeFS()
				job := mapreduce.ImportJob(mapreduce.FileInput{FS: fs, Paths: []string{dir}}, &mapreduce.TableOutput{Client: cl, Table: args[0]})
				job.NumReducers = f.reducers
				res, err := f.run(ctx, cmd, job)
				if err != nil {
					return err
				}
				summary(cmd.OutOrStdout(), res.OutputRecords, res.ShuffleBytes, res)
				return nil
			})
		}}

	var columns string
	importtsv := &cobra.Command{Use: "importtsv TABLE FILE", Short: "Import tab-separated lines of FILE (local, or dfs:PATH) as rows", Args: cobra.ExactArgs(2),
		Long: "Each line of FILE is one row; --columns names its fields in order: ROW (the row key) and FAMILY:QUALIFIER for each cell. Cells are written at the job's start time. Lines with another number of fields or an empty row key are skipped, counted and listed.",
		RunE: func(cmd *cobra.Command, args []string) error {
			cols, err := mapreduce.ParseTSVColumns(columns)
			if err != nil {
				return err
			}
			return f.withClient(cmd, func(ctx context.Context, cl *client.Client) error {
				fs, file, closeFS, err := f.openPath(ctx, args[1], false)
				if err != nil {
					return err
				}
				defer closeFS()
				job, report := mapreduce.ImportTSVJob(mapreduce.FileInput{FS: fs, Paths: []string{file}}, cols, &mapreduce.TableOutput{Client: cl, Table: args[0]})
				job.NumReducers = f.reducers
				res, err := f.run(ctx, cmd, job)
				if err != nil {
					return err
				}
				rep := report()
				out := cmd.OutOrStdout()
				for i, b := range rep.First {
					if i == 10 {
						fmt.Fprintf(out, "bad line\t...\n")
						break
					}
					fmt.Fprintf(out, "bad line\tbyte offset %d\t%s\n", b.Offset, b.Reason)
				}
				fmt.Fprintf(out, "bad lines\t%d\n", rep.BadLines)
				summary(out, res.OutputRecords-rep.BadLines, res.ShuffleBytes, res)
				return nil
			})
		}}
	importtsv.Flags().StringVar(&columns, "columns", "", "the fields of a line: ROW,FAMILY:QUALIFIER,... (required)")
	importtsv.MarkFlagRequired("columns") //nolint:errcheck // the flag exists

	root.AddCommand(rowcount, copytable, export, importC, importtsv)
	return root
}

func rangeFlags(cmd *cobra.Command, start, end *string) {
	cmd.Flags().StringVar(start, "start", "", "first row (inclusive; default the table's first)")
	cmd.Flags().StringVar(end, "end", "", "row to stop before (exclusive; default the table's end)")
}

// withClient dials the cluster, runs fn and closes the client.
func (f *jobFlags) withClient(cmd *cobra.Command, fn func(ctx context.Context, cl *client.Client) error) error {
	addrs := splitList(f.cluster)
	if len(addrs) == 0 {
		return errors.New("--cluster is empty")
	}
	ctx := cmd.Context()
	cl, err := client.Dial(ctx, addrs, client.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return err
	}
	defer cl.Close()
	return fn(ctx, cl)
}

// openPath opens the file system holding p: "dfs:PATH" is PATH on the
// replicated dfs (--dfs-masters), anything else a local path. It returns
// the FS, p's name in it, and a close function.
func (f *jobFlags) openPath(ctx context.Context, p string, create bool) (dfs.FS, string, func(), error) {
	if rest, ok := strings.CutPrefix(p, "dfs:"); ok {
		name := strings.Trim(rest, "/")
		if err := dfs.CheckPath(name, false); err != nil {
			return nil, "", nil, err
		}
		ms := splitList(f.dfsMasters)
		if len(ms) == 0 {
			return nil, "", nil, errors.New("--dfs-masters is empty")
		}
		c, err := dfs.Dial(ctx, ms, &dfs.ClientOptions{RetryTimeout: 30 * time.Second})
		if err != nil {
			return nil, "", nil, err
		}
		return c, name, func() { c.Close() }, nil
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return nil, "", nil, err
	}
	if !create {
		if _, err := os.Stat(abs); err != nil {
			return nil, "", nil, err
		}
	}
	fs, err := local.Open(filepath.Dir(abs))
	if err != nil {
		return nil, "", nil, err
	}
	return fs, filepath.Base(abs), func() {}, nil
}

// run runs job with the flags' options and, on a terminal, a progress bar
// on stderr.
func (f *jobFlags) run(ctx context.Context, cmd *cobra.Command, job mapreduce.Job) (mapreduce.Result, error) {
	opts := &mapreduce.RunOptions{Workers: f.workers, MemoryBudget: f.memory, TempDir: f.tmp, MaxAttempts: f.attempts,
		Logger: slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if err := opts.Validate(); err != nil {
		return mapreduce.Result{}, err
	}
	if !f.quiet && isTerminal(cmd.ErrOrStderr()) {
		bar := progressbar.NewOptions(-1, progressbar.OptionSetWriter(cmd.ErrOrStderr()), progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
		var lastMax int
		opts.Progress = func(p mapreduce.Progress) {
			total := p.Splits + p.Partitions
			if total != lastMax {
				bar.ChangeMax(total)
				lastMax = total
			}
			bar.Describe(fmt.Sprintf("%s: %d/%d splits, %d/%d partitions, %d rows read", p.Phase, p.SplitsDone, p.Splits, p.PartitionsDone, p.Partitions, p.RecordsRead))
			bar.Set(p.SplitsDone + p.PartitionsDone) //nolint:errcheck // display only
			if p.Done {
				bar.Finish() //nolint:errcheck // display only
			}
		}
	}
	return mapreduce.Run(ctx, job, opts)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// summary prints the closing lines every job prints.
func summary(w io.Writer, rows, bytes int64, res mapreduce.Result) {
	secs := res.Duration.Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(rows) / secs
	}
	fmt.Fprintf(w, "summary\trows %d, bytes %d, duration %s, %.0f rows/s (%d splits, %d failed attempts)\n",
		rows, bytes, res.Duration.Round(time.Millisecond), rate, res.Splits, res.FailedMapAttempts+res.FailedReduceAttempts)
}
