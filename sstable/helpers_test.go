package sstable

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"cellar/dfs"
	"cellar/internal/keys"
)

var seedFlag = flag.Uint64("seed", 0, "seed for randomized tests (0 = from the clock)")

// testSeed returns the seed of a randomized test and prints it if the test
// fails, so the run can be repeated with -seed.
func testSeed(t testing.TB) uint64 {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("random seed: %d (rerun with -seed=%d)", seed, seed)
		}
	})
	return seed
}

// memFile is a dfs.File collecting bytes in memory.
type memFile struct {
	buf    bytes.Buffer
	syncs  int
	closed bool
}

var _ dfs.File = (*memFile)(nil)

func (f *memFile) Write(p []byte) (int, error) {
	if f.closed {
		return 0, dfs.ErrClosed
	}
	return f.buf.Write(p)
}
func (f *memFile) Sync(context.Context) error { f.syncs++; return nil }
func (f *memFile) Close() error               { f.closed = true; return nil }
func (f *memFile) Size() int64                { return int64(f.buf.Len()) }

// bytesFile is a dfs.ReadFile over a byte slice.
type bytesFile struct {
	b      []byte
	closed bool
}

var _ dfs.ReadFile = (*bytesFile)(nil)

func (f *bytesFile) ReadAt(p []byte, off int64) (int, error) {
	if f.closed {
		return 0, dfs.ErrClosed
	}
	if off < 0 || off >= int64(len(f.b)) {
		return 0, io.EOF
	}
	n := copy(p, f.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
func (f *bytesFile) Close() error { f.closed = true; return nil }
func (f *bytesFile) Size() int64  { return int64(len(f.b)) }

type kv struct{ k, v []byte }

// randomKVs returns n distinct sorted entries with encoded cell keys: rows
// from a small alphabet (with 0x00 bytes, so escaping is exercised), a few
// families, qualifiers, versions and kinds, and values of mixed
// compressibility.
func randomKVs(rng *rand.Rand, n, maxValue int) []kv {
	seen := make(map[string]bool, n)
	out := make([]kv, 0, n)
	for len(out) < n {
		k := randomKey(rng)
		if seen[string(k)] {
			continue
		}
		seen[string(k)] = true
		v := make([]byte, rng.IntN(maxValue+1))
		if rng.IntN(2) == 0 {
			for i := range v {
				v[i] = byte(rng.Uint32())
			}
		} else {
			for i := range v {
				v[i] = "abcd"[i%4]
			}
		}
		out = append(out, kv{k, v})
	}
	slices.SortFunc(out, func(a, b kv) int { return bytes.Compare(a.k, b.k) })
	return out
}

func randomKey(rng *rand.Rand) []byte {
	row := make([]byte, 1+rng.IntN(12))
	for i := range row {
		row[i] = "\x00abcxyz"[rng.IntN(7)]
	}
	k := keys.Key{
		Row:       row,
		Family:    []string{"cf", "data", "meta"}[rng.IntN(3)],
		Qualifier: []byte(fmt.Sprintf("q%d", rng.IntN(20))),
		Timestamp: rng.Int64N(1 << 40),
		Seq:       keys.SeqNum(rng.Uint64N(1 << 30)),
		Kind:      keys.KindSet,
	}
	switch rng.IntN(10) {
	case 0:
		k.Kind = keys.KindDeleteCell
	case 1:
		k.Kind, k.Timestamp = keys.KindDeleteColumn, keys.MarkerTimestamp
	case 2:
		k.Kind, k.Timestamp, k.Qualifier = keys.KindDeleteFamily, keys.MarkerTimestamp, nil
	}
	return keys.Encode(k)
}

// buildTable writes kvs with opts and returns the file's bytes and the
// writer's properties.
func buildTable(t testing.TB, kvs []kv, opts *WriterOptions) ([]byte, Properties) {
	t.Helper()
	f := &memFile{}
	w := NewWriter(f, opts)
	for _, e := range kvs {
		if err := w.Add(e.k, e.v); err != nil {
			t.Fatalf("Add(%q): %v", e.k, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !f.closed || f.syncs == 0 {
		t.Fatalf("Close left the file closed=%v after %d syncs", f.closed, f.syncs)
	}
	return f.buf.Bytes(), w.Properties()
}

func openBytes(t testing.TB, b []byte, cache *Cache) *Reader {
	t.Helper()
	r, err := Open(&bytesFile{b: b}, "test.sst", &ReaderOptions{Cache: cache})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// readAll iterates the whole table; it stops after limit entries.
func readAll(r *Reader, limit int) ([]kv, error) {
	it := r.NewIter()
	defer it.Close()
	var out []kv
	for ok := it.First(); ok && len(out) < limit; ok = it.Next() {
		out = append(out, kv{slices.Clone(it.Key()), slices.Clone(it.Value())})
	}
	return out, it.Error()
}

func equalKVs(a, b []kv) bool {
	return slices.EqualFunc(a, b, func(x, y kv) bool { return bytes.Equal(x.k, y.k) && bytes.Equal(x.v, y.v) })
}
