package sstable

import (
	"bytes"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// The golden tables in testdata/ are produced by this file's generator. They
// pin the format: if the writer's output drifts by one byte, TestGolden
// fails. Regenerate (only for a deliberate format change, with a new
// TableFormat) with
//
//	go generate ./sstable    (runs: go test -run TestGolden -update)
var update = flag.Bool("update", false, "rewrite testdata/*.sst golden tables")

// goldenTables lists the fixtures: file name and writer options.
var goldenTables = []struct {
	file string
	opts WriterOptions
}{
	{"snappy.sst", WriterOptions{BlockSize: 512, Compression: CompressionSnappy}},
	{"none.sst", WriterOptions{BlockSize: 512, RestartInterval: 4, Compression: CompressionNone}},
	{"nofilter.sst", WriterOptions{BlockSize: 2048, BloomFalsePositive: -1}},
}

// goldenKVs is the fixed content of every golden table.
func goldenKVs() []kv { return randomKVs(rand.New(rand.NewPCG(42, 42)), 300, 64) }

func TestGolden(t *testing.T) {
	kvs := goldenKVs()
	for _, g := range goldenTables {
		t.Run(g.file, func(t *testing.T) {
			built, _ := buildTable(t, kvs, &g.opts)
			path := filepath.Join("testdata", g.file)
			if *update {
				if err := os.WriteFile(path, built, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			stored, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (generate the fixtures with: go generate ./sstable)", err)
			}
			if !bytes.Equal(built, stored) {
				t.Fatalf("writer output (%d bytes) differs from %s (%d bytes): the format drifted", len(built), path, len(stored))
			}
			r := openBytes(t, stored, nil)
			got, err := readAll(r, len(kvs)+1)
			if err != nil || !equalKVs(got, kvs) {
				t.Fatalf("reading %s: %d entries, err %v", path, len(got), err)
			}
		})
	}
}
