package client

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	datapb "cellar/proto/cellar/data/v1"
)

// GCPolicy is a column family's garbage-collection policy (Bigtable's
// GcRule): which cell versions compactions drop. Immutable; safe for
// concurrent use. Outside packages cannot implement it.
//
// String forms (accepted back by ParseGCPolicy):
//
//	never                          NoGcPolicy: keep every version
//	maxversions=3                  MaxVersionsPolicy(3)
//	maxage=24h                     MaxAgePolicy(24*time.Hour)
//	maxversions=3 || maxage=24h    UnionPolicy: drop if ANY rule would
//	maxversions=3 && maxage=24h    IntersectionPolicy: drop if ALL rules would
//
// "&&" binds tighter than "||"; parentheses group.
type GCPolicy interface {
	String() string
	proto() *datapb.GcRule
}

type noGC struct{}

// NoGcPolicy keeps every version.
func NoGcPolicy() GCPolicy { return noGC{} }

func (noGC) String() string        { return "never" }
func (noGC) proto() *datapb.GcRule { return nil }

type maxVersions int

// MaxVersionsPolicy keeps the latest n versions of each column.
func MaxVersionsPolicy(n int) GCPolicy { return maxVersions(n) }

func (p maxVersions) String() string { return "maxversions=" + strconv.Itoa(int(p)) }
func (p maxVersions) proto() *datapb.GcRule {
	return &datapb.GcRule{Rule: &datapb.GcRule_MaxNumVersions{MaxNumVersions: int32(p)}}
}

type maxAge time.Duration

// MaxAgePolicy drops versions older than d (by cell timestamp;
// microsecond precision).
func MaxAgePolicy(d time.Duration) GCPolicy { return maxAge(d) }

func (p maxAge) String() string { return "maxage=" + formatAge(time.Duration(p)) }
func (p maxAge) proto() *datapb.GcRule {
	return &datapb.GcRule{Rule: &datapb.GcRule_MaxAgeMicros{MaxAgeMicros: time.Duration(p).Microseconds()}}
}

// formatAge writes d in the largest unit that divides it exactly.
func formatAge(d time.Duration) string {
	units := []struct {
		d    time.Duration
		name string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}, {time.Microsecond, "us"}}
	for _, u := range units {
		if d%u.d == 0 {
			return strconv.FormatInt(int64(d/u.d), 10) + u.name
		}
	}
	return d.String()
}

type unionPolicy []GCPolicy

// UnionPolicy drops a version if any of policies would drop it.
func UnionPolicy(policies ...GCPolicy) GCPolicy { return unionPolicy(policies) }

func (p unionPolicy) String() string { return joinPolicies(p, " || ", false) }
func (p unionPolicy) proto() *datapb.GcRule {
	return &datapb.GcRule{Rule: &datapb.GcRule_Union_{Union: &datapb.GcRule_Union{Rules: policyProtos(p)}}}
}

type intersectionPolicy []GCPolicy

// IntersectionPolicy drops a version only if every one of policies would
// drop it.
func IntersectionPolicy(policies ...GCPolicy) GCPolicy { return intersectionPolicy(policies) }

func (p intersectionPolicy) String() string { return joinPolicies(p, " && ", true) }
func (p intersectionPolicy) proto() *datapb.GcRule {
	return &datapb.GcRule{Rule: &datapb.GcRule_Intersection_{Intersection: &datapb.GcRule_Intersection{Rules: policyProtos(p)}}}
}

func policyProtos(ps []GCPolicy) []*datapb.GcRule {
	out := make([]*datapb.GcRule, 0, len(ps))
	for _, p := range ps {
		if p == nil {
			p = noGC{}
		}
		if r := p.proto(); r != nil {
			out = append(out, r)
		} else {
			out = append(out, &datapb.GcRule{})
		}
	}
	return out
}

func joinPolicies(ps []GCPolicy, sep string, inIntersection bool) string {
	if len(ps) == 0 {
		return "()"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		if p == nil {
			p = noGC{}
		}
		s[i] = p.String()
		_, isUnion := p.(unionPolicy)
		_, isInter := p.(intersectionPolicy)
		if isUnion || (isInter && inIntersection) {
			// Parenthesize nested composites so the string parses back to
			// the same tree (and not a flattened one).
			s[i] = "(" + s[i] + ")"
		}
	}
	return strings.Join(s, sep)
}

