package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"cellar/bench/enginebench"
)

// TestBenchEngineCommand runs `cellar bench engine` on a few rows and
// checks that every workload is reported.
func TestBenchEngineCommand(t *testing.T) {
	root := newRootCmd()
	var out strings.Builder
	root.SetOut(&out)
	root.SetArgs([]string{"bench", "engine", "--dir", t.TempDir(), "--rows", "500", "--memtable", "256KiB", "--cache", "1MiB"})
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"fillseq", "fillrandom", "fillsync", "compact", "readrandom", "readmissing", "scan", "memory cellar"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, out.String())
		}
	}
}

func TestBenchEngineCommandRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "engine"}, // no --dir
		{"bench", "engine", "--dir", "d", "--memtable", "big"},
		{"bench", "engine", "--dir", "d", "--workloads", "fillseq,readseq"},
	} {
		root := newRootCmd()
		root.SetArgs(args)
		if err := root.ExecuteContext(context.Background()); !errors.Is(err, enginebench.ErrInvalidOptions) {
			t.Errorf("%q = %v, want ErrInvalidOptions", args, err)
		}
	}
}
