package ycsb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Config sizes a run. The zero value runs YCSB's defaults at 100,000 records.
type Config struct {
	// RecordCount is the number of records loaded (default 100,000).
	RecordCount int64
	// Duration bounds each workload's run phase (default 10 s, unless
	// OpCount is set, in which case zero means no time bound).
	Duration time.Duration
	// OpCount bounds each workload's run phase to this many operations
	// over all threads (default 0: no bound). With both set, the run stops
	// at whichever comes first.
	OpCount int64
	// Threads is the number of client goroutines, in the load phase and in
	// each workload (default 16).
	Threads int
	// Workloads is a comma-separated list of core workloads, run in this
	// order on one loaded data set (default "A,B,C,D,E,F"; see the package
	// doc on D and E).
	Workloads string
	// FieldCount is the number of fields per record (default 10).
	FieldCount int
	// FieldLength is the length of each field, bytes (default 100).
	FieldLength int
	// Seed seeds every random draw (default 0: chosen from the clock;
	// RunAll prints the seed it used).
	Seed int64
}

func (c Config) withDefaults() Config {
	if c.RecordCount == 0 {
		c.RecordCount = 100_000
	}
	if c.Duration == 0 && c.OpCount == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Threads == 0 {
		c.Threads = 16
	}
	if c.Workloads == "" {
		c.Workloads = "A,B,C,D,E,F"
	}
	if c.FieldCount == 0 {
		c.FieldCount = 10
	}
	if c.FieldLength == 0 {
		c.FieldLength = 100
	}
	if c.Seed == 0 {
		c.Seed = time.Now().UnixNano()
	}
	return c
}

// Validate reports a config that cannot run (after defaults are applied).
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.RecordCount < 1:
		return fmt.Errorf("cellar/ycsb: RecordCount %d < 1", c.RecordCount)
	case c.Duration < 0 || c.OpCount < 0:
		return fmt.Errorf("cellar/ycsb: negative Duration or OpCount")
	case c.Threads < 1:
		return fmt.Errorf("cellar/ycsb: Threads %d < 1", c.Threads)
	case c.FieldCount < 1 || c.FieldLength < 1:
		return fmt.Errorf("cellar/ycsb: FieldCount and FieldLength must be >= 1")
	}
	_, err := ParseWorkloads(c.Workloads)
	return err
}

// OpStats are one operation type's figures in one phase. Latencies are
// client-side, around the DB call only (key and value generation excluded).
type OpStats struct {
	Op    Op
	Count uint64
	Mean  time.Duration
	P50   time.Duration // percentiles are at most 1.6% high (see Histogram)
	P99   time.Duration
	P999  time.Duration
	Max   time.Duration
}

// PhaseResult is one system's figures for the load phase or one workload.
type PhaseResult struct {
	Workload   string // "load" or the core workload's name
	Mix        string // the workload's description
	Ops        int64
	Elapsed    time.Duration
	Throughput float64   // ops/s
	PerOp      []OpStats // operation types that ran, in Op order
	Records    int64     // records present at the phase's end
	// CPU is the CPU time the system and the client used in the phase
	// (CPUMeter); 0 when the system cannot tell.
	CPU time.Duration
}

// CPUPerOp is CPU over Ops; 0 when either is unknown.
func (p PhaseResult) CPUPerOp() time.Duration {
	if p.CPU <= 0 || p.Ops <= 0 {
		return 0
	}
	return p.CPU / time.Duration(p.Ops)
}

// Results are one system's figures.
type Results struct {
	System    string
	Config    Config // with defaults applied
	Load      PhaseResult
	Workloads []PhaseResult
}

// Stats returns the figures for op, and false if op did not run.
func (p PhaseResult) Stats(op Op) (OpStats, bool) {
	for _, s := range p.PerOp {
		if s.Op == op {
			return s, true
		}
	}
	return OpStats{}, false
}

// Run loads sys and runs the workloads on it.
func Run(ctx context.Context, sys System, cfg Config, log io.Writer) (Results, error) {
	rs, err := RunAll(ctx, []System{sys}, cfg, log)
	if err != nil {
		return Results{}, err
	}
	return rs[0], nil
}

// sysState is what the runner keeps per system across phases.
type sysState struct {
	name string
	sys  System
	db   DB
	ins  *insertCounter // ids >= RecordCount, for D and E
}

// beginPhase calls the System's Phaser hook, if it has one, and starts
// measuring its CPU (CPUMeter); end ends both and returns the CPU time
// used, 0 if unknown.
func (st *sysState) beginPhase() (end func() time.Duration) {
	endPhase := func() {}
	if p, ok := st.sys.(Phaser); ok {
		endPhase = p.BeginPhase()
	}
	m, ok := st.sys.(CPUMeter)
	if !ok {
		return func() time.Duration { endPhase(); return 0 }
	}
	before, berr := m.CPUTime()
	return func() time.Duration {
		after, aerr := m.CPUTime()
		endPhase()
		if berr != nil || aerr != nil || after < before {
			return 0
		}
		return after - before
	}
}