// gcPolicyFromProto converts a wire rule (nil: keep everything).
func gcPolicyFromProto(r *datapb.GcRule) GCPolicy {
	switch x := r.GetRule().(type) {
	case *datapb.GcRule_MaxNumVersions:
		return maxVersions(x.MaxNumVersions)
	case *datapb.GcRule_MaxAgeMicros:
		return maxAge(time.Duration(x.MaxAgeMicros) * time.Microsecond)
	case *datapb.GcRule_Union_:
		var ps unionPolicy
		for _, s := range x.Union.GetRules() {
			ps = append(ps, gcPolicyFromProto(s))
		}
		return ps
	case *datapb.GcRule_Intersection_:
		var ps intersectionPolicy
		for _, s := range x.Intersection.GetRules() {
			ps = append(ps, gcPolicyFromProto(s))
		}
		return ps
	}
	return noGC{}
}

// ParseGCPolicy parses the String form of a GCPolicy. Besides "||" and
// "&&" it accepts "or" and "," for a union and "and" for an intersection;
// "" and "never" are NoGcPolicy; maxage takes a time.ParseDuration value
// or whole days ("7d"). Errors wrap ErrInvalidArgument.
func ParseGCPolicy(s string) (GCPolicy, error) {
	p := &gcParser{toks: tokenizeGC(s)}
	if len(p.toks) == 0 {
		return noGC{}, nil
	}
	pol, err := p.union()
	if err == nil && p.pos < len(p.toks) {
		err = fmt.Errorf("unexpected %q", p.toks[p.pos])
	}
	if err != nil {
		return nil, fmt.Errorf("%w: gc policy %q: %v", ErrInvalidArgument, s, err)
	}
	return pol, nil
}

func tokenizeGC(s string) []string {
	var toks []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			i++
		case c == '(' || c == ')' || c == ',':
			toks = append(toks, string(c))
			i++
		case strings.HasPrefix(s[i:], "||"), strings.HasPrefix(s[i:], "&&"):
			toks = append(toks, s[i:i+2])
			i += 2
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\n(),|&", rune(s[j])) {
				j++
			}
			if j == i { // a lone '|' or '&'
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		}
	}
	return toks
}

type gcParser struct {
	toks []string
	pos  int
}

func (p *gcParser) peek() string {
	if p.pos < len(p.toks) {
		return strings.ToLower(p.toks[p.pos])
	}
	return ""
}

func (p *gcParser) union() (GCPolicy, error) {
	first, err := p.intersection()
	if err != nil {
		return nil, err
	}
	ps := unionPolicy{first}
	for t := p.peek(); t == "||" || t == "or" || t == ","; t = p.peek() {
		p.pos++
		next, err := p.intersection()
		if err != nil {
			return nil, err
		}
		ps = append(ps, next)
	}
	if len(ps) == 1 {
		return first, nil
	}
	return ps, nil
}

func (p *gcParser) intersection() (GCPolicy, error) {
	first, err := p.factor()
	if err != nil {
		return nil, err
	}
	ps := intersectionPolicy{first}
	for t := p.peek(); t == "&&" || t == "and"; t = p.peek() {
		p.pos++
		next, err := p.factor()
		if err != nil {
			return nil, err
		}
		ps = append(ps, next)
	}
	if len(ps) == 1 {
		return first, nil
	}
	return ps, nil
}

func (p *gcParser) factor() (GCPolicy, error) {
	t := p.peek()
	if t == "" {
		return nil, fmt.Errorf("unexpected end")
	}
	p.pos++
	if t == "(" {
		inner, err := p.union()
		if err != nil {
			return nil, err
		}
		if p.peek() != ")" {
			return nil, fmt.Errorf("missing )")
		}
		p.pos++
		return inner, nil
	}
	if t == "never" {
		return noGC{}, nil
	}
	k, v, ok := strings.Cut(t, "=")
	if !ok {
		return nil, fmt.Errorf("unexpected %q", t)
	}
	switch k {
	case "maxversions":
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1<<31-1 {
			return nil, fmt.Errorf("bad maxversions %q (want a positive integer)", v)
		}
		return maxVersions(n), nil
	case "maxage":
		d, err := parseAge(v)
		if err != nil {
			return nil, err
		}
		return maxAge(d), nil
	}
	return nil, fmt.Errorf("unknown rule %q", k)
}

func parseAge(v string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(v, "d"); ok && n != "" && strings.IndexFunc(n, func(r rune) bool { return !unicode.IsDigit(r) }) < 0 {
		days, err := strconv.Atoi(n)
		if err == nil && days <= 100000 {
			return time.Duration(days) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("bad maxage %q (want a positive duration such as 24h)", v)
	}
	return d, nil
}
