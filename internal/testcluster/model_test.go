package testcluster_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	"cellar/client"
	"cellar/internal/filter"
	"cellar/internal/testcluster"
	datapb "cellar/proto/cellar/data/v1"
)

// The reference model: rows of cells, mutations applied at once (a delete
// removes what exists, which is what "tombstones mask older writes" means
// to a reader), GC applied at read time, then the filter.
type modelCell struct {
	fam, qual string
	ts        int64
	val       string
}

type model struct {
	rows map[string]map[[3]string]string // (fam, qual, ts) -> value
}

func cellKey(fam, qual string, ts int64) [3]string {
	return [3]string{fam, qual, strconv.FormatInt(ts, 10)}
}

func (m *model) row(r string) map[[3]string]string {
	if m.rows[r] == nil {
		m.rows[r] = map[[3]string]string{}
	}
	return m.rows[r]
}

// mutation is one random mutation in both forms.
type mutation struct {
	kind      int // 0 set, 1 delete cell, 2 delete column range, 3 delete family, 4 delete row
	fam, qual string
	ts        int64
	start     int64
	end       int64
	val       string
}

func (m *model) apply(row string, muts []mutation) {
	cells := m.row(row)
	for _, mu := range muts {
		switch mu.kind {
		case 0:
			cells[cellKey(mu.fam, mu.qual, mu.ts)] = mu.val
		case 1:
			delete(cells, cellKey(mu.fam, mu.qual, mu.ts))
		case 2:
			for k := range cells {
				ts, _ := strconv.ParseInt(k[2], 10, 64)
				if k[0] == mu.fam && k[1] == mu.qual && ts >= mu.start && (mu.end == 0 || ts < mu.end) {
					delete(cells, k)
				}
			}
		case 3:
			for k := range cells {
				if k[0] == mu.fam {
					delete(cells, k)
				}
			}
		case 4:
			clear(cells)
		}
	}
}

// visible returns a row's cells in cell order after GC: family "b" keeps
// two versions per column.
func (m *model) visible(row string) []filter.Cell {
	var out []filter.Cell
	for k, v := range m.rows[row] {
		ts, _ := strconv.ParseInt(k[2], 10, 64)
		out = append(out, filter.Cell{Family: k[0], Qualifier: []byte(k[1]), Timestamp: ts, Value: []byte(v)})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Family != b.Family {
			return a.Family < b.Family
		}
		if c := bytes.Compare(a.Qualifier, b.Qualifier); c != 0 {
			return c < 0
		}
		return a.Timestamp > b.Timestamp
	})
	var kept []filter.Cell
	n := 0
	for i, c := range out {
		if i > 0 && c.Family == out[i-1].Family && bytes.Equal(c.Qualifier, out[i-1].Qualifier) {
			n++
		} else {
			n = 0
		}
		if c.Family == "b" && n >= 2 {
			continue
		}
		kept = append(kept, c)
	}
	return kept
}

func (m *model) read(row string, f *datapb.RowFilter) []filter.Cell {
	cf, err := filter.Compile(f)
	if err != nil {
		panic(err)
	}
	return cf.Apply([]byte(row), m.visible(row))
}

// Random generators, each returning the client and the wire form.
var (
	modelRows = func() []string {
		var rs []string
		for i := range 24 {
			rs = append(rs, fmt.Sprintf("r%02d", i))
		}
		return rs
	}()
	modelQuals = []string{"x", "y", "z", "\x00q"}
	modelRegex = []string{".*", "x", "[xy]", "\\x00q", "r0.", "r1[0-5]", "v.*1", "a", "b", ""}
)

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func genMutations(r *rand.Rand) (*client.Mutation, []mutation) {
	cm := client.NewMutation()
	var ms []mutation
	for range 1 + r.IntN(4) {
		var mu mutation
		switch p := r.IntN(20); {
		case p < 13:
			mu = mutation{kind: 0, fam: pick(r, []string{"a", "b"}), qual: pick(r, modelQuals), ts: 1 + r.Int64N(8), val: fmt.Sprintf("v%d", r.IntN(100))}
			cm.Set(mu.fam, mu.qual, client.Timestamp(mu.ts), []byte(mu.val))
		case p < 15:
			mu = mutation{kind: 1, fam: "a", qual: pick(r, modelQuals), ts: 1 + r.Int64N(8)}
			cm.DeleteCell(mu.fam, mu.qual, client.Timestamp(mu.ts))
		case p < 17:
			mu = mutation{kind: 2, fam: "a", qual: pick(r, modelQuals)}
			if r.IntN(2) == 0 {
				cm.DeleteCellsInColumn(mu.fam, mu.qual)
			} else {
				mu.start = r.Int64N(5)
				mu.end = mu.start + 1 + r.Int64N(5)
				cm.DeleteTimestampRange(mu.fam, mu.qual, client.Timestamp(mu.start), client.Timestamp(mu.end))
			}
		case p < 19:
			mu = mutation{kind: 3, fam: pick(r, []string{"a", "b"})}
			cm.DeleteCellsInFamily(mu.fam)
		default:
			mu = mutation{kind: 4}
			cm.DeleteRow()
		}
		ms = append(ms, mu)
	}
	return cm, ms
}

