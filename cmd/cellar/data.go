package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"

	"github.com/spf13/cobra"

	"cellar/client"
	"cellar/internal/keys"
	"cellar/tablet"
)

func putCmd(s *session) *cobra.Command {
	var ts int64
	var valueFile string
	var maxValue int
	cmd := &cobra.Command{
		Use:   "put TABLE ROW FAMILY:QUALIFIER VALUE [--ts MICROS]",
		Short: "Write one cell",
		Long: `Write VALUE into the cell FAMILY:QUALIFIER of ROW, at timestamp --ts (microseconds
since the epoch; default: the server's clock). Arguments are taken literally, as
bytes. --value-file FILE reads the value from FILE ('-' for standard input)
instead of the VALUE argument.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if valueFile != "" {
				return argsRange(3, 3)(cmd, args)
			}
			return argsRange(4, 4)(cmd, args)
		},
		RunE: s.withClient(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			if err := checkRow(args[1]); err != nil {
				return err
			}
			col, err := parseColumn(args[2], true)
			if err != nil {
				return err
			}
			t := client.ServerTime
			if cmd.Flags().Changed("ts") {
				if ts < 0 {
					return usagef("--ts %d: want a non-negative number of microseconds", ts)
				}
				t = client.Timestamp(ts)
			}
			var value []byte
			if valueFile != "" {
				if value, err = readValueFile(s.input(cmd), valueFile); err != nil {
					return err
				}
			} else {
				value = []byte(args[3])
			}
			if len(value) > maxValue {
				return fmt.Errorf("%w: value is %d bytes, over the limit of %d", client.ErrLimit, len(value), maxValue)
			}
			m := client.NewMutation()
			m.Set(col.family, col.qualifier, t, value)
			return tableErr(args[0], c.Open(args[0]).Apply(ctx, args[1], m))
		}),
	}
	cmd.Flags().Int64Var(&ts, "ts", 0, "cell timestamp in microseconds (default: assigned by the server)")
	cmd.Flags().StringVar(&valueFile, "value-file", "", "read the value from this file ('-': standard input) instead of VALUE")
	cmd.Flags().IntVar(&maxValue, "max-value-size", defaultMaxValue, "largest value accepted, in bytes (the tablet servers' limit)")
	return cmd
}

// defaultMaxValue is the tablet servers' default value limit
// (tablet.DefaultMaxValueSize); put and import check it before sending.
const defaultMaxValue = tablet.DefaultMaxValueSize

// checkRow rejects a row key the store would refuse, before the key
// (possibly 64 KiB of it) ends up quoted in a server's error message.
func checkRow(row string) error {
	if err := keys.ValidateRow([]byte(row)); err != nil {
		if errors.Is(err, keys.ErrLimit) {
			return fmt.Errorf("%w: row key is %d bytes, over the limit of %d", client.ErrLimit, len(row), keys.MaxRowLen)
		}
		return fmt.Errorf("%w: empty row key", client.ErrInvalidArgument)
	}
	return nil
}

func readValueFile(stdin io.Reader, name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(stdin)
	}
	return os.ReadFile(name)
}

// readFlags are the flags get and scan share.
type readFlags struct {
	columns  []string
	versions int
	output   string
}

func (f *readFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringSliceVar(&f.columns, "columns", nil, "only these columns: FAMILY or FAMILY:QUALIFIER, comma-separated")
	cmd.Flags().IntVar(&f.versions, "versions", 0, "at most N versions of each column, latest first (default: every version kept)")
	cmd.Flags().StringVarP(&f.output, "output", "o", "text", "text (ROW FAMILY:QUALIFIER @TIMESTAMP VALUE) or json (one object per cell, as export)")
}

// filter builds the read filter, checking that every family named exists
// in table (a filter on a missing family would silently match nothing).
func (f *readFlags) filter(ctx context.Context, c *client.Client, table string) (client.Filter, error) {
	if f.versions < 0 {
		return nil, usagef("--versions %d: want a positive number (0: every version)", f.versions)
	}
	var cols []column
	for _, spec := range f.columns {
		col, err := parseColumn(spec, false)
		if err != nil {
			return nil, err
		}
		cols = append(cols, col)
	}
	var parts []client.Filter
	if len(cols) > 0 {
		info, err := c.Admin().TableInfo(ctx, table)
		if err != nil {
			return nil, tableErr(table, err)
		}
		var alts []client.Filter
		for _, col := range cols {
			if !slices.ContainsFunc(info.Families, func(fi client.FamilyInfo) bool { return fi.Name == col.family }) {
				return nil, fmt.Errorf("%w: family %q is not in table %q", client.ErrUnknownFamily, col.family, table)
			}
			if col.hasQualifier {
				// [q, q+"\x00") is exactly q, for any bytes.
				alts = append(alts, client.ColumnRangeFilter(col.family, col.qualifier, col.qualifier+"\x00"))
			} else {
				alts = append(alts, client.FamilyFilter(col.family))
			}
		}
		if len(alts) == 1 {
			parts = append(parts, alts[0])
		} else {
			parts = append(parts, client.InterleaveFilters(alts...))
		}
	}
	if f.versions > 0 {
		parts = append(parts, client.LatestNFilter(f.versions))
	}
	switch len(parts) {
	case 0:
		return nil, nil
	case 1:
		return parts[0], nil
	}
	return client.ChainFilters(parts...), nil
}

func readOpts(f client.Filter, more ...client.ReadOption) []client.ReadOption {
	if f != nil {
		more = append(more, client.RowFilter(f))
	}
	return more
}

func getCmd(s *session) *cobra.Command {
	var rf readFlags
	cmd := &cobra.Command{
		Use:   "get TABLE ROW [--columns FAMILY[:QUALIFIER],...] [--versions N]",
		Short: "Print one row's cells",
		Args:  argsRange(2, 2),
		RunE: s.withClient(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			bw := bufio.NewWriter(cmd.OutOrStdout())
			cw, err := newCellWriter(bw, rf.output)
			if err != nil {
				return err
			}
			if err := checkRow(args[1]); err != nil {
				return err
			}
			f, err := rf.filter(ctx, c, args[0])
			if err != nil {
				return err
			}
			row, err := c.Open(args[0]).ReadRow(ctx, args[1], readOpts(f)...)
			if err != nil {
				return tableErr(args[0], err)
			}
			for _, cell := range rowCells(row) {
				if err := cw.write(cell); err != nil {
					return err
				}
			}
			return bw.Flush()
		}),
	}
	rf.register(cmd)
	return cmd
}

func scanCmd(s *session) *cobra.Command {
	var rf readFlags
	var start, end, prefix string
	var limit int64
	cmd := &cobra.Command{
		Use:   "scan TABLE [--start ROW] [--end ROW] [--prefix P] [--limit N] [--columns ...] [--versions N]",
		Short: "Print the cells of a range of rows, in row order",
		Args:  argsRange(1, 1),
		RunE: s.withClient(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			bw := bufio.NewWriter(cmd.OutOrStdout())
			cw, err := newCellWriter(bw, rf.output)
			if err != nil {
				return err
			}
			if prefix != "" && (start != "" || end != "") {
				return usagef("--prefix cannot be combined with --start or --end")
			}
			if limit < 0 {
				return usagef("--limit %d: want a positive number of rows (0: no limit)", limit)
			}
			rs := client.NewRange(start, end)
			if prefix != "" {
				rs = client.PrefixRange(prefix)
			}
			f, err := rf.filter(ctx, c, args[0])
			if err != nil {
				return err
			}
			var werr error
			ctx, cancel := longCall(ctx)
			defer cancel()
			err = c.Open(args[0]).ReadRows(ctx, rs, func(r client.Row) bool {
				for _, cell := range rowCells(r) {
					if werr = cw.write(cell); werr != nil {
						return false
					}
				}
				return true
			}, readOpts(f, client.LimitRows(limit))...)
			if werr != nil {
				return werr
			}
			// What was read is printed even if the scan then failed.
			if ferr := bw.Flush(); err == nil {
				err = ferr
			}
			return tableErr(args[0], err)
		}),
	}
	rf.register(cmd)
	f := cmd.Flags()
	f.StringVar(&start, "start", "", "first row (inclusive)")
	f.StringVar(&end, "end", "", "end row (exclusive; default: the end of the table)")
	f.StringVar(&prefix, "prefix", "", "only rows starting with this prefix")
	f.Int64Var(&limit, "limit", 0, "at most N rows (0: no limit)")
	return cmd
}

func deleteCmd(s *session) *cobra.Command {
	return &cobra.Command{
		Use:   "delete TABLE ROW [FAMILY[:QUALIFIER]]",
		Short: "Delete a row, a family of a row, or a column of a row",
		Args:  argsRange(2, 3),
		RunE: s.withClient(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			if err := checkRow(args[1]); err != nil {
				return err
			}
			m := client.NewMutation()
			if len(args) == 2 {
				m.DeleteRow()
			} else {
				col, err := parseColumn(args[2], false)
				if err != nil {
					return err
				}
				// The server accepts deletes in families it does not know
				// (they delete nothing); say so instead.
				if err := requireFamily(ctx, c, args[0], col.family); err != nil {
					return err
				}
				if col.hasQualifier {
					m.DeleteCellsInColumn(col.family, col.qualifier)
				} else {
					m.DeleteCellsInFamily(col.family)
				}
			}
			return tableErr(args[0], c.Open(args[0]).Apply(ctx, args[1], m))
		}),
	}
}

// requireFamily fails with ErrUnknownFamily unless table has family.
func requireFamily(ctx context.Context, c *client.Client, table, family string) error {
	info, err := c.Admin().TableInfo(ctx, table)
	if err != nil {
		return tableErr(table, err)
	}
	for _, f := range info.Families {
		if f.Name == family {
			return nil
		}
	}
	return fmt.Errorf("%w: family %q is not in table %q", client.ErrUnknownFamily, family, table)
}

func countCmd(s *session) *cobra.Command {
	return &cobra.Command{
		Use: "count TABLE", Short: "Print the number of rows", Args: argsRange(1, 1),
		RunE: s.withClient(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			p := s.newProgress(cmd, "counting rows of "+args[0], "rows")
			defer p.Finish()
			var n int64
			// One cell per row, without its value: enough to see the row.
			f := client.ChainFilters(client.CellsPerRowLimitFilter(1), client.StripValueFilter())
			ctx, cancel := longCall(ctx)
			defer cancel()
			err := c.Open(args[0]).ReadRows(ctx, client.InfiniteRange(""), func(client.Row) bool {
				n++
				p.Add(1)
				return true
			}, client.RowFilter(f))
			if err != nil {
				return tableErr(args[0], err)
			}
			p.Finish()
			fmt.Fprintln(cmd.OutOrStdout(), n)
			return nil
		}),
	}
}

func incrCmd(s *session) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "incr TABLE ROW FAMILY:QUALIFIER [DELTA]",
		Short: "Add DELTA (default 1) to a 64-bit big-endian counter cell and print the new value",
		Args:  argsRange(3, 4),
		RunE: s.withClient(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			if err := checkRow(args[1]); err != nil {
				return err
			}
			col, err := parseColumn(args[2], true)
			if err != nil {
				return err
			}
			delta := int64(1)
			if len(args) == 4 {
				if delta, err = strconv.ParseInt(args[3], 10, 64); err != nil {
					return usagef("delta %q: want a 64-bit integer", args[3])
				}
			}
			m := client.NewReadModifyWrite()
			m.Increment(col.family, col.qualifier, delta)
			row, err := c.Open(args[0]).ApplyReadModifyWrite(ctx, args[1], m)
			if err != nil {
				return tableErr(args[0], err)
			}
			for _, it := range row[col.family] {
				if it.Qualifier() == col.qualifier && len(it.Value) == 8 {
					fmt.Fprintln(cmd.OutOrStdout(), int64(binary.BigEndian.Uint64(it.Value)))
					return nil
				}
			}
			return fmt.Errorf("incr: the server returned no 8-byte value for %s", col)
		}),
	}
	// A negative DELTA is an argument, not a flag.
	cmd.Flags().SetInterspersed(false)
	return cmd
}
