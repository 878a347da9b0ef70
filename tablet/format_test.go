package tablet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"cellar/dfs/memfs"
	"cellar/internal/keys"
)

var testLimits = limits{families: []string{"a", "b"}, maxValue: 100, maxCells: 10, memtableSize: 1 << 20}

func TestBatchRoundTrip(t *testing.T) {
	row := []byte("row\x00x")
	muts := []Mutation{
		SetCell("a", []byte("q"), 5, []byte("v")),
		SetCell("b", nil, ServerTime, nil),
		DeleteCell("a", []byte("q\x00"), 7),
		DeleteColumn("b", []byte("c"), keys.TimeRange{Start: 1, End: 9}),
		DeleteFamily("a"),
		DeleteRow(),
	}
	n, _, err := checkMutations(row, muts, &testLimits)
	if err != nil {
		t.Fatal(err)
	}
	if n != 7 {
		t.Fatalf("n = %d, want 7 (DeleteRow is one delete per family)", n)
	}
	enc := encodeBatch(nil, row, muts, testLimits.families, n, 100, 42)
	b, err := decodeBatch(enc, 100)
	if err != nil {
		t.Fatal(err)
	}
	want := []keys.Key{
		{Row: row, Family: "a", Qualifier: []byte("q"), Timestamp: 5, Seq: 100, Kind: keys.KindSet},
		{Row: row, Family: "b", Timestamp: 42, Seq: 101, Kind: keys.KindSet},
		{Row: row, Family: "a", Qualifier: []byte("q\x00"), Timestamp: 7, Seq: 102, Kind: keys.KindDeleteCell},
		{Row: row, Family: "b", Qualifier: []byte("c"), Timestamp: keys.MarkerTimestamp, Seq: 103, Kind: keys.KindDeleteColumn},
		{Row: row, Family: "a", Timestamp: keys.MarkerTimestamp, Seq: 104, Kind: keys.KindDeleteFamily},
		{Row: row, Family: "a", Timestamp: keys.MarkerTimestamp, Seq: 105, Kind: keys.KindDeleteFamily},
		{Row: row, Family: "b", Timestamp: keys.MarkerTimestamp, Seq: 106, Kind: keys.KindDeleteFamily},
	}
	if !bytes.Equal(b.row, row) || len(b.keys) != len(want) {
		t.Fatalf("decoded row %q with %d keys", b.row, len(b.keys))
	}
	for i, w := range want {
		if !bytes.Equal(b.keys[i], keys.Encode(w)) {
			k, _ := keys.Decode(b.keys[i])
			t.Errorf("key %d = %v, want %v", i, k, w)
		}
	}
	if !bytes.Equal(b.values[0], []byte("v")) || len(b.values[1]) != 0 {
		t.Errorf("values = %q", b.values[:2])
	}
	if tr, err := keys.DecodeTimeRange(b.values[3]); err != nil || tr != (keys.TimeRange{Start: 1, End: 9}) {
		t.Errorf("column delete range = %v, %v", tr, err)
	}
	// The documented worked example.
	ex := encodeBatch(nil, []byte("r"), []Mutation{SetCell("cf", []byte("q"), 5, []byte("v"))}, nil, 1, 7, 0)
	if !bytes.HasPrefix(ex, []byte{1, 1, 'r', 1, 25, 'r', 0, 1, 'c', 'f', 0, 'q', 0, 1}) || !bytes.HasSuffix(ex, []byte{1, 'v'}) {
		t.Errorf("worked example = % x", ex)
	}
	// Wrong first sequence number, trailing bytes, truncation: corrupt.
	if _, err := decodeBatch(enc, 99); !errors.Is(err, ErrCorrupt) {
		t.Errorf("decode with a wrong first seq: %v", err)
	}
	if _, err := decodeBatch(append(enc, 0), 100); !errors.Is(err, ErrCorrupt) {
		t.Errorf("decode with a trailing byte: %v", err)
	}
	for i := 0; i < len(enc); i++ {
		if _, err := decodeBatch(enc[:i], 100); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decode of %d-byte prefix: %v", i, err)
		}
	}
}

