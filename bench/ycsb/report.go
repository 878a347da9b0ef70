package ycsb

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// PrintHeader writes what is being run: data shape, distributions, threads,
// bounds and the seed (to rerun with).
func PrintHeader(w io.Writer, cfg Config) {
	cfg = cfg.withDefaults()
	fmt.Fprintf(w, "YCSB core workloads %s; seed %d\n", cfg.Workloads, cfg.Seed)
	fmt.Fprintf(w, "records: %d x %d fields (\"field0\"..\"field%d\") x %d bytes, keys \"user\"+FNV-64(insert id) (hashed order)\n",
		cfg.RecordCount, cfg.FieldCount, cfg.FieldCount-1, cfg.FieldLength)
	fmt.Fprintf(w, "zipfian: scrambled, constant %.2f; latest: skewed to newest inserts; reads read all fields, updates write 1 field\n", ZipfianConstant)
	bound := "no time bound"
	if cfg.Duration > 0 {
		bound = cfg.Duration.String() + " per workload"
	}
	if cfg.OpCount > 0 {
		bound += fmt.Sprintf(", at most %d ops per workload", cfg.OpCount)
	}
	fmt.Fprintf(w, "threads: %d; %s; no reload between workloads (D and E inserts stay)\n\n", cfg.Threads, bound)
}

// printPhase writes one line for one system's phase.
func printPhase(w io.Writer, system string, p PhaseResult) {
	var b strings.Builder
	fmt.Fprintf(&b, "%-10s %-5s %9.0f ops/s %8d ops  records %d", system, p.Workload, p.Throughput, p.Ops, p.Records)
	if c := p.CPUPerOp(); c > 0 {
		fmt.Fprintf(&b, "  cpu/op %s", fmtDur(c))
	}
	for _, s := range p.PerOp {
		fmt.Fprintf(&b, "  | %s p50 %s p99 %s p999 %s", s.Op, fmtDur(s.P50), fmtDur(s.P99), fmtDur(s.P999))
	}
	fmt.Fprintln(w, b.String())
}

// fmtDur formats a latency in tenths of µs below 100 µs, in µs below 10 ms,
// else in tenths of ms.
func fmtDur(d time.Duration) string {
	if d < 100*time.Microsecond {
		return fmt.Sprintf("%.1fµs", float64(d.Nanoseconds())/1000)
	}
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%dµs", d.Microseconds())
	}
	return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000)
}

// PrintRatios writes, per phase (load, then each workload), every system's
// throughput and per-operation p50/p99/p999 latencies side by side, and the
// ratio of the first system's figure to the second's (for throughput higher
// is better for the first system, for latencies lower is). With one system
// there is no ratio column; systems beyond the second are shown without a
// ratio of their own.
func PrintRatios(w io.Writer, results ...Results) {
	if len(results) == 0 {
		return
	}
	ratio := len(results) >= 2
	fmt.Fprintf(w, "\n%-22s", "")
	for _, r := range results {
		fmt.Fprintf(w, " %12s", r.System)
	}
	if ratio {
		fmt.Fprintf(w, " %8s", "ratio")
	}
	fmt.Fprintln(w)
	if ratio {
		fmt.Fprintf(w, "(ratio = %s / %s: above 1 is better for %s in throughput, worse in latency)\n",
			results[0].System, results[1].System, results[0].System)
	}
	phases := func(r Results) []PhaseResult { return append([]PhaseResult{r.Load}, r.Workloads...) }
	first := phases(results[0])
	for pi, p0 := range first {
		ps := make([]PhaseResult, len(results))
		for i, r := range results {
			if all := phases(r); pi < len(all) {
				ps[i] = all[pi]
			}
		}
		fmt.Fprintf(w, "%s: %s\n", p0.Workload, p0.Mix)
		row := func(label string, vals []float64, format func(float64) string) {
			fmt.Fprintf(w, "  %-20s", label)
			for _, v := range vals {
				fmt.Fprintf(w, " %12s", format(v))
			}
			if ratio {
				r := "n/a"
				if vals[1] != 0 {
					r = fmt.Sprintf("%.2f", vals[0]/vals[1])
				}
				fmt.Fprintf(w, " %8s", r)
			}
			fmt.Fprintln(w)
		}
		tput := make([]float64, len(ps))
		for i, p := range ps {
			tput[i] = p.Throughput
		}
		row("throughput", tput, func(v float64) string { return fmt.Sprintf("%.0f/s", v) })
		cpu := make([]float64, len(ps))
		for i, p := range ps {
			cpu[i] = float64(p.CPUPerOp())
		}
		if cpu[0] > 0 {
			row("cpu per op", cpu, func(v float64) string {
				if v == 0 {
					return "n/a"
				}
				return fmtDur(time.Duration(v))
			})
		}
		for _, s0 := range p0.PerOp {
			for _, q := range []struct {
				name string
				get  func(OpStats) time.Duration
			}{{"p50", func(s OpStats) time.Duration { return s.P50 }}, {"p99", func(s OpStats) time.Duration { return s.P99 }}, {"p999", func(s OpStats) time.Duration { return s.P999 }}} {
				vals := make([]float64, len(ps))
				for i, p := range ps {
					if s, ok := p.Stats(s0.Op); ok {
						vals[i] = float64(q.get(s))
					}
				}
				row(s0.Op.String()+" "+q.name, vals, func(v float64) string { return fmtDur(time.Duration(v)) })
			}
		}
	}
}
