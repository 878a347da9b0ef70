package wal

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"cellar/dfs"
	"cellar/dfs/memfs"
)

// TestFormatWorkedExample pins the bytes of the worked example in doc.go:
// a change here is a format change.
func TestFormatWorkedExample(t *testing.T) {
	f := framer{logNum: 1}
	got := f.appendRecord(nil, EncodeEntry(nil, Entry{Tablet: 7, Seq: 300, Data: []byte("hi")}))
	want := "257801ff 0600 01 01000000 0107ac026869"
	if hex.EncodeToString(got) != strings.ReplaceAll(want, " ", "") {
		t.Fatalf("record bytes = % x, want %s", got, want)
	}
	got = f.appendEOF(nil)
	want = "366716c6 0000 05 01000000"
	if hex.EncodeToString(got) != strings.ReplaceAll(want, " ", "") {
		t.Fatalf("end-of-file marker = % x, want %s", got, want)
	}
}

// writeFile stores b as log file num in a fresh memfs and opens it.
func writeFile(t testing.TB, b []byte, num uint64) (dfs.FS, dfs.ReadFile) {
	t.Helper()
	fs := memfs.New()
	ctx := context.Background()
	w, err := fs.Create(ctx, fileName(num))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := fs.Open(ctx, fileName(num))
	if err != nil {
		t.Fatal(err)
	}
	return fs, r
}

// readAllRecords reads records until the end or the first error.
func readAllRecords(r *recordReader) ([][]byte, error) {
	var out [][]byte
	for {
		rec, _, err := r.next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, bytes.Clone(rec))
	}
}

func pattern(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + seed*13 + i>>8)
	}
	return b
}

func TestFraming(t *testing.T) {
	room := BlockSize - headerLen // payload that exactly fills an empty block
	tests := []struct {
		name  string
		sizes []int
		// wantTypes lists the fragment types written, in order.
		wantTypes []byte
		// wantLen is the framed length in bytes (0 = do not check).
		wantLen int
	}{
		{"empty record", []int{0}, []byte{fragFull}, headerLen},
		{"one byte", []int{1}, []byte{fragFull}, headerLen + 1},
		{"exactly one block", []int{room}, []byte{fragFull}, BlockSize},
		{"exactly the block remaining", []int{100, room - headerLen - 100}, []byte{fragFull, fragFull}, BlockSize},
		{"block remaining then next block", []int{room, 5}, []byte{fragFull, fragFull}, BlockSize + headerLen + 5},
		{"one byte over a block", []int{room + 1}, []byte{fragFirst, fragLast}, BlockSize + headerLen + 1},
		{"leaves padding", []int{room - headerLen - 3 - 100, 100, 7}, []byte{fragFull, fragFull, fragFull}, BlockSize + headerLen + 7},
		{"header exactly fits", []int{room - headerLen, 20}, []byte{fragFull, fragFirst, fragLast}, BlockSize + headerLen + 20},
		{"spans many blocks", []int{5*BlockSize + 123}, []byte{fragFirst, fragMiddle, fragMiddle, fragMiddle, fragMiddle, fragLast}, 0},
		{"mixed", []int{0, 1, 40000, 0, 3, room, 70000, 1}, nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := framer{logNum: 9}
			var b []byte
			var recs [][]byte
			for i, n := range tc.sizes {
				rec := pattern(n, i)
				recs = append(recs, rec)
				b = f.appendRecord(b, rec)
			}
			if tc.wantLen != 0 && len(b) != tc.wantLen {
				t.Errorf("framed length = %d, want %d", len(b), tc.wantLen)
			}
			if tc.wantTypes != nil {
				if got := fragmentTypes(t, b); !bytes.Equal(got, tc.wantTypes) {
					t.Errorf("fragment types = %v, want %v", got, tc.wantTypes)
				}
			}
			_, rf := writeFile(t, b, 9)
			got, err := readAllRecords(newRecordReader(rf, "x", 9))
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if len(got) != len(recs) {
				t.Fatalf("read %d records, want %d", len(got), len(recs))
			}
			for i := range recs {
				if !bytes.Equal(got[i], recs[i]) {
					t.Fatalf("record %d: got %d bytes, want %d (contents differ)", i, len(got[i]), len(recs[i]))
				}
			}
			// The same bytes read as another file number are all rejected.
			_, rf = writeFile(t, b, 10)
			if recs, err := readAllRecords(newRecordReader(rf, "x", 10)); !errors.Is(err, ErrCorrupt) || len(recs) != 0 {
				t.Fatalf("read as file 10: %d records, err %v; want none and ErrCorrupt", len(recs), err)
			}
		})
	}
}

