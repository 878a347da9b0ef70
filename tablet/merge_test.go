package tablet

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"cellar/dfs/memfs"
	"cellar/sstable"
)

// A merged tablet sees exactly what its parents saw: a file the left
// parent still shares with its former split sibling holds rows the right
// parent has since deleted or overwritten (and compacted away), and those
// must not come back; writes to the merged tablet win over everything
// inherited.
func TestMergeAfterSplit(t *testing.T) {
	ctx := context.Background()
	fs := memfs.New()
	fams := []FamilyOptions{{Name: "a"}}
	p := openTest(t, &Options{FS: fs, Dir: "p", Families: fams})
	for i := range 100 {
		row := []byte(fmt.Sprintf("r%03d", i))
		if err := p.Apply(ctx, row, []Mutation{SetCell("a", nil, 1, []byte("p"))}, nil); err != nil {
			t.Fatal(err)
		}
	}
	lo, ro, err := p.Split(ctx, []byte("r050"), "l", "p")
	if err != nil {
		t.Fatal(err)
	}
	lo.ID, ro.ID = 2, 1
	// The right daughter deletes a row, overwrites another at the same
	// timestamp, and compacts the shared file away (its tombstone too).
	r := openTest(t, ro)
	if err := r.Apply(ctx, []byte("r060"), []Mutation{DeleteRow()}, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.Apply(ctx, []byte("r070"), []Mutation{SetCell("a", nil, 1, []byte("r"))}, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.Compact(ctx, true); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	// The left one overwrites a row and keeps the shared file.
	l := openTest(t, lo)
	if err := l.Apply(ctx, []byte("r010"), []Mutation{SetCell("a", nil, 1, []byte("l"))}, nil); err != nil {
		t.Fatal(err)
	}
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	if _, _, err := Merge(ctx, fs, 3, "p", "l", "m"); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("Merge of right then left = %v, want ErrInvalidOptions", err)
	}
	start, end, err := Merge(ctx, fs, 3, "l", "p", "m")
	if err != nil {
		t.Fatal(err)
	}
	if start != nil || end != nil {
		t.Fatalf("merged range [%q, %q), want unbounded", start, end)
	}
	if _, _, err := Merge(ctx, fs, 3, "l", "p", "m"); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("Merge into a dir holding a tablet = %v, want ErrInvalidOptions", err)
	}
	mo := &Options{FS: fs, Dir: "m", ID: 3, Families: fams}
	m := openTest(t, mo)
	want := map[string]string{}
	for i := range 100 {
		want[fmt.Sprintf("r%03d", i)] = "p"
	}
	delete(want, "r060")
	want["r070"], want["r010"] = "r", "l"
	check := func(what string, m *Tablet) {
		t.Helper()
		got := map[string]string{}
		err := m.Scan(ctx, nil, func(r *Row) bool {
			if len(r.Cells) != 1 {
				t.Errorf("%s: row %q has %d cells", what, r.Key, len(r.Cells))
			}
			got[string(r.Key)] = string(r.Cells[0].Value)
			return true
		})
		if err != nil {
			t.Fatalf("%s: scan: %v", what, err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: merged tablet holds\n%v\nwant\n%v", what, got, want)
		}
		for k, v := range want {
			r, err := m.ReadRow(ctx, []byte(k), nil)
			if err != nil || r == nil || string(r.Cells[0].Value) != v {
				t.Fatalf("%s: ReadRow(%q) = %v, %v; want %q", what, k, r, err, v)
			}
		}
		if r, err := m.ReadRow(ctx, []byte("r060"), nil); err != nil || r != nil {
			t.Fatalf("%s: deleted row came back: %v, %v", what, r, err)
		}
	}
	check("merged", m)
	var fromLeft, fromRight bool
	for _, f := range m.LiveFiles() {
		fromLeft = fromLeft || strings.HasPrefix(f, "l/")
		fromRight = fromRight || strings.HasPrefix(f, "p/")
	}
	if !fromLeft || !fromRight {
		t.Fatalf("merged tablet's files %v: want both parents'", m.LiveFiles())
	}
	// New writes win over inherited versions of the same timestamp.
	for _, k := range []string{"r010", "r070", "r080"} {
		if err := m.Apply(ctx, []byte(k), []Mutation{SetCell("a", nil, 1, []byte("m"))}, nil); err != nil {
			t.Fatal(err)
		}
		want[k] = "m"
	}
	check("after writes", m)
	if err := m.Compact(ctx, true); err != nil {
		t.Fatal(err)
	}
	for _, f := range m.LiveFiles() {
		if !strings.HasPrefix(f, "m/") {
			t.Errorf("after a major compaction the merged tablet still lists %s", f)
		}
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	// The parents' files are not the merged tablet's to delete.
	if _, err := fs.Stat(ctx, "l/sst/000001.sst"); err != nil {
		t.Errorf("merged tablet deleted its left parent's file: %v", err)
	}
	m = openTest(t, mo)
	check("reopened", m)
	m.Close()
	info, err := ReadManifest(ctx, fs, "m")
	if err != nil || info == nil || info.ID != 3 || len(info.Files) == 0 {
		t.Fatalf("ReadManifest(m) = %+v, %v", info, err)
	}
}

func TestBoundedManifestRoundTrip(t *testing.T) {
	m := testManifest()
	m.families["a"][1].lo = []byte("c")
	m.families["a"][1].hi = []byte("k")
	m.families["b"] = []fileMeta{{path: "q/sst/000002.sst", size: 5, entries: 1, hi: []byte("d")}}
	enc := m.encode()
	if enc[len(manifestMagic)] != manifestVersionBounds {
		t.Fatalf("a manifest with bounded files is written as version %d", enc[len(manifestMagic)])
	}
	got, err := decodeManifest(enc)
	if err != nil || !manifestsEqual(got, m) {
		t.Fatalf("round trip = %+v, %v; want %+v", got, err, m)
	}
	for i := range enc {
		if _, err := decodeManifest(enc[:i]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decode of %d-byte prefix: %v", i, err)
		}
	}
}

func TestIntersectAndAddBounded(t *testing.T) {
	s := func(v string) []byte {
		if v == "-" {
			return nil
		}
		return []byte(v)
	}
	for _, tc := range []struct{ lo, hi, start, end, wantLo, wantHi string }{
		{"-", "-", "b", "m", "b", "m"},
		{"c", "k", "b", "m", "c", "k"},
		{"a", "z", "b", "m", "b", "m"},
		{"c", "-", "-", "m", "c", "m"},
		{"-", "-", "-", "-", "-", "-"},
	} {
		lo, hi := intersect(s(tc.lo), s(tc.hi), s(tc.start), s(tc.end))
		if fmt.Sprint(lo) != fmt.Sprint(s(tc.wantLo)) || fmt.Sprint(hi) != fmt.Sprint(s(tc.wantHi)) {
			t.Errorf("intersect([%s, %s), [%s, %s)) = [%q, %q), want [%s, %s)", tc.lo, tc.hi, tc.start, tc.end, lo, hi, tc.wantLo, tc.wantHi)
		}
	}
	// A file both parents list, once bounded by each range, is one entry
	// again; other files stay apart.
	files := addBounded(nil, fileMeta{path: "p/1", hi: []byte("m")})
	files = addBounded(files, fileMeta{path: "q/1", hi: []byte("m")})
	files = addBounded(files, fileMeta{path: "p/1", lo: []byte("m")})
	if len(files) != 2 || files[0].lo != nil || files[0].hi != nil {
		t.Fatalf("addBounded = %+v, want p/1 unbounded and q/1", files)
	}
}

// A bounded iterator shows exactly the entries of its rows.
func TestBoundedIter(t *testing.T) {
	ctx := context.Background()
	fs := memfs.New()
	tab := openTest(t, &Options{FS: fs, Dir: "t", Families: []FamilyOptions{{Name: "a"}}})
	for _, r := range []string{"a", "b", "c", "d", "e"} {
		if err := tab.Apply(ctx, []byte(r), []Mutation{SetCell("a", nil, 1, []byte(r))}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := tab.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	rs, _, err := tab.acquire()
	if err != nil {
		t.Fatal(err)
	}
	defer rs.unref()
	tb := rs.tables["a"][0]
	for _, tc := range []struct {
		lo, hi string
		want   string
	}{{"b", "d", "bc"}, {"", "c", "ab"}, {"d", "", "de"}, {"c", "c\x00", "c"}, {"x", "", ""}} {
		bt := &table{meta: tb.meta, family: tb.family, r: tb.r}
		var lo, hi []byte
		if tc.lo != "" {
			lo = []byte(tc.lo)
		}
		if tc.hi != "" {
			hi = []byte(tc.hi)
		}
		bt.lo, bt.hi = rowBounds(lo, hi)
		it := bt.newIter(sstable.IterOptions{})
		got := ""
		for ok := it.First(); ok; ok = it.Next() {
			got += string(it.Value())
		}
		// SeekGE below the bounds lands on the first row inside them.
		first := ""
		if it.SeekGE(nil) {
			first = string(it.Value())
		}
		it.Close()
		if got != tc.want || (tc.want != "" && first != tc.want[:1]) || (tc.want == "" && first != "") {
			t.Errorf("rows in [%q, %q) = %q (seek: %q), want %q", tc.lo, tc.hi, got, first, tc.want)
		}
	}
	tab.Close()
}
