package sstable

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"cellar/dfs"
	"cellar/dfs/local"
	"cellar/dfs/memfs"
	"cellar/internal/keys"
)

// TestRoundTrip writes random tables with every compression and several
// block sizes and restart intervals, then checks a full scan, SeekGE against
// a sorted-slice model (present keys, absent keys, neighbours), Next after
// SeekGE, the properties and MidKey, with and without a block cache.
func TestRoundTrip(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 1))
	kvs := randomKVs(rng, 3000, 120)
	for _, comp := range []Compression{CompressionSnappy, CompressionNone} {
		for _, bs := range []int{1, 256, 4096, 0} {
			for _, ri := range []int{1, 16} {
				for _, cached := range []bool{false, true} {
					name := fmt.Sprintf("%s/block=%d/restart=%d/cache=%v", comp, bs, ri, cached)
					t.Run(name, func(t *testing.T) {
						data, wprops := buildTable(t, kvs, &WriterOptions{BlockSize: bs, RestartInterval: ri, Compression: comp})
						var cache *Cache
						if cached {
							cache = NewCache(1 << 20)
						}
						r := openBytes(t, data, cache)
						checkTable(t, rng, r, kvs, wprops)
						if cached && cache.Stats().Hits == 0 {
							t.Errorf("cache stats %+v: no hits after two passes", cache.Stats())
						}
					})
				}
			}
		}
	}
}

func checkTable(t *testing.T, rng *rand.Rand, r *Reader, kvs []kv, wprops Properties) {
	t.Helper()
	got, err := readAll(r, len(kvs)+1)
	if err != nil || !equalKVs(got, kvs) {
		t.Fatalf("scan: %d entries (err %v), want %d equal entries", len(got), err, len(kvs))
	}
	it := r.NewIter()
	defer it.Close()
	seek := func(target []byte) {
		i := sort.Search(len(kvs), func(i int) bool { return bytes.Compare(kvs[i].k, target) >= 0 })
		ok := it.SeekGE(target)
		for step := 0; step < 3; step++ {
			if ok != (i < len(kvs)) {
				t.Fatalf("SeekGE(%q)+%d: valid = %v, want %v (err %v)", target, step, ok, i < len(kvs), it.Error())
			}
			if !ok {
				return
			}
			if !bytes.Equal(it.Key(), kvs[i].k) || !bytes.Equal(it.Value(), kvs[i].v) {
				t.Fatalf("SeekGE(%q)+%d = %q, want %q", target, step, it.Key(), kvs[i].k)
			}
			ok, i = it.Next(), i+1
		}
	}
	for n := 0; n < 500; n++ {
		e := kvs[rng.IntN(len(kvs))]
		seek(e.k)
		seek(e.k[:len(e.k)-1])
		seek(append(slices.Clone(e.k), 0))
		seek(randomKey(rng))
	}
	seek(nil)
	seek([]byte{0xFF, 0xFF})
	// The filter has no false negatives.
	for _, e := range kvs {
		row, col := e.k[:keys.RowPrefixLen(e.k)], e.k[:keys.ColumnPrefixLen(e.k)]
		if !r.MayContain(row) || !r.MayContain(col) {
			t.Fatalf("MayContain false for a prefix of %q", e.k)
		}
	}
	p := r.Properties()
	if !propsEqual(p, wprops) {
		t.Errorf("read properties %+v, writer's %+v", p, wprops)
	}
	if want := modelProps(kvs); !propsEqual(p, want) {
		t.Errorf("properties %+v, want %+v (sizes not compared)", p, want)
	}
	mid := r.MidKey()
	i := sort.Search(len(kvs), func(i int) bool { return bytes.Compare(kvs[i].k, mid) >= 0 })
	if i == len(kvs) || !bytes.Equal(kvs[i].k, mid) {
		t.Errorf("MidKey %q is not a key of the table", mid)
	}
}

// propsEqual compares what the model can predict (not the byte sizes that
// depend on the layout), then the sizes against each other when both set.
func propsEqual(a, b Properties) bool {
	same := a.NumEntries == b.NumEntries && a.NumTombstones == b.NumTombstones &&
		bytes.Equal(a.SmallestKey, b.SmallestKey) && bytes.Equal(a.LargestKey, b.LargestKey) &&
		a.MinTimestamp == b.MinTimestamp && a.MaxTimestamp == b.MaxTimestamp &&
		a.MinSeq == b.MinSeq && a.MaxSeq == b.MaxSeq &&
		a.RawKeyBytes == b.RawKeyBytes && a.RawValueBytes == b.RawValueBytes
	if a.FileSize != 0 && b.FileSize != 0 {
		same = same && a.FileSize == b.FileSize && a.DataBytes == b.DataBytes && a.NumDataBlocks == b.NumDataBlocks
	}
	return same
}

