// Package lockbench runs the lock-service benchmark workloads against any
// System: Cellar's lock service (CellarSystem) here, etcd in the nested
// module bench/etcd, so both are measured by the same code in one process.
//
// Workloads: lock acquire+release pairs per second (1 and 32 clients, each
// on its own lock), compare-and-set writes per second and linearizable reads
// per second (32 clients, each on its own node), keep-alives per second (32
// concurrent keep-alive loops, one session each), and leader failover time
// (kill the leader, time to the first successful write; median of runs).
package lockbench

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// System is a 3-replica cluster under test.
type System interface {
	Name() string
	// NewWorker opens one client with its own session and node i.
	NewWorker(ctx context.Context, i int) (Worker, error)
	// KillLeader stops the current leader replica and reports when it
	// stopped taking part (the failover clock starts there); RestoreAll
	// restarts it.
	KillLeader(ctx context.Context) (time.Time, error)
	RestoreAll(ctx context.Context) error
	Close() error
}

// Worker is one client with its own session; not safe for concurrent use.
type Worker interface {
	LockPair(ctx context.Context) error  // acquire + release the worker's lock
	CASWrite(ctx context.Context) error  // compare-and-set the worker's node
	Read(ctx context.Context) error      // linearizable read of the worker's node
	KeepAlive(ctx context.Context) error // one keep-alive round trip
	Close() error
}

// Config sets the workloads' sizes.
type Config struct {
	Duration time.Duration // per throughput workload and system (default 3s)
	// Slices is how many turns each system gets within Duration (default
	// 6): the systems take turns of Duration/Slices, so that a burst of
	// load from elsewhere on the machine falls on all of them alike rather
	// than on whichever ran its whole workload then.
	Slices        int
	Clients       int           // for the multi-client workloads (default 32)
	FailoverRuns  int           // default 3
	FailoverWrite time.Duration // per write attempt timeout (default 500ms)
}

func (c Config) withDefaults() Config {
	if c.Duration == 0 {
		c.Duration = 3 * time.Second
	}
	if c.Slices <= 0 {
		c.Slices = 6
	}
	if c.Clients == 0 {
		c.Clients = 32
	}
	if c.FailoverRuns == 0 {
		c.FailoverRuns = 3
	}
	if c.FailoverWrite == 0 {
		c.FailoverWrite = 500 * time.Millisecond
	}
	return c
}

// Results are one system's figures.
type Results struct {
	System          string
	LockPairs1      float64 // pairs/s, 1 client
	LockPairsN      float64 // pairs/s, Clients clients
	CASWrites       float64 // writes/s
	Reads           float64 // linearizable reads/s
	KeepAlives      float64 // keep-alives/s
	KeepAliveCPU    float64 // CPU cores the process used during the keep-alive workload (clients + servers)
	FailoverMedian  time.Duration
	FailoverSamples []time.Duration
	Clients         int
}

// Run runs every workload on sys.
func Run(ctx context.Context, sys System, cfg Config, log io.Writer) (Results, error) {
	rs, err := RunAll(ctx, []System{sys}, cfg, log)
	if err != nil {
		return Results{}, err
	}
	return rs[0], nil
}

