package memtable_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cellar/internal/keys"
	"cellar/memtable"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var seedFlag = flag.Uint64("seed", 0, "seed for randomized tests (0 = from the clock)")

// testSeed returns the seed for a randomized test and logs it, so a failure
// can be replayed with -seed.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	s := *seedFlag
	if s == 0 {
		s = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay with -seed %d)", s, s)
	return s
}

// cellKey encodes a KindSet key for row, qualifier q, timestamp ts, seq.
func cellKey(row string, q string, ts int64, seq keys.SeqNum) []byte {
	return keys.Encode(keys.Key{Row: []byte(row), Family: "cf", Qualifier: []byte(q),
		Timestamp: ts, Seq: seq, Kind: keys.KindSet})
}

// collect returns every (key, value) of m in iteration order, copied.
func collect(t *testing.T, m *memtable.Memtable) (ks, vs [][]byte) {
	t.Helper()
	it := m.NewIter()
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		ks = append(ks, slices.Clone(it.Key()))
		vs = append(vs, slices.Clone(it.Value()))
	}
	if err := it.Error(); err != nil {
		t.Fatalf("Error() = %v", err)
	}
	return ks, vs
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		size    int64
		wantErr bool
	}{
		{0, false},
		{-1, true},
		{memtable.MinArenaSize - 1, true},
		{memtable.MinArenaSize, false},
		{memtable.DefaultArenaSize, false},
		{memtable.MaxArenaSize, false},
		{memtable.MaxArenaSize + 1, true},
		{1 << 40, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.size), func(t *testing.T) {
			err := memtable.Options{ArenaSize: tt.size}.Validate()
			if (err != nil) != tt.wantErr {
				t.Fatalf("Options{ArenaSize: %d}.Validate() = %v, want error %v", tt.size, err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, memtable.ErrInvalidOptions) {
				t.Fatalf("Validate() = %v, want it to wrap ErrInvalidOptions", err)
			}
		})
	}
}

func TestNewPanicsOnInvalidOptions(t *testing.T) {
	defer func() {
		r := recover()
		err, ok := r.(error)
		if !ok || !errors.Is(err, memtable.ErrInvalidOptions) {
			t.Fatalf("New(ArenaSize -5) panicked with %v, want an error wrapping ErrInvalidOptions", r)
		}
	}()
	memtable.New(&memtable.Options{ArenaSize: -5})
}

func TestNewDefaults(t *testing.T) {
	for _, opts := range []*memtable.Options{nil, {}, {ArenaSize: 0}} {
		m := memtable.New(opts)
		if m.Capacity() != memtable.DefaultArenaSize {
			t.Errorf("New(%v).Capacity() = %d, want %d", opts, m.Capacity(), memtable.DefaultArenaSize)
		}
		if !m.Empty() || m.Len() != 0 {
			t.Errorf("new memtable: Empty() = %v, Len() = %d", m.Empty(), m.Len())
		}
		if m.Size() <= 0 || m.Size() >= 1024 {
			t.Errorf("new memtable Size() = %d, want the small head overhead", m.Size())
		}
	}
}

// TestAddIterate adds keys in a given order and checks iteration order,
// values, Len and Empty.
func TestAddIterate(t *testing.T) {
	tests := []struct {
		name string
		add  []string
	}{
		{"empty", nil},
		{"one", []string{"a"}},
		{"ascending", []string{"a", "b", "c", "d"}},
		{"descending", []string{"d", "c", "b", "a"}},
		{"interleaved", []string{"m", "a", "z", "b", "y", "c"}},
		{"prefixes", []string{"abc", "ab", "a", "abcd", ""}},
		{"binary", []string{"\xff", "\x00", "\x00\x00", "\x7f", "\x80"}},
		{"empty key", []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := memtable.New(&memtable.Options{ArenaSize: memtable.MinArenaSize})
			for _, k := range tt.add {
				if err := m.Add([]byte(k), []byte("v:"+k)); err != nil {
					t.Fatalf("Add(%q) = %v", k, err)
				}
			}
			want := slices.Clone(tt.add)
			slices.Sort(want)
			ks, vs := collect(t, m)
			if len(ks) != len(want) {
				t.Fatalf("iterated %d entries, want %d", len(ks), len(want))
			}
			for i := range want {
				if string(ks[i]) != want[i] || string(vs[i]) != "v:"+want[i] {
					t.Errorf("entry %d = %q=%q, want %q=%q", i, ks[i], vs[i], want[i], "v:"+want[i])
				}
			}
			if m.Len() != len(want) || m.Empty() != (len(want) == 0) {
				t.Errorf("Len() = %d, Empty() = %v, want %d, %v", m.Len(), m.Empty(), len(want), len(want) == 0)
			}
		})
	}
}

