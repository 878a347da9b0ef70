package mapreduce

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"cellar/dfs/memfs"
)

// TestFormatDocExample checks the worked example of the package doc.
func TestFormatDocExample(t *testing.T) {
	got := appendRecord(appendHeader(nil), []byte("k"), []byte("v1"))
	want := []byte{
		'C', 'M', 'R', 'F', 0x01, 0x00, 0x00, 0x00, // header
		0x01, 0x02, 'k', 'v', '1', // key length, value length, key, value
		0x64, 0xf0, 0x44, 0x22, // CRC32C 0x2244f064, little-endian
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("encoded example = % x, want % x", got, want)
	}
	if n := recordSize([]byte("k"), []byte("v1")); n != len(want)-headerSize {
		t.Errorf("recordSize = %d, want %d", n, len(want)-headerSize)
	}
}

func encodeFile(recs [][2][]byte) []byte {
	b := appendHeader(nil)
	for _, r := range recs {
		b = appendRecord(b, r[0], r[1])
	}
	return b
}

func TestRecordDecoderRejectsDamage(t *testing.T) {
	good := encodeFile([][2][]byte{{[]byte("alpha"), []byte("one")}, {[]byte(""), []byte("")}, {[]byte("b"), bytes.Repeat([]byte("x"), 300)}})
	if err := decodeRecordFile(good, func(k, v []byte) {}); err != nil {
		t.Fatalf("good file: %v", err)
	}
	huge := appendHeader(nil)
	huge = append(huge, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00) // key length 2^32-1
	over := appendHeader(nil)
	over = append(over, 0x10, 0x00, 'a') // 16-byte key, 1 byte present
	overlong := appendHeader(nil)
	overlong = append(overlong, bytes.Repeat([]byte{0x80}, 10)...)
	overlong = append(overlong, 0x01)
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"short header", good[:5]},
		{"bad magic", append([]byte("XMRF"), good[4:]...)},
		{"bad version", append(append([]byte{}, good[:4]...), append([]byte{2}, good[5:]...)...)},
		{"reserved byte", append(append([]byte{}, good[:7]...), append([]byte{1}, good[8:]...)...)},
		{"truncated in length", good[:headerSize+1]},
		{"truncated in body", good[:len(good)-10]},
		{"truncated in crc", good[:len(good)-1]},
		{"flipped value byte", flip(good, len(good)-20)},
		{"flipped crc byte", flip(good, len(good)-1)},
		{"huge length", huge},
		{"length past end", over},
		{"overlong varint", overlong},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := decodeRecordFile(tc.data, func(k, v []byte) {})
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decode = %v, want ErrCorrupt", err)
			}
		})
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte{}, b...)
	c[i] ^= 0x40
	return c
}

// FuzzRecordReader feeds arbitrary bytes to the record file decoder: it
// must never panic, and whatever it accepts must re-encode to the same
// bytes (the format has one encoding per record list).
func FuzzRecordReader(f *testing.F) {
	f.Add(encodeFile(nil))
	f.Add(encodeFile([][2][]byte{{[]byte("k"), []byte("v1")}}))
	f.Add(encodeFile([][2][]byte{{[]byte("alpha"), []byte("one")}, {nil, nil}, {[]byte("b"), bytes.Repeat([]byte("x"), 200)}}))
	f.Add([]byte("CMRF\x01\x00\x00\x00\xff\xff\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var recs [][2][]byte
		err := decodeRecordFile(data, func(k, v []byte) {
			recs = append(recs, [2][]byte{append([]byte{}, k...), append([]byte{}, v...)})
		})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		if again := encodeFile(recs); !bytes.Equal(again, data) {
			t.Fatalf("decoded %d records re-encode to % x, input % x", len(recs), again, data)
		}
	})
}

// TestTextSplitsReadEveryLineOnce cuts text files at many split sizes and
// checks that the splits together return each line exactly once, with its
// offset as key, including lines longer than the read buffer.
func TestTextSplitsReadEveryLineOnce(t *testing.T) {
	for _, tc := range []struct {
		lines int
		long  bool
		sizes []int64
	}{
		{40, false, []int64{1, 2, 3, 7, 64}},
		{300, true, []int64{1000, 4096, 200000, 1 << 30}},
	} {
		testTextSplits(t, tc.lines, tc.long, tc.sizes)
	}
}

func testTextSplits(t *testing.T, lines int, long bool, sizes []int64) {
	rng := rand.New(rand.NewPCG(7, 11))
	fs := memfs.New()
	ctx := context.Background()
	var want []string
	var data bytes.Buffer
	for i := range lines {
		n := rng.IntN(40)
		if long && i%97 == 5 {
			n = readBufferSize*2 + 17 // longer than the bufio buffer
		}
		if i%50 == 3 {
			n = 0 // empty line
		}
		line := strings.Repeat(string(rune('a'+i%26)), n)
		want = append(want, fmt.Sprintf("%d:%s", data.Len(), line))
		data.WriteString(line)
		data.WriteByte('\n')
	}
	data.WriteString("tail without newline")
	want = append(want, fmt.Sprintf("%d:tail without newline", data.Len()-len("tail without newline")))
	f, err := fs.Create(ctx, "t.txt")
	if err != nil {
		t.Fatal(err)
	}
	f.Write(data.Bytes())
	f.Close()
	for _, size := range sizes {
		splits, err := FileInput{FS: fs, Paths: []string{"t.txt"}, SplitSize: size}.Splits(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range splits {
			rr, err := s.Open(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for {
				rec, err := rr.Next(ctx)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("split size %d: %v", size, err)
				}
				got = append(got, fmt.Sprintf("%s:%s", rec.Key, rec.Value))
			}
			rr.Close()
		}
		if len(got) != len(want) {
			t.Fatalf("split size %d: %d lines, want %d", size, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("split size %d: line %d = %.40q, want %.40q", size, i, got[i], want[i])
			}
		}
	}
}