func genFilter(r *rand.Rand, depth int) (client.Filter, *datapb.RowFilter) {
	n := 14
	if depth < 2 {
		n = 17
	}
	switch r.IntN(n) {
	case 0:
		return client.PassAllFilter(), &datapb.RowFilter{Filter: &datapb.RowFilter_PassAllFilter{PassAllFilter: true}}
	case 1:
		return client.BlockAllFilter(), &datapb.RowFilter{Filter: &datapb.RowFilter_BlockAllFilter{BlockAllFilter: true}}
	case 2:
		p := pick(r, []string{"a", "b", "[ab]", ".*"})
		return client.FamilyFilter(p), &datapb.RowFilter{Filter: &datapb.RowFilter_FamilyNameRegexFilter{FamilyNameRegexFilter: p}}
	case 3:
		p := pick(r, modelRegex)
		return client.ColumnFilter(p), &datapb.RowFilter{Filter: &datapb.RowFilter_ColumnQualifierRegexFilter{ColumnQualifierRegexFilter: []byte(p)}}
	case 4:
		p := pick(r, modelRegex)
		return client.ValueFilter(p), &datapb.RowFilter{Filter: &datapb.RowFilter_ValueRegexFilter{ValueRegexFilter: []byte(p)}}
	case 5:
		p := pick(r, modelRegex)
		return client.RowKeyFilter(p), &datapb.RowFilter{Filter: &datapb.RowFilter_RowKeyRegexFilter{RowKeyRegexFilter: []byte(p)}}
	case 6:
		fam, s, e := pick(r, []string{"a", "b"}), pick(r, []string{"", "x", "y"}), pick(r, []string{"", "y", "z"})
		cr := &datapb.ColumnRange{Family: fam, StartQualifier: []byte(s)}
		if e != "" {
			cr.EndQualifier = []byte(e)
		}
		return client.ColumnRangeFilter(fam, s, e), &datapb.RowFilter{Filter: &datapb.RowFilter_ColumnRangeFilter{ColumnRangeFilter: cr}}
	case 7:
		s, e := []byte(pick(r, []string{"", "v1", "v3"})), []byte(pick(r, []string{"", "v5", "v9"}))
		if len(e) == 0 {
			e = nil
		}
		return client.ValueRangeFilter(s, e), &datapb.RowFilter{Filter: &datapb.RowFilter_ValueRangeFilter{ValueRangeFilter: &datapb.ValueRange{StartValue: s, EndValue: e}}}
	case 8:
		s, e := r.Int64N(5), int64(0)
		if r.IntN(2) == 0 {
			e = s + 1 + r.Int64N(5)
		}
		return client.TimestampRangeFilterMicros(client.Timestamp(s), client.Timestamp(e)),
			&datapb.RowFilter{Filter: &datapb.RowFilter_TimestampRangeFilter{TimestampRangeFilter: &datapb.TimestampRange{Start: s, End: e}}}
	case 9:
		k := 1 + r.IntN(3)
		return client.LatestNFilter(k), &datapb.RowFilter{Filter: &datapb.RowFilter_CellsPerColumnLimitFilter{CellsPerColumnLimitFilter: int32(k)}}
	case 10:
		k := 1 + r.IntN(5)
		return client.CellsPerRowLimitFilter(k), &datapb.RowFilter{Filter: &datapb.RowFilter_CellsPerRowLimitFilter{CellsPerRowLimitFilter: int32(k)}}
	case 11:
		k := r.IntN(5)
		return client.CellsPerRowOffsetFilter(k), &datapb.RowFilter{Filter: &datapb.RowFilter_CellsPerRowOffsetFilter{CellsPerRowOffsetFilter: int32(k)}}
	case 12:
		return client.StripValueFilter(), &datapb.RowFilter{Filter: &datapb.RowFilter_StripValueTransformer{StripValueTransformer: true}}
	case 13:
		return client.PassAllFilter(), &datapb.RowFilter{Filter: &datapb.RowFilter_PassAllFilter{PassAllFilter: true}}
	case 14, 15:
		var cs []client.Filter
		var ps []*datapb.RowFilter
		for range 1 + r.IntN(3) {
			c, p := genFilter(r, depth+1)
			cs, ps = append(cs, c), append(ps, p)
		}
		if r.IntN(2) == 0 {
			return client.ChainFilters(cs...), &datapb.RowFilter{Filter: &datapb.RowFilter_Chain_{Chain: &datapb.RowFilter_Chain{Filters: ps}}}
		}
		return client.InterleaveFilters(cs...), &datapb.RowFilter{Filter: &datapb.RowFilter_Interleave_{Interleave: &datapb.RowFilter_Interleave{Filters: ps}}}
	default:
		pc, pp := genFilter(r, depth+1)
		tc, tp := genFilter(r, depth+1)
		fc, fp := genFilter(r, depth+1)
		return client.ConditionFilter(pc, tc, fc), &datapb.RowFilter{Filter: &datapb.RowFilter_Condition_{Condition: &datapb.RowFilter_Condition{
			PredicateFilter: pp, TrueFilter: tp, FalseFilter: fp}}}
	}
}

