package filter

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	datapb "cellar/proto/cellar/data/v1"
)

// row is the input of every case: families a and b, cells in the cell
// order.
var row = []Cell{
	{"a", []byte("q1"), 30, []byte("v30")},
	{"a", []byte("q1"), 20, []byte("v20")},
	{"a", []byte("q1"), 10, []byte("v10")},
	{"a", []byte("q2"), 15, []byte("x")},
	{"b", []byte("q1"), 25, []byte("hello")},
	{"b", []byte("zz"), 5, []byte("")},
}

func show(cs []Cell) string {
	var parts []string
	for _, c := range cs {
		parts = append(parts, fmt.Sprintf("%s:%s@%d=%s", c.Family, c.Qualifier, c.Timestamp, c.Value))
	}
	return strings.Join(parts, " ")
}

func chainOf(fs ...*datapb.RowFilter) *datapb.RowFilter {
	return &datapb.RowFilter{Filter: &datapb.RowFilter_Chain_{Chain: &datapb.RowFilter_Chain{Filters: fs}}}
}

func interleaveOf(fs ...*datapb.RowFilter) *datapb.RowFilter {
	return &datapb.RowFilter{Filter: &datapb.RowFilter_Interleave_{Interleave: &datapb.RowFilter_Interleave{Filters: fs}}}
}

func family(re string) *datapb.RowFilter {
	return &datapb.RowFilter{Filter: &datapb.RowFilter_FamilyNameRegexFilter{FamilyNameRegexFilter: re}}
}

func qual(re string) *datapb.RowFilter {
	return &datapb.RowFilter{Filter: &datapb.RowFilter_ColumnQualifierRegexFilter{ColumnQualifierRegexFilter: []byte(re)}}
}

func latest(n int32) *datapb.RowFilter {
	return &datapb.RowFilter{Filter: &datapb.RowFilter_CellsPerColumnLimitFilter{CellsPerColumnLimitFilter: n}}
}

func value(re string) *datapb.RowFilter {
	return &datapb.RowFilter{Filter: &datapb.RowFilter_ValueRegexFilter{ValueRegexFilter: []byte(re)}}
}

var (
	passAllF  = &datapb.RowFilter{Filter: &datapb.RowFilter_PassAllFilter{PassAllFilter: true}}
	blockAllF = &datapb.RowFilter{Filter: &datapb.RowFilter_BlockAllFilter{BlockAllFilter: true}}
	stripF    = &datapb.RowFilter{Filter: &datapb.RowFilter_StripValueTransformer{StripValueTransformer: true}}
)