func TestCheckMutations(t *testing.T) {
	big := make([]byte, 101)
	many := make([]Mutation, 11)
	for i := range many {
		many[i] = SetCell("a", nil, 1, nil)
	}
	tests := []struct {
		name string
		row  []byte
		muts []Mutation
		want error
	}{
		{"ok", []byte("r"), []Mutation{SetCell("a", nil, 0, nil)}, nil},
		{"empty row", nil, []Mutation{SetCell("a", nil, 0, nil)}, keys.ErrInvalid},
		{"long row", make([]byte, keys.MaxRowLen+1), []Mutation{SetCell("a", nil, 0, nil)}, keys.ErrLimit},
		{"no mutations", []byte("r"), nil, keys.ErrInvalid},
		{"zero mutation", []byte("r"), []Mutation{{}}, keys.ErrInvalid},
		{"unknown family", []byte("r"), []Mutation{SetCell("c", nil, 0, nil)}, ErrUnknownFamily},
		{"bad family name", []byte("r"), []Mutation{DeleteFamily("a:b")}, keys.ErrInvalid},
		{"long qualifier", []byte("r"), []Mutation{SetCell("a", make([]byte, keys.MaxQualifierLen+1), 0, nil)}, keys.ErrLimit},
		{"negative timestamp", []byte("r"), []Mutation{SetCell("a", nil, -2, nil)}, keys.ErrInvalid},
		{"marker timestamp", []byte("r"), []Mutation{DeleteCell("a", nil, keys.MarkerTimestamp)}, keys.ErrInvalid},
		{"value too big", []byte("r"), []Mutation{SetCell("a", nil, 1, big)}, keys.ErrLimit},
		{"too many cells", []byte("r"), many, keys.ErrLimit},
		{"row delete counts per family", []byte("r"), append(many[:9:9], DeleteRow()), keys.ErrLimit},
		{"inverted time range", []byte("r"), []Mutation{DeleteColumn("a", nil, keys.TimeRange{Start: 5, End: 5})}, keys.ErrInvalid},
		{"negative time range", []byte("r"), []Mutation{DeleteColumn("a", nil, keys.TimeRange{Start: -1})}, keys.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := checkMutations(tc.row, tc.muts, &testLimits)
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("checkMutations(%q, %v) = %v, want %v", tc.row, tc.muts, err, tc.want)
			}
		})
	}
	tiny := testLimits
	tiny.memtableSize = 200
	var le *keys.LimitError
	if _, _, err := checkMutations([]byte("r"), []Mutation{SetCell("a", nil, 1, make([]byte, 100))}, &tiny); !errors.As(err, &le) || le.What != "mutation" {
		t.Errorf("mutation larger than a memtable: %v", err)
	}
}

func FuzzBatch(f *testing.F) {
	muts := []Mutation{SetCell("a", []byte("q"), 5, []byte("v")), DeleteColumn("b", nil, keys.TimeRange{Start: 1}), DeleteRow()}
	f.Add(encodeBatch(nil, []byte("row"), muts, testLimits.families, 4, 1, 9), uint64(1))
	f.Add(encodeBatch(nil, []byte("r\x00"), muts[:1], nil, 1, 77, 0), uint64(77))
	f.Add([]byte{1, 0, 0}, uint64(0))
	// A count padded to two varint bytes (0x80 0x00) once decoded and then
	// re-encoded differently; non-minimal varints are now corrupt.
	f.Add([]byte{1, 1, 'r', 0x81, 0x00, 1, 'k', 0}, uint64(0))
	f.Fuzz(func(t *testing.T, b []byte, first uint64) {
		bt, err := decodeBatch(b, keys.SeqNum(first))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		// A batch that decodes re-encodes to the same bytes.
		out := []byte{batchVersion}
		out = appendBytes(out, bt.row)
		out = appendUvarint(out, uint64(len(bt.keys)))
		for i := range bt.keys {
			out = appendBytes(out, bt.keys[i])
			out = appendBytes(out, bt.values[i])
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs:\n% x\n% x", out, b)
		}
	})
}