func modelProps(kvs []kv) Properties {
	p := emptyProperties()
	for i, e := range kvs {
		ts, seq, kind := keys.DecodeTrailer(e.k)
		if i == 0 {
			p.SmallestKey, p.MinSeq = e.k, seq
		}
		p.LargestKey = e.k
		p.NumEntries++
		p.RawKeyBytes += uint64(len(e.k))
		p.RawValueBytes += uint64(len(e.v))
		if kind.IsTombstone() {
			p.NumTombstones++
		}
		if kind == keys.KindSet || kind == keys.KindDeleteCell {
			p.MinTimestamp, p.MaxTimestamp = min(p.MinTimestamp, ts), max(p.MaxTimestamp, ts)
		}
		p.MinSeq, p.MaxSeq = min(p.MinSeq, seq), max(p.MaxSeq, seq)
	}
	return p
}

func TestEmptyTable(t *testing.T) {
	for _, fp := range []float64{0, -1} {
		data, _ := buildTable(t, nil, &WriterOptions{BloomFalsePositive: fp})
		r := openBytes(t, data, nil)
		if got, err := readAll(r, 10); len(got) != 0 || err != nil {
			t.Errorf("scan of empty table = %d entries, %v", len(got), err)
		}
		it := r.NewIter()
		if it.SeekGE([]byte("a")) || it.Valid() || it.Error() != nil {
			t.Errorf("SeekGE on empty table: valid %v, err %v", it.Valid(), it.Error())
		}
		p := r.Properties()
		if p.NumEntries != 0 || p.SmallestKey != nil || p.MinTimestamp != math.MaxInt64 || p.MaxTimestamp != math.MinInt64 {
			t.Errorf("empty table properties %+v", p)
		}
		if r.MidKey() != nil || r.MayContain([]byte("a\x00\x01")) {
			t.Errorf("empty table: MidKey %q, MayContain true", r.MidKey())
		}
	}
}

// TestBloomFilter checks that the filter answers false for most absent
// prefixes (it is a filter, not a no-op) and true for every present one, and
// that a table without a filter answers true.
func TestBloomFilter(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 2))
	kvs := randomKVs(rng, 2000, 10)
	present := map[string]bool{}
	for _, e := range kvs {
		present[string(e.k[:keys.RowPrefixLen(e.k)])] = true
		present[string(e.k[:keys.ColumnPrefixLen(e.k)])] = true
	}
	data, _ := buildTable(t, kvs, nil)
	r := openBytes(t, data, nil)
	noFilter, _ := buildTable(t, kvs, &WriterOptions{BloomFalsePositive: -1})
	rn := openBytes(t, noFilter, nil)
	fps, absent := 0, 0
	for i := 0; i < 5000; i++ {
		row := keys.AppendRowPrefix(nil, []byte(fmt.Sprintf("absent-%d", i)))
		if present[string(row)] {
			continue
		}
		absent++
		if r.MayContain(row) {
			fps++
		}
		if !rn.MayContain(row) {
			t.Fatalf("table without filter: MayContain(%q) = false", row)
		}
	}
	// Target 1%; 5% leaves room for chance (binomial, n=5000: sd ~0.14%).
	if fps*20 > absent {
		t.Errorf("%d false positives of %d absent prefixes, want about 1%%", fps, absent)
	}
}

