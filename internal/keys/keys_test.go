package keys

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
)

func TestWorkedExample(t *testing.T) {
	k := Key{Row: []byte("r\x00"), Family: "cf", Qualifier: []byte("q"), Timestamp: 5, Seq: 7, Kind: KindSet}
	got := hex.EncodeToString(Encode(k))
	want := strings.ReplaceAll("7200FF0001 636600 710001 7FFFFFFFFFFFFFFA FFFFFFFFFFFFF8FE", " ", "")
	if !strings.EqualFold(got, want) {
		t.Fatalf("Encode(%v) = %s, want %s (the package doc's example)", k, got, want)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		k    Key
		want error
	}{
		{"ok", Key{Row: []byte("r"), Family: "f", Timestamp: 1, Kind: KindSet}, nil},
		{"empty row", Key{Family: "f", Kind: KindSet}, ErrInvalid},
		{"long row", Key{Row: make([]byte, MaxRowLen+1), Family: "f", Kind: KindSet}, ErrLimit},
		{"max row", Key{Row: make([]byte, MaxRowLen), Family: "f", Kind: KindSet}, nil},
		{"bad family", Key{Row: []byte("r"), Family: "-f", Kind: KindSet}, ErrInvalid},
		{"family dot", Key{Row: []byte("r"), Family: "_a.b-c", Kind: KindSet}, nil},
		{"family colon", Key{Row: []byte("r"), Family: "a:b", Kind: KindSet}, ErrInvalid},
		{"long family", Key{Row: []byte("r"), Family: strings.Repeat("f", 65), Kind: KindSet}, ErrLimit},
		{"long qualifier", Key{Row: []byte("r"), Family: "f", Qualifier: make([]byte, MaxQualifierLen+1), Kind: KindSet}, ErrLimit},
		{"negative ts", Key{Row: []byte("r"), Family: "f", Timestamp: -1, Kind: KindSet}, ErrInvalid},
		{"marker ts on set", Key{Row: []byte("r"), Family: "f", Timestamp: MarkerTimestamp, Kind: KindSet}, ErrInvalid},
		{"family marker", Key{Row: []byte("r"), Family: "f", Timestamp: MarkerTimestamp, Kind: KindDeleteFamily}, nil},
		{"family marker with qualifier", Key{Row: []byte("r"), Family: "f", Qualifier: []byte("q"), Timestamp: MarkerTimestamp, Kind: KindDeleteFamily}, ErrInvalid},
		{"column marker ts", Key{Row: []byte("r"), Family: "f", Timestamp: 3, Kind: KindDeleteColumn}, ErrInvalid},
		{"kind 0", Key{Row: []byte("r"), Family: "f"}, ErrInvalid},
		{"seq too big", Key{Row: []byte("r"), Family: "f", Kind: KindSet, Seq: MaxSeq + 1}, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.k)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Validate(%v) = %v, want %v", tt.k, err, tt.want)
			}
		})
	}
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, r.IntN(n+1))
	for i := range b {
		// Bias towards 0x00, 0x01 and 0xFF, the bytes the escaping cares about.
		switch r.IntN(4) {
		case 0:
			b[i] = []byte{0, 1, 0xFF}[r.IntN(3)]
		default:
			b[i] = byte(r.IntN(256))
		}
	}
	return b
}

func randKey(r *rand.Rand) Key {
	k := Key{Row: randBytes(r, 4), Family: []string{"a", "a.b", "b", "ab"}[r.IntN(4)],
		Qualifier: randBytes(r, 3), Timestamp: int64(r.IntN(4)), Seq: SeqNum(r.IntN(4)), Kind: KindSet}
	if len(k.Row) == 0 {
		k.Row = []byte{0}
	}
	switch r.IntN(6) {
	case 0:
		k.Kind, k.Timestamp = KindDeleteColumn, MarkerTimestamp
	case 1:
		k.Kind, k.Timestamp, k.Qualifier = KindDeleteFamily, MarkerTimestamp, nil
	case 2:
		k.Kind = KindDeleteCell
	}
	return k
}

// less is the data model's order, written out directly.
func less(a, b Key) bool {
	if c := bytes.Compare(a.Row, b.Row); c != 0 {
		return c < 0
	}
	if a.Family != b.Family {
		return a.Family < b.Family
	}
	if c := bytes.Compare(a.Qualifier, b.Qualifier); c != 0 {
		return c < 0
	}
	if a.Timestamp != b.Timestamp {
		return a.Timestamp > b.Timestamp
	}
	if a.Seq != b.Seq {
		return a.Seq > b.Seq
	}
	return a.Kind > b.Kind
}

func TestOrderMatchesModel(t *testing.T) {
	seed := rand.Uint64()
	r := rand.New(rand.NewPCG(seed, 0))
	ks := make([]Key, 2000)
	for i := range ks {
		ks[i] = randKey(r)
	}
	for i := 0; i < len(ks)-1; i++ {
		a, b := ks[i], ks[i+1]
		ea, eb := Encode(a), Encode(b)
		if (bytes.Compare(ea, eb) < 0) != less(a, b) && !(bytes.Equal(ea, eb)) {
			t.Fatalf("seed %d: order of %v and %v differs from the model", seed, a, b)
		}
	}
	sort.Slice(ks, func(i, j int) bool { return less(ks[i], ks[j]) })
	for i := 0; i < len(ks)-1; i++ {
		if bytes.Compare(Encode(ks[i]), Encode(ks[i+1])) > 0 {
			t.Fatalf("seed %d: %v sorts after %v", seed, ks[i], ks[i+1])
		}
	}
}

