package ycsb

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"cellar/client"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var seedFlag = flag.Int64("seed", 42, "seed for the randomized tests")

func testRand(t *testing.T, stream uint64) *rand.Rand {
	t.Helper()
	t.Logf("seed %d (rerun with -seed)", *seedFlag)
	return rand.New(rand.NewPCG(uint64(*seedFlag), stream))
}

func TestKeyName_IsUserPlusFNV1a64OfInsertID(t *testing.T) {
	for _, id := range []int64{0, 1, 2, 99999, 1 << 40} {
		h := fnv.New64a()
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], uint64(id))
		h.Write(b[:])
		want := int64(h.Sum64())
		if want < 0 {
			want = -want
		}
		if got := fnvHash64(id); got != want {
			t.Errorf("fnvHash64(%d) = %d, want %d", id, got, want)
		}
		if k := KeyName(id); !strings.HasPrefix(k, "user") || len(k) < 5 {
			t.Errorf("KeyName(%d) = %q, want user<digits>", id, k)
		}
	}
	if KeyName(1) == KeyName(2) {
		t.Errorf("KeyName(1) == KeyName(2)")
	}
}

// counts draws n ids from next and checks each is in [0, items).
func counts(t *testing.T, n int, items int64, next func() int64) []int {
	t.Helper()
	c := make([]int, items)
	for range n {
		v := next()
		if v < 0 || v >= items {
			t.Fatalf("draw %d out of [0, %d)", v, items)
		}
		c[v]++
	}
	return c
}

func TestScrambledZipfian_SkewedAndInRange(t *testing.T) {
	r := testRand(t, 1)
	const items, draws = 10_000, 200_000
	s := newScrambledZipfian(items)
	c := counts(t, draws, items, func() int64 { return s.next(r) })
	sorted := slices.Clone(c)
	slices.Sort(sorted)
	top, median := sorted[len(sorted)-1], sorted[len(sorted)/2]
	// Zipf(0.99) over 10^10 items gives the top item 1/zeta = 3.8% of the
	// draws; the median key gets a handful.
	if top < draws/50 {
		t.Errorf("top key drew %d of %d, want >= 2%%", top, draws)
	}
	if top < 100*max(median, 1) {
		t.Errorf("top key %d draws, median key %d: want top >= 100x median", top, median)
	}
	// Scrambled: the most popular key is not simply id 0.
	hot := slices.Index(c, top)
	t.Logf("top %d (id %d), median %d", top, hot, median)
}

func TestZipfian_ItemZeroMostPopularAndGrowKeepsRange(t *testing.T) {
	r := testRand(t, 2)
	z := newZipfian(1000, ZipfianConstant)
	c := counts(t, 100_000, 1000, func() int64 { return z.next(r) })
	if slices.Max(c) != c[0] || c[0] <= c[1] || c[1] <= c[10] {
		t.Errorf("zipfian counts c[0]=%d c[1]=%d c[10]=%d: want decreasing from 0", c[0], c[1], c[10])
	}
	// Growing the item count keeps draws in range and zeta consistent.
	counts(t, 10_000, 5000, func() int64 { return z.nextN(r, 5000) })
	if want := zeta(0, 5000, ZipfianConstant, 0); math.Abs(z.zetan-want) > 1e-9 {
		t.Errorf("zetan after growth = %v, want %v", z.zetan, want)
	}
}

func TestLatest_SkewedToNewestAndInRange(t *testing.T) {
	r := testRand(t, 3)
	const items = 10_000
	lc := latestChooser{newZipfian(items-1, ZipfianConstant)}
	c := counts(t, 100_000, items, func() int64 { return lc.next(r, items) })
	if slices.Max(c) != c[items-1] {
		t.Errorf("latest: newest key drew %d, max %d: want newest most popular", c[items-1], slices.Max(c))
	}
	var newest, oldest int
	for i := range 100 {
		newest += c[items-1-i]
		oldest += c[i]
	}
	if newest < 10*max(oldest, 1) {
		t.Errorf("latest: newest 100 keys %d draws, oldest 100 %d: want >= 10x", newest, oldest)
	}
	// More records acknowledged: draws follow.
	c2 := counts(t, 10_000, items+500, func() int64 { return lc.next(r, items+500) })
	if slices.Max(c2) != c2[items+499] {
		t.Errorf("latest after inserts: newest key not the most popular")
	}
}