func TestWriterErrors(t *testing.T) {
	k1 := keys.Encode(keys.Key{Row: []byte("a"), Family: "cf", Timestamp: 1, Seq: 1, Kind: keys.KindSet})
	k2 := keys.Encode(keys.Key{Row: []byte("b"), Family: "cf", Timestamp: 1, Seq: 1, Kind: keys.KindSet})
	w := NewWriter(&memFile{}, nil)
	if err := w.Add(k2, nil); err != nil {
		t.Fatal(err)
	}
	for _, k := range [][]byte{k1, k2} {
		if err := w.Add(k, nil); !errors.Is(err, ErrKeyOrder) {
			t.Errorf("Add(%q) after %q: %v, want ErrKeyOrder", k, k2, err)
		}
	}
	for _, k := range [][]byte{nil, []byte("abc"), []byte("a\x00\x01"), append([]byte("z\x00\x01"), make([]byte, 15)...)} {
		if err := w.Add(k, nil); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Add(%q): %v, want ErrInvalidKey", k, err)
		}
	}
	big := make([]byte, MaxEntrySize)
	k3 := keys.Encode(keys.Key{Row: []byte("c"), Family: "cf", Kind: keys.KindSet})
	if err := w.Add(k3, big); !errors.Is(err, ErrEntryTooLarge) {
		t.Errorf("Add of a %d-byte value: %v, want ErrEntryTooLarge", len(big), err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Add(keys.Encode(keys.Key{Row: []byte("c"), Family: "cf", Kind: keys.KindSet}), nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Add after Close: %v, want ErrClosed", err)
	}
	if err := w.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v, want ErrClosed", err)
	}
	for _, o := range []WriterOptions{
		{BlockSize: -1}, {BlockSize: MaxBlockSize + 1}, {RestartInterval: -2}, {Compression: 7},
		{BloomFalsePositive: 1}, {BloomFalsePositive: 1e-9}, {BloomFalsePositive: math.NaN()},
	} {
		f := &memFile{}
		w := NewWriter(f, &o)
		if err := w.Add(k1, nil); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("options %+v: Add: %v, want ErrInvalidOptions", o, err)
		}
		if err := w.Close(); !errors.Is(err, ErrInvalidOptions) || !f.closed {
			t.Errorf("options %+v: Close: %v (file closed %v), want ErrInvalidOptions", o, err, f.closed)
		}
	}
}

// failFile fails every write after the first n bytes.
type failFile struct {
	memFile
	n int
}

var errInjected = errors.New("injected write failure")

func (f *failFile) Write(p []byte) (int, error) {
	if f.buf.Len()+len(p) > f.n {
		return 0, errInjected
	}
	return f.memFile.Write(p)
}

func TestWriterIOErrorIsSticky(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	kvs := randomKVs(rng, 200, 100)
	f := &failFile{n: 1000}
	w := NewWriter(f, &WriterOptions{BlockSize: 256})
	var err error
	for _, e := range kvs {
		if err = w.Add(e.k, e.v); err != nil {
			break
		}
	}
	if !errors.Is(err, errInjected) {
		t.Fatalf("Add: %v, want the injected error", err)
	}
	if err := w.Close(); !errors.Is(err, errInjected) || !f.closed {
		t.Fatalf("Close: %v (closed %v), want the injected error and a closed file", err, f.closed)
	}
}

// TestTruncation opens every proper prefix of a small table: each gives
// ErrCorrupt, never a panic or a table.
func TestTruncation(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	kvs := randomKVs(rng, 60, 40)
	data, _ := buildTable(t, kvs, &WriterOptions{BlockSize: 256})
	for n := 0; n < len(data); n++ {
		r, err := Open(&bytesFile{b: data[:n]}, "trunc.sst", nil)
		if err == nil {
			r.Close()
			t.Fatalf("Open of %d of %d bytes succeeded", n, len(data))
		}
		var ce *CorruptError
		if !errors.Is(err, ErrCorrupt) || !errors.As(err, &ce) || ce.File != "trunc.sst" {
			t.Fatalf("Open of %d bytes: %v, want a *CorruptError naming the file", n, err)
		}
	}
}

// TestBitFlips flips one bit in every byte of small tables (one per
// compression) and checks that opening and reading everything reports
// ErrCorrupt: every byte is under a checksum or is the magic number, so no
// flip may go unnoticed, let alone give wrong data.
func TestBitFlips(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	kvs := randomKVs(rng, 60, 40)
	for _, comp := range []Compression{CompressionSnappy, CompressionNone} {
		data, _ := buildTable(t, kvs, &WriterOptions{BlockSize: 256, Compression: comp})
		for i := range data {
			bad := slices.Clone(data)
			bad[i] ^= 1 << (i % 8)
			err := openAndRead(bad, kvs)
			var ce *CorruptError
			if !errors.Is(err, ErrCorrupt) || !errors.As(err, &ce) {
				t.Fatalf("%s: flip of bit %d of byte %d/%d: %v, want ErrCorrupt", comp, i%8, i, len(data), err)
			}
			// The error names the structure holding the flipped byte: it
			// starts at or before it.
			if ce.File != "flip.sst" || ce.Offset > int64(i) || ce.Offset < 0 {
				t.Fatalf("%s: flip at byte %d reported as %v", comp, i, err)
			}
		}
	}
}

// openAndRead opens b and reads it whole, returning the first error, or an
// error (not ErrCorrupt) if it reads something other than want.
func openAndRead(b []byte, want []kv) error {
	r, err := Open(&bytesFile{b: b}, "flip.sst", nil)
	if err != nil {
		return err
	}
	defer r.Close()
	got, err := readAll(r, len(want)+1)
	if err != nil {
		return err
	}
	if !equalKVs(got, want) {
		return fmt.Errorf("read %d entries that differ from the %d written", len(got), len(want))
	}
	return nil
}