// flatten turns a client Row into cells in the order the server sent them
// (families in order, cells within a family in order).
func flatten(row client.Row) []filter.Cell {
	fams := make([]string, 0, len(row))
	for f := range row {
		fams = append(fams, f)
	}
	sort.Strings(fams)
	var out []filter.Cell
	for _, f := range fams {
		for _, it := range row[f] {
			_, qual, _ := cutColumn(it.Column)
			out = append(out, filter.Cell{Family: f, Qualifier: []byte(qual), Timestamp: int64(it.Timestamp), Value: it.Value})
		}
	}
	return out
}

func cutColumn(col string) (string, string, bool) {
	for i := 0; i < len(col); i++ {
		if col[i] == ':' {
			return col[:i], col[i+1:], true
		}
	}
	return col, "", false
}

// sortCells orders by family only (stable), the grouping a client Row
// imposes on interleaved output.
func groupByFamily(cs []filter.Cell) []filter.Cell {
	out := append([]filter.Cell(nil), cs...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Family < out[j].Family })
	return out
}

func cellsString(cs []filter.Cell) string {
	var b bytes.Buffer
	for _, c := range cs {
		fmt.Fprintf(&b, "%s:%q@%d=%q ", c.Family, c.Qualifier, c.Timestamp, c.Value)
	}
	return b.String()
}

func equalCells(a, b []filter.Cell) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Family != b[i].Family || !bytes.Equal(a[i].Qualifier, b[i].Qualifier) || a[i].Timestamp != b[i].Timestamp || !bytes.Equal(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}

func TestDataModelAgainstReference(t *testing.T) {
	c := testcluster.Start(t, testcluster.Options{MemFS: true})
	cl := dial(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	seeds := []uint64{1, 2, 3, 4}
	if s := os.Getenv("CELLAR_MODEL_SEED"); s != "" {
		n, _ := strconv.ParseUint(s, 10, 64)
		seeds = []uint64{n}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			name := fmt.Sprintf("model%d", seed)
			if err := cl.Admin().CreateTable(ctx, name, map[string]client.GCPolicy{"a": client.NoGcPolicy(), "b": client.MaxVersionsPolicy(2)}, "r08", "r16"); err != nil {
				t.Fatalf("create: %v", err)
			}
			runModel(t, ctx, cl, name, seed, 400)
		})
	}
}

