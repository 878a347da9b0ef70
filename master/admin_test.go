package master

import (
	"errors"
	"strings"
	"testing"

	"cellar/internal/serr"
	datapb "cellar/proto/cellar/data/v1"
)

func TestValidateTableName(t *testing.T) {
	for _, ok := range []string{"t", "web_table", "a.b-c", strings.Repeat("x", MaxTableNameLen)} {
		if err := ValidateTableName(ok); err != nil {
			t.Errorf("ValidateTableName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "METADATA", "a/b", "sp ace", "ü", strings.Repeat("x", MaxTableNameLen+1)} {
		if err := ValidateTableName(bad); !errors.Is(err, serr.ErrInvalidArgument) {
			t.Errorf("ValidateTableName(%q) = %v, want ErrInvalidArgument", bad, err)
		}
	}
}

func TestValidateFamilies(t *testing.T) {
	gc := func(n int32) *datapb.GcRule {
		return &datapb.GcRule{Rule: &datapb.GcRule_MaxNumVersions{MaxNumVersions: n}}
	}
	ok := []*datapb.ColumnFamily{{Name: "a", GcRule: gc(3)}, {Name: "b"}}
	if err := validateFamilies(ok); err != nil {
		t.Errorf("valid families: %v", err)
	}
	deep := gc(1)
	for range 20 {
		deep = &datapb.GcRule{Rule: &datapb.GcRule_Union_{Union: &datapb.GcRule_Union{Rules: []*datapb.GcRule{deep}}}}
	}
	for name, fams := range map[string][]*datapb.ColumnFamily{
		"none":          nil,
		"nil":           {nil},
		"duplicate":     {{Name: "a"}, {Name: "a"}},
		"bad name":      {{Name: "a:b"}},
		"zero versions": {{Name: "a", GcRule: gc(0)}},
		"negative age":  {{Name: "a", GcRule: &datapb.GcRule{Rule: &datapb.GcRule_MaxAgeMicros{MaxAgeMicros: -1}}}},
		"too deep":      {{Name: "a", GcRule: deep}},
	} {
		if err := validateFamilies(fams); !errors.Is(err, serr.ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", name, err)
		}
	}
}
