package enginebench

import (
	"bytes"
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// memEngine is a trivial in-memory Engine that counts what it is asked.
type memEngine struct {
	mu       sync.Mutex
	rows     map[string][]byte
	writes   int // Write calls
	syncs    int // Write calls with sync
	puts     int // rows written, duplicates included
	gets     int
	compacts int
	closed   bool
	// corrupt, if set, changes what the engine stores or returns.
	corrupt func(key, value []byte) (k, v []byte, keep bool)
}

func (m *memEngine) Write(_ context.Context, kvs []KV, sync bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writes++
	if sync {
		m.syncs++
	}
	for _, kv := range kvs {
		m.puts++
		k, v, keep := bytes.Clone(kv.Key), bytes.Clone(kv.Value), true
		if m.corrupt != nil {
			k, v, keep = m.corrupt(k, v)
		}
		if keep {
			m.rows[string(k)] = v
		}
	}
	return nil
}

func (m *memEngine) Get(_ context.Context, key, dst []byte) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gets++
	v, ok := m.rows[string(key)]
	if !ok {
		return dst, false, nil
	}
	return append(dst, v...), true, nil
}

func (m *memEngine) Scan(_ context.Context, fn func(k, v []byte) bool) error {
	m.mu.Lock()
	keys := make([]string, 0, len(m.rows))
	for k := range m.rows {
		keys = append(keys, k)
	}
	m.mu.Unlock()
	slices.Sort(keys)
	for _, k := range keys {
		m.mu.Lock()
		v := m.rows[k]
		m.mu.Unlock()
		if !fn([]byte(k), v) {
			return nil
		}
	}
	return nil
}

func (m *memEngine) Compact(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.compacts++
	return nil
}

func (m *memEngine) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

// memOpener returns an Opener whose databases are recorded in *dbs.
func memOpener(dbs *[]*memEngine, corrupt func(k, v []byte) ([]byte, []byte, bool)) Opener {
	return Opener{
		Name: "mem", Settings: "in-memory map", MemoryBudget: 1 << 20,
		Open: func(context.Context, string) (Engine, error) {
			e := &memEngine{rows: map[string][]byte{}, corrupt: corrupt}
			*dbs = append(*dbs, e)
			return e, nil
		},
	}
}

func TestRunCountsEveryWorkload(t *testing.T) {
	const rows, reads = 2000, 700
	var dbs []*memEngine
	rep, err := Run(context.Background(), memOpener(&dbs, nil), &Options{
		Dir: t.TempDir(), Rows: rows, ValueSize: 100, Reads: reads, Concurrency: 3, Seed: 42,
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(dbs), 3; got != want {
		t.Fatalf("opened %d databases, want %d (one per fill)", got, want)
	}
	for i, db := range dbs {
		if !db.closed {
			t.Errorf("database %d not closed", i)
		}
		if db.puts != rows || len(db.rows) != rows {
			t.Errorf("database %d: %d puts, %d distinct rows; want %d of each", i, db.puts, len(db.rows), rows)
		}
	}
	if dbs[0].writes != rows || dbs[0].syncs != 0 {
		t.Errorf("fillseq: %d writes (%d synced), want %d async", dbs[0].writes, dbs[0].syncs, rows)
	}
	if dbs[2].writes != rows/100 || dbs[2].syncs != rows/100 {
		t.Errorf("fillsync: %d writes (%d synced), want %d synced", dbs[2].writes, dbs[2].syncs, rows/100)
	}
	if dbs[2].gets != 2*reads || dbs[2].compacts != 1 {
		t.Errorf("last database: %d gets, %d compactions; want %d, 1", dbs[2].gets, dbs[2].compacts, 2*reads)
	}
	var names []string
	for _, r := range rep.Results {
		names = append(names, r.Workload)
	}
	if !slices.Equal(names, Workloads) {
		t.Errorf("results for %v, want %v", names, Workloads)
	}
	wantOps := map[string]int64{FillSeq: rows, FillRandom: rows, FillSync: rows, Compact: rows, ReadRandom: reads, ReadMissing: reads, Scan: rows}
	wantBytes := map[string]int64{FillSeq: rows * 116, FillRandom: rows * 116, FillSync: rows * 116, Compact: rows * 116,
		ReadRandom: reads * 116, ReadMissing: reads * KeySize, Scan: rows * 116}
	for _, r := range rep.Results {
		if r.Ops != wantOps[r.Workload] || r.Bytes != wantBytes[r.Workload] {
			t.Errorf("%s: ops %d bytes %d, want %d, %d", r.Workload, r.Ops, r.Bytes, wantOps[r.Workload], wantBytes[r.Workload])
		}
	}
	var out strings.Builder
	if err := rep.Print(&out); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"fillsync (sync, 100 rows/write)", "readmissing", "engine mem: in-memory map", "memory mem"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("Print output lacks %q:\n%s", w, out.String())
		}
	}
}