// RunAll opens a DB on every system, loads each in turn (RecordCount
// records, Threads goroutines), then runs the workloads interleaved:
// workload by workload, every system in turn, so a change in the machine's
// load affects all alike. It writes a header (data shape, seed) and one line
// per phase and system to log, and returns one Results per system, in the
// order of systems. It stops at the first error (an operation's error, a
// record that should exist but does not, or ctx's) and returns it. It closes
// the DBs it opened but not the systems.
func RunAll(ctx context.Context, systems []System, cfg Config, log io.Writer) ([]Results, error) {
	if len(systems) == 0 {
		return nil, errors.New("cellar/ycsb: no systems")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	workloads, _ := ParseWorkloads(cfg.Workloads)
	PrintHeader(log, cfg)

	states := make([]*sysState, len(systems))
	defer func() {
		for _, st := range states {
			if st != nil {
				st.db.Close()
			}
		}
	}()
	res := make([]Results, len(systems))
	for i, sys := range systems {
		db, err := sys.Open(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: open: %w", sys.Name(), err)
		}
		states[i] = &sysState{name: sys.Name(), sys: sys, db: db, ins: newInsertCounter(cfg.RecordCount)}
		res[i] = Results{System: sys.Name(), Config: cfg}
	}
	for i, st := range states {
		end := st.beginPhase()
		p, err := load(ctx, st, cfg)
		p.CPU = end()
		if err != nil {
			return nil, fmt.Errorf("%s: load: %w", st.name, err)
		}
		res[i].Load = p
		printPhase(log, st.name, p)
	}
	for wi, w := range workloads {
		for i, st := range states {
			end := st.beginPhase()
			p, err := runWorkload(ctx, st, w, wi, cfg)
			p.CPU = end()
			if err != nil {
				return nil, fmt.Errorf("%s: workload %s: %w", st.name, w.Name, err)
			}
			res[i].Workloads = append(res[i].Workloads, p)
			printPhase(log, st.name, p)
		}
	}
	return res, nil
}

// threadRand is the source of thread t in phase ph (0 = load, 1+i =
// workload i): the same for every system.
func threadRand(seed int64, ph, t int) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), uint64(ph)<<32|uint64(t)))
}

func record(r *rand.Rand, cfg Config) map[string][]byte {
	f := make(map[string][]byte, cfg.FieldCount)
	for i := range cfg.FieldCount {
		f[fieldName(i)] = randomValue(r, cfg.FieldLength)
	}
	return f
}

// worker performs one operation per call, returning false when the phase
// is over for it.
type worker func(ctx context.Context) (more bool, err error)

