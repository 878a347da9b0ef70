package tablet

import (
	"testing"
	"time"
)

func TestGCPolicyGarbage(t *testing.T) {
	const now = 1_000_000
	age := MaxAge(100 * time.Microsecond) // keeps ts >= now-100
	tests := []struct {
		name string
		p    GCPolicy
		idx  int
		ts   int64
		want bool
	}{
		{"nogc keeps old", NoGC, 1000, 0, false},
		{"maxversions keeps newest", MaxVersions(2), 0, 0, false},
		{"maxversions keeps second", MaxVersions(2), 1, 0, false},
		{"maxversions drops third", MaxVersions(2), 2, now, true},
		{"maxage keeps young", age, 5, now - 100, false},
		{"maxage drops old", age, 0, now - 101, true},
		{"maxage keeps future", age, 0, now + 50, false},
		{"union drops if any: versions", Union(MaxVersions(1), age), 1, now, true},
		{"union drops if any: age", Union(MaxVersions(1), age), 0, now - 500, true},
		{"union keeps if none", Union(MaxVersions(1), age), 0, now, false},
		{"intersection keeps if one keeps: versions", Intersection(MaxVersions(1), age), 0, now - 500, false},
		{"intersection keeps if one keeps: age", Intersection(MaxVersions(1), age), 3, now, false},
		{"intersection drops if all", Intersection(MaxVersions(1), age), 1, now - 500, true},
		{"empty intersection keeps", Intersection(), 10, 0, false},
		{"empty union keeps", Union(), 10, 0, false},
		{"nested", Union(Intersection(MaxVersions(2), age), MaxVersions(5)), 2, now - 500, true},
		{"nested keeps", Union(Intersection(MaxVersions(2), age), MaxVersions(5)), 2, now, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.Garbage(tc.idx, tc.ts, now); got != tc.want {
				t.Errorf("%v.Garbage(%d, %d, %d) = %v, want %v", tc.p, tc.idx, tc.ts, now, got, tc.want)
			}
		})
	}
}

func TestGCPolicyValidate(t *testing.T) {
	for _, p := range []GCPolicy{MaxVersions(0), MaxAge(0), MaxAge(-time.Second), Union(MaxVersions(1), MaxVersions(-1)), Intersection(Union(MaxAge(0)))} {
		if err := p.validate(); err == nil {
			t.Errorf("%v.validate() = nil, want an error", p)
		}
	}
	for _, p := range []GCPolicy{NoGC, MaxVersions(1), MaxAge(time.Hour), Union(MaxVersions(3), MaxAge(time.Hour)), Intersection()} {
		if err := p.validate(); err != nil {
			t.Errorf("%v.validate() = %v", p, err)
		}
	}
	if s := Union(MaxVersions(3), Intersection(MaxAge(time.Second))).String(); s != "Union(MaxVersions(3), Intersection(MaxAge(1s)))" {
		t.Errorf("String() = %q", s)
	}
}
