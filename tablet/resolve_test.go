package tablet

import (
	"bytes"
	"fmt"
	"sort"
	"testing"

	"cellar/internal/keys"
)

// ent is a test entry: row r, family f, qualifier q, timestamp ts, seq s.
type ent struct {
	r, f, q string
	ts      int64
	s       keys.SeqNum
	k       keys.Kind
	tr      keys.TimeRange
}

func (e ent) kv() ([]byte, []byte) {
	ts := e.ts
	if e.k == keys.KindDeleteColumn || e.k == keys.KindDeleteFamily {
		ts = keys.MarkerTimestamp
	}
	key := keys.Encode(keys.Key{Row: []byte(e.r), Family: e.f, Qualifier: []byte(e.q), Timestamp: ts, Seq: e.s, Kind: e.k})
	var v []byte
	switch e.k {
	case keys.KindSet:
		v = []byte(fmt.Sprintf("v%d", e.s))
	case keys.KindDeleteColumn:
		v = keys.EncodeTimeRange(e.tr)
	}
	return key, v
}

func set(r, f, q string, ts int64, s keys.SeqNum) ent {
	return ent{r: r, f: f, q: q, ts: ts, s: s, k: keys.KindSet}
}
func delCell(r, f, q string, ts int64, s keys.SeqNum) ent {
	return ent{r: r, f: f, q: q, ts: ts, s: s, k: keys.KindDeleteCell}
}
func delCol(r, f, q string, tr keys.TimeRange, s keys.SeqNum) ent {
	return ent{r: r, f: f, q: q, s: s, k: keys.KindDeleteColumn, tr: tr}
}
func delFam(r, f string, s keys.SeqNum) ent {
	return ent{r: r, f: f, s: s, k: keys.KindDeleteFamily}
}

// resolveAll sorts the entries like a merge would and returns the visible
// versions as "row/fam:qual@ts#seq[idx]".
func resolveAll(t *testing.T, es []ent, snap keys.SeqNum) []string {
	type kv struct{ k, v []byte }
	var kvs []kv
	for _, e := range es {
		k, v := e.kv()
		kvs = append(kvs, kv{k, v})
	}
	sort.Slice(kvs, func(i, j int) bool { return bytes.Compare(kvs[i].k, kvs[j].k) < 0 })
	r := newResolver(snap)
	var out []string
	for _, x := range kvs {
		v, ok, err := r.add(x.k, x.v)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			k, _ := keys.Decode(x.k)
			out = append(out, fmt.Sprintf("%s/%s:%s@%d#%d[%d]", k.Row, k.Family, k.Qualifier, v.ts, v.seq, v.idx))
		}
	}
	return out
}