func TestZipfianChooser_OnlyAcknowledgedIDs(t *testing.T) {
	r := testRand(t, 4)
	kc := zipfianChooser{newScrambledZipfian(2000)}
	counts(t, 10_000, 1000, func() int64 { return kc.next(r, 1000) })
	u := uniformChooser{}
	c := counts(t, 10_000, 100, func() int64 { return u.next(r, 100) })
	if slices.Min(c) == 0 {
		t.Errorf("uniform: some key never drawn in 10000 draws over 100")
	}
}

func TestInsertCounter_CountAdvancesOnlyOverContiguousAcks(t *testing.T) {
	c := newInsertCounter(10)
	a, b, d := c.Next(), c.Next(), c.Next()
	if a != 10 || b != 11 || d != 12 {
		t.Fatalf("Next = %d %d %d, want 10 11 12", a, b, d)
	}
	c.Ack(b)
	if got := c.Count(); got != 10 {
		t.Errorf("Count after acking 11 only = %d, want 10", got)
	}
	c.Ack(a)
	if got := c.Count(); got != 12 {
		t.Errorf("Count after acking 10, 11 = %d, want 12", got)
	}
	c.Ack(d)
	if got := c.Count(); got != 13 {
		t.Errorf("Count after acking 10..12 = %d, want 13", got)
	}
}

func TestWorkloadMix_ProportionsOverManyDraws(t *testing.T) {
	r := testRand(t, 5)
	const draws = 200_000
	for _, name := range []string{"A", "B", "C", "D", "E", "F"} {
		w := CoreWorkloads[name]
		var n [numOps]int
		for range draws {
			n[w.chooseOp(r)]++
		}
		for o := range numOps {
			got := float64(n[o]) / draws
			if math.Abs(got-w.Proportions[o]) > 0.005 {
				t.Errorf("workload %s: %s share %.4f, want %.2f", name, o, got, w.Proportions[o])
			}
		}
	}
}

func TestParseWorkloads(t *testing.T) {
	ws, err := ParseWorkloads(" a, C ,f")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, w := range ws {
		names = append(names, w.Name)
	}
	if got := strings.Join(names, ","); got != "A,C,F" {
		t.Errorf("ParseWorkloads = %s, want A,C,F", got)
	}
	for _, bad := range []string{"", "G", "A,,X"} {
		if _, err := ParseWorkloads(bad); err == nil {
			t.Errorf("ParseWorkloads(%q) = nil error, want one", bad)
		}
	}
	if got, want := CoreWorkloads["E"].String(), "95% scan, 5% insert, zipfian scan start, scan length uniform 1..100"; got != want {
		t.Errorf("E.String() = %q, want %q", got, want)
	}
}