func TestApply(t *testing.T) {
	tests := []struct {
		name string
		f    *datapb.RowFilter
		want string
	}{
		{"nil passes all", nil, show(row)},
		{"pass all", passAllF, show(row)},
		{"block all", blockAllF, ""},
		{"family regex is anchored", family("a"), "a:q1@30=v30 a:q1@20=v20 a:q1@10=v10 a:q2@15=x"},
		{"family regex no partial match", family("^"), ""},
		{"qualifier regex", qual("q1"), "a:q1@30=v30 a:q1@20=v20 a:q1@10=v10 b:q1@25=hello"},
		{"qualifier regex alternation", qual("q2|zz"), "a:q2@15=x b:zz@5="},
		{"row key regex match", &datapb.RowFilter{Filter: &datapb.RowFilter_RowKeyRegexFilter{RowKeyRegexFilter: []byte("r.*")}}, show(row)},
		{"row key regex miss", &datapb.RowFilter{Filter: &datapb.RowFilter_RowKeyRegexFilter{RowKeyRegexFilter: []byte("x.*")}}, ""},
		{"latest 1 per column", latest(1), "a:q1@30=v30 a:q2@15=x b:q1@25=hello b:zz@5="},
		{"latest 2 per column", latest(2), "a:q1@30=v30 a:q1@20=v20 a:q2@15=x b:q1@25=hello b:zz@5="},
		{"row limit", &datapb.RowFilter{Filter: &datapb.RowFilter_CellsPerRowLimitFilter{CellsPerRowLimitFilter: 2}}, "a:q1@30=v30 a:q1@20=v20"},
		{"row offset", &datapb.RowFilter{Filter: &datapb.RowFilter_CellsPerRowOffsetFilter{CellsPerRowOffsetFilter: 4}}, "b:q1@25=hello b:zz@5="},
		{"row offset past end", &datapb.RowFilter{Filter: &datapb.RowFilter_CellsPerRowOffsetFilter{CellsPerRowOffsetFilter: 9}}, ""},
		{"timestamp range", &datapb.RowFilter{Filter: &datapb.RowFilter_TimestampRangeFilter{TimestampRangeFilter: &datapb.TimestampRange{Start: 10, End: 25}}}, "a:q1@20=v20 a:q1@10=v10 a:q2@15=x"},
		{"timestamp range unbounded end", &datapb.RowFilter{Filter: &datapb.RowFilter_TimestampRangeFilter{TimestampRangeFilter: &datapb.TimestampRange{Start: 25}}}, "a:q1@30=v30 b:q1@25=hello"},
		{"value regex", value("v[12]0"), "a:q1@20=v20 a:q1@10=v10"},
		{"value regex matches empty", value(""), "b:zz@5="},
		{"value range closed", &datapb.RowFilter{Filter: &datapb.RowFilter_ValueRangeFilter{ValueRangeFilter: &datapb.ValueRange{StartValue: []byte("v10"), EndValue: []byte("v20"), EndClosed: true}}}, "a:q1@20=v20 a:q1@10=v10"},
		{"value range open start", &datapb.RowFilter{Filter: &datapb.RowFilter_ValueRangeFilter{ValueRangeFilter: &datapb.ValueRange{StartValue: []byte("v10"), StartOpen: true, EndValue: []byte("v30")}}}, "a:q1@20=v20"},
		{"column range", &datapb.RowFilter{Filter: &datapb.RowFilter_ColumnRangeFilter{ColumnRangeFilter: &datapb.ColumnRange{Family: "a", StartQualifier: []byte("q2")}}}, "a:q2@15=x"},
		{"column range end exclusive", &datapb.RowFilter{Filter: &datapb.RowFilter_ColumnRangeFilter{ColumnRangeFilter: &datapb.ColumnRange{Family: "b", EndQualifier: []byte("zz")}}}, "b:q1@25=hello"},
		{"column range end closed", &datapb.RowFilter{Filter: &datapb.RowFilter_ColumnRangeFilter{ColumnRangeFilter: &datapb.ColumnRange{Family: "b", EndQualifier: []byte("zz"), EndClosed: true}}}, "b:q1@25=hello b:zz@5="},
		{"strip value", chainOf(family("b"), stripF), "b:q1@25= b:zz@5="},
		{"chain", chainOf(family("a"), qual("q1"), latest(2)), "a:q1@30=v30 a:q1@20=v20"},
		{"empty chain passes", chainOf(), show(row)},
		{"interleave is a union in cell order with duplicates", interleaveOf(qual("q2"), family("a"), latest(1)),
			"a:q1@30=v30 a:q1@30=v30 a:q1@20=v20 a:q1@10=v10 a:q2@15=x a:q2@15=x a:q2@15=x b:q1@25=hello b:zz@5="},
		{"interleave of nothing", interleaveOf(), ""},
		{"condition true", &datapb.RowFilter{Filter: &datapb.RowFilter_Condition_{Condition: &datapb.RowFilter_Condition{
			PredicateFilter: value("hello"), TrueFilter: family("b"), FalseFilter: blockAllF}}}, "b:q1@25=hello b:zz@5="},
		{"condition false", &datapb.RowFilter{Filter: &datapb.RowFilter_Condition_{Condition: &datapb.RowFilter_Condition{
			PredicateFilter: value("nope"), TrueFilter: passAllF, FalseFilter: qual("q2")}}}, "a:q2@15=x"},
		{"condition unset branch emits nothing", &datapb.RowFilter{Filter: &datapb.RowFilter_Condition_{Condition: &datapb.RowFilter_Condition{
			PredicateFilter: passAllF}}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Compile(tt.f)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			in := slices.Clone(row)
			if got := show(f.Apply([]byte("row1"), in)); got != tt.want {
				t.Fatalf("Apply = %q\n            want %q", got, tt.want)
			}
			if show(in) != show(row) {
				t.Fatal("Apply modified its input")
			}
		})
	}
}