// phase runs cfg.Threads workers, thread t made by newWorker with its own
// random source and histograms, until each returns false or one fails; the
// first error cancels the rest and is returned.
func phase(ctx context.Context, cfg Config, ph int, newWorker func(r *rand.Rand, h *[numOps]Histogram) worker) (time.Duration, [numOps]Histogram, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var firstErr atomic.Pointer[error]
	hists := make([][numOps]Histogram, cfg.Threads)
	var wg sync.WaitGroup
	start := time.Now()
	for t := range cfg.Threads {
		work := newWorker(threadRand(cfg.Seed, ph, t), &hists[t])
		wg.Go(func() {
			for ctx.Err() == nil {
				more, err := work(ctx)
				if err != nil {
					firstErr.CompareAndSwap(nil, &err)
					cancel()
					return
				}
				if !more {
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	var total [numOps]Histogram
	if p := firstErr.Load(); p != nil {
		return elapsed, total, *p
	}
	for t := range hists {
		for o := range numOps {
			total[o].Merge(&hists[t][o])
		}
	}
	return elapsed, total, nil
}

func load(ctx context.Context, st *sysState, cfg Config) (PhaseResult, error) {
	var nextID atomic.Int64
	elapsed, hs, err := phase(ctx, cfg, 0, func(r *rand.Rand, h *[numOps]Histogram) worker {
		return func(ctx context.Context) (bool, error) {
			id := nextID.Add(1) - 1
			if id >= cfg.RecordCount {
				return false, nil
			}
			key, fields := KeyName(id), record(r, cfg)
			t0 := time.Now()
			if err := st.db.Insert(ctx, key, fields); err != nil {
				return false, fmt.Errorf("insert %s: %w", key, err)
			}
			h[OpInsert].Record(time.Since(t0))
			return true, nil
		}
	})
	if err != nil {
		return PhaseResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return PhaseResult{}, err
	}
	return summarize("load", fmt.Sprintf("%d inserts", cfg.RecordCount), elapsed, &hs, cfg.RecordCount), nil
}

// expectedInserts is how many inserts the key space of a zipfian workload
// leaves room for: YCSB's opcount × insertproportion × 2, with RecordCount
// standing in for the op count of a run bounded by time only.
func expectedInserts(w Workload, cfg Config) int64 {
	ops := cfg.OpCount
	if ops == 0 {
		ops = cfg.RecordCount
	}
	return int64(float64(ops) * w.Proportions[OpInsert] * 2)
}

func runWorkload(ctx context.Context, st *sysState, w Workload, wi int, cfg Config) (PhaseResult, error) {
	count0 := st.ins.Count()
	var newChooser func() keyChooser
	switch w.Distribution {
	case Zipfian:
		s := newScrambledZipfian(count0 + expectedInserts(w, cfg))
		newChooser = func() keyChooser { return zipfianChooser{s} } // read-only: shared
	case Latest:
		z := newZipfian(max(count0-1, 1), ZipfianConstant)
		newChooser = func() keyChooser { zc := *z; return latestChooser{&zc} } // grows: one each
	default:
		newChooser = func() keyChooser { return uniformChooser{} }
	}
	var deadline time.Time
	if cfg.Duration > 0 {
		deadline = time.Now().Add(cfg.Duration)
	}
	var started atomic.Int64
	elapsed, hs, err := phase(ctx, cfg, wi+1, func(r *rand.Rand, h *[numOps]Histogram) worker {
		kc := newChooser()
		return func(ctx context.Context) (bool, error) {
			if !deadline.IsZero() && !time.Now().Before(deadline) {
				return false, nil
			}
			if cfg.OpCount > 0 && started.Add(1) > cfg.OpCount {
				return false, nil
			}
			return true, doOp(ctx, st, w, cfg, r, kc, h)
		}
	})
	if err != nil {
		return PhaseResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return PhaseResult{}, err
	}
	return summarize(w.Name, w.String(), elapsed, &hs, st.ins.Count()), nil
}

// doOp draws and performs one operation, timing only the DB call.
func doOp(ctx context.Context, st *sysState, w Workload, cfg Config, r *rand.Rand, kc keyChooser, h *[numOps]Histogram) error {
	op := w.chooseOp(r)
	switch op {
	case OpInsert:
		id := st.ins.Next()
		key, fields := KeyName(id), record(r, cfg)
		t0 := time.Now()
		if err := st.db.Insert(ctx, key, fields); err != nil {
			return fmt.Errorf("insert %s: %w", key, err)
		}
		h[op].Record(time.Since(t0))
		st.ins.Ack(id)
		return nil
	case OpScan:
		key := KeyName(kc.next(r, st.ins.Count()))
		n := 1 + r.IntN(w.MaxScanLength)
		t0 := time.Now()
		got, err := st.db.Scan(ctx, key, n)
		if err != nil {
			return fmt.Errorf("scan %s %d: %w", key, n, err)
		}
		h[op].Record(time.Since(t0))
		if got < 1 || got > n { // the start key exists
			return fmt.Errorf("scan %s %d: got %d records", key, n, got)
		}
		return nil
	}
	key := KeyName(kc.next(r, st.ins.Count()))
	var err error
	var t0 time.Time
	switch op {
	case OpRead:
		t0 = time.Now()
		err = st.db.Read(ctx, key)
	case OpUpdate, OpReadModifyWrite:
		f := map[string][]byte{fieldName(r.IntN(cfg.FieldCount)): randomValue(r, cfg.FieldLength)}
		t0 = time.Now()
		if op == OpUpdate {
			err = st.db.Update(ctx, key, f)
		} else {
			err = st.db.ReadModifyWrite(ctx, key, f)
		}
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, key, err)
	}
	h[op].Record(time.Since(t0))
	return nil
}

func summarize(name, mix string, elapsed time.Duration, hs *[numOps]Histogram, records int64) PhaseResult {
	p := PhaseResult{Workload: name, Mix: mix, Elapsed: elapsed, Records: records}
	for o := range numOps {
		h := &hs[o]
		if h.Count() == 0 {
			continue
		}
		p.Ops += int64(h.Count())
		p.PerOp = append(p.PerOp, OpStats{Op: o, Count: h.Count(), Mean: h.Mean(),
			P50: h.Quantile(0.50), P99: h.Quantile(0.99), P999: h.Quantile(0.999), Max: h.Max()})
	}
	if elapsed > 0 {
		p.Throughput = float64(p.Ops) / elapsed.Seconds()
	}
	return p
}
