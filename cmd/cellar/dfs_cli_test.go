package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"cellar/dfs/dfscluster"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(cliTestMain{m}) }

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

// TestDFSCommands drives put, ls, cat, get, stat, mv, rm and fsck against
// an in-process cluster; fsck exits 2 once every replica of a chunk is gone.
func TestDFSCommands(t *testing.T) {
	ctx := context.Background()
	c, err := dfscluster.Start(ctx, &dfscluster.Options{Dir: t.TempDir(), DeadAfter: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m := "--masters=" + strings.Join(c.MasterAddrs(), ",")
	dir := t.TempDir()
	src := filepath.Join(dir, "in")
	want := bytes.Repeat([]byte("cellar dfs\n"), 200_000) // 2.2 MB: three chunks
	os.WriteFile(src, want, 0o644)
	if out, err := run(t, "dfs", m, "put", src, "data/in"); err != nil {
		t.Fatalf("put: %v %s", err, out)
	}
	if out, err := run(t, "dfs", m, "ls", "data"); err != nil || !strings.Contains(out, "2200000") || !strings.Contains(out, "in") {
		t.Fatalf("ls = %q, %v", out, err)
	}
	if out, err := run(t, "dfs", m, "cat", "data/in"); err != nil || out != string(want) {
		t.Fatalf("cat: %v (got %d bytes)", err, len(out))
	}
	// Absolute paths, as hdfs dfs users type them, name the same files.
	if out, err := run(t, "dfs", m, "stat", "/data/in"); err != nil || !strings.Contains(out, "size: 2200000") {
		t.Fatalf("stat /data/in = %q, %v", out, err)
	}
	// A failed get leaves no local file behind.
	missing := filepath.Join(dir, "missing")
	if _, err := run(t, "dfs", m, "get", "/data/nope", missing); err == nil {
		t.Fatal("get of a missing file succeeded")
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Fatalf("failed get left %s behind (stat: %v)", missing, err)
	}
	dst := filepath.Join(dir, "out")
	if _, err := run(t, "dfs", m, "get", "data/in", dst); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, want) {
		t.Fatal("get wrote other bytes")
	}
	if _, err := run(t, "dfs", m, "mv", "data/in", "data/moved"); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, "dfs", m, "stat", "data/moved"); err != nil || !strings.Contains(out, "size: 2200000") {
		t.Fatalf("stat = %q, %v", out, err)
	}
	if _, err := run(t, "dfs", m, "stat", "data/in"); err == nil {
		t.Fatal("stat of the old name succeeded")
	}
	if out, err := run(t, "dfs", m, "status"); err != nil || strings.Count(out, "true") < 8 {
		t.Fatalf("status = %q, %v", out, err)
	}
	if out, err := run(t, "dfs", m, "fsck"); err != nil || !strings.Contains(out, "HEALTHY") {
		t.Fatalf("fsck on a healthy cluster = %q, %v", out, err)
	}
	if _, err := run(t, "dfs", m, "put", src, "data/x"); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, "dfs", m, "rm", "data/x"); err != nil {
		t.Fatal(err)
	}
	// Stop every chunkserver holding data/moved's first chunk (handle 1:
	// handles are allocated in order and it was the first file written).
	const victim = 1
	for _, n := range c.Chunkservers {
		for _, h := range n.Running().Chunks() {
			if h == victim {
				n.Stop()
				break
			}
		}
	}
	var out string
	err = c.Poll(ctx, func() (bool, error) {
		out, err = run(t, "dfs", m, "fsck")
		var ee *exitError
		return errors.As(err, &ee) && ee.code == 2, nil
	})
	if err != nil {
		t.Fatalf("fsck never reported missing data: %v; last output %q", err, out)
	}
	if !strings.Contains(out, "MISSING") {
		t.Fatalf("fsck output %q does not name the missing chunk", out)
	}
}