func TestHistogram_QuantilesWithinOneSixtyFourthAbove(t *testing.T) {
	r := testRand(t, 6)
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 1 << 20, 1<<40 + 12345, math.MaxInt64} {
		i := bucketOf(v)
		if hi := bucketHigh(i); hi < v || (i > 0 && bucketHigh(i-1) >= v) {
			t.Errorf("bucketOf(%d) = %d with range (%d, %d]", v, i, bucketHigh(i-1), hi)
		}
	}
	var h Histogram
	vals := make([]time.Duration, 50_000)
	for i := range vals {
		vals[i] = time.Duration(math.Exp(r.Float64()*16)) * time.Nanosecond // 1 ns .. ~9 ms, log-spread
		h.Record(vals[i])
	}
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		exact := vals[int(math.Ceil(q*float64(len(vals))))-1]
		got := h.Quantile(q)
		if got < exact || float64(got) > float64(exact)*(1+1.0/64)+1 {
			t.Errorf("Quantile(%v) = %v, exact %v: want within [exact, exact*(1+1/64)]", q, got, exact)
		}
	}
	if h.Min() != vals[0] || h.Max() != vals[len(vals)-1] || h.Count() != uint64(len(vals)) {
		t.Errorf("min/max/count = %v/%v/%d, want %v/%v/%d", h.Min(), h.Max(), h.Count(), vals[0], vals[len(vals)-1], len(vals))
	}
	var m Histogram
	m.Merge(&h)
	m.Merge(&Histogram{})
	if m.Quantile(0.5) != h.Quantile(0.5) || m.Mean() != h.Mean() {
		t.Errorf("merged histogram differs")
	}
}

