package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"cellar/client"
)

// unescape decodes one field of the text output (docs/cli.md,
// "Escaping"); it exists to prove that the escaping is unambiguous.
func unescape(s string) ([]byte, error) {
	if s == `""` {
		return []byte{}, nil
	}
	var out []byte
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '"' || c == '\n':
			return nil, fmt.Errorf("raw %q at %d", c, i)
		case c != '\\':
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				return nil, fmt.Errorf("raw invalid UTF-8 at %d", i)
			}
			out = append(out, s[i:i+n]...)
			i += n
			continue
		}
		if i+1 >= len(s) {
			return nil, fmt.Errorf("trailing backslash")
		}
		switch s[i+1] {
		case '\\', '"':
			out = append(out, s[i+1])
		case 't':
			out = append(out, '\t')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 'x':
			if i+4 > len(s) {
				return nil, fmt.Errorf("short \\x escape")
			}
			b, err := strconv.ParseUint(s[i+2:i+4], 16, 8)
			if err != nil || strings.ToLower(s[i+2:i+4]) != s[i+2:i+4] {
				return nil, fmt.Errorf("bad \\x escape %q", s[i:i+4])
			}
			out = append(out, byte(b))
			i += 4
			continue
		default:
			return nil, fmt.Errorf("unknown escape \\%c", s[i+1])
		}
		i += 2
	}
	return out, nil
}

// parseTextCell decodes one line of get/scan text output.
func parseTextCell(line string) (cellJSON, error) {
	f := strings.Split(line, " ")
	if len(f) != 4 || !strings.HasPrefix(f[2], "@") {
		return cellJSON{}, fmt.Errorf("want 4 fields ROW FAMILY:QUALIFIER @TS VALUE, got %d", len(f))
	}
	var c cellJSON
	var err error
	if c.Row, err = unescape(f[0]); err != nil {
		return c, fmt.Errorf("row: %v", err)
	}
	fam, q, ok := strings.Cut(f[1], ":")
	if !ok {
		return c, fmt.Errorf("no ':' in %q", f[1])
	}
	c.Family = fam
	if q == "" {
		c.Qualifier = []byte{}
	} else if c.Qualifier, err = unescape(q); err != nil {
		return c, fmt.Errorf("qualifier: %v", err)
	}
	if c.Timestamp, err = strconv.ParseInt(f[2][1:], 10, 64); err != nil {
		return c, err
	}
	if c.Value, err = unescape(f[3]); err != nil {
		return c, fmt.Errorf("value: %v", err)
	}
	return c, nil
}