func TestResolver(t *testing.T) {
	const all = keys.MaxSeq
	tests := []struct {
		name string
		in   []ent
		snap keys.SeqNum
		want []string
	}{
		{"versions newest first", []ent{set("r", "f", "q", 1, 1), set("r", "f", "q", 3, 2), set("r", "f", "q", 2, 3)}, all,
			[]string{"r/f:q@3#2[0]", "r/f:q@2#3[1]", "r/f:q@1#1[2]"}},
		{"same timestamp: later write wins", []ent{set("r", "f", "q", 5, 1), set("r", "f", "q", 5, 2)}, all,
			[]string{"r/f:q@5#2[0]"}},
		{"delete cell masks lower seq", []ent{set("r", "f", "q", 5, 1), delCell("r", "f", "q", 5, 2), set("r", "f", "q", 4, 3)}, all,
			[]string{"r/f:q@4#3[0]"}},
		{"set after delete cell is visible", []ent{set("r", "f", "q", 5, 1), delCell("r", "f", "q", 5, 2), set("r", "f", "q", 5, 3)}, all,
			[]string{"r/f:q@5#3[0]"}},
		{"delete cell of another timestamp", []ent{set("r", "f", "q", 5, 1), delCell("r", "f", "q", 6, 2)}, all,
			[]string{"r/f:q@5#1[0]"}},
		{"column delete masks range, lower seq", []ent{set("r", "f", "q", 1, 1), set("r", "f", "q", 5, 2), set("r", "f", "q", 9, 3),
			delCol("r", "f", "q", keys.TimeRange{Start: 2, End: 9}, 4), set("r", "f", "q", 6, 5)}, all,
			[]string{"r/f:q@9#3[0]", "r/f:q@6#5[1]", "r/f:q@1#1[2]"}},
		{"column delete unbounded", []ent{set("r", "f", "q", 100, 1), delCol("r", "f", "q", keys.TimeRange{Start: 50}, 2)}, all, nil},
		{"column delete other column", []ent{set("r", "f", "q", 1, 1), delCol("r", "f", "p", keys.TimeRange{}, 2)}, all,
			[]string{"r/f:q@1#1[0]"}},
		{"family delete masks all columns with lower seq", []ent{set("r", "f", "a", 1, 1), set("r", "f", "b", 1, 2), delFam("r", "f", 3),
			set("r", "f", "c", 1, 4), set("r", "g", "a", 1, 5)}, all,
			[]string{"r/f:c@1#4[0]", "r/g:a@1#5[0]"}},
		{"family delete does not cross rows", []ent{set("r", "f", "a", 1, 1), delFam("s", "f", 2)}, all,
			[]string{"r/f:a@1#1[0]"}},
		{"empty qualifier with family delete", []ent{set("r", "f", "", 1, 1), delFam("r", "f", 2), set("r", "f", "", 2, 3)}, all,
			[]string{"r/f:@2#3[0]"}},
		{"snapshot hides newer writes", []ent{set("r", "f", "q", 1, 1), delFam("r", "f", 2), set("r", "f", "q", 3, 3)}, 1,
			[]string{"r/f:q@1#1[0]"}},
		{"snapshot hides a newer same-ts write", []ent{set("r", "f", "q", 5, 1), set("r", "f", "q", 5, 2)}, 1,
			[]string{"r/f:q@5#1[0]"}},
		{"index restarts per column", []ent{set("r", "f", "a", 1, 1), set("r", "f", "a", 2, 2), set("r", "f", "b", 1, 3)}, all,
			[]string{"r/f:a@2#2[0]", "r/f:a@1#1[1]", "r/f:b@1#3[0]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := resolveAll(t, tc.in, tc.snap)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("resolve = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestResolverCorrupt(t *testing.T) {
	r := newResolver(keys.MaxSeq)
	for _, k := range [][]byte{nil, []byte("short"), bytes.Repeat([]byte{1}, 40)} {
		if _, _, err := r.add(k, nil); err == nil {
			t.Errorf("add(%x) accepted a malformed key", k)
		}
	}
	k, _ := delCol("r", "f", "q", keys.TimeRange{}, 1).kv()
	if _, _, err := newResolver(keys.MaxSeq).add(k, []byte("bad")); err == nil {
		t.Error("column delete with a bad range value accepted")
	}
}

func TestMergingIter(t *testing.T) {
	mk := func(ks ...string) internalIterator {
		s := &sliceIter{}
		for _, k := range ks {
			s.keys = append(s.keys, []byte(k))
		}
		return s
	}
	mi := newMergingIter([]internalIterator{mk("a", "d", "g"), mk(), mk("b", "c", "h"), mk("e")})
	var got []string
	for ok := mi.First(); ok; ok = mi.Next() {
		got = append(got, string(mi.Key()))
	}
	if fmt.Sprint(got) != "[a b c d e g h]" {
		t.Errorf("merge = %v", got)
	}
	got = nil
	for ok := mi.SeekGE([]byte("cc")); ok; ok = mi.Next() {
		got = append(got, string(mi.Key()))
	}
	if fmt.Sprint(got) != "[d e g h]" {
		t.Errorf("SeekGE(cc) = %v", got)
	}
	if err := mi.Close(); err != nil {
		t.Fatal(err)
	}
}

// sliceIter is an internalIterator over sorted keys (values = keys).
type sliceIter struct {
	keys [][]byte
	i    int
}

func (s *sliceIter) SeekGE(k []byte) bool {
	s.i = sort.Search(len(s.keys), func(i int) bool { return bytes.Compare(s.keys[i], k) >= 0 })
	return s.Valid()
}
func (s *sliceIter) First() bool   { s.i = 0; return s.Valid() }
func (s *sliceIter) Next() bool    { s.i++; return s.Valid() }
func (s *sliceIter) Valid() bool   { return s.i < len(s.keys) }
func (s *sliceIter) Key() []byte   { return s.keys[s.i] }
func (s *sliceIter) Value() []byte { return s.keys[s.i] }
func (s *sliceIter) Error() error  { return nil }
func (s *sliceIter) Close() error  { return nil }
