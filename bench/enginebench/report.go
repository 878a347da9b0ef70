package enginebench

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is the outcome of one workload.
type Result struct {
	Workload string
	// Ops is the number of rows written, point reads made or rows
	// scanned.
	Ops int64
	// Bytes is the key+value bytes moved (key bytes only for a missing
	// read).
	Bytes   int64
	Elapsed time.Duration
	// PeakRSS is the process's peak resident set during the workload, in
	// bytes; 0 when unknown.
	PeakRSS int64
}

// OpsPerSec is Ops per second of Elapsed (0 if nothing was timed).
func (r Result) OpsPerSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

// MBPerSec is Bytes per second of Elapsed, in 10^6 bytes.
func (r Result) MBPerSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Bytes) / 1e6 / r.Elapsed.Seconds()
}

// Report is the outcome of one Run: the configuration and a Result per
// workload, in the order they ran.
type Report struct {
	Engine       string
	Settings     string
	Options      Options // with defaults filled in
	MemoryBudget int64   // bytes, from the Opener; 0 = not stated
	// MemoryOverhead is the Opener's stated allowance beyond the budget
	// (bytes; 0 = none stated).
	MemoryOverhead int64
	// BaseRSS is the resident set before the first database was opened
	// (the harness, its key order and value pool, the Go runtime); 0 when
	// unknown.
	BaseRSS int64
	// PeakReset is false if the peak-RSS mark could not be reset between
	// workloads, so each PeakRSS counts from process start.
	PeakReset bool
	// GCPercent and MemoryLimit are the Go collector's settings during the
	// run (see GCSettings).
	GCPercent   int
	MemoryLimit int64
	Results     []Result
	// Notes record what the harness did beyond the chosen workloads.
	Notes []string
}

// Result returns the result of workload w, if it ran.
func (r *Report) Result(w string) (Result, bool) {
	for _, res := range r.Results {
		if res.Workload == w {
			return res, true
		}
	}
	return Result{}, false
}

// PeakRSS is the largest PeakRSS over the results, in bytes.
func (r *Report) PeakRSS() int64 {
	var m int64
	for _, res := range r.Results {
		m = max(m, res.PeakRSS)
	}
	return m
}

// workloadLabel describes a workload in printed tables.
func workloadLabel(w string, o Options) string {
	switch w {
	case FillSeq:
		return "fillseq (async, 1 row/write)"
	case FillRandom:
		return "fillrandom (async, 1 row/write)"
	case FillSync:
		return fmt.Sprintf("fillsync (sync, %d rows/write)", o.SyncBatch)
	case Compact:
		return "compact (full, rows/s)"
	case ReadRandom:
		return "readrandom (found)"
	case ReadMissing:
		return "readmissing"
	case Scan:
		return "scan (full)"
	}
	return w
}

func mib(b int64) string {
	if b <= 0 {
		return "?"
	}
	return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
}

// header prints the run's shape, shared by Print and PrintComparison.
func header(w io.Writer, o Options) {
	fmt.Fprintf(w, "rows=%d key=%dB value=%dB reads=%d concurrency=%d seed=%d\n",
		o.Rows, KeySize, o.ValueSize, o.Reads, o.Concurrency, o.Seed)
}

// memoryLine prints one engine's memory figures.
func memoryLine(w io.Writer, r *Report) {
	fmt.Fprintf(w, "memory %s: peak RSS %s, budget %s, baseline before open %s", r.Engine,
		mib(r.PeakRSS()), mib(r.MemoryBudget), mib(r.BaseRSS))
	if p, b := r.PeakRSS(), r.MemoryBudget; p > 0 && b > 0 {
		fmt.Fprintf(w, ", peak - budget = %+.0f MiB", float64(p-b)/(1<<20))
		if o := r.MemoryOverhead; o > 0 {
			verdict := "within"
			if p > b+o {
				verdict = "OVER"
			}
			fmt.Fprintf(w, " (%s the stated overhead of %s)", verdict, mib(o))
		}
	}
	fmt.Fprintf(w, "; Go GOGC=%d", r.GCPercent)
	if r.MemoryLimit != math.MaxInt64 {
		fmt.Fprintf(w, " GOMEMLIMIT=%s", mib(r.MemoryLimit))
	}
	if !r.PeakReset {
		fmt.Fprint(w, " (peak counted from process start)")
	}
	fmt.Fprintln(w)
}

// Print writes the report as a table of ops/s and MB/s per workload,
// followed by the memory figures.
func (r *Report) Print(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "engine %s: %s\n", r.Engine, r.Settings)
	header(&b, r.Options)
	tw := tabwriter.NewWriter(&b, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tops\tseconds\tops/s\tMB/s\tpeak RSS\t")
	for _, res := range r.Results {
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.0f\t%.1f\t%s\t\n", workloadLabel(res.Workload, r.Options),
			res.Ops, res.Elapsed.Seconds(), res.OpsPerSec(), res.MBPerSec(), mib(res.PeakRSS))
	}
	tw.Flush()
	memoryLine(&b, r)
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Comparison pairs the results of one workload on two engines.
type Comparison struct {
	Workload string
	A, B     Result
	// Ratio is A's ops/s over B's; NaN if B's is zero.
	Ratio float64
}

// Compare pairs the workloads that ran in both reports, in a's order.
func Compare(a, b *Report) []Comparison {
	var out []Comparison
	for _, ra := range a.Results {
		rb, ok := b.Result(ra.Workload)
		if !ok {
			continue
		}
		ratio := math.NaN()
		if rb.OpsPerSec() > 0 {
			ratio = ra.OpsPerSec() / rb.OpsPerSec()
		}
		out = append(out, Comparison{Workload: ra.Workload, A: ra, B: rb, Ratio: ratio})
	}
	return out
}

// PrintComparison writes a and b side by side with the ratio of a to b per
// workload (a/b ops/s; the byte counts per op are the same), each engine's
// settings, and both memory reports. target, if positive, marks ratios
// below it.
func PrintComparison(w io.Writer, a, b *Report, target float64) error {
	var s strings.Builder
	fmt.Fprintf(&s, "%s: %s\n%s: %s\n", a.Engine, a.Settings, b.Engine, b.Settings)
	header(&s, a.Options)
	tw := tabwriter.NewWriter(&s, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "workload\t%[1]s ops/s\t%[1]s MB/s\t%[2]s ops/s\t%[2]s MB/s\t%[1]s/%[2]s\t\n", a.Engine, b.Engine)
	for _, c := range Compare(a, b) {
		mark := ""
		if target > 0 && !(c.Ratio >= target) {
			mark = fmt.Sprintf(" (< %.2f)", target)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.1f\t%.0f\t%.1f\t%.2f%s\t\n", workloadLabel(c.Workload, a.Options),
			c.A.OpsPerSec(), c.A.MBPerSec(), c.B.OpsPerSec(), c.B.MBPerSec(), c.Ratio, mark)
	}
	tw.Flush()
	memoryLine(&s, a)
	memoryLine(&s, b)
	for _, r := range []*Report{a, b} {
		for _, n := range r.Notes {
			fmt.Fprintf(&s, "note (%s): %s\n", r.Engine, n)
		}
	}
	_, err := io.WriteString(w, s.String())
	return err
}