// fragmentTypes walks framed bytes and returns the fragment types.
func fragmentTypes(t *testing.T, b []byte) []byte {
	var out []byte
	for off := 0; off < len(b); {
		if left := BlockSize - off%BlockSize; left < headerLen {
			off += left
			continue
		}
		end := min(len(b), off-off%BlockSize+BlockSize)
		typ, p, reason := parseFragment(b[off:end], 9)
		if reason != "" {
			t.Fatalf("fragment at %d: %s", off, reason)
		}
		out = append(out, typ)
		off += headerLen + len(p)
	}
	return out
}

func TestSealedMarker(t *testing.T) {
	for _, n := range []int{0, 1, BlockSize - 2*headerLen - 3, BlockSize - 2*headerLen, 100000} {
		f := framer{logNum: 3}
		b := f.appendRecord(nil, pattern(n, 1))
		_, rf := writeFile(t, b, 3)
		if ok, err := isSealed(rf, 3); ok || err != nil {
			t.Fatalf("record of %d bytes without marker: isSealed = %v, %v", n, ok, err)
		}
		b = f.appendEOF(b)
		_, rf = writeFile(t, b, 3)
		if ok, err := isSealed(rf, 3); !ok || err != nil {
			t.Fatalf("record of %d bytes with marker: isSealed = %v, %v", n, ok, err)
		}
		recs, err := readAllRecords(newRecordReader(rf, "x", 3))
		if err != nil || len(recs) != 1 || len(recs[0]) != n {
			t.Fatalf("sealed file: %d records, %v", len(recs), err)
		}
		if ok, _ := isSealed(rf, 4); ok {
			t.Fatal("marker of file 3 accepted for file 4")
		}
	}
}

func TestEntryRoundTrip(t *testing.T) {
	for _, e := range []Entry{
		{},
		{Tablet: 1, Seq: 1, Data: []byte("x")},
		{Tablet: 1<<64 - 1, Seq: 1<<56 - 1, Data: pattern(1000, 2)},
	} {
		enc := EncodeEntry(nil, e)
		if len(enc) != EncodedEntryLen(e) {
			t.Errorf("EncodedEntryLen(%v) = %d, want %d", e, EncodedEntryLen(e), len(enc))
		}
		got, err := DecodeEntry(enc)
		if err != nil || got.Tablet != e.Tablet || got.Seq != e.Seq || !bytes.Equal(got.Data, e.Data) {
			t.Errorf("DecodeEntry(EncodeEntry(%v)) = %v, %v", e, got, err)
		}
	}
}

func TestDecodeEntryErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"unknown version", []byte{2, 1, 1}},
		{"no tablet", []byte{1}},
		{"truncated tablet", []byte{1, 0x80}},
		{"overlong tablet", []byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 1}},
		{"no seq", []byte{1, 5}},
		{"truncated seq", []byte{1, 5, 0xff}},
	} {
		if _, err := DecodeEntry(tc.in); !errors.Is(err, ErrCorrupt) {
			t.Errorf("DecodeEntry(%s % x) = %v, want ErrCorrupt", tc.name, tc.in, err)
		}
	}
}