// TestSeekGE positions iterators over encoded cell keys.
func TestSeekGE(t *testing.T) {
	m := memtable.New(nil)
	// Cell order: row asc, qualifier asc, timestamp desc, seq desc.
	stored := [][]byte{
		cellKey("r1", "a", 20, 5),
		cellKey("r1", "a", 10, 7),
		cellKey("r1", "a", 10, 3),
		cellKey("r1", "b", 10, 4),
		cellKey("r2", "a", 10, 6),
	}
	for i, k := range slices.Backward(stored) {
		if err := m.Add(k, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		target []byte
		want   int // index into stored; -1 = not valid
	}{
		{"nil", nil, 0},
		{"exact first", stored[0], 0},
		{"row prefix", keys.AppendRowPrefix(nil, []byte("r1")), 0},
		{"newer ts than stored", cellKey("r1", "a", 30, 1), 0},
		{"between timestamps", cellKey("r1", "a", 15, 1), 1},
		{"same ts higher seq", cellKey("r1", "a", 10, 9), 1},
		{"same ts between seqs", cellKey("r1", "a", 10, 5), 2},
		{"exact middle", stored[2], 2},
		{"column prefix", keys.AppendColumnPrefix(nil, []byte("r1"), "cf", []byte("b")), 3},
		{"missing row between", keys.AppendRowPrefix(nil, []byte("r15")), 4},
		{"exact last", stored[4], 4},
		{"past last", cellKey("r2", "a", 1, 1), -1},
		{"past all rows", keys.AppendRowPrefix(nil, []byte("r3")), -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			it := m.NewIter()
			defer it.Close()
			ok := it.SeekGE(tt.target)
			if ok != it.Valid() {
				t.Fatalf("SeekGE returned %v but Valid() = %v", ok, it.Valid())
			}
			if tt.want < 0 {
				if ok {
					t.Fatalf("SeekGE(%x) at %x, want not valid", tt.target, it.Key())
				}
				if it.Key() != nil || it.Value() != nil {
					t.Fatalf("Key/Value of invalid iterator = %x/%x, want nil", it.Key(), it.Value())
				}
				return
			}
			if !ok || !bytes.Equal(it.Key(), stored[tt.want]) {
				t.Fatalf("SeekGE(%x) = %v at %x, want %x", tt.target, ok, it.Key(), stored[tt.want])
			}
			// Next walks the rest in order.
			for i := tt.want + 1; i < len(stored); i++ {
				if !it.Next() || !bytes.Equal(it.Key(), stored[i]) {
					t.Fatalf("Next after SeekGE: at %x, want %x", it.Key(), stored[i])
				}
			}
			if it.Next() || it.Next() {
				t.Fatal("Next past the end reported valid")
			}
		})
	}
}

