package mapreduce_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"cellar/client"
	"cellar/mapreduce"
)

// TestCellsDocExample checks the worked example of the cell list encoding.
func TestCellsDocExample(t *testing.T) {
	got := mapreduce.AppendCells(nil, []mapreduce.Cell{{Family: "f", Qualifier: "q", Timestamp: 5, Value: []byte("v")}})
	want := []byte{0x01, 0x01, 0x01, 0x66, 0x01, 0x71, 0x0a, 0x01, 0x76}
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendCells = % x, want % x", got, want)
	}
}

func TestCells_RoundTripAndCorruption(t *testing.T) {
	cells := []mapreduce.Cell{
		{Family: "f", Qualifier: "", Timestamp: client.ServerTime, Value: nil},
		{Family: "g", Qualifier: "\x00\xff:q", Timestamp: 1 << 50, Value: bytes.Repeat([]byte{0}, 300)},
	}
	enc := mapreduce.AppendCells(nil, cells)
	dec, err := mapreduce.DecodeCells(enc)
	if err != nil || fmt.Sprint(dec) != fmt.Sprint(cells) {
		t.Fatalf("DecodeCells(AppendCells(%v)) = %v, %v", cells, dec, err)
	}
	for i := range enc {
		if _, err := mapreduce.DecodeCells(enc[:i]); !errors.Is(err, mapreduce.ErrCorrupt) {
			t.Fatalf("DecodeCells of the first %d bytes: %v, want ErrCorrupt", i, err)
		}
	}
	if _, err := mapreduce.DecodeCells(append(enc, 0)); !errors.Is(err, mapreduce.ErrCorrupt) {
		t.Fatalf("trailing byte: %v", err)
	}
}

func FuzzDecodeCells(f *testing.F) {
	f.Add(mapreduce.AppendCells(nil, []mapreduce.Cell{{Family: "f", Qualifier: "q", Timestamp: 5, Value: []byte("v")}}))
	f.Add(mapreduce.AppendCells(nil, nil))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		cells, err := mapreduce.DecodeCells(b)
		if err != nil {
			if !errors.Is(err, mapreduce.ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if re := mapreduce.AppendCells(nil, cells); !bytes.Equal(re, b) {
			// Varints have one canonical form each only when minimal;
			// a decoded input must re-encode to the same cells.
			again, err := mapreduce.DecodeCells(re)
			if err != nil || fmt.Sprint(again) != fmt.Sprint(cells) {
				t.Fatalf("re-encoding %v does not decode back: %v", cells, err)
			}
		}
	})
}
