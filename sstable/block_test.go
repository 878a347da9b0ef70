package sstable

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"testing"
)

func buildBlock(interval int, entries ...string) []byte {
	b := blockBuilder{restartInterval: interval}
	for i := 0; i+1 < len(entries); i += 2 {
		b.add([]byte(entries[i]), []byte(entries[i+1]))
	}
	return append([]byte(nil), b.finish()...)
}

func TestBlockBuilderLayout(t *testing.T) {
	tests := []struct {
		name     string
		interval int
		entries  []string // key, value, key, value, ...
		want     string   // hex
	}{
		{"empty", 16, nil, "00000000"},
		{"one", 16, []string{"abc", "v"}, "000301" + "616263" + "76" + "00000000" + "01000000"},
		{
			// The doc.go worked example: "apple", "applet", "apply" share
			// prefixes with their predecessor after the restart point.
			"shared", 16, []string{"apple", "1", "applet", "2", "apply", "3"},
			"000501" + "6170706c65" + "31" + // apple: shared 0, 5 new bytes
				"050101" + "74" + "32" + // applet: shares "apple", adds "t"
				"040101" + "79" + "33" + // apply: shares "appl", adds "y"
				"00000000" + "01000000",
		},
		{
			"restart every 2", 2, []string{"apple", "1", "applet", "2", "apply", "3"},
			"000501" + "6170706c65" + "31" +
				"050101" + "74" + "32" +
				"000501" + "6170706c79" + "33" + // a restart point stores the key whole
				"00000000" + "0e000000" + "02000000", // restarts at 0 and 14
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := hex.EncodeToString(buildBlock(tc.interval, tc.entries...))
			if got != tc.want {
				t.Errorf("block = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestBlockIterSeekGE(t *testing.T) {
	var entries []string
	for i := 0; i < 100; i += 2 { // even keys only: k000, k002, ...
		entries = append(entries, fmt.Sprintf("k%03d", i), fmt.Sprintf("v%d", i))
	}
	for _, interval := range []int{1, 2, 3, 16, 1000} {
		block := buildBlock(interval, entries...)
		tests := []struct{ target, want string }{
			{"", "k000"},
			{"a", "k000"},
			{"k000", "k000"},
			{"k001", "k002"},
			{"k050", "k050"},
			{"k0500", "k052"},
			{"k097", "k098"},
			{"k098", "k098"},
			{"k099", ""},
			{"z", ""},
		}
		for _, tc := range tests {
			t.Run(fmt.Sprintf("interval=%d/%q", interval, tc.target), func(t *testing.T) {
				var it blockIter
				if err := it.init(block); err != nil {
					t.Fatal(err)
				}
				ok := it.seekGE([]byte(tc.target))
				got := ""
				if ok {
					got = string(it.key)
					if want := "v" + fmt.Sprint(atoi(got[1:])); string(it.val) != want {
						t.Errorf("value = %q, want %q", it.val, want)
					}
				}
				if got != tc.want || it.err != nil {
					t.Errorf("seekGE(%q) = %q (err %v), want %q", tc.target, got, it.err, tc.want)
				}
			})
		}
		t.Run(fmt.Sprintf("interval=%d/scan", interval), func(t *testing.T) {
			var it blockIter
			if err := it.init(block); err != nil {
				t.Fatal(err)
			}
			n := 0
			for ok := it.first(); ok; ok = it.nextEntry() {
				if want := entries[2*n]; string(it.key) != want {
					t.Fatalf("entry %d = %q, want %q", n, it.key, want)
				}
				n++
			}
			if n != 50 || it.err != nil {
				t.Fatalf("scanned %d entries (err %v), want 50", n, it.err)
			}
		})
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func TestBlockIterRejectsMalformed(t *testing.T) {
	good := buildBlock(2, "apple", "1", "applet", "2", "apply", "3")
	tests := []struct {
		name  string
		block []byte
	}{
		{"too short", []byte{1, 0}},
		{"restart count too large", []byte{0, 0, 0, 0, 9, 0, 0, 0}},
		{"entries without restarts", []byte{0, 1, 1, 'a', 'b', 0, 0, 0, 0}},
		{"first restart not zero", []byte{0, 1, 1, 'a', 'b', 1, 0, 0, 0, 1, 0, 0, 0}},
		{"restart past entries", []byte{0, 1, 1, 'a', 'b', 0, 0, 0, 0, 9, 0, 0, 0, 2, 0, 0, 0}},
		{"key overruns", []byte{0, 9, 1, 'a', 'b', 0, 0, 0, 0, 1, 0, 0, 0}},
		{"value overruns", []byte{0, 1, 9, 'a', 'b', 0, 0, 0, 0, 1, 0, 0, 0}},
		{"restart shares prefix", []byte{1, 1, 1, 'a', 'b', 0, 0, 0, 0, 1, 0, 0, 0}},
		{"bad varint", []byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 1, 0, 0, 0}},
		{"second entry shares too much", []byte{0, 1, 1, 'a', 'b', 9, 1, 1, 'c', 'd', 0, 0, 0, 0, 1, 0, 0, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var it blockIter
			err := it.init(tc.block)
			if err == nil {
				n := 0
				for ok := it.first(); ok; ok = it.nextEntry() {
					n++
				}
				if it.err == nil {
					it.seekGE([]byte("b"))
				}
				err = it.err
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("decoding %x: err = %v, want ErrCorrupt", tc.block, err)
			}
		})
	}
	var it blockIter
	if err := it.init(good); err != nil || !it.seekGE([]byte("applex")) || !bytes.Equal(it.key, []byte("apply")) {
		t.Fatalf("good block: seekGE(applex) = %q, %v", it.key, err)
	}
}

func TestBlockChecksumIsCRC32COfContentsAndType(t *testing.T) {
	for _, s := range []string{"", "a", "hello, block"} {
		for _, typ := range []byte{blockTypeNone, blockTypeSnappy, 0xFF} {
			want := crc32.Checksum(append([]byte(s), typ), crcTable)
			if got := blockChecksum([]byte(s), typ); got != want {
				t.Errorf("blockChecksum(%q, %d) = %#x, want %#x", s, typ, got, want)
			}
		}
	}
}