func TestIteratorUnpositionedAndClosed(t *testing.T) {
	m := memtable.New(nil)
	if err := m.Add([]byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	it := m.NewIter()
	if it.Valid() || it.Next() || it.Key() != nil {
		t.Fatal("a new iterator must be unpositioned")
	}
	if !it.First() || string(it.Key()) != "k" || string(it.Value()) != "v" {
		t.Fatalf("First() at %q=%q, want k=v", it.Key(), it.Value())
	}
	if err := it.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if it.Valid() || it.First() || it.SeekGE(nil) || it.Next() || it.Key() != nil {
		t.Fatal("a closed iterator must stay invalid")
	}
	if err := it.Close(); err != nil {
		t.Fatalf("second Close() = %v", err)
	}
}

// TestKeyValueOwnership: Add copies its arguments, and appending to a
// returned Key or Value never writes into the memtable.
func TestKeyValueOwnership(t *testing.T) {
	m := memtable.New(nil)
	k, v := []byte("a"), []byte("1")
	if err := m.Add(k, v); err != nil {
		t.Fatal(err)
	}
	if err := m.Add([]byte("b"), []byte("2")); err != nil {
		t.Fatal(err)
	}
	k[0], v[0] = 'x', 'x' // the caller reuses its buffers
	it := m.NewIter()
	it.First()
	if cap(it.Key()) != len(it.Key()) || cap(it.Value()) != len(it.Value()) {
		t.Fatalf("Key/Value capacity %d/%d, want capped to length", cap(it.Key()), cap(it.Value()))
	}
	_ = append(it.Key(), "zzz"...)
	_ = append(it.Value(), "zzz"...)
	ks, vs := collect(t, m)
	if string(ks[0]) != "a" || string(vs[0]) != "1" || string(ks[1]) != "b" || string(vs[1]) != "2" {
		t.Fatalf("entries = %q %q, want [a b] [1 2]", ks, vs)
	}
}

func TestEmptyValue(t *testing.T) {
	m := memtable.New(nil)
	for _, k := range []string{"nil", "empty"} {
		var v []byte
		if k == "empty" {
			v = []byte{}
		}
		if err := m.Add([]byte(k), v); err != nil {
			t.Fatal(err)
		}
	}
	it := m.NewIter()
	for ok := it.First(); ok; ok = it.Next() {
		if len(it.Value()) != 0 {
			t.Errorf("Value() of %q = %q, want empty", it.Key(), it.Value())
		}
	}
}

func TestDuplicate(t *testing.T) {
	m := memtable.New(nil)
	k := cellKey("row", "q", 5, 1)
	if err := m.Add(k, []byte("first")); err != nil {
		t.Fatal(err)
	}
	size := m.Size()
	err := m.Add(k, []byte("second"))
	if !errors.Is(err, memtable.ErrDuplicate) {
		t.Fatalf("second Add of the same key = %v, want ErrDuplicate", err)
	}
	if m.Len() != 1 || m.Size() != size {
		t.Errorf("after duplicate: Len() = %d, Size() = %d, want 1, %d", m.Len(), m.Size(), size)
	}
	_, vs := collect(t, m)
	if len(vs) != 1 || string(vs[0]) != "first" {
		t.Errorf("values = %q, want [first]", vs)
	}
	// A long duplicate key is shortened in the message, not dumped whole.
	long := bytes.Repeat([]byte{'x'}, 100000)
	if err := m.Add(long, nil); err != nil {
		t.Fatal(err)
	}
	err = m.Add(long, nil)
	if !errors.Is(err, memtable.ErrDuplicate) || len(err.Error()) > 300 {
		t.Errorf("duplicate of a long key: %d-byte error %.100q..., want a short ErrDuplicate", len(err.Error()), err)
	}
}

// TestArenaFull fills a small arena and checks that ErrArenaFull leaves the
// memtable intact and consumes nothing.
func TestArenaFull(t *testing.T) {
	m := memtable.New(&memtable.Options{ArenaSize: 4096})
	var added [][]byte
	value := bytes.Repeat([]byte{'v'}, 100)
	var full error
	for i := 0; ; i++ {
		k := binary.BigEndian.AppendUint32(nil, uint32(i))
		err := m.Add(k, value)
		if err != nil {
			full = err
			break
		}
		added = append(added, k)
		if i > 1000 {
			t.Fatal("a 4 KiB arena took over 1000 entries of 100 bytes")
		}
	}
	if !errors.Is(full, memtable.ErrArenaFull) || errors.Is(full, memtable.ErrTooLarge) {
		t.Fatalf("Add into a full arena = %v, want ErrArenaFull (not ErrTooLarge)", full)
	}
	if len(added) < 20 {
		t.Fatalf("only %d entries of ~120 bytes fit in 4 KiB", len(added))
	}
	size := m.Size()
	if size > m.Capacity() || size < m.Capacity()-int64(memtable.ArenaSizeFor(4, 100)) {
		t.Errorf("Size() = %d when full, capacity %d", size, m.Capacity())
	}
	// Failed adds consume nothing. The fill loop stopped at one entry's
	// random tower height; a shorter tower of the same size might still
	// fit, so the probe's value is longer than all the space left.
	big := bytes.Repeat([]byte{'b'}, int(m.Capacity()-size)+1)
	for range 3 {
		if err := m.Add([]byte("big"), big); !errors.Is(err, memtable.ErrArenaFull) {
			t.Fatalf("Add = %v, want ErrArenaFull", err)
		}
	}
	if m.Size() != size || m.Len() != len(added) {
		t.Errorf("after failed adds: Size() %d Len() %d, want %d %d", m.Size(), m.Len(), size, len(added))
	}
	ks, _ := collect(t, m)
	for i, k := range added {
		if !bytes.Equal(ks[i], k) {
			t.Fatalf("entry %d = %x, want %x", i, ks[i], k)
		}
	}
}

// TestTooLarge checks the boundary between ErrTooLarge and an entry that is
// guaranteed to fit in a fresh memtable.
func TestTooLarge(t *testing.T) {
	const arena = 4096
	key := []byte("key!") // 4 bytes keeps the node size a multiple of 4
	fits := 0
	for v := 0; v < arena; v += 4 {
		if memtable.ArenaSizeFor(len(key), v) == arena {
			fits = v
		}
	}
	if fits == 0 {
		t.Fatal("no value length gives ArenaSizeFor == arena")
	}
	tests := []struct {
		name     string
		valueLen int
		wantErr  error
	}{
		{"exactly fits", fits, nil},
		{"one byte over", fits + 1, memtable.ErrTooLarge},
		{"far over", 10 << 20, memtable.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The tower height is random: repeat so that tall towers are
			// drawn too. An entry that is not too large always fits.
			for range 200 {
				m := memtable.New(&memtable.Options{ArenaSize: arena})
				err := m.Add(key, make([]byte, tt.valueLen))
				if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
					t.Fatalf("Add(value %d bytes) into %d-byte arena = %v, want %v", tt.valueLen, arena, err, tt.wantErr)
				}
				if err != nil && errors.Is(err, memtable.ErrArenaFull) {
					t.Fatalf("ErrTooLarge must not wrap ErrArenaFull (the tablet would rotate forever): %v", err)
				}
			}
		})
	}
}