func TestRunFillsBeforeReadsAlone(t *testing.T) {
	var dbs []*memEngine
	rep, err := Run(context.Background(), memOpener(&dbs, nil), &Options{
		Dir: t.TempDir(), Rows: 300, ValueSize: 10, Workloads: []string{Scan, ReadRandom},
	})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range rep.Results {
		names = append(names, r.Workload)
	}
	if want := []string{Compact, ReadRandom, Scan}; !slices.Equal(names, want) {
		t.Errorf("results for %v, want %v", names, want)
	}
	if len(dbs) != 1 || dbs[0].writes != 300 || len(rep.Notes) != 1 {
		t.Errorf("%d databases, notes %q; want one filled by an untimed fillseq, with a note", len(dbs), rep.Notes)
	}
}

func TestRunDetectsWrongData(t *testing.T) {
	for _, tc := range []struct {
		name    string
		work    string
		corrupt func(k, v []byte) ([]byte, []byte, bool)
	}{
		{"lost row fails readrandom", ReadRandom, func(k, v []byte) ([]byte, []byte, bool) {
			return k, v, !bytes.HasSuffix(k, []byte("0"))
		}},
		{"lost row fails scan", Scan, func(k, v []byte) ([]byte, []byte, bool) {
			return k, v, string(k) != "0000000000000042"
		}},
		{"wrong value fails readrandom", ReadRandom, func(k, v []byte) ([]byte, []byte, bool) {
			if string(k) == "0000000000000010" || len(k) > 0 && k[len(k)-2] == '3' {
				v[0]++
			}
			return k, v, true
		}},
		{"wrong value fails scan", Scan, func(k, v []byte) ([]byte, []byte, bool) {
			if string(k) == "0000000000000010" {
				v = v[1:]
			}
			return k, v, true
		}},
		{"extra row fails readmissing", ReadMissing, func(k, v []byte) ([]byte, []byte, bool) {
			k[len(k)-1]++ // every key odd: only missing keys stored
			return k, v, true
		}},
		{"foreign key fails scan", Scan, func(k, v []byte) ([]byte, []byte, bool) {
			if string(k) == "0000000000000010" {
				k = []byte("zzz")
			}
			return k, v, true
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var dbs []*memEngine
			_, err := Run(context.Background(), memOpener(&dbs, tc.corrupt), &Options{
				Dir: t.TempDir(), Rows: 200, ValueSize: 20, Workloads: []string{FillSeq, tc.work},
			})
			if !errors.Is(err, ErrMismatch) {
				t.Fatalf("Run = %v, want ErrMismatch", err)
			}
		})
	}
}

func TestRunIsDeterministic(t *testing.T) {
	run := func(seed uint64) map[string][]byte {
		var dbs []*memEngine
		if _, err := Run(context.Background(), memOpener(&dbs, nil), &Options{
			Dir: t.TempDir(), Rows: 500, ValueSize: 30, Concurrency: 4, Seed: seed, Workloads: []string{FillRandom},
		}); err != nil {
			t.Fatal(err)
		}
		return dbs[0].rows
	}
	a, b, c := run(7), run(7), run(8)
	eq := func(x, y map[string][]byte) bool {
		if len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if !bytes.Equal(v, y[k]) {
				return false
			}
		}
		return true
	}
	if !eq(a, b) {
		t.Error("two runs with seed 7 wrote different data")
	}
	if eq(a, c) {
		t.Error("seeds 7 and 8 wrote the same values")
	}
	p := permutation(7, 1000)
	s := slices.Clone(p)
	slices.Sort(s)
	for i, v := range s {
		if v != uint32(i) {
			t.Fatalf("permutation(7, 1000) is not a permutation: sorted[%d] = %d", i, v)
		}
	}
	if slices.IsSorted(p) {
		t.Error("permutation(7, 1000) is the identity")
	}
}

