package wal

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"cellar/internal/keys"
)

var rewrite = flag.Bool("rewrite", false, "rewrite testdata/*.log golden files from their generator")

// goldenEntries are the entries of testdata/0000000000000001.log: empty,
// tiny, and block-spanning records, for several tablets.
func goldenEntries() []Entry {
	var out []Entry
	for i, n := range []int{0, 1, 100, 33000, 5, 32757 - 3 - 2*headerLen, 7} {
		out = append(out, Entry{Tablet: uint64(i%3 + 1), Seq: keys.SeqNum(1000 + i), Data: pattern(n, i)})
	}
	return out
}

// goldenLog is the generator of the golden file: what a Log writes for
// goldenEntries as file 1 and then seals.
func goldenLog() []byte {
	f := framer{logNum: 1}
	var b []byte
	for _, e := range goldenEntries() {
		b = f.appendRecord(b, EncodeEntry(nil, e))
	}
	return f.appendEOF(b)
}

// TestGoldenFile fails on any drift of the on-disk format: the generator
// must rebuild the checked-in file byte for byte, and Replay must read the
// checked-in file back. Regenerate (only for a deliberate new format
// version) with: go test ./wal -run TestGoldenFile -rewrite
func TestGoldenFile(t *testing.T) {
	path := filepath.Join("testdata", fileName(1))
	want := goldenLog()
	if *rewrite {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (generate with -rewrite)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s (%d bytes) differs from what the generator writes (%d bytes): the log format changed", path, len(got), len(want))
	}
	fs, _ := writeFile(t, got, 1)
	var entries []Entry
	st, err := Replay(context.Background(), fs, "", nil, func(e Entry) error {
		e.Data = bytes.Clone(e.Data)
		entries = append(entries, e)
		return nil
	})
	if err != nil || st.TornTail || st.Entries != len(goldenEntries()) {
		t.Fatalf("Replay of the golden file = %+v, %v", st, err)
	}
	for i, e := range goldenEntries() {
		if g := entries[i]; g.Tablet != e.Tablet || g.Seq != e.Seq || !bytes.Equal(g.Data, e.Data) {
			t.Fatalf("golden entry %d = tablet %d %v, want tablet %d %v", i, g.Tablet, g.Seq, e.Tablet, e.Seq)
		}
	}
}