// TestHugeEntries stores maximum-size rows and values: 64 KiB row keys with
// 16 KiB qualifiers, and 10 MiB values.
func TestHugeEntries(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	row := make([]byte, keys.MaxRowLen)
	for i := range row {
		row[i] = byte(rng.UintN(256)) // includes 0x00, which escaping doubles
	}
	qual := bytes.Repeat([]byte{0}, keys.MaxQualifierLen)
	value := make([]byte, 10<<20)
	for i := range value {
		value[i] = byte(i * 31)
	}
	m := memtable.New(nil) // 64 MiB
	var added [][]byte
	var err error
	for seq := keys.SeqNum(1); ; seq++ {
		k := keys.Encode(keys.Key{Row: row, Family: "cf", Qualifier: qual, Timestamp: int64(seq), Seq: seq, Kind: keys.KindSet})
		if err = m.Add(k, value); err != nil {
			break
		}
		added = append(added, k)
	}
	if !errors.Is(err, memtable.ErrArenaFull) {
		t.Fatalf("Add past the arena = %v, want ErrArenaFull", err)
	}
	if len(added) != 6 {
		t.Errorf("%d entries of 10 MiB fit in 64 MiB, want 6", len(added))
	}
	it := m.NewIter()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		// Newer timestamps first: the last added is first.
		if want := added[len(added)-1-n]; !bytes.Equal(it.Key(), want) || !bytes.Equal(it.Value(), value) {
			t.Fatalf("entry %d differs (key %d bytes, value %d bytes)", n, len(it.Key()), len(it.Value()))
		}
		n++
	}
	if !it.SeekGE(added[2]) || !bytes.Equal(it.Key(), added[2]) {
		t.Fatal("SeekGE of a huge key missed it")
	}

	// A 10 MiB value does not fit an 8 MiB arena at all: ErrTooLarge, and
	// ArenaSizeFor says what arena would do.
	k := added[0]
	small := memtable.New(&memtable.Options{ArenaSize: 8 << 20})
	if err := small.Add(k, value); !errors.Is(err, memtable.ErrTooLarge) {
		t.Fatalf("10 MiB value into 8 MiB arena = %v, want ErrTooLarge", err)
	}
	exact := memtable.New(&memtable.Options{ArenaSize: memtable.ArenaSizeFor(len(k), len(value))})
	if err := exact.Add(k, value); err != nil {
		t.Fatalf("Add into an arena of ArenaSizeFor bytes = %v", err)
	}
}