func TestCompileRejects(t *testing.T) {
	deep := passAllF
	for i := 0; i <= MaxDepth+1; i++ {
		deep = chainOf(deep)
	}
	tests := []struct {
		name string
		f    *datapb.RowFilter
	}{
		{"empty filter", &datapb.RowFilter{}},
		{"bad regex", family("(")},
		{"bad qualifier regex", qual("[")},
		{"empty inside chain", chainOf(passAllF, &datapb.RowFilter{})},
		{"negative limit", latest(-1)},
		{"negative row limit", &datapb.RowFilter{Filter: &datapb.RowFilter_CellsPerRowLimitFilter{CellsPerRowLimitFilter: -2}}},
		{"negative offset", &datapb.RowFilter{Filter: &datapb.RowFilter_CellsPerRowOffsetFilter{CellsPerRowOffsetFilter: -2}}},
		{"pass all false", &datapb.RowFilter{Filter: &datapb.RowFilter_PassAllFilter{}}},
		{"column range without family", &datapb.RowFilter{Filter: &datapb.RowFilter_ColumnRangeFilter{ColumnRangeFilter: &datapb.ColumnRange{}}}},
		{"inverted timestamp range", &datapb.RowFilter{Filter: &datapb.RowFilter_TimestampRangeFilter{TimestampRangeFilter: &datapb.TimestampRange{Start: 9, End: 3}}}},
		{"condition without predicate", &datapb.RowFilter{Filter: &datapb.RowFilter_Condition_{Condition: &datapb.RowFilter_Condition{}}}},
		{"too deep", deep},
		{"exponential interleaves", func() *datapb.RowFilter {
			f := passAllF
			for i := 0; i < 11; i++ { // 2^11 copies of each cell
				f = interleaveOf(f, f)
			}
			return f
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Compile(tt.f); !errors.Is(err, ErrInvalidFilter) {
				t.Fatalf("Compile = %v, want ErrInvalidFilter", err)
			}
		})
	}
}

// FuzzFilter decodes arbitrary bytes as a wire filter: Compile must never
// panic, and whatever compiles must give cells in the cell order, each one
// a (possibly value-stripped) cell of the input.
func FuzzFilter(f *testing.F) {
	for _, seed := range []*datapb.RowFilter{
		chainOf(family("a"), latest(1)),
		interleaveOf(qual("q.*"), stripF),
		{Filter: &datapb.RowFilter_Condition_{Condition: &datapb.RowFilter_Condition{PredicateFilter: value("x"), TrueFilter: passAllF}}},
	} {
		b, _ := proto.Marshal(seed)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var pb datapb.RowFilter
		if proto.Unmarshal(b, &pb) != nil {
			return
		}
		flt, err := Compile(&pb)
		if err != nil {
			if !errors.Is(err, ErrInvalidFilter) {
				t.Fatalf("Compile error %v does not wrap ErrInvalidFilter", err)
			}
			return
		}
		out := flt.Apply([]byte("row1"), slices.Clone(row))
		if !slices.IsSortedFunc(out, cellCmp) {
			t.Fatalf("output not in cell order: %s", show(out))
		}
		for _, c := range out {
			if !slices.ContainsFunc(row, func(r Cell) bool {
				return cellCmp(r, c) == 0 && (c.Value == nil || string(c.Value) == string(r.Value))
			}) {
				t.Fatalf("output cell %s is not from the input", show([]Cell{c}))
			}
		}
	})
}