func runModel(t *testing.T, ctx context.Context, cl *client.Client, name string, seed uint64, ops int) {
	r := rand.New(rand.NewPCG(seed, seed))
	tbl := cl.Open(name)
	m := &model{rows: map[string]map[[3]string]string{}}
	fail := func(i int, format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d (rerun with CELLAR_MODEL_SEED=%d), op %d: %s", seed, seed, i, fmt.Sprintf(format, args...))
	}
	for i := range ops {
		switch p := r.IntN(100); {
		case p < 45:
			row := pick(r, modelRows)
			cm, ms := genMutations(r)
			if err := tbl.Apply(ctx, row, cm); err != nil {
				fail(i, "apply: %v", err)
			}
			m.apply(row, ms)
		case p < 65:
			row := pick(r, modelRows)
			cf, pf := genFilter(r, 0)
			got, err := tbl.ReadRow(ctx, row, client.RowFilter(cf))
			if err != nil {
				fail(i, "read row %s with %v: %v", row, cf, err)
			}
			want := groupByFamily(m.read(row, pf))
			if g := flatten(got); !equalCells(g, want) {
				fail(i, "ReadRow(%s, %v):\n got %s\nwant %s", row, cf, cellsString(g), cellsString(want))
			}
		case p < 80:
			a, b := pick(r, modelRows), pick(r, modelRows)
			if a > b {
				a, b = b, a
			}
			limit := int64(r.IntN(6))
			cf, pf := genFilter(r, 0)
			opts := []client.ReadOption{client.RowFilter(cf)}
			if limit > 0 {
				opts = append(opts, client.LimitRows(limit))
			}
			var got []string
			var gotCells [][]filter.Cell
			err := tbl.ReadRows(ctx, client.NewRange(a, b+"\x00"), func(row client.Row) bool {
				got = append(got, row.Key())
				gotCells = append(gotCells, flatten(row))
				return true
			}, opts...)
			if err != nil {
				fail(i, "read rows: %v", err)
			}
			var want []string
			var wantCells [][]filter.Cell
			for _, row := range modelRows {
				if row < a || row > b || (limit > 0 && int64(len(want)) >= limit) {
					continue
				}
				if cs := m.read(row, pf); len(cs) > 0 {
					want = append(want, row)
					wantCells = append(wantCells, groupByFamily(cs))
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				fail(i, "ReadRows[%s,%s] limit %d filter %v: rows %v, want %v", a, b, limit, cf, got, want)
			}
			for j := range got {
				if !equalCells(gotCells[j], wantCells[j]) {
					fail(i, "ReadRows row %s filter %v:\n got %s\nwant %s", got[j], cf, cellsString(gotCells[j]), cellsString(wantCells[j]))
				}
			}
		case p < 92:
			row := pick(r, modelRows)
			cf, pf := genFilter(r, 1)
			tm, tms := genMutations(r)
			fm, fms := genMutations(r)
			matched, err := tbl.CheckAndMutate(ctx, row, cf, tm, fm)
			if err != nil {
				fail(i, "check and mutate: %v", err)
			}
			want := len(m.read(row, pf)) > 0
			if matched != want {
				fail(i, "CheckAndMutate(%s, %v) matched %v, want %v (row %s)", row, cf, matched, want, cellsString(m.visible(row)))
			}
			if matched {
				m.apply(row, tms)
			} else {
				m.apply(row, fms)
			}
		case p < 96:
			row := pick(r, modelRows)
			delta := r.Int64N(10) - 3
			rmw := client.NewReadModifyWrite()
			rmw.Increment("a", "ctr", delta)
			got, err := tbl.ApplyReadModifyWrite(ctx, row, rmw)
			if err != nil {
				fail(i, "increment: %v", err)
			}
			var old int64
			var oldTS int64 = -1
			for k, v := range m.rows[row] {
				ts, _ := strconv.ParseInt(k[2], 10, 64)
				if k[0] == "a" && k[1] == "ctr" && ts > oldTS {
					oldTS, old = ts, int64(binary.BigEndian.Uint64([]byte(v)))
				}
			}
			items := got["a"]
			if len(items) != 1 || len(items[0].Value) != 8 || int64(binary.BigEndian.Uint64(items[0].Value)) != old+delta {
				fail(i, "increment of %d by %d returned %v", old, delta, got)
			}
			m.apply(row, []mutation{{kind: 0, fam: "a", qual: "ctr", ts: int64(items[0].Timestamp), val: string(items[0].Value)}})
		default:
			var err error
			if r.IntN(2) == 0 {
				err = cl.Admin().FlushTable(ctx, name)
			} else {
				err = cl.Admin().CompactTable(ctx, name, r.IntN(2) == 0)
			}
			if err != nil {
				fail(i, "flush/compact: %v", err)
			}
		}
	}
}