// TestRandomizedAgainstModel runs random Adds and seeks against a sorted
// slice model.
func TestRandomizedAgainstModel(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 1))
	for round := range 20 {
		// Sometimes a small arena so that ErrArenaFull is part of the mix.
		arena := []int64{memtable.MinArenaSize, 8 << 10, 1 << 20}[rng.IntN(3)]
		m := memtable.New(&memtable.Options{ArenaSize: arena})
		md := newRefModel()
		randKey := func() []byte {
			if rng.IntN(2) == 0 {
				// Short keys over a tiny alphabet: many duplicates and prefixes.
				b := make([]byte, rng.IntN(5))
				for i := range b {
					b[i] = "\x00ab\xff"[rng.IntN(4)]
				}
				return b
			}
			return cellKey(fmt.Sprintf("row%03d", rng.IntN(100)), fmt.Sprintf("q%d", rng.IntN(5)),
				int64(rng.IntN(50)), keys.SeqNum(rng.IntN(10)))
		}
		full := false
		for op := range 2000 {
			switch r := rng.IntN(10); {
			case r < 6:
				k := randKey()
				v := fmt.Sprint(rng.Uint32())
				where := fmt.Sprintf("seed %d round %d op %d", seed, round, op)
				if md.add(t, where, k, v, m.Add(k, []byte(v))) {
					full = true
				}
			case r < 9:
				target := randKey()
				it := m.NewIter()
				i, _ := slices.BinarySearch(md.keys, string(target))
				ok := it.SeekGE(target)
				for j := i; j < min(i+3, len(md.keys)); j++ {
					if !ok || string(it.Key()) != md.keys[j] || string(it.Value()) != md.values[md.keys[j]] {
						t.Fatalf("seed %d round %d op %d: SeekGE(%x)+%d at %x, want %x", seed, round, op, target, j-i, it.Key(), md.keys[j])
					}
					ok = it.Next()
				}
				if i+3 >= len(md.keys) && ok {
					t.Fatalf("seed %d round %d op %d: iterator valid past the end at %x", seed, round, op, it.Key())
				}
				it.Close()
			default:
				md.check(t, fmt.Sprintf("seed %d round %d op %d", seed, round, op), m)
			}
		}
		if arena == memtable.MinArenaSize && !full {
			t.Errorf("seed %d round %d: a 1 KiB arena never filled", seed, round)
		}
	}
}

