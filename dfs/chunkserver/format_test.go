package chunkserver

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"strconv"
	"testing"

	"cellar/dfs"
)

// memFile is a chunk file in memory: a sparse byte slice that io.ReaderAt
// reads like a file (io.EOF past the end).
type memFile []byte

func (m memFile) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(m)) {
		return 0, io.EOF
	}
	n := copy(p, m[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// writeAt extends m as a file would (zeros in holes).
func (m *memFile) writeAt(p []byte, off int64) {
	if end := off + int64(len(p)); end > int64(len(*m)) {
		*m = append(*m, make([]byte, end-int64(len(*m)))...)
	}
	copy((*m)[off:], p)
}

// buildFile returns a chunk file holding data, committed by slots with the
// given lengths (in order, seq 1, 2, …) at version 2 for chunk 7.
func buildFile(data []byte, commits ...int) memFile {
	var m memFile
	var tail uint32
	length := int64(0)
	seq := uint64(0)
	for _, l := range commits {
		if int64(l) > length {
			var iov [][]byte
			iov, tail = layoutAppend(nil, nil, length, tail, data[length:l])
			m.writeAt(bytes.Join(iov, nil), DataFileOffset(length))
			length = int64(l)
		}
		seq++
		enc := encodeSlot(commitSlot{Seq: seq, Handle: 7, Version: 2, Length: uint64(length), TailCRC: tail})
		m.writeAt(enc[:], slotOffset(seq))
	}
	return m
}

func TestChunkFileWorkedExample(t *testing.T) {
	data := bytes.Repeat([]byte{7}, 70000)
	m := buildFile(data, 0, 70000)
	if len(m) != 78196 || fileSize(70000) != 78196 {
		t.Fatalf("chunk file is %d bytes (fileSize %d), want 78196 (format.go worked example)", len(m), fileSize(70000))
	}
	if got := DataFileOffset(65536); got != 73732 {
		t.Fatalf("DataFileOffset(65536) = %d, want 73732", got)
	}
	if got, want := binary.LittleEndian.Uint32(m[73728:]), crc32.Checksum(data[:BlockSize], castagnoli); got != want {
		t.Fatalf("trailer of block 0 = %#x, want %#x", got, want)
	}
	s, err := recoverFile(m, int64(len(m)), 7, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := commitSlot{Seq: 2, Handle: 7, Version: 2, Length: 70000, TailCRC: crc32.Checksum(data[BlockSize:], castagnoli)}
	if s != want {
		t.Fatalf("recoverFile = %+v, want %+v", s, want)
	}
	if s.index() != 0 || !bytes.Equal(m[DataFileOffset(69999):][:1], []byte{7}) {
		t.Fatal("seq 2 is not in slot 0, or data misplaced")
	}
}

func TestSlotRejectsDamage(t *testing.T) {
	good := encodeSlot(commitSlot{Seq: 5, Handle: 9, Version: 3, Length: 70000, TailCRC: 0xabcdef})
	if _, err := decodeSlot(good[:], 1); err != nil {
		t.Fatal(err)
	}
	if _, err := decodeSlot(good[:], 0); !errors.Is(err, ErrCorruptSlot) {
		t.Errorf("decodeSlot at the wrong index = %v, want ErrCorruptSlot", err)
	}
	for i := range good {
		for _, bit := range []byte{0x01, 0x80} {
			b := good
			b[i] ^= bit
			if s, err := decodeSlot(b[:], 1); !errors.Is(err, ErrCorruptSlot) {
				t.Errorf("flip %#x of byte %d: decodeSlot = %+v, %v; want ErrCorruptSlot", bit, i, s, err)
			}
		}
	}
	for n := range slotSize {
		if _, err := decodeSlot(good[:n], 1); !errors.Is(err, ErrCorruptSlot) {
			t.Errorf("decodeSlot(%d bytes) = %v, want ErrCorruptSlot", n, err)
		}
	}
	var zero [slotSize]byte
	if _, err := decodeSlot(zero[:], 0); !errors.Is(err, ErrCorruptSlot) {
		t.Errorf("decodeSlot(never written) = %v, want ErrCorruptSlot", err)
	}
}

// TestRecoverFileCrashes: whatever a crash during the second commit leaves
// (slot torn or durable, data absent, partial or present, garbage after
// it), recovery returns the first commit or the second, never less, and
// only the second when its bytes verify.
func TestRecoverFileCrashes(t *testing.T) {
	data := make([]byte, 5*BlockSize+123)
	for i := range data {
		data[i] = byte(i*7 + i>>9)
	}
	const l1, l2 = 2*BlockSize + 100, 5*BlockSize + 123
	full := buildFile(data, 0, l1, l2)
	first := buildFile(data, 0, l1)
	slot3 := full[slotOffset(3):][:slotSize]
	type tc struct {
		name string
		file memFile
		want uint64 // recovered length
	}
	var cases []tc
	cases = append(cases, tc{"completed", full, l2})
	// Data of the second commit missing or partial, its slot durable.
	for _, cut := range []int64{l1, l1 + 1, 3 * BlockSize, 3*BlockSize + 2, l2 - 1} {
		m := append(memFile(nil), first[:fileSize(l1)]...)
		m.writeAt(full[fileSize(l1):fileSize(cut)], fileSize(l1))
		m.writeAt(slot3, slotOffset(3))
		cases = append(cases, tc{"slot durable, data cut at " + itoa(cut), m, l1})
	}
	// Data durable, slot torn at every length.
	for n := range slotSize {
		m := append(memFile(nil), full...)
		copy(m[slotOffset(3):], first[slotOffset(3):][:slotSize]) // slot 3's place held seq 1
		copy(m[slotOffset(3):], slot3[:n])
		cases = append(cases, tc{"slot torn at " + itoa(int64(n)), m, l1})
	}
	// A trailer of the second commit missing (a hole), data present.
	{
		m := append(memFile(nil), full...)
		copy(m[blockFileOffset(3)+BlockSize:], []byte{0, 0, 0, 0})
		cases = append(cases, tc{"trailer lost", m, l1})
	}
	// Garbage after the committed end.
	{
		m := append(memFile(nil), full...)
		m = append(m, bytes.Repeat([]byte{0xee}, 70000)...)
		cases = append(cases, tc{"garbage after end", m, l2})
	}
	for _, c := range cases {
		s, err := recoverFile(c.file, int64(len(c.file)), 7, nil)
		if err != nil || s.Length != c.want {
			t.Errorf("%s: recoverFile = %+v, %v; want length %d", c.name, s, err, c.want)
		}
	}
}

// TestRecoverFileFlippedSlot: damage to either slot costs at most the last
// commit; damage to both, or to committed data, is corruption.
func TestRecoverFileFlippedSlot(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 20000)
	const l1, l2 = 100000, 250000
	full := buildFile(data, 0, l1, l2) // seq 2 (l1) in slot 0, seq 3 (l2) in slot 1
	for _, c := range []struct {
		name  string
		flip  []int64
		want  uint64
		fails bool
	}{
		{"older slot", []int64{slotOffset(2) + 33}, l2, false},
		{"newer slot", []int64{slotOffset(3) + 33}, l1, false},
		{"both slots", []int64{slotOffset(2) + 9, slotOffset(3) + 40}, 0, true},
		{"newest block", []int64{DataFileOffset(l2 - 5)}, l1, false},
		{"block of the older commit", []int64{DataFileOffset(l1 - 5)}, 0, true},
	} {
		m := append(memFile(nil), full...)
		for _, off := range c.flip {
			m[off] ^= 0x10
		}
		s, err := recoverFile(m, int64(len(m)), 7, nil)
		switch {
		case c.fails && err == nil:
			t.Errorf("%s: recoverFile = %+v, want an error", c.name, s)
		case c.fails && !errors.Is(err, ErrCorruptSlot) && !errors.Is(err, dfs.ErrCorrupt):
			t.Errorf("%s: recoverFile error %v is not a corruption", c.name, err)
		case !c.fails && (err != nil || s.Length != c.want):
			t.Errorf("%s: recoverFile = %+v, %v; want length %d", c.name, s, err, c.want)
		}
	}
	if _, err := recoverFile(full, int64(len(full)), 8, nil); !errors.Is(err, ErrCorruptSlot) {
		t.Errorf("recoverFile of another chunk's file = %v, want ErrCorruptSlot", err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func FuzzCommitSlot(f *testing.F) {
	s := encodeSlot(commitSlot{Seq: 2, Handle: 7, Version: 2, Length: 70000, TailCRC: 0x1234})
	f.Add(s[:], 0)
	s = encodeSlot(commitSlot{Seq: 1, Handle: 1, Version: 1})
	f.Add(s[:], 1)
	f.Add([]byte("CSLT"), 0)
	f.Fuzz(func(t *testing.T, b []byte, idx int) {
		idx &= 1
		sl, err := decodeSlot(b, idx)
		if err != nil {
			if !errors.Is(err, ErrCorruptSlot) {
				t.Fatalf("decodeSlot error %v is not ErrCorruptSlot", err)
			}
			return
		}
		if again := encodeSlot(sl); !bytes.Equal(again[:], b[:slotSize]) {
			t.Fatalf("encode(decode(b)) != b")
		}
	})
}

// FuzzRecoverFile: recovery of any bytes neither panics nor returns a
// state whose last block does not verify. Seeds are small files: the
// mutator is slow on large inputs (FuzzRecoverCrash covers whole blocks).
func FuzzRecoverFile(f *testing.F) {
	data := bytes.Repeat([]byte("fuzz"), 500)
	f.Add([]byte(buildFile(data, 0, 700, 1500)), uint64(7))
	f.Add([]byte(buildFile(data, 0)), uint64(7))
	f.Add([]byte{}, uint64(0))
	f.Fuzz(func(t *testing.T, b []byte, h uint64) {
		m := memFile(b)
		s, err := recoverFile(m, int64(len(m)), h, nil)
		if err != nil {
			return
		}
		if s.Handle != h || fileSize(int64(s.Length)) > int64(len(m)) {
			t.Fatalf("recoverFile = %+v from %d bytes of chunk %x", s, len(m), h)
		}
		if err := verifyBlocks(m, int64(len(m)), s, lastBlock(int64(s.Length)), nil); err != nil {
			t.Fatalf("recovered state's last block does not verify: %v", err)
		}
	})
}

// FuzzRecoverCrash builds a chunk file committed at l1 then l2 and damages
// it: cut at cut, and each (offset, xor) pair of flips applied. Damage
// confined to what the l2 commit wrote (a crash during it) must recover l1
// or l2; any recovery returns a committed length whose bytes verify.
func FuzzRecoverCrash(f *testing.F) {
	f.Add(uint32(70000), uint32(150000), uint32(1<<30), []byte{})
	f.Add(uint32(100), uint32(3*BlockSize), uint32(80000), []byte{1, 2, 3, 4})
	f.Add(uint32(BlockSize), uint32(2*BlockSize+7), uint32(1<<30), []byte{0, 0x10, 0, 0x40})
	data := make([]byte, 4*BlockSize)
	for i := range data {
		data[i] = byte(i * 13)
	}
	f.Fuzz(func(t *testing.T, l1, l2, cut uint32, flips []byte) {
		l1 %= 4 * BlockSize
		l2 %= 4 * BlockSize
		if l1 > l2 {
			l1, l2 = l2, l1
		}
		m := buildFile(data, 0, int(l1), int(l2))
		crashOnly := true
		if int64(cut) < int64(len(m)) {
			m = m[:cut]
			crashOnly = int64(cut) >= fileSize(int64(l1))
		}
		for i := 0; i+3 < len(flips) && len(m) > 0; i += 4 {
			off := int64(binary.LittleEndian.Uint32(flips[i:])&0xffffff) % int64(len(m))
			m[off] ^= flips[i+3]
			// Only slot 0 (seq 2, length l1) and the data it covers
			// hold acknowledged state; the rest is seq 3's or unread.
			if flips[i+3] != 0 && (off < slotSize || off >= dataStart && off < fileSize(int64(l1))) {
				crashOnly = false
			}
		}
		s, err := recoverFile(m, int64(len(m)), 7, nil)
		if err != nil {
			if crashOnly {
				t.Fatalf("crash-like damage: recoverFile = %v, want length %d or %d", err, l1, l2)
			}
			return
		}
		if s.Length != uint64(l1) && s.Length != uint64(l2) && s.Length != 0 {
			t.Fatalf("recoverFile length %d, committed %d, %d", s.Length, l1, l2)
		}
		if crashOnly && s.Length < uint64(l1) {
			t.Fatalf("crash-like damage lost synced bytes: length %d < %d", s.Length, l1)
		}
		if err := verifyBlocks(m, int64(len(m)), s, lastBlock(int64(s.Length)), nil); err != nil {
			t.Fatalf("recovered state's last block does not verify: %v", err)
		}
	})
}
