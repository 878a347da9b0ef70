package tablet

import (
	"fmt"
	"strings"
	"time"
)

type gcKind uint8

const (
	gcNone gcKind = iota
	gcMaxVersions
	gcMaxAge
	gcUnion
	gcIntersection
)

// GCPolicy says which versions of a column a family keeps, as Bigtable's GC
// rules do. The zero value (NoGC) keeps every version. Policies are values:
// safe to copy and to share between goroutines.
//
// A policy is applied to the visible versions of one column, newest first:
// version i (0-based) with timestamp ts is garbage when the policy says so
// for (i, ts, now). Reads hide garbage at once; major compactions drop it.
type GCPolicy struct {
	kind gcKind
	n    int
	age  time.Duration
	sub  []GCPolicy
}

// NoGC keeps every version.
var NoGC = GCPolicy{}

// MaxVersions keeps the n newest versions of each column (n >= 1).
func MaxVersions(n int) GCPolicy { return GCPolicy{kind: gcMaxVersions, n: n} }

// MaxAge keeps versions whose timestamp is at most d older than the tablet's
// clock (timestamps are µs since the Unix epoch).
func MaxAge(d time.Duration) GCPolicy { return GCPolicy{kind: gcMaxAge, age: d} }

// Union makes a version garbage when any of p says so (keeps the least).
func Union(p ...GCPolicy) GCPolicy {
	return GCPolicy{kind: gcUnion, sub: append([]GCPolicy(nil), p...)}
}

// Intersection makes a version garbage only when every one of p says so
// (keeps the most). An empty intersection keeps everything.
func Intersection(p ...GCPolicy) GCPolicy {
	return GCPolicy{kind: gcIntersection, sub: append([]GCPolicy(nil), p...)}
}

// IsNoGC reports whether the policy keeps everything by construction.
func (p GCPolicy) IsNoGC() bool { return p.kind == gcNone }

// Garbage reports whether version idx (0 = newest visible) with timestamp ts
// (µs) is garbage at time now (µs).
func (p GCPolicy) Garbage(idx int, ts, now int64) bool {
	switch p.kind {
	case gcMaxVersions:
		return idx >= p.n
	case gcMaxAge:
		return ts < now-p.age.Microseconds()
	case gcUnion:
		for _, s := range p.sub {
			if s.Garbage(idx, ts, now) {
				return true
			}
		}
		return false
	case gcIntersection:
		if len(p.sub) == 0 {
			return false
		}
		for _, s := range p.sub {
			if !s.Garbage(idx, ts, now) {
				return false
			}
		}
		return true
	}
	return false
}

func (p GCPolicy) validate() error {
	switch p.kind {
	case gcMaxVersions:
		if p.n < 1 {
			return fmt.Errorf("MaxVersions(%d): need at least 1", p.n)
		}
	case gcMaxAge:
		if p.age <= 0 {
			return fmt.Errorf("MaxAge(%v): need a positive age", p.age)
		}
	case gcUnion, gcIntersection:
		for _, s := range p.sub {
			if err := s.validate(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p GCPolicy) String() string {
	switch p.kind {
	case gcMaxVersions:
		return fmt.Sprintf("MaxVersions(%d)", p.n)
	case gcMaxAge:
		return fmt.Sprintf("MaxAge(%v)", p.age)
	case gcUnion, gcIntersection:
		parts := make([]string, len(p.sub))
		for i, s := range p.sub {
			parts[i] = s.String()
		}
		name := "Union"
		if p.kind == gcIntersection {
			name = "Intersection"
		}
		return name + "(" + strings.Join(parts, ", ") + ")"
	}
	return "NoGC"
}