// refModel is what a memtable in the randomized tests should hold: its
// keys, sorted, and their values.
type refModel struct {
	keys   []string
	values map[string]string
}

func newRefModel() *refModel { return &refModel{values: map[string]string{}} }

// add checks err, what adding (k, v) returned, against the model, records
// the entry if it was added, and reports whether the arena was full.
// where begins failure messages.
func (md *refModel) add(t *testing.T, where string, k []byte, v string, err error) (full bool) {
	t.Helper()
	i, exists := slices.BinarySearch(md.keys, string(k))
	switch {
	case exists:
		if !errors.Is(err, memtable.ErrDuplicate) {
			t.Fatalf("%s: Add of present key %x = %v, want ErrDuplicate", where, k, err)
		}
	case errors.Is(err, memtable.ErrArenaFull):
		return true
	case err != nil:
		t.Fatalf("%s: Add(%x) = %v", where, k, err)
	default:
		md.keys = slices.Insert(md.keys, i, string(k))
		md.values[string(k)] = v
	}
	return false
}

// check compares m's entries (iterated) and Len with the model.
func (md *refModel) check(t *testing.T, where string, m *memtable.Memtable) {
	t.Helper()
	ks, vs := collect(t, m)
	if len(ks) != len(md.keys) || m.Len() != len(md.keys) {
		t.Fatalf("%s: %d entries iterated, Len %d, model %d", where, len(ks), m.Len(), len(md.keys))
	}
	for j := range ks {
		if string(ks[j]) != md.keys[j] || string(vs[j]) != md.values[md.keys[j]] {
			t.Fatalf("%s: entry %d = %x, want %x", where, j, ks[j], md.keys[j])
		}
	}
}