// readerCorruptionKinds checks each kind of damage is reported with its
// offset and that recover finds the valid block after it.
func TestReaderDamage(t *testing.T) {
	f := framer{logNum: 1}
	var b []byte
	for i := range 6 {
		b = f.appendRecord(b, pattern(20000, i)) // 6 records over 4 blocks
	}
	tests := []struct {
		name    string
		damage  func(b []byte) []byte
		wantOff int64
		want    string
		more    bool // valid data follows
	}{
		{"bad checksum", func(b []byte) []byte { b[headerLen+5] ^= 1; return b }, 0, "checksum", true},
		{"zeroed header", func(b []byte) []byte { clear(b[:headerLen]); return b }, 0, "zeroed", true},
		{"bad type", func(b []byte) []byte { b[6] = 9; return b }, 0, "checksum", true},
		{"length overruns block", func(b []byte) []byte { b[4], b[5] = 0xff, 0xff; return b }, 0, "runs past", true},
		{"truncated header", func(b []byte) []byte { return b[:BlockSize+5] }, BlockSize, "truncated fragment header", false},
		{"truncated payload", func(b []byte) []byte { return b[:BlockSize+100] }, BlockSize, "runs past", false},
		{"zeroed tail", func(b []byte) []byte { clear(b[2*BlockSize:]); return b }, 2 * BlockSize, "zeroed", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, rf := writeFile(t, tc.damage(bytes.Clone(b)), 1)
			r := newRecordReader(rf, "f", 1)
			var err error
			for err == nil {
				_, _, err = r.next()
			}
			var ce *CorruptError
			if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want a *CorruptError", err)
			}
			if ce.Offset != tc.wantOff || !strings.Contains(ce.Reason, tc.want) || ce.File != "f" {
				t.Fatalf("err = %v, want offset %d and reason %q", err, tc.wantOff, tc.want)
			}
			more, rerr := r.recover()
			if rerr != nil || more != tc.more {
				t.Fatalf("recover = %v, %v; want %v", more, rerr, tc.more)
			}
			if more {
				// Records whose first fragment starts after the damaged
				// block are read back intact.
				recs, err := readAllRecords(r)
				if err != nil || len(recs) == 0 {
					t.Fatalf("after recover: %d records, %v", len(recs), err)
				}
				if last := recs[len(recs)-1]; !bytes.Equal(last, pattern(20000, 5)) {
					t.Fatal("last record after recover differs")
				}
			}
		})
	}
}

// FuzzWALReader reads arbitrary bytes as a log file: no panic, no hang, and
// every error wraps ErrCorrupt. The seeds are small (one block) so that the
// fuzzer's minimisation stays quick; records spanning blocks are covered by
// TestFraming, TestReaderDamage and TestTornTail.
func FuzzWALReader(f *testing.F) {
	fr := framer{logNum: 1}
	var b []byte
	for i, n := range []int{0, 1, 100, 400, 7} {
		b = fr.appendRecord(b, EncodeEntry(nil, Entry{Tablet: uint64(i), Seq: 1, Data: pattern(n, i)}))
	}
	f.Add(b)
	f.Add(fr.appendEOF(bytes.Clone(b)))
	f.Add(b[:len(b)-3])
	f.Add([]byte{})
	f.Add(make([]byte, 40))
	f.Fuzz(func(t *testing.T, data []byte) {
		fs, rf := writeFile(t, data, 1)
		// Strict: every record and every recoverable error.
		r := newRecordReader(rf, "f", 1)
		for range 1 << 20 {
			rec, _, err := r.next()
			if err == io.EOF {
				break
			}
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("next: %v does not wrap ErrCorrupt", err)
				}
				more, err := r.recover()
				if err != nil {
					t.Fatalf("recover: %v", err)
				}
				if !more {
					break
				}
				continue
			}
			if _, err := DecodeEntry(rec); err != nil && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("DecodeEntry: %v does not wrap ErrCorrupt", err)
			}
		}
		// Through Replay, as the last file, then as an earlier one.
		for i := range 2 {
			if i == 1 {
				w, err := fs.Create(context.Background(), fileName(2))
				if err != nil {
					t.Fatal(err)
				}
				w.Close()
			}
			quiet := slog.New(slog.DiscardHandler)
			for _, o := range []*ReplayOptions{{Logger: quiet}, {SkipCorrupt: true, Logger: quiet}} {
				if _, err := Replay(context.Background(), fs, "", o, func(Entry) error { return nil }); err != nil && !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Replay: %v does not wrap ErrCorrupt", err)
				}
			}
		}
	})
}

// FuzzDecodeEntry: no panic; what decodes re-encodes to the same bytes.
func FuzzDecodeEntry(f *testing.F) {
	f.Add(EncodeEntry(nil, Entry{Tablet: 7, Seq: 300, Data: []byte("hi")}))
	f.Add([]byte{1, 0x80})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := DecodeEntry(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("DecodeEntry: %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if re := EncodeEntry(nil, e); !bytes.Equal(re, data) {
			// Varints have one canonical encoding when decoded and
			// re-encoded; non-canonical input (extra 0x80 groups) is
			// accepted by binary.Uvarint only up to its length limit.
			if e2, err := DecodeEntry(re); err != nil || e2.Tablet != e.Tablet || e2.Seq != e.Seq || !bytes.Equal(e2.Data, e.Data) {
				t.Fatalf("re-encoding %v does not decode to itself", e)
			}
		}
	})
}