func testManifest() *manifest {
	return &manifest{
		id: 7, startRow: []byte("b"), endRow: []byte("m\x00"), flushedSeq: 99, nextFileNum: 12, splitFloor: 5,
		families: map[string][]fileMeta{
			"a": {{path: "t/sst/000003.sst", size: 100, entries: 4}, {path: "p/sst/000001.sst", size: 1 << 40, entries: 1}},
			"b": nil,
		},
	}
}

func manifestsEqual(a, b *manifest) bool { return fmt.Sprintf("%+v", a) == fmt.Sprintf("%+v", b) }

func TestManifestRoundTrip(t *testing.T) {
	for _, m := range []*manifest{
		testManifest(),
		{id: 1, families: map[string][]fileMeta{}},
		{id: 2, startRow: []byte{}, split: true, families: map[string][]fileMeta{"x": {{path: "a", size: 0}}}},
	} {
		got, err := decodeManifest(m.encode())
		if err != nil {
			t.Fatal(err)
		}
		if !manifestsEqual(got, m) {
			t.Errorf("round trip = %+v, want %+v", got, m)
		}
	}
	// The documented worked example.
	ex := (&manifest{id: 7, flushedSeq: 9, nextFileNum: 2, families: map[string][]fileMeta{"cf": nil}}).encode()
	if want := append([]byte("CLRMANIF"), 1, 7, 0, 9, 2, 0, 1, 2, 'c', 'f', 0); !bytes.Equal(ex[:len(ex)-4], want) {
		t.Errorf("worked example = % x, want % x + crc", ex, want)
	}
	enc := testManifest().encode()
	for i := 0; i < len(enc); i++ {
		if _, err := decodeManifest(enc[:i]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decode of %d-byte prefix: %v", i, err)
		}
		flipped := append([]byte{}, enc...)
		flipped[i] ^= 0x40
		if _, err := decodeManifest(flipped); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decode with byte %d flipped: %v", i, err)
		}
	}
}

func TestManifestFile(t *testing.T) {
	ctx := context.Background()
	fs := memfs.New()
	if m, err := readManifest(ctx, fs, "t"); m != nil || err != nil {
		t.Fatalf("readManifest of nothing = %v, %v", m, err)
	}
	// A stale temporary file from a crash does not get in the way.
	f, _ := fs.Create(ctx, "t/"+manifestFileName(1)+tmpSuffix)
	f.Write([]byte("junk"))
	f.Close()
	for i := 0; i < 3; i++ {
		m := testManifest()
		m.flushedSeq = keys.SeqNum(i)
		if err := writeManifest(ctx, fs, "t", 1, m); err != nil {
			t.Fatal(err)
		}
		got, err := readManifest(ctx, fs, "t")
		if err != nil || !manifestsEqual(got, m) {
			t.Fatalf("read back %+v, %v", got, err)
		}
	}
	ents, _ := fs.List(ctx, "t")
	if len(ents) != 1 || ents[0].Name != "MANIFEST-1" {
		t.Fatalf("dir holds %v, want only MANIFEST-1", ents)
	}
}

func FuzzManifest(f *testing.F) {
	f.Add(testManifest().encode())
	bounded := testManifest()
	bounded.families["a"][0].lo, bounded.families["a"][0].hi = []byte("c"), []byte("k")
	f.Add(bounded.encode())
	f.Add((&manifest{id: 1, families: map[string][]fileMeta{}}).encode())
	f.Add([]byte(manifestMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeManifest(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		again, err := decodeManifest(m.encode())
		if err != nil || !manifestsEqual(again, m) {
			t.Fatalf("re-encoded manifest decodes to %+v, %v; want %+v", again, err, m)
		}
	})
}