// TestConcurrentWritersReaders runs writers and readers at once. Readers
// check that iteration is strictly sorted and that every entry whose Add
// returned before the iterator was created is seen and seekable.
func TestConcurrentWritersReaders(t *testing.T) {
	seed := testSeed(t)
	const writers, perWriter, readers = 4, 8000, 2
	// Each writer adds its own keys in a shuffled order and publishes how
	// many it has added.
	keysOf := make([][][]byte, writers)
	for w := range keysOf {
		rng := rand.New(rand.NewPCG(seed, uint64(w)))
		for i := range perWriter {
			row := fmt.Sprintf("row%05d", rng.IntN(1000))
			keysOf[w] = append(keysOf[w], cellKey(row, fmt.Sprint(w), int64(i), keys.SeqNum(w*perWriter+i+1)))
		}
		rng.Shuffle(perWriter, func(i, j int) { keysOf[w][i], keysOf[w][j] = keysOf[w][j], keysOf[w][i] })
	}
	m := memtable.New(&memtable.Options{ArenaSize: 8 << 20})
	var progress [writers]atomic.Int64
	var writersDone, passes atomic.Int64
	errs := make(chan error, writers+readers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			defer writersDone.Add(1)
			for i, k := range keysOf[w] {
				if err := m.Add(k, k[len(k)-8:]); err != nil {
					errs <- fmt.Errorf("writer %d Add %d: %w", w, i, err)
					return
				}
				progress[w].Store(int64(i + 1))
			}
		})
	}
	check := func(r, pass int) error {
		var before [writers]int64
		for w := range before {
			before[w] = progress[w].Load()
		}
		it := m.NewIter()
		defer it.Close()
		seen := make(map[string]bool, writers*perWriter)
		var prev []byte
		for ok := it.First(); ok; ok = it.Next() {
			k := it.Key()
			if prev != nil && bytes.Compare(prev, k) >= 0 {
				return fmt.Errorf("reader %d pass %d: not sorted: %x then %x", r, pass, prev, k)
			}
			if !bytes.Equal(it.Value(), k[len(k)-8:]) {
				return fmt.Errorf("reader %d pass %d: value of %x = %x", r, pass, k, it.Value())
			}
			prev = slices.Clone(k)
			seen[string(k)] = true
		}
		for w := range writers {
			for i := range before[w] {
				k := keysOf[w][i]
				if !seen[string(k)] {
					return fmt.Errorf("reader %d pass %d: key %d of writer %d, added before the iterator, not seen", r, pass, i, w)
				}
			}
			if before[w] > 0 {
				k := keysOf[w][before[w]-1]
				if !it.SeekGE(k) || !bytes.Equal(it.Key(), k) {
					return fmt.Errorf("reader %d pass %d: SeekGE of added key %x at %x", r, pass, k, it.Key())
				}
			}
		}
		return nil
	}
	for r := range readers {
		wg.Go(func() {
			for pass := 0; ; pass++ {
				last := writersDone.Load() == writers
				if err := check(r, pass); err != nil {
					errs <- err
					return
				}
				if last {
					passes.Add(int64(pass + 1))
					return
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d reader passes in all", passes.Load())
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if m.Len() != writers*perWriter {
		t.Errorf("Len() = %d, want %d", m.Len(), writers*perWriter)
	}
}

// TestConcurrentDuplicateAdds races goroutines adding the same keys: each
// key is added exactly once and the others get ErrDuplicate.
func TestConcurrentDuplicateAdds(t *testing.T) {
	const goroutines, n = 3, 5000
	m := memtable.New(&memtable.Options{ArenaSize: 4 << 20})
	var wins, dups atomic.Int64
	errs := make(chan error, goroutines)
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for i := range n {
				err := m.Add(binary.BigEndian.AppendUint64(nil, uint64(i)*0x9E3779B97F4A7C15), nil)
				switch {
				case err == nil:
					wins.Add(1)
				case errors.Is(err, memtable.ErrDuplicate):
					dups.Add(1)
				default:
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if wins.Load() != n || dups.Load() != (goroutines-1)*n || m.Len() != n {
		t.Fatalf("wins %d, duplicates %d, Len %d; want %d, %d, %d", wins.Load(), dups.Load(), m.Len(), n, (goroutines-1)*n, n)
	}
	ks, _ := collect(t, m)
	if len(ks) != n {
		t.Fatalf("iterated %d entries, want %d", len(ks), n)
	}
	for i := 1; i < len(ks); i++ {
		if bytes.Compare(ks[i-1], ks[i]) >= 0 {
			t.Fatalf("not strictly sorted at %d: %x then %x", i, ks[i-1], ks[i])
		}
	}
}

// TestConcurrentFill has writers race to fill a small arena: every Add
// either succeeds or returns ErrArenaFull, Size never exceeds the capacity
// (the arena is one chunk, so there is no chunk-tail waste; see
// TestConcurrentFillAcrossChunks for a larger one), and every successful
// entry is present.
func TestConcurrentFill(t *testing.T) {
	const goroutines = 4
	m := memtable.New(&memtable.Options{ArenaSize: 256 << 10})
	var added [goroutines][][]byte
	errs := make(chan error, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := 0; ; i++ {
				k := fmt.Appendf(nil, "%08d/%d", i, g)
				err := m.Add(k, make([]byte, 100))
				if errors.Is(err, memtable.ErrArenaFull) {
					return
				}
				if err != nil {
					errs <- err
					return
				}
				added[g] = append(added[g], k)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if m.Size() > m.Capacity() {
		t.Fatalf("Size() %d > Capacity() %d", m.Size(), m.Capacity())
	}
	ks, _ := collect(t, m)
	seen := map[string]bool{}
	for _, k := range ks {
		seen[string(k)] = true
	}
	total := 0
	for g := range added {
		total += len(added[g])
		for _, k := range added[g] {
			if !seen[string(k)] {
				t.Fatalf("added key %q missing", k)
			}
		}
	}
	if total != len(ks) || total != m.Len() {
		t.Fatalf("added %d, iterated %d, Len %d", total, len(ks), m.Len())
	}
}
