package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"cellar/client"
	"cellar/internal/keys"
)

// errUsage marks bad command-line input (a malformed FAMILY:QUALIFIER, GC
// rule, duration or number, a missing argument) found before anything is
// sent. Test with errors.Is; the message does not repeat it.
var errUsage = errors.New("bad input")

type usageError struct{ err error }

func (e *usageError) Error() string        { return e.err.Error() }
func (e *usageError) Unwrap() error        { return e.err }
func (e *usageError) Is(target error) bool { return target == errUsage }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// escape writes b for one field of the text output (docs/cli.md,
// "Escaping"): printable UTF-8 other than space, '\\' and '"' is written as
// is; '\\' is `\\`, '"' is `\"`, tab, newline and carriage return are `\t`,
// `\n`, `\r`, and every other byte (space, control bytes, bytes of invalid
// or non-printable UTF-8) is `\xNN` with two lowercase hex digits. An empty
// field is `""`. The mapping is injective, so a field decodes to exactly
// one byte string, and the output has no spaces or newlines: fields split
// on single spaces.
func escape(b []byte) string {
	if len(b) == 0 {
		return `""`
	}
	var sb strings.Builder
	sb.Grow(len(b))
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		switch {
		case r == '\\':
			sb.WriteString(`\\`)
		case r == '"':
			sb.WriteString(`\"`)
		case r == '\t':
			sb.WriteString(`\t`)
		case r == '\n':
			sb.WriteString(`\n`)
		case r == '\r':
			sb.WriteString(`\r`)
		case r != utf8.RuneError && r != ' ' && unicode.IsPrint(r):
			sb.Write(b[:n])
		case r == utf8.RuneError && n == 3:
			// U+FFFD itself, validly encoded, is printable.
			sb.Write(b[:n])
		default:
			for _, c := range b[:n] {
				fmt.Fprintf(&sb, `\x%02x`, c)
			}
		}
		b = b[n:]
	}
	return sb.String()
}

// escapeQualifier is escape except that the empty qualifier prints as
// nothing ("family:"), which cannot be confused with anything else because
// the field ends at the following space.
func escapeQualifier(q []byte) string {
	if len(q) == 0 {
		return ""
	}
	return escape(q)
}

// cellJSON is one cell of export, import and --output json: every byte
// string is standard base64 (encoding/json's []byte), so every byte
// round-trips.
type cellJSON struct {
	Row       []byte `json:"row"`
	Family    string `json:"family"`
	Qualifier []byte `json:"qualifier"`
	Timestamp int64  `json:"timestamp"`
	Value     []byte `json:"value"`
}

