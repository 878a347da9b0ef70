package main

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"cellar/bench/enginebench"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestBothEnginesRunTheSameWorkloads runs every workload on 2,000 rows on
// Cellar and on Pebble: the harness verifies every value read and the scan's
// rows, and both reports must count the same operations.
func TestBothEnginesRunTheSameWorkloads(t *testing.T) {
	for _, get := range []string{"prefix-iter", "get"} {
		t.Run(get, func(t *testing.T) {
			c, err := parseFlags([]string{"--dir", t.TempDir(), "--rows", "2000", "--reads", "500", "--concurrency", "2",
				"--memtable", "256KiB", "--cache", "1MiB", "--pebble-get", get}, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			reports, err := runEngines(context.Background(), c, &out)
			if err != nil {
				t.Fatal(err)
			}
			if len(reports) != 2 {
				t.Fatalf("%d reports, want 2", len(reports))
			}
			want := map[string]int64{
				enginebench.FillSeq: 2000, enginebench.FillRandom: 2000, enginebench.FillSync: 2000, enginebench.Compact: 2000,
				enginebench.ReadRandom: 500, enginebench.ReadMissing: 500, enginebench.Scan: 2000,
			}
			for _, rep := range reports {
				if len(rep.Results) != len(want) {
					t.Errorf("%s: %d results, want %d", rep.Engine, len(rep.Results), len(want))
				}
				for _, r := range rep.Results {
					if r.Ops != want[r.Workload] {
						t.Errorf("%s %s: %d ops, want %d", rep.Engine, r.Workload, r.Ops, want[r.Workload])
					}
				}
			}
			if got := len(enginebench.Compare(reports[0], reports[1])); got != len(want) {
				t.Errorf("Compare paired %d workloads, want %d", got, len(want))
			}
		})
	}
}

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"--dir", "d"}, true},
		{[]string{}, false},
		{[]string{"--dir", "d", "--memtable", "lots"}, false},
		{[]string{"--dir", "d", "--engines", "cellar,rocks"}, false},
		{[]string{"--dir", "d", "--workloads", "fillseq,nope"}, false},
		{[]string{"--dir", "d", "extra"}, false},
	} {
		_, err := parseFlags(tc.args, io.Discard)
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, enginebench.ErrInvalidOptions)) {
			t.Errorf("parseFlags(%q) = %v, want ok=%v (or ErrInvalidOptions)", tc.args, err, tc.ok)
		}
	}
	if _, err := pebbleOpener(pebbleConfig{Get: "scan"}); !errors.Is(err, enginebench.ErrInvalidOptions) {
		t.Errorf("pebbleOpener with get mode scan = %v, want ErrInvalidOptions", err)
	}
}