// RunAll runs every workload on every system, interleaved (each workload in
// Config.Slices turns per system, failover run by failover run), so that a
// change in the machine's load during the run affects all systems alike.
// Each system first gets a warm-up of CAS writes that is not measured.
func RunAll(ctx context.Context, systems []System, cfg Config, log io.Writer) ([]Results, error) {
	cfg = cfg.withDefaults()
	res := make([]Results, len(systems))
	workers := make([][]Worker, len(systems))
	defer func() {
		for _, ws := range workers {
			for _, w := range ws {
				if w != nil {
					w.Close()
				}
			}
		}
	}()
	for si, sys := range systems {
		res[si] = Results{System: sys.Name(), Clients: cfg.Clients}
		workers[si] = make([]Worker, cfg.Clients)
		for i := range workers[si] {
			w, err := sys.NewWorker(ctx, i)
			if err != nil {
				return nil, fmt.Errorf("%s: worker %d: %w", sys.Name(), i, err)
			}
			workers[si][i] = w
		}
		if _, err := throughput(ctx, workers[si], time.Second, Worker.CASWrite); err != nil {
			return nil, fmt.Errorf("%s: warm-up: %w", sys.Name(), err)
		}
	}
	workloads := []struct {
		name string
		n    int
		op   func(Worker, context.Context) error
		out  func(*Results) *float64
	}{
		{"lock pairs, 1 client", 1, Worker.LockPair, func(r *Results) *float64 { return &r.LockPairs1 }},
		{fmt.Sprintf("lock pairs, %d clients", cfg.Clients), cfg.Clients, Worker.LockPair, func(r *Results) *float64 { return &r.LockPairsN }},
		{fmt.Sprintf("CAS writes, %d clients", cfg.Clients), cfg.Clients, Worker.CASWrite, func(r *Results) *float64 { return &r.CASWrites }},
		{fmt.Sprintf("lin. reads, %d clients", cfg.Clients), cfg.Clients, Worker.Read, func(r *Results) *float64 { return &r.Reads }},
		{fmt.Sprintf("keep-alives, %d loops", cfg.Clients), cfg.Clients, Worker.KeepAlive, func(r *Results) *float64 { return &r.KeepAlives }},
	}
	slice := cfg.Duration / time.Duration(cfg.Slices)
	for wi, wl := range workloads {
		ops := make([]int64, len(systems))
		elapsed := make([]time.Duration, len(systems))
		cpu := make([]time.Duration, len(systems))
		for range cfg.Slices {
			for si, sys := range systems {
				cpu0, t0 := cpuTime(), time.Now()
				n, err := throughput(ctx, workers[si][:wl.n], slice, wl.op)
				if err != nil {
					return nil, fmt.Errorf("%s: %s: %w", sys.Name(), wl.name, err)
				}
				ops[si] += n
				elapsed[si] += time.Since(t0)
				cpu[si] += cpuTime() - cpu0
			}
		}
		for si, sys := range systems {
			v := float64(ops[si]) / elapsed[si].Seconds()
			cores := cpu[si].Seconds() / elapsed[si].Seconds()
			if wi == len(workloads)-1 {
				res[si].KeepAliveCPU = cores
			}
			*wl.out(&res[si]) = v
			fmt.Fprintf(log, "%-7s %-28s %10.0f /s  (%.2f cores)\n", sys.Name(), wl.name, v, cores)
		}
	}
	// Keep-alive capacity: a session with a 12 s lease sends a keep-alive
	// every 3 s (Cellar's client sends every lease/4), so one leader holds
	// about 3 x (keep-alives/s) such sessions at the CPU this run had.
	for range cfg.FailoverRuns {
		for si, sys := range systems {
			d, err := failover(ctx, sys, workers[si][0], cfg.FailoverWrite)
			if err != nil {
				return nil, fmt.Errorf("%s: failover: %w", sys.Name(), err)
			}
			res[si].FailoverSamples = append(res[si].FailoverSamples, d)
			fmt.Fprintf(log, "%-7s %-28s %10.0f ms\n", sys.Name(), "failover (kill to write)", ms(d))
		}
	}
	for si := range res {
		s := slices.Clone(res[si].FailoverSamples)
		slices.Sort(s)
		res[si].FailoverMedian = s[len(s)/2]
	}
	return res, nil
}

// throughput runs op in a loop on every worker for d and returns how many
// ops completed; elapsed time is the caller's to measure (the last ops end
// a little after d).
func throughput(ctx context.Context, ws []Worker, d time.Duration, op func(Worker, context.Context) error) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var n atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if err := op(w, ctx); err != nil {
					firstErr.CompareAndSwap(nil, &err)
					cancel()
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return 0, *p
	}
	return n.Load(), nil
}

// failover kills the leader and times the first successful write after it.
func failover(ctx context.Context, sys System, w Worker, attempt time.Duration) (time.Duration, error) {
	if err := w.CASWrite(ctx); err != nil { // warm: the worker knows the leader
		return 0, err
	}
	start, err := sys.KillLeader(ctx)
	if err != nil {
		return 0, err
	}
	for {
		actx, cancel := context.WithTimeout(ctx, attempt)
		err := w.CASWrite(actx)
		cancel()
		if err == nil {
			d := time.Since(start)
			return d, sys.RestoreAll(ctx)
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if time.Since(start) > time.Minute {
			return 0, fmt.Errorf("no successful write within a minute: %w", err)
		}
	}
}

// PrintRatios prints a's figures over b's.
func PrintRatios(w io.Writer, a, b Results) {
	r := func(x, y float64) string {
		if y == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.2f", x/y)
	}
	fmt.Fprintf(w, "\n%-30s %12s %12s %8s\n", "workload", a.System, b.System, "ratio")
	row := func(name string, x, y float64, unit string) {
		fmt.Fprintf(w, "%-30s %10.0f%-2s %10.0f%-2s %8s\n", name, x, unit, y, unit, r(x, y))
	}
	row("lock pairs, 1 client", a.LockPairs1, b.LockPairs1, "/s")
	row(fmt.Sprintf("lock pairs, %d clients", a.Clients), a.LockPairsN, b.LockPairsN, "/s")
	row(fmt.Sprintf("CAS writes, %d clients", a.Clients), a.CASWrites, b.CASWrites, "/s")
	row(fmt.Sprintf("lin. reads, %d clients", a.Clients), a.Reads, b.Reads, "/s")
	row(fmt.Sprintf("keep-alives, %d loops", a.Clients), a.KeepAlives, b.KeepAlives, "/s")
	fmt.Fprintf(w, "%-30s %12.0f %12.0f\n", "  = sessions at 12s lease", a.KeepAlives*3, b.KeepAlives*3)
	fmt.Fprintf(w, "%-30s %12.2f %12.2f   (process, clients included)\n", "  CPU cores used", a.KeepAliveCPU, b.KeepAliveCPU)
	fmt.Fprintf(w, "%-30s %10.0fms %10.0fms %8s (lower is better)\n", "failover median", ms(a.FailoverMedian), ms(b.FailoverMedian), r(ms(a.FailoverMedian), ms(b.FailoverMedian)))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