// parseCellLine decodes one import line. Every field must be present (the
// qualifier and value may be empty strings); unknown fields, trailing data,
// an invalid family, a row or qualifier over the limits and a negative
// timestamp are errors.
func parseCellLine(line []byte) (cellJSON, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(line, &raw); err != nil {
		return cellJSON{}, fmt.Errorf("not a JSON object: %v", err)
	}
	for _, k := range []string{"row", "family", "qualifier", "timestamp", "value"} {
		if _, ok := raw[k]; !ok {
			return cellJSON{}, fmt.Errorf("missing %q", k)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var c cellJSON
	if err := dec.Decode(&c); err != nil {
		return cellJSON{}, err
	}
	for k, v := range raw {
		if string(v) == "null" {
			return cellJSON{}, fmt.Errorf("%q is null", k)
		}
	}
	if err := keys.ValidateRow(c.Row); err != nil {
		return cellJSON{}, err
	}
	if err := keys.ValidateFamily(c.Family); err != nil {
		return cellJSON{}, err
	}
	if err := keys.ValidateQualifier(c.Qualifier); err != nil {
		return cellJSON{}, err
	}
	if err := keys.ValidateTimestamp(c.Timestamp); err != nil {
		return cellJSON{}, err
	}
	if c.Value == nil {
		c.Value = []byte{}
	}
	if c.Qualifier == nil {
		c.Qualifier = []byte{}
	}
	return c, nil
}

// rowCells flattens a client.Row in the store's order: family ascending,
// then (as the client delivers them) qualifier ascending, latest first.
func rowCells(r client.Row) []cellJSON {
	fams := make([]string, 0, len(r))
	for f := range r {
		fams = append(fams, f)
	}
	slices.Sort(fams)
	var out []cellJSON
	for _, f := range fams {
		for _, it := range r[f] {
			v := it.Value
			if v == nil {
				v = []byte{} // "" in JSON, never null
			}
			out = append(out, cellJSON{Row: []byte(it.Row), Family: f, Qualifier: append([]byte{}, it.Qualifier()...),
				Timestamp: int64(it.Timestamp), Value: v})
		}
	}
	return out
}

// cellWriter prints cells as text (ROW FAMILY:QUALIFIER @TIMESTAMP VALUE)
// or JSON lines.
type cellWriter struct {
	w    io.Writer
	json bool
	enc  *json.Encoder
}

func newCellWriter(w io.Writer, format string) (*cellWriter, error) {
	switch format {
	case "text", "":
		return &cellWriter{w: w}, nil
	case "json":
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		return &cellWriter{w: w, json: true, enc: enc}, nil
	}
	return nil, usagef("--output %q: want text or json", format)
}

func (cw *cellWriter) write(c cellJSON) error {
	if cw.json {
		return cw.enc.Encode(c)
	}
	_, err := fmt.Fprintf(cw.w, "%s %s:%s @%d %s\n", escape(c.Row), c.Family, escapeQualifier(c.Qualifier), c.Timestamp, escape(c.Value))
	return err
}

// column is a parsed FAMILY[:QUALIFIER].
type column struct {
	family       string
	qualifier    string
	hasQualifier bool
}

func (c column) String() string {
	if c.hasQualifier {
		return c.family + ":" + c.qualifier
	}
	return c.family
}

// parseColumn parses FAMILY:QUALIFIER (needQualifier) or FAMILY[:QUALIFIER].
// The family ends at the first ':'; the qualifier is the rest, any bytes.
func parseColumn(s string, needQualifier bool) (column, error) {
	f, q, ok := strings.Cut(s, ":")
	if needQualifier && !ok {
		return column{}, usagef("malformed column %q: want FAMILY:QUALIFIER", s)
	}
	if err := keys.ValidateFamily(f); err != nil {
		return column{}, usagef("malformed column %q: %v", s, err)
	}
	if err := keys.ValidateQualifier([]byte(q)); err != nil {
		return column{}, usagef("malformed column %q: %v", s, err)
	}
	return column{family: f, qualifier: q, hasQualifier: ok}, nil
}

// familySpec is a parsed FAMILY[:maxversions=N][:maxage=DURATION].
type familySpec struct {
	name   string
	policy client.GCPolicy // nil: keep every version
}

// parseFamilySpec parses FAMILY followed by ':'-separated GC rules. Rules
// combine as a union (a version is dropped when either rule drops it, as
// HBase's VERSIONS and TTL do). maxage takes a Go duration (90s, 36h) or
// whole days (7d).
func parseFamilySpec(s string) (familySpec, error) {
	parts := strings.Split(s, ":")
	if err := keys.ValidateFamily(parts[0]); err != nil {
		return familySpec{}, usagef("family %q: %v", s, err)
	}
	spec := familySpec{name: parts[0]}
	seen := map[string]bool{}
	var rules []client.GCPolicy
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(p, "=")
		if !ok || (k != "maxversions" && k != "maxage") {
			return familySpec{}, usagef("family %q: rule %q: want maxversions=N or maxage=DURATION", s, p)
		}
		if seen[k] {
			return familySpec{}, usagef("family %q: %s given twice", s, k)
		}
		seen[k] = true
		var r client.GCPolicy
		switch k {
		case "maxversions":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1<<31-1 {
				return familySpec{}, usagef("family %q: maxversions=%q: want a positive integer", s, v)
			}
			r = client.MaxVersionsPolicy(n)
		case "maxage":
			d, err := parseAge(v)
			if err != nil {
				return familySpec{}, usagef("family %q: maxage=%q: %v", s, v, err)
			}
			r = client.MaxAgePolicy(d)
		}
		rules = append(rules, r)
	}
	switch len(rules) {
	case 0:
	case 1:
		spec.policy = rules[0]
	default:
		spec.policy = client.UnionPolicy(rules...)
	}
	return spec, nil
}

// parseAge parses a positive duration: Go syntax (1h30m, 90s) or whole
// days (7d), at microsecond precision.
func parseAge(v string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(v, "d"); ok {
		days, err := strconv.ParseInt(n, 10, 64)
		if err == nil && days > 0 && days <= 100000 {
			return time.Duration(days) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("want a positive duration such as 90s, 36h or 7d")
	}
	if d%time.Microsecond != 0 {
		return 0, fmt.Errorf("want whole microseconds")
	}
	return d, nil
}

// policyString prints a GC policy ("never" for nil).
func policyString(p client.GCPolicy) string {
	if p == nil {
		return "never"
	}
	return p.String()
}