func TestRunAll_FakeDBs(t *testing.T) {
	ctx := context.Background()
	a, b := newFakeSystem("alpha"), newFakeSystem("beta")
	cfg := Config{RecordCount: 2000, OpCount: 3000, Threads: 4, Seed: *seedFlag, FieldCount: 4, FieldLength: 16}
	var log bytes.Buffer
	rs, err := RunAll(ctx, []System{a, b}, cfg, &log)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].System != "alpha" || rs[1].System != "beta" {
		t.Fatalf("results for %v, want alpha, beta", rs)
	}
	for si, sys := range []*fakeSystem{a, b} {
		res := rs[si]
		if res.Load.Ops != 2000 || res.Load.Records != 2000 {
			t.Errorf("%s load: %d ops, %d records; want 2000, 2000", sys.name, res.Load.Ops, res.Load.Records)
		}
		if len(res.Workloads) != 6 {
			t.Fatalf("%s: %d workloads, want 6", sys.name, len(res.Workloads))
		}
		var inserted int64
		for _, p := range res.Workloads {
			if p.Ops != 3000 {
				t.Errorf("%s %s: %d ops, want 3000", sys.name, p.Workload, p.Ops)
			}
			w := CoreWorkloads[p.Workload]
			for _, s := range p.PerOp {
				if w.Proportions[s.Op] == 0 {
					t.Errorf("%s %s: ran %s, not in its mix", sys.name, p.Workload, s.Op)
				}
				if s.P50 > s.P99 || s.P99 > s.P999 || s.P999 > s.Max {
					t.Errorf("%s %s %s: percentiles out of order: %+v", sys.name, p.Workload, s.Op, s)
				}
			}
			if s, ok := p.Stats(OpInsert); ok {
				inserted += int64(s.Count)
			}
		}
		if inserted == 0 {
			t.Errorf("%s: D and E inserted nothing", sys.name)
		}
		ops, records, complete := sys.db.snapshot(cfg.FieldCount, cfg.FieldLength)
		if int64(records) != 2000+inserted || !complete {
			t.Errorf("%s: %d records (complete %v), want %d complete", sys.name, records, complete, 2000+inserted)
		}
		if last := res.Workloads[5]; last.Records != int64(records) {
			t.Errorf("%s: last phase reports %d records, db has %d", sys.name, last.Records, records)
		}
		if ops[OpScan] == 0 || ops[OpReadModifyWrite] == 0 || ops[OpUpdate] == 0 {
			t.Errorf("%s: op calls %v, want scans, updates and rmws", sys.name, ops)
		}
		if !sys.db.mu.closed {
			t.Errorf("%s: DB not closed by RunAll", sys.name)
		}
	}
	out := log.String()
	for _, want := range []string{fmt.Sprintf("seed %d", *seedFlag), "2000 x 4 fields", "x 16 bytes", "alpha      load", "beta       F"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestRunAll_FirstErrorStopsAndIsReturned(t *testing.T) {
	s := newFakeSystem("broken")
	s.fail, s.failOp = true, OpReadModifyWrite
	cfg := Config{RecordCount: 100, OpCount: 1000, Threads: 4, Seed: 1, Workloads: "C,F,A"}
	rs, err := RunAll(context.Background(), []System{s}, cfg, &bytes.Buffer{})
	if !errors.Is(err, errInjected) || !strings.Contains(err.Error(), "workload F") {
		t.Fatalf("RunAll = %v, %v; want workload F's injected error", rs, err)
	}
	if ops, _, _ := s.db.snapshot(10, 100); ops[OpUpdate] != 0 {
		t.Errorf("workload A ran after F failed")
	}
}

func TestRunAll_RejectsBadConfigAndCancelledContext(t *testing.T) {
	if _, err := RunAll(context.Background(), []System{newFakeSystem("x")}, Config{Workloads: "Z"}, &bytes.Buffer{}); err == nil {
		t.Errorf("RunAll with workload Z: nil error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := RunAll(ctx, []System{newFakeSystem("x")}, Config{RecordCount: 10, OpCount: 10, Threads: 2}, &bytes.Buffer{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("RunAll with cancelled ctx = %v, want context.Canceled", err)
	}
}

func TestCellarSystem_AllWorkloads(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an in-process cluster; skipped with -short")
	}
	s := NewCellarSystem(nil, client.Sync)
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	rs, err := RunAll(ctx, []System{s}, Config{RecordCount: 300, OpCount: 300, Threads: 4, Seed: 1}, &out)
	if err != nil {
		t.Fatalf("RunAll: %v\n%s", err, out.String())
	}
	if len(rs) != 1 || len(rs[0].Workloads) != 6 {
		t.Fatalf("results: %+v", rs)
	}
	for _, w := range rs[0].Workloads {
		if w.Ops == 0 {
			t.Errorf("workload %s ran no operations", w.Workload)
		}
	}
}

func TestPrintRatios_Format(t *testing.T) {
	mk := func(sys string, tput float64, p50 time.Duration) Results {
		st := []OpStats{{Op: OpRead, Count: 10, P50: p50, P99: 2 * p50, P999: 20 * time.Millisecond}}
		return Results{System: sys,
			Load:      PhaseResult{Workload: "load", Mix: "100 inserts", Throughput: tput * 2, PerOp: []OpStats{{Op: OpInsert, Count: 100, P50: p50, P99: p50, P999: p50}}},
			Workloads: []PhaseResult{{Workload: "C", Mix: CoreWorkloads["C"].String(), Throughput: tput, PerOp: st}}}
	}
	var b bytes.Buffer
	PrintRatios(&b, mk("cellar", 3000, 300*time.Microsecond), mk("emulator", 1500, 600*time.Microsecond))
	want := `
                             cellar     emulator    ratio
(ratio = cellar / emulator: above 1 is better for cellar in throughput, worse in latency)
load: 100 inserts
  throughput                 6000/s       3000/s     2.00
  insert p50                  300µs        600µs     0.50
  insert p99                  300µs        600µs     0.50
  insert p999                 300µs        600µs     0.50
C: 100% read, zipfian
  throughput                 3000/s       1500/s     2.00
  read p50                    300µs        600µs     0.50
  read p99                    600µs       1200µs     0.50
  read p999                  20.0ms       20.0ms     1.00
`
	if got := b.String(); got != want {
		t.Errorf("PrintRatios =\n%s\nwant\n%s", got, want)
	}
	b.Reset()
	PrintRatios(&b, mk("solo", 10, time.Millisecond))
	if strings.Contains(b.String(), "ratio") {
		t.Errorf("one system: ratio column printed:\n%s", b.String())
	}
}

// phasedSystem records the phases RunAll brackets with BeginPhase, and
// whether any of its DB's operations ran outside one.
type phasedSystem struct {
	*fakeSystem
	begun, ended int
	in           atomic.Bool
	outside      atomic.Int64
}

func (s *phasedSystem) BeginPhase() func() {
	s.begun++
	s.in.Store(true)
	return func() { s.ended++; s.in.Store(false) }
}

func (s *phasedSystem) Open(ctx context.Context) (DB, error) {
	db, err := s.fakeSystem.Open(ctx)
	return phasedDB{db, s}, err
}

type phasedDB struct {
	DB
	s *phasedSystem
}

func (d phasedDB) Read(ctx context.Context, key string) error {
	if !d.s.in.Load() {
		d.s.outside.Add(1)
	}
	return d.DB.Read(ctx, key)
}

func (d phasedDB) Insert(ctx context.Context, key string, fields map[string][]byte) error {
	if !d.s.in.Load() {
		d.s.outside.Add(1)
	}
	return d.DB.Insert(ctx, key, fields)
}

func TestRunAll_PhaserBracketsEveryPhase(t *testing.T) {
	p := &phasedSystem{fakeSystem: newFakeSystem("phased")}
	other := newFakeSystem("other")
	cfg := Config{RecordCount: 200, OpCount: 200, Threads: 2, Seed: 1, Workloads: "B,C", FieldCount: 2, FieldLength: 8}
	if _, err := RunAll(context.Background(), []System{p, other}, cfg, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	// The load and two workloads.
	if p.begun != 3 || p.ended != 3 {
		t.Errorf("BeginPhase called %d times, its end %d; want 3 and 3", p.begun, p.ended)
	}
	if n := p.outside.Load(); n != 0 {
		t.Errorf("%d operations ran outside a phase", n)
	}
}

// meteredSystem charges a fixed CPU time per operation to its CPUMeter.
type meteredSystem struct {
	*fakeSystem
	perOp  time.Duration
	broken bool
}

func (s *meteredSystem) CPUTime() (time.Duration, error) {
	if s.broken {
		return 0, errors.New("no meter")
	}
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	n := 0
	for _, c := range s.db.mu.ops {
		n += c
	}
	return time.Duration(n) * s.perOp, nil
}

// TestRunAll_CPUPerOp: a System with a CPUMeter gets each phase's CPU time
// (and CPU per operation in the report); one whose meter fails or that has
// none gets 0, shown as n/a.
func TestRunAll_CPUPerOp(t *testing.T) {
	m := &meteredSystem{fakeSystem: newFakeSystem("metered"), perOp: 40 * time.Microsecond}
	broken := &meteredSystem{fakeSystem: newFakeSystem("broken"), perOp: time.Millisecond, broken: true}
	plain := newFakeSystem("plain")
	cfg := Config{RecordCount: 200, OpCount: 300, Threads: 2, Seed: 1, Workloads: "A", FieldCount: 2, FieldLength: 8}
	var out bytes.Buffer
	rs, err := RunAll(context.Background(), []System{m, broken, plain}, cfg, &out)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []PhaseResult{rs[0].Load, rs[0].Workloads[0]} {
		if got := p.CPUPerOp(); got != m.perOp {
			t.Errorf("%s: CPU per op %v (CPU %v over %d ops), want %v", p.Workload, got, p.CPU, p.Ops, m.perOp)
		}
	}
	for _, r := range rs[1:] {
		if r.Load.CPU != 0 || r.Workloads[0].CPU != 0 {
			t.Errorf("%s: CPU %v and %v, want 0 (unknown)", r.System, r.Load.CPU, r.Workloads[0].CPU)
		}
	}
	if !strings.Contains(out.String(), "cpu/op 40.0µs") {
		t.Errorf("the phase lines do not show cpu/op:\n%s", out.String())
	}
	out.Reset()
	PrintRatios(&out, rs[0], rs[2])
	if !regexp.MustCompile(`cpu per op +40\.0µs +n/a +n/a`).MatchString(out.String()) {
		t.Errorf("the ratios do not show CPU per op:\n%s", out.String())
	}
}