func TestRoundTripAndPrefixes(t *testing.T) {
	seed := rand.Uint64()
	r := rand.New(rand.NewPCG(seed, 1))
	for i := 0; i < 5000; i++ {
		k := randKey(r)
		enc := Encode(k)
		if len(enc) != EncodedLen(k) {
			t.Fatalf("seed %d: EncodedLen(%v) = %d, want %d", seed, k, EncodedLen(k), len(enc))
		}
		got, err := Decode(enc)
		if err != nil {
			t.Fatalf("seed %d: Decode(Encode(%v)) error %v", seed, k, err)
		}
		if !bytes.Equal(got.Row, k.Row) || got.Family != k.Family || !bytes.Equal(got.Qualifier, k.Qualifier) ||
			got.Timestamp != k.Timestamp || got.Seq != k.Seq || got.Kind != k.Kind {
			t.Fatalf("seed %d: Decode(Encode(%v)) = %v", seed, k, got)
		}
		if rp := AppendRowPrefix(nil, k.Row); !bytes.Equal(enc[:RowPrefixLen(enc)], rp) {
			t.Fatalf("seed %d: row prefix of %v = %x, want %x", seed, k, enc[:RowPrefixLen(enc)], rp)
		}
		if fp := AppendFamilyPrefix(nil, k.Row, k.Family); !bytes.Equal(enc[:FamilyPrefixLen(enc)], fp) {
			t.Fatalf("seed %d: family prefix of %v wrong", seed, k)
		}
		if q, err := QualifierAt(enc, FamilyPrefixLen(enc)); err != nil || !bytes.Equal(q, k.Qualifier) {
			t.Fatalf("seed %d: QualifierAt(%v) = %q, %v", seed, k, q, err)
		}
		if cp := AppendColumnPrefix(nil, k.Row, k.Family, k.Qualifier); !bytes.Equal(enc[:ColumnPrefixLen(enc)], cp) {
			t.Fatalf("seed %d: column prefix of %v wrong", seed, k)
		}
	}
}

func TestMarkersSortFirst(t *testing.T) {
	row := []byte("r")
	fam := Encode(Key{Row: row, Family: "f", Timestamp: MarkerTimestamp, Seq: 1, Kind: KindDeleteFamily})
	col := Encode(Key{Row: row, Family: "f", Qualifier: nil, Timestamp: MarkerTimestamp, Seq: 2, Kind: KindDeleteColumn})
	cell := Encode(Key{Row: row, Family: "f", Qualifier: nil, Timestamp: MaxTimestamp, Seq: 9, Kind: KindSet})
	other := Encode(Key{Row: row, Family: "f", Qualifier: []byte{0}, Timestamp: MaxTimestamp, Seq: 9, Kind: KindSet})
	if !(bytes.Compare(col, fam) < 0 && bytes.Compare(fam, cell) < 0 && bytes.Compare(cell, other) < 0) {
		t.Fatalf("markers do not sort before the cells they mask")
	}
}

func TestTimeRange(t *testing.T) {
	for _, r := range []TimeRange{{0, 0}, {5, 10}, {1 << 60, 0}} {
		got, err := DecodeTimeRange(EncodeTimeRange(r))
		if err != nil || got != r {
			t.Fatalf("DecodeTimeRange(EncodeTimeRange(%v)) = %v, %v", r, got, err)
		}
	}
	if _, err := DecodeTimeRange([]byte{1}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("DecodeTimeRange(short) = %v, want ErrCorrupt", err)
	}
	if !(TimeRange{5, 10}).Contains(5) || (TimeRange{5, 10}).Contains(10) || !(TimeRange{5, 0}).Contains(1<<62) {
		t.Fatal("TimeRange.Contains wrong")
	}
}

func FuzzCellKey(f *testing.F) {
	f.Add(Encode(Key{Row: []byte("r\x00"), Family: "cf", Qualifier: []byte("q"), Timestamp: 5, Seq: 7, Kind: KindSet}))
	f.Add(Encode(Key{Row: []byte("row"), Family: "f", Timestamp: MarkerTimestamp, Seq: 1, Kind: KindDeleteFamily}))
	f.Add([]byte{0, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if fp := FamilyPrefixLen(b); fp >= 0 {
			if _, err := QualifierAt(b, fp); err != nil && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("QualifierAt error %v does not wrap ErrCorrupt", err)
			}
		}
		row, rowErr := RowAt(b)
		if rowErr != nil && !errors.Is(rowErr, ErrCorrupt) {
			t.Fatalf("RowAt error %v does not wrap ErrCorrupt", rowErr)
		}
		k, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Decode error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if enc := Encode(k); !bytes.Equal(enc, b) {
			t.Fatalf("Encode(Decode(%x)) = %x", b, enc)
		}
		if rowErr != nil || !bytes.Equal(row, k.Row) {
			t.Fatalf("RowAt(%x) = %q, %v; Decode's row is %q", b, row, rowErr, k.Row)
		}
		// The prefix scanners agree with the decoder.
		if rp, want := RowPrefixLen(b), len(AppendRowPrefix(nil, k.Row)); rp != want {
			t.Fatalf("RowPrefixLen(%x) = %d, want %d", b, rp, want)
		}
		if fp, want := FamilyPrefixLen(b), len(AppendFamilyPrefix(nil, k.Row, k.Family)); fp != want {
			t.Fatalf("FamilyPrefixLen(%x) = %d, want %d", b, fp, want)
		}
	})
}
