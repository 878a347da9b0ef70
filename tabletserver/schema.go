package tabletserver

import (
	"fmt"
	"time"

	"cellar/internal/serr"
	datapb "cellar/proto/cellar/data/v1"
	"cellar/sstable"
	"cellar/tablet"
)

// maxGCDepth bounds the nesting of GC rules in a schema.
const maxGCDepth = 32

// FamiliesFromSchema converts a table schema's column families into the
// tablet package's FamilyOptions: max_num_versions → tablet.MaxVersions,
// max_age_micros → tablet.MaxAge, intersection / union → tablet.Intersection
// / tablet.Union, an unset rule → tablet.NoGC. Errors wrap
// serr.ErrInvalidArgument (no families, a non-positive version count or
// age, a rule nested deeper than 32).
func FamiliesFromSchema(s *datapb.TableSchema) ([]tablet.FamilyOptions, error) {
	if s == nil || len(s.GetFamilies()) == 0 {
		return nil, fmt.Errorf("%w: schema has no column families", serr.ErrInvalidArgument)
	}
	out := make([]tablet.FamilyOptions, 0, len(s.GetFamilies()))
	for _, f := range s.GetFamilies() {
		if f == nil {
			return nil, fmt.Errorf("%w: nil column family", serr.ErrInvalidArgument)
		}
		gc, err := gcPolicy(f.GetGcRule(), 0)
		if err != nil {
			return nil, fmt.Errorf("family %q: %w", f.GetName(), err)
		}
		fo := tablet.FamilyOptions{
			Name:               f.GetName(),
			GC:                 gc,
			BlockSize:          int(f.GetBlockSize()),
			BloomFalsePositive: f.GetBloomFalsePositive(),
		}
		switch f.GetCompression() {
		case datapb.Compression_COMPRESSION_SNAPPY:
			fo.Compression = sstable.CompressionSnappy
		case datapb.Compression_COMPRESSION_NONE:
			fo.Compression = sstable.CompressionNone
		default:
			return nil, fmt.Errorf("%w: family %q: unknown compression %v", serr.ErrInvalidArgument, f.GetName(), f.GetCompression())
		}
		if f.GetBlockSize() < 0 {
			return nil, fmt.Errorf("%w: family %q: negative block size", serr.ErrInvalidArgument, f.GetName())
		}
		out = append(out, fo)
	}
	return out, nil
}

func gcPolicy(r *datapb.GcRule, depth int) (tablet.GCPolicy, error) {
	if depth > maxGCDepth {
		return tablet.NoGC, fmt.Errorf("%w: GC rule nested deeper than %d", serr.ErrInvalidArgument, maxGCDepth)
	}
	if r == nil {
		return tablet.NoGC, nil
	}
	switch x := r.GetRule().(type) {
	case nil:
		return tablet.NoGC, nil
	case *datapb.GcRule_MaxNumVersions:
		if x.MaxNumVersions < 1 {
			return tablet.NoGC, fmt.Errorf("%w: max_num_versions %d < 1", serr.ErrInvalidArgument, x.MaxNumVersions)
		}
		return tablet.MaxVersions(int(x.MaxNumVersions)), nil
	case *datapb.GcRule_MaxAgeMicros:
		if x.MaxAgeMicros < 1 {
			return tablet.NoGC, fmt.Errorf("%w: max_age_micros %d < 1", serr.ErrInvalidArgument, x.MaxAgeMicros)
		}
		return tablet.MaxAge(time.Duration(x.MaxAgeMicros) * time.Microsecond), nil
	case *datapb.GcRule_Intersection_:
		ps, err := gcPolicies(x.Intersection.GetRules(), depth)
		if err != nil {
			return tablet.NoGC, err
		}
		return tablet.Intersection(ps...), nil
	case *datapb.GcRule_Union_:
		ps, err := gcPolicies(x.Union.GetRules(), depth)
		if err != nil {
			return tablet.NoGC, err
		}
		return tablet.Union(ps...), nil
	default:
		return tablet.NoGC, fmt.Errorf("%w: unknown GC rule %T", serr.ErrInvalidArgument, x)
	}
}

func gcPolicies(rs []*datapb.GcRule, depth int) ([]tablet.GCPolicy, error) {
	ps := make([]tablet.GCPolicy, 0, len(rs))
	for _, r := range rs {
		p, err := gcPolicy(r, depth+1)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// sameFamilies reports whether two schemas have the same families with the
// same settings (so a loaded tablet need not be reopened).
func sameFamilies(a, b []tablet.FamilyOptions) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Name != y.Name || x.GC.String() != y.GC.String() || x.Compression != y.Compression ||
			x.BlockSize != y.BlockSize || x.BloomFalsePositive != y.BloomFalsePositive {
			return false
		}
	}
	return true
}
