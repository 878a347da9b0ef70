package client

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	datapb "cellar/proto/cellar/data/v1"
)

func TestFilterProto(t *testing.T) {
	cases := []struct {
		f    Filter
		want string // prototext of the RowFilter
	}{
		{PassAllFilter(), `pass_all_filter:true`},
		{BlockAllFilter(), `block_all_filter:true`},
		{FamilyFilter("cf.*"), `family_name_regex_filter:"cf.*"`},
		{ColumnFilter("q"), `column_qualifier_regex_filter:"q"`},
		{ValueFilter("v+"), `value_regex_filter:"v+"`},
		{RowKeyFilter("r[0-9]"), `row_key_regex_filter:"r[0-9]"`},
		{ColumnRangeFilter("cf", "a", "c"), `column_range_filter:{family:"cf" start_qualifier:"a" end_qualifier:"c"}`},
		{ColumnRangeFilter("cf", "a", ""), `column_range_filter:{family:"cf" start_qualifier:"a"}`},
		{ValueRangeFilter([]byte("a"), []byte("b")), `value_range_filter:{start_value:"a" end_value:"b"}`},
		{TimestampRangeFilterMicros(5, 10), `timestamp_range_filter:{start:5 end:10}`},
		{TimestampRangeFilter(time.UnixMicro(7), time.Time{}), `timestamp_range_filter:{start:7}`},
		{LatestNFilter(2), `cells_per_column_limit_filter:2`},
		{CellsPerRowLimitFilter(3), `cells_per_row_limit_filter:3`},
		{CellsPerRowOffsetFilter(4), `cells_per_row_offset_filter:4`},
		{StripValueFilter(), `strip_value_transformer:true`},
		{ChainFilters(FamilyFilter("a"), LatestNFilter(1)),
			`chain:{filters:{family_name_regex_filter:"a"} filters:{cells_per_column_limit_filter:1}}`},
		{InterleaveFilters(ColumnFilter("x"), StripValueFilter()),
			`interleave:{filters:{column_qualifier_regex_filter:"x"} filters:{strip_value_transformer:true}}`},
		{ConditionFilter(ValueFilter("y"), PassAllFilter(), nil),
			`condition:{predicate_filter:{value_regex_filter:"y"} true_filter:{pass_all_filter:true}}`},
	}
	for _, c := range cases {
		got, err := c.f.proto()
		if err != nil {
			t.Errorf("%v.proto() error: %v", c.f, err)
			continue
		}
		want := new(datapb.RowFilter)
		if err := prototext.Unmarshal([]byte(c.want), want); err != nil {
			t.Fatalf("bad test proto %q: %v", c.want, err)
		}
		if !proto.Equal(got, want) {
			t.Errorf("%v.proto() = %v, want %v", c.f, got, want)
		}
		if c.f.String() == "" {
			t.Errorf("%T has an empty String", c.f)
		}
	}
	for _, f := range []Filter{FamilyFilter("("), ColumnFilter("[") /* bad regexps */, LatestNFilter(-1),
		ChainFilters(PassAllFilter(), nil), ConditionFilter(nil, nil, nil), InterleaveFilters(ValueFilter("*")),
		TimestampRangeFilterMicros(-3, 0)} {
		if _, err := filterProto(f); !errors.Is(err, ErrInvalidFilter) {
			t.Errorf("%v: err %v, want ErrInvalidFilter", f, err)
		}
	}
}

func TestGCPolicyStringParseRoundTrip(t *testing.T) {
	cases := []struct {
		p    GCPolicy
		want string
	}{
		{NoGcPolicy(), "never"},
		{MaxVersionsPolicy(3), "maxversions=3"},
		{MaxAgePolicy(24 * time.Hour), "maxage=24h"},
		{MaxAgePolicy(90 * time.Minute), "maxage=90m"},
		{MaxAgePolicy(1500 * time.Millisecond), "maxage=1500ms"},
		{UnionPolicy(MaxVersionsPolicy(3), MaxAgePolicy(time.Hour)), "maxversions=3 || maxage=1h"},
		{IntersectionPolicy(MaxVersionsPolicy(3), MaxAgePolicy(time.Hour)), "maxversions=3 && maxage=1h"},
		{UnionPolicy(IntersectionPolicy(MaxVersionsPolicy(1), MaxAgePolicy(time.Hour)), MaxVersionsPolicy(10)),
			"maxversions=1 && maxage=1h || maxversions=10"},
		{IntersectionPolicy(UnionPolicy(MaxVersionsPolicy(1), MaxAgePolicy(time.Hour)), MaxVersionsPolicy(10)),
			"(maxversions=1 || maxage=1h) && maxversions=10"},
		{UnionPolicy(MaxVersionsPolicy(1), UnionPolicy(MaxVersionsPolicy(2), MaxVersionsPolicy(3))),
			"maxversions=1 || (maxversions=2 || maxversions=3)"},
		{IntersectionPolicy(MaxVersionsPolicy(1), IntersectionPolicy(MaxVersionsPolicy(2), MaxVersionsPolicy(3))),
			"maxversions=1 && (maxversions=2 && maxversions=3)"},
	}
	for _, c := range cases {
		if got := c.p.String(); got != c.want {
			t.Errorf("String() = %q, want %q", got, c.want)
		}
		back, err := ParseGCPolicy(c.want)
		if err != nil {
			t.Errorf("ParseGCPolicy(%q): %v", c.want, err)
			continue
		}
		if !proto.Equal(back.proto(), c.p.proto()) || back.String() != c.want {
			t.Errorf("ParseGCPolicy(%q) = %v, want %v", c.want, back, c.p)
		}
		if fromWire := gcPolicyFromProto(c.p.proto()); fromWire.String() != c.want {
			t.Errorf("gcPolicyFromProto(%q) = %v", c.want, fromWire)
		}
	}
	aliases := map[string]string{
		"maxversions=3,maxage=24h":       "maxversions=3 || maxage=24h",
		"maxversions=3 or maxage=7d":     "maxversions=3 || maxage=168h",
		"maxversions=3 and maxage=1h30m": "maxversions=3 && maxage=90m",
		"":                               "never",
		"(maxversions=2)":                "maxversions=2",
	}
	for in, want := range aliases {
		p, err := ParseGCPolicy(in)
		if err != nil || p.String() != want {
			t.Errorf("ParseGCPolicy(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	for _, bad := range []string{"maxversions=0", "maxversions=x", "maxage=-1h", "maxage=", "foo=1", "maxversions=1 ||",
		"(maxversions=1", "maxversions=1)", "maxversions=1 | maxage=1h", "&&"} {
		if p, err := ParseGCPolicy(bad); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("ParseGCPolicy(%q) = %v, %v; want ErrInvalidArgument", bad, p, err)
		}
	}
}

func TestRowSetSegments(t *testing.T) {
	segs, err := RowRangeList{NewRange("d", "f"), NewRange("a", "c"), NewRange("b", "e"), NewRange("x", "w")}.segments()
	if err != nil || len(segs) != 1 || string(segs[0].start) != "a" || string(segs[0].end) != "f" {
		t.Fatalf("segments = %v, %v", segs, err)
	}
	if got := after(segs, []byte("c")); string(got[0].start) != "c\x00" {
		t.Errorf("after(c) = %q", got[0].start)
	}
	if PrefixRange("a\xff").end != "b" || PrefixRange("\xff").end != "" {
		t.Errorf("PrefixRange successor wrong: %q %q", PrefixRange("a\xff").end, PrefixRange("\xff").end)
	}
}
