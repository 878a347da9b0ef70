package ycsb

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
)

// Op is an operation type.
type Op int

// The operation types of the core workloads.
const (
	OpRead Op = iota
	OpUpdate
	OpInsert
	OpScan
	OpReadModifyWrite
	numOps
)

var opNames = [numOps]string{"read", "update", "insert", "scan", "rmw"}

func (o Op) String() string {
	if o < 0 || o >= numOps {
		return fmt.Sprintf("Op(%d)", int(o))
	}
	return opNames[o]
}

// Workload is one YCSB core workload: an operation mix and a request
// distribution.
type Workload struct {
	Name         string
	Proportions  [numOps]float64 // by Op; they sum to 1
	Distribution Distribution
	// MaxScanLength is the largest scan (scan lengths are uniform in
	// 1..MaxScanLength); used when the mix has scans.
	MaxScanLength int
}

// CoreWorkloads are YCSB's workloads A–F with their standard properties.
var CoreWorkloads = map[string]Workload{
	"A": {Name: "A", Proportions: [numOps]float64{OpRead: 0.5, OpUpdate: 0.5}, Distribution: Zipfian},
	"B": {Name: "B", Proportions: [numOps]float64{OpRead: 0.95, OpUpdate: 0.05}, Distribution: Zipfian},
	"C": {Name: "C", Proportions: [numOps]float64{OpRead: 1.0}, Distribution: Zipfian},
	"D": {Name: "D", Proportions: [numOps]float64{OpRead: 0.95, OpInsert: 0.05}, Distribution: Latest},
	"E": {Name: "E", Proportions: [numOps]float64{OpScan: 0.95, OpInsert: 0.05}, Distribution: Zipfian, MaxScanLength: 100},
	"F": {Name: "F", Proportions: [numOps]float64{OpRead: 0.5, OpReadModifyWrite: 0.5}, Distribution: Zipfian},
}

// ParseWorkloads parses a comma-separated list of core workload names
// ("A,B,C"), case-insensitively, in the given order.
func ParseWorkloads(s string) ([]Workload, error) {
	var ws []Workload
	for _, f := range strings.Split(s, ",") {
		f = strings.ToUpper(strings.TrimSpace(f))
		if f == "" {
			continue
		}
		w, ok := CoreWorkloads[f]
		if !ok {
			return nil, fmt.Errorf("cellar/ycsb: unknown workload %q (want A-F)", f)
		}
		ws = append(ws, w)
	}
	if len(ws) == 0 {
		return nil, fmt.Errorf("cellar/ycsb: no workloads in %q", s)
	}
	return ws, nil
}

// String describes the mix, largest share first, e.g. "95% read, 5%
// update, zipfian".
func (w Workload) String() string {
	var ops []Op
	for o := range numOps {
		if w.Proportions[o] > 0 {
			ops = append(ops, o)
		}
	}
	slices.SortStableFunc(ops, func(a, b Op) int { return cmp.Compare(w.Proportions[b], w.Proportions[a]) })
	var parts []string
	for _, o := range ops {
		parts = append(parts, fmt.Sprintf("%g%% %s", w.Proportions[o]*100, o))
	}
	d := string(w.Distribution)
	if w.Proportions[OpScan] > 0 {
		d += fmt.Sprintf(" scan start, scan length uniform 1..%d", w.MaxScanLength)
	}
	return strings.Join(parts, ", ") + ", " + d
}

// chooseOp draws an operation by the workload's proportions.
func (w Workload) chooseOp(r *rand.Rand) Op {
	u := r.Float64()
	var acc float64
	last := OpRead
	for o := range numOps {
		p := w.Proportions[o]
		if p == 0 {
			continue
		}
		acc += p
		last = o
		if u < acc {
			return o
		}
	}
	return last // rounding: the proportions sum to just under 1
}

// fieldName is "field" + i.
func fieldName(i int) string { return fmt.Sprintf("field%d", i) }

// randomValue returns n random printable ASCII bytes (as YCSB's
// RandomByteIterator: ' '..'~').
func randomValue(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		u := r.Uint64()
		for j := i; j < n && j < i+8; j++ {
			b[j] = ' ' + byte(u%95)
			u >>= 8
		}
	}
	return b
}