func TestKeys(t *testing.T) {
	var buf [KeySize]byte
	for _, tc := range []struct {
		row     int
		key     string
		missing string
	}{
		{0, "0000000000000000", "0000000000000001"},
		{7, "0000000000000014", "0000000000000015"},
		{499_999_999_999, "0000999999999998", "0000999999999999"},
	} {
		if got := string(rowKey(buf[:], tc.row)); got != tc.key {
			t.Errorf("rowKey(%d) = %q, want %q", tc.row, got, tc.key)
		}
		if got := string(missingKey(buf[:], tc.row)); got != tc.missing {
			t.Errorf("missingKey(%d) = %q, want %q", tc.row, got, tc.missing)
		}
		if got, err := parseRow([]byte(tc.key)); got != tc.row || err != nil {
			t.Errorf("parseRow(%q) = %d, %v, want %d", tc.key, got, err, tc.row)
		}
		if _, err := parseRow([]byte(tc.missing)); !errors.Is(err, ErrMismatch) {
			t.Errorf("parseRow(%q) = %v, want ErrMismatch", tc.missing, err)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		ok   bool
	}{
		{"defaults", Options{Dir: "d"}, true},
		{"no dir", Options{}, false},
		{"negative rows", Options{Dir: "d", Rows: -1}, false},
		{"too many rows", Options{Dir: "d", Rows: maxRows + 1}, false},
		{"huge value", Options{Dir: "d", ValueSize: 2 << 20}, false},
		{"negative reads", Options{Dir: "d", Reads: -5}, false},
		{"negative concurrency", Options{Dir: "d", Concurrency: -1}, false},
		{"unknown workload", Options{Dir: "d", Workloads: []string{"fillseq", "readseq"}}, false},
		{"subset", Options{Dir: "d", Workloads: []string{Scan, FillSync}}, true},
	} {
		err := tc.opts.Validate()
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrInvalidOptions)) {
			t.Errorf("%s: Validate() = %v, want ok=%v (or ErrInvalidOptions)", tc.name, err, tc.ok)
		}
	}
	if _, err := Run(context.Background(), Opener{Name: "x"}, &Options{Dir: t.TempDir()}); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("Run without Open = %v, want ErrInvalidOptions", err)
	}
}

func TestCompareRatios(t *testing.T) {
	res := func(w string, ops int64, secs float64) Result {
		return Result{Workload: w, Ops: ops, Bytes: ops * 1016, Elapsed: time.Duration(secs * float64(time.Second))}
	}
	opts := (&Options{Dir: "d", Rows: 1000}).withDefaults()
	a := &Report{Engine: "cellar", Settings: "a-settings", Options: opts, Results: []Result{
		res(FillSeq, 1000, 1), res(ReadRandom, 1000, 4), res(Scan, 1000, 0.5), res(FillSync, 1000, 1)}}
	b := &Report{Engine: "pebble", Settings: "b-settings", Options: opts, Results: []Result{
		res(FillSeq, 1000, 2), res(ReadRandom, 1000, 1), res(Scan, 1000, 0)}}
	got := Compare(a, b)
	if len(got) != 3 {
		t.Fatalf("Compare paired %d workloads, want 3 (fillsync ran only in a)", len(got))
	}
	for i, want := range []struct {
		w     string
		ratio float64
	}{{FillSeq, 2}, {ReadRandom, 0.25}, {Scan, math.NaN()}} {
		c := got[i]
		if c.Workload != want.w || !(c.Ratio == want.ratio || math.IsNaN(c.Ratio) && math.IsNaN(want.ratio)) {
			t.Errorf("Compare[%d] = %s %v, want %s %v", i, c.Workload, c.Ratio, want.w, want.ratio)
		}
	}
	var out strings.Builder
	if err := PrintComparison(&out, a, b, 0.7); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{"cellar: a-settings", "pebble: b-settings", "cellar/pebble", "2.00", "0.25 (< 0.70)", "NaN (< 0.70)", "memory cellar", "memory pebble"} {
		if !strings.Contains(s, want) {
			t.Errorf("PrintComparison output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "2.00 (<") {
		t.Errorf("ratio 2.00 marked below target:\n%s", s)
	}
}

func TestPeakRSS(t *testing.T) {
	cur, ok := CurrentRSS()
	if !ok {
		t.Skip("no /proc/self/status on this system: PeakRSS is reported as unknown")
	}
	peak, _ := PeakRSS()
	if peak <= 0 || cur <= 0 || cur > peak {
		t.Errorf("PeakRSS = %d, CurrentRSS = %d: want 0 < current <= peak", peak, cur)
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1000", 1000, true}, {"64MiB", 64 << 20, true}, {"256 MiB", 256 << 20, true}, {"4K", 4096, true},
		{"1.5GiB", 3 << 29, true}, {"12B", 12, true}, {"", 0, false}, {"-1MiB", 0, false}, {"ten", 0, false},
		{"1PiB", 0, false}, {"99999999GiB", 0, false},
	} {
		got, err := ParseSize(tc.in)
		if tc.ok != (err == nil) || got != tc.want || (err != nil && !errors.Is(err, ErrInvalidOptions)) {
			t.Errorf("ParseSize(%q) = %d, %v, want %d (ok=%v)", tc.in, got, err, tc.want, tc.ok)
		}
		if tc.ok {
			if back, err := ParseSize(FormatSize(got)); back != got || err != nil {
				t.Errorf("ParseSize(FormatSize(%d)=%q) = %d, %v", got, FormatSize(got), back, err)
			}
		}
	}
}