func TestEscape(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", `""`},
		{"com.cnn.www", "com.cnn.www"},
		{"a b", `a\x20b`},
		{`back\slash "quoted"`, `back\\slash\x20\"quoted\"`},
		{"\t\n\r\x00\x7f", `\t\n\r\x00\x7f`},
		{"café ☕", `café\x20☕`},
		{"\xff\xfe", `\xff\xfe`},
		{"\u00a0", `\xc2\xa0`}, // no-break space is not printable here
		{"\uFFFD", "\uFFFD"},
		{"@:", "@:"},
	} {
		if got := escape([]byte(tc.in)); got != tc.want {
			t.Errorf("escape(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// FuzzEscape checks that escape is injective (unescape inverts it) and
// never emits a space or newline.
func FuzzEscape(f *testing.F) {
	for _, s := range []string{"", "a b", "\\x41", `""`, "\xff", "é", "\u00a0", "\uFFFD", "\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e := escape(b)
		if strings.ContainsAny(e, " \n") {
			t.Fatalf("escape(%q) = %q has a space or newline", b, e)
		}
		back, err := unescape(e)
		if err != nil {
			t.Fatalf("unescape(escape(%q) = %q): %v", b, e, err)
		}
		if !bytes.Equal(back, b) {
			t.Fatalf("unescape(escape(%q)) = %q", b, back)
		}
	})
}

func TestParseCellLine(t *testing.T) {
	good := `{"row":"cg==","family":"f","qualifier":"","timestamp":5,"value":""}`
	c, err := parseCellLine([]byte(good))
	if err != nil || string(c.Row) != "r" || c.Family != "f" || c.Timestamp != 5 || c.Qualifier == nil || c.Value == nil {
		t.Fatalf("parseCellLine(%s) = %+v, %v", good, c, err)
	}
	for _, bad := range []string{
		``, `[]`, `{}`, `not json`,
		`{"row":"cg==","family":"f","qualifier":"","timestamp":5}`,                          // no value
		`{"row":"cg==","family":"f","qualifier":"","timestamp":5,"value":"","extra":1}`,     // unknown field
		`{"row":"cg==","family":"f","qualifier":"","timestamp":5,"value":""} {}`,            // trailing data
		`{"row":"c","family":"f","qualifier":"","timestamp":5,"value":""}`,                  // bad base64
		`{"row":"","family":"f","qualifier":"","timestamp":5,"value":""}`,                   // empty row
		`{"row":"cg==","family":"bad family","qualifier":"","timestamp":5,"value":""}`,      // bad family
		`{"row":"cg==","family":"f","qualifier":"","timestamp":-1,"value":""}`,              // negative ts
		`{"row":"cg==","family":"f","qualifier":"","timestamp":1.5,"value":""}`,             // fractional ts
		`{"row":"cg==","family":"f","qualifier":null,"timestamp":5,"value":""}`,             // null
		`{"row":"cg==","family":"f","qualifier":"","timestamp":"5","value":""}`,             // ts as string
		`{"row":"cg==","family":"f","qualifier":"","timestamp":5,"value":"","row":"cg=="}x`, // junk
	} {
		if _, err := parseCellLine([]byte(bad)); err == nil {
			t.Errorf("parseCellLine(%s) accepted it", bad)
		}
	}
}

// FuzzParseCellLine: no panic; whatever parses re-encodes and parses back
// to the same cell.
func FuzzParseCellLine(f *testing.F) {
	f.Add([]byte(`{"row":"cg==","family":"f","qualifier":"","timestamp":5,"value":""}`))
	f.Add([]byte(`{"row":"AP8K","family":"anchor","qualifier":"eCB5","timestamp":1700000000000000,"value":"dGFiCWhlcmU="}`))
	f.Add([]byte(`{"row":null}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		c, err := parseCellLine(line)
		if err != nil {
			return
		}
		var b strings.Builder
		cw, _ := newCellWriter(&b, "json")
		if err := cw.write(c); err != nil {
			t.Fatal(err)
		}
		c2, err := parseCellLine([]byte(b.String()))
		if err != nil {
			t.Fatalf("re-encoded %q does not parse: %v", b.String(), err)
		}
		if !bytes.Equal(c.Row, c2.Row) || c.Family != c2.Family || !bytes.Equal(c.Qualifier, c2.Qualifier) ||
			c.Timestamp != c2.Timestamp || !bytes.Equal(c.Value, c2.Value) {
			t.Fatalf("round trip changed %+v into %+v", c, c2)
		}
	})
}

func TestParseFamilySpec(t *testing.T) {
	for _, tc := range []struct {
		in, name, policy string
	}{
		{"anchor", "anchor", "never"},
		{"contents:maxversions=3", "contents", "maxversions=3"},
		{"f:maxage=36h", "f", "maxage=36h"},
		{"f:maxage=7d", "f", "maxage=168h"},
		{"f:maxage=90s:maxversions=2", "f", "maxage=90s || maxversions=2"},
		{"f:maxversions=2:maxage=1500ms", "f", "maxversions=2 || maxage=1500ms"},
	} {
		spec, err := parseFamilySpec(tc.in)
		if err != nil || spec.name != tc.name || policyString(spec.policy) != tc.policy {
			t.Errorf("parseFamilySpec(%q) = %q %v, %v; want %q %q", tc.in, spec.name, spec.policy, err, tc.name, tc.policy)
		}
	}
	for _, bad := range []string{"", ":maxversions=1", "bad name", "f:", "f:maxversions", "f:maxversions=0", "f:maxversions=x",
		"f:maxage=0s", "f:maxage=-1h", "f:maxage=soon", "f:maxage=1ns", "f:maxage=0d", "f:ttl=1h", "f:maxage=1h:maxage=2h"} {
		if _, err := parseFamilySpec(bad); !errors.Is(err, errUsage) {
			t.Errorf("parseFamilySpec(%q) = %v, want a usage error", bad, err)
		}
	}
	// Every accepted maxage is whole microseconds, as the wire carries it.
	if d, err := parseAge("1500us"); err != nil || d != 1500*time.Microsecond {
		t.Errorf("parseAge(1500us) = %v, %v", d, err)
	}
}

func TestParseColumn(t *testing.T) {
	for _, tc := range []struct {
		in           string
		need         bool
		family, qual string
		hasQual      bool
	}{
		{"f:q", true, "f", "q", true},
		{"f:", true, "f", "", true},
		{"f:a:b c", true, "f", "a:b c", true},
		{"f", false, "f", "", false},
		{"anchor:com.cnn.www/world", false, "anchor", "com.cnn.www/world", true},
	} {
		c, err := parseColumn(tc.in, tc.need)
		if err != nil || c.family != tc.family || c.qualifier != tc.qual || c.hasQualifier != tc.hasQual {
			t.Errorf("parseColumn(%q, %v) = %+v, %v", tc.in, tc.need, c, err)
		}
	}
	for _, bad := range []string{"f", ":q", "bad fam:q", "-f:q", strings.Repeat("f", 65) + ":q", "f:" + strings.Repeat("q", 16<<10+1)} {
		if _, err := parseColumn(bad, true); !errors.Is(err, errUsage) {
			t.Errorf("parseColumn(%.40q, true) = %v, want a usage error", bad, err)
		}
	}
}

func TestRowCellsOrder(t *testing.T) {
	r := client.Row{
		"b": {{Row: "r", Column: "b:x", Timestamp: 2, Value: []byte("1")}},
		"a": {{Row: "r", Column: "a:y", Timestamp: 5, Value: []byte("2")}, {Row: "r", Column: "a:y", Timestamp: 3, Value: []byte("3")}},
	}
	var b strings.Builder
	cw, _ := newCellWriter(&b, "text")
	for _, c := range rowCells(r) {
		cw.write(c)
	}
	if want := "r a:y @5 2\nr a:y @3 3\nr b:x @2 1\n"; b.String() != want {
		t.Errorf("text of %v = %q, want %q", r, b.String(), want)
	}
}

func TestReadLine(t *testing.T) {
	defer func(n int) { importMaxLineBytes = n }(importMaxLineBytes)
	importMaxLineBytes = 40
	in := "short\n" + strings.Repeat("x", 100) + "\n\nlast without newline"
	r := bufio.NewReaderSize(strings.NewReader(in), 16)
	var got []string
	for {
		line, err := readLine(r)
		if err == io.EOF {
			break
		}
		if errors.Is(err, errLineTooLong) {
			got = append(got, "TOO LONG")
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(line))
	}
	if want := []string{"short", "TOO LONG", "", "last without newline"}; !slices.Equal(got, want) {
		t.Errorf("lines = %q, want %q", got, want)
	}
}