func TestReadErrorsAreReported(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	kvs := randomKVs(rng, 100, 40)
	data, _ := buildTable(t, kvs, &WriterOptions{BlockSize: 256})
	f := &bytesFile{b: data}
	r, err := Open(f, "x.sst", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil || !f.closed {
		t.Fatalf("Close: %v, file closed %v", err, f.closed)
	}
	it := r.NewIter()
	if it.First() || it.Error() == nil {
		t.Fatalf("First after Close: valid %v, err %v", it.Valid(), it.Error())
	}
	it.Close()
	r2 := openBytes(t, data, nil)
	it2 := r2.NewIter()
	if !it2.First() || it2.Close() != nil {
		t.Fatalf("First: %v", it2.Error())
	}
	if it2.SeekGE(kvs[0].k) || it2.Next() || !errors.Is(it2.Error(), ErrClosed) {
		t.Fatalf("SeekGE on a closed iterator: err %v, want ErrClosed", it2.Error())
	}
	// Open closes the file when it fails.
	bf := &bytesFile{b: data[:10]}
	if _, err := Open(bf, "y.sst", nil); err == nil || !bf.closed {
		t.Fatalf("failed Open: err %v, file closed %v", err, bf.closed)
	}
}

// TestDFSImplementations writes and reads tables through the real dfs
// implementations: a local directory and the in-memory FS, whose crash
// clone must hold the whole table once Close (which syncs) has returned.
func TestDFSImplementations(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	kvs := randomKVs(rng, 500, 100)
	lfs, err := local.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mfs := memfs.New()
	for name, fs := range map[string]dfs.FS{"local": lfs, "memfs": mfs} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			f, err := fs.Create(ctx, "t/000001.sst")
			if err != nil {
				t.Fatal(err)
			}
			w := NewWriter(f, &WriterOptions{BlockSize: 1024})
			for _, e := range kvs {
				if err := w.Add(e.k, e.v); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if fs == dfs.FS(mfs) {
				fs = mfs.CrashClone()
			}
			rf, err := fs.Open(ctx, "t/000001.sst")
			if err != nil {
				t.Fatal(err)
			}
			r, err := Open(rf, "t/000001.sst", &ReaderOptions{Cache: NewCache(1 << 20)})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if got, err := readAll(r, len(kvs)+1); err != nil || !equalKVs(got, kvs) {
				t.Fatalf("read back %d entries, err %v", len(got), err)
			}
			if p := r.Properties(); p.FileSize != w.Properties().FileSize || int64(p.FileSize) != rf.Size() {
				t.Errorf("FileSize %d, writer says %d, file is %d", p.FileSize, w.Properties().FileSize, rf.Size())
			}
		})
	}
}

func TestEstimatedSize(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	kvs := randomKVs(rng, 300, 100)
	w := NewWriter(&memFile{}, &WriterOptions{BlockSize: 1024, Compression: CompressionNone})
	prev := w.EstimatedSize()
	for _, e := range kvs {
		if err := w.Add(e.k, e.v); err != nil {
			t.Fatal(err)
		}
		if n := w.EstimatedSize(); n <= prev {
			t.Fatalf("EstimatedSize went from %d to %d after an Add", prev, n)
		} else {
			prev = n
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// Uncompressed, the estimate is exact for the data blocks but for the
	// pending block's trailer.
	if p := w.Properties(); uint64(prev)+blockTrailerLen != p.DataBytes {
		t.Errorf("EstimatedSize before Close %d, data bytes %d", prev, p.DataBytes)
	}
}

// errFile fails every ReadAt with err.
type errFile struct {
	bytesFile
	err error
}

func (f *errFile) ReadAt(p []byte, off int64) (int, error) { return 0, f.err }

func TestReadErrorClassification(t *testing.T) {
	data, _ := buildTable(t, randomKVs(rand.New(rand.NewPCG(10, 10)), 10, 10), nil)
	ioErr := errors.New("disk on fire")
	for _, tc := range []struct {
		err         error
		wantCorrupt bool
	}{
		{ioErr, false},
		{fmt.Errorf("replica checksums: %w", dfs.ErrCorrupt), true},
		{io.ErrUnexpectedEOF, true},
	} {
		_, err := Open(&errFile{bytesFile{b: data}, tc.err}, "e.sst", nil)
		if !errors.Is(err, tc.err) || errors.Is(err, ErrCorrupt) != tc.wantCorrupt {
			t.Errorf("ReadAt failing with %v: Open error %v, want it wrapped (corrupt: %v)", tc.err, err, tc.wantCorrupt)
		}
	}
}
